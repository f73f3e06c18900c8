/* Sessions a task cannot be put in by its parent at restore (zdtm session01's cases):
 * - g: forked by a, which then made a session of its own: g stays in the parent's session,
 *   under a, which leads another;
 * - x: in the session l leads, under the parent (a child subreaper) since x's own parent m
 *   (in l's session) exited: its sibling l leads the session it is in.
 * Each task writes "pid ppid pgid sid" to pre-NAME before ready and to post-NAME after go,
 * then exits with its code; the parent reaps a, l and x and checks their codes. */
#include "wl.h"
#include <sys/prctl.h>
#include <sys/wait.h>

static void report(const char *file, const char *name)
{
	char path[64], text[96];
	snprintf(path, sizeof(path), "%s-%s", file, name);
	snprintf(text, sizeof(text), "%d %d %d %d\n", getpid(), getppid(), getpgrp(), getsid(0));
	wl_write(path, text);
}

static void body(const char *name, int code)
{
	report("pre", name);
	while (!wl_go_seen())
		wl_sleep_ms(1);
	report("post", name);
	_exit(code);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	setsid();
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	pid_t a = fork();
	if (a == 0) {
		pid_t g = fork();
		if (g == 0)
			body("g", 21);
		setsid();
		wl_wait_file("pre-g");
		report("pre", "a");
		while (!wl_go_seen())
			wl_sleep_ms(1);
		int st = 0;
		if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 21)
			_exit(99);
		report("post", "a");
		_exit(20);
	}
	pid_t l = fork();
	if (l == 0) {
		setsid();
		pid_t m = fork();
		if (m == 0) {
			if (fork() == 0)
				body("x", 31);
			_exit(0);
		}
		waitpid(m, NULL, 0);
		body("l", 30);
	}
	wl_wait_file("pre-a");
	wl_wait_file("pre-l");
	wl_wait_file("pre-x");
	/* x is ours once m has exited. */
	for (int i = 0; i < 2000 && waitpid(-1, NULL, WNOHANG) == 0; i++) {
		char buf[64] = { 0 };
		FILE *f = fopen("pre-x", "r");
		int px = 0;
		if (f) {
			if (fscanf(f, "%d", &px) != 1)
				px = 0;
			fclose(f);
		}
		snprintf(buf, sizeof(buf), "/proc/%d/stat", px);
		FILE *s = fopen(buf, "r");
		int pp = 0;
		if (s) {
			if (fscanf(s, "%*d %*s %*c %d", &pp) != 1)
				pp = 0;
			fclose(s);
		}
		if (pp == getpid())
			break;
		wl_sleep_ms(1);
	}
	char text[64];
	snprintf(text, sizeof(text), "%d %d\n", a, l);
	wl_write("pids", text);
	wl_ready();
	wl_wait_go();
	int reaped = 0, st = 0;
	pid_t p;
	while (reaped < 3 && (p = wait(&st)) > 0) {
		reaped++;
		int want = p == a ? 20 : p == l ? 30 : 31;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != want)
			wl_fail("pid %d ended with %x, not exit %d (99: g failed)", p, st, want);
	}
	if (reaped != 3)
		wl_fail("reaped %d children, not 3", reaped);
	return wl_finish(NULL);
}
