/* The caller of `stasis restore -S` (as runc is): runs argv[1..] as its child and waits for it,
 * then reports its own children (the restored root alone, a sibling of stasis), waits for one
 * to end and says how it ended, and that no other child is left (no stub stasis used):
 *   stasis exit N
 *   children PID...
 *   reaped PID exit N | reaped PID signal N
 *   others none | others PID */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/wait.h>

/* Single-threaded: its children are those of its one thread. */
static void children(void)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/self/task/%d/children", getpid());
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	buf[n] = 0;
	if (f)
		fclose(f);
	printf("children");
	for (char *t = strtok(buf, " \n"); t; t = strtok(NULL, " \n"))
		printf(" %s", t);
	printf("\n");
}

static void report(const char *what, pid_t pid, int st)
{
	if (WIFEXITED(st))
		printf("%s%d exit %d\n", what, pid, WEXITSTATUS(st));
	else
		printf("%s%d signal %d\n", what, pid, WTERMSIG(st));
}

int main(int argc, char **argv)
{
	int st;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		return 2;
	pid_t s = fork();
	if (s == 0) {
		execvp(argv[1], argv + 1);
		_exit(126);
	}
	if (waitpid(s, &st, 0) != s)
		return 3;
	report("stasis ", 0, st);
	children();
	pid_t r = wait(&st);
	if (r < 0)
		printf("reaped none: %s\n", strerror(errno));
	else
		report("reaped ", r, st);
	pid_t o = waitpid(-1, &st, WNOHANG);
	if (o < 0 && errno == ECHILD)
		printf("others none\n");
	else
		printf("others %d\n", o);
	return 0;
}
