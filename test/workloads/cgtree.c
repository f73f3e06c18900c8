/* A tree across two cgroup v2 cgroups: argv[2] and argv[3] are the cgroups' directories, argv[4]
 * and argv[5] their paths in the hierarchy. The root moves itself into the first and forks a
 * child that stays there with it (it inherits it) and one that moves into the second, and a
 * grandchild that inherits the second. After go, each checks /proc/self/cgroup and that it can
 * still fork into its cgroup; the root collects the children's results. */
#include "wl.h"
#include <sys/wait.h>

/* 0 if this task's v2 line of /proc/self/cgroup is 0::PATH. */
static int in_cgroup(const char *want)
{
	char line[4096], expect[4200];
	snprintf(expect, sizeof(expect), "0::%s\n", want);
	FILE *f = fopen("/proc/self/cgroup", "r");
	int found = -1;
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "0::", 3) == 0)
			found = strcmp(line, expect) == 0 ? 0 : -1;
	if (f)
		fclose(f);
	return found;
}

/* A child's check: its cgroup, then a fork of its own born there too. */
static int check(const char *want)
{
	if (in_cgroup(want) != 0)
		return 4;
	pid_t p = fork();
	if (p == 0)
		_exit(in_cgroup(want) == 0 ? 0 : 5);
	int st = 0;
	if (waitpid(p, &st, 0) != p || !WIFEXITED(st))
		return 6;
	return WEXITSTATUS(st);
}

static pid_t child(const char *dir, const char *want, int grandchild)
{
	pid_t c = fork();
	if (c != 0)
		return c;
	if (dir)
		wl_move_to_cgroup(dir);
	pid_t g = grandchild ? fork() : -1;
	if (g == 0) {
		wl_wait_go();
		_exit(check(want));
	}
	wl_write(grandchild ? "b-ready" : "a-ready", "1\n");
	wl_wait_go();
	int r = check(want), st = 0;
	if (g > 0 && (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0))
		r = 10 + (WIFEXITED(st) ? WEXITSTATUS(st) : 9);
	_exit(r);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	if (argc < 6) {
		fprintf(stderr, "usage: %s DIR CGDIR_A CGDIR_B PATH_A PATH_B\n", argv[0]);
		return 2;
	}
	wl_move_to_cgroup(argv[2]);
	pid_t a = child(NULL, argv[4], 0), b = child(argv[3], argv[5], 1);
	while (access("a-ready", F_OK) != 0 || access("b-ready", F_OK) != 0)
		wl_sleep_ms(1);
	wl_ready();
	wl_wait_go();
	if (in_cgroup(argv[4]) != 0)
		wl_fail("the root is not in %s", argv[4]);
	int st = 0;
	if (waitpid(a, &st, 0) != a || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_fail("the child that inherited %s failed: status %x", argv[4], st);
	if (waitpid(b, &st, 0) != b || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_fail("the child in %s (or its own child) failed: status %x", argv[5], st);
	return wl_finish(NULL);
}
