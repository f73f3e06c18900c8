/* Files of /proc: a child's /proc/PID/status open at fd 10, the net namespace file at fd 11,
 * and a child whose cwd is /proc/PID of a grandchild that died (unhashed). After go fd 10
 * still reads the restored child's status, fd 11 is still our net namespace, the child's cwd
 * still reads `/proc/PID (deleted)`, and getcwd() in the child still fails with ENOENT. */
#include "wl.h"
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

static int pipefd[2];

static void cwd_holder(void)
{
	pid_t gc = fork();
	if (gc == 0) {
		pause();
		_exit(0);
	}
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d", gc);
	if (chdir(path))
		_exit(1);
	kill(gc, SIGKILL);
	waitpid(gc, NULL, 0);
	/* Told to check by a byte on the pipe: 0 if getcwd still fails with ENOENT. */
	char c;
	if (read(pipefd[0], &c, 1) != 1)
		_exit(2);
	_exit(getcwd(buf, sizeof(buf)) == NULL && errno == ENOENT ? 0 : 3);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	if (pipe(pipefd))
		return 3;
	pid_t c = fork();
	if (c == 0)
		cwd_holder();
	char path[64], before[256] = { 0 }, ns[256] = { 0 };
	snprintf(path, sizeof(path), "/proc/%d/status", c);
	int s = open(path, O_RDONLY), n = open("/proc/self/ns/net", O_RDONLY);
	if (s < 0 || n < 0 || dup2(s, 10) != 10 || dup2(n, 11) != 11)
		return 4;
	readlink("/proc/self/fd/11", ns, sizeof(ns) - 1);
	snprintf(path, sizeof(path), "/proc/%d/cwd", c);
	for (int i = 0; i < 1000 && !strstr(before, "(deleted)"); i++) {
		ssize_t len = readlink(path, before, sizeof(before) - 1);
		before[len < 0 ? 0 : len] = 0;
		wl_sleep_ms(1);
	}
	if (!strstr(before, "(deleted)"))
		return 5;
	wl_ready();
	wl_wait_go();
	char buf[4096] = { 0 }, want[64], now[256] = { 0 }, ns2[256] = { 0 };
	snprintf(want, sizeof(want), "\nPid:\t%d\n", c);
	if (pread(10, buf, sizeof(buf) - 1, 0) <= 0 || !strstr(buf, want))
		wl_fail("fd 10 does not read the child's status; ");
	if (readlink("/proc/self/fd/11", ns2, sizeof(ns2) - 1) < 0 || strcmp(ns, ns2))
		wl_fail("fd 11 is %s, not %s; ", ns2, ns);
	if (readlink(path, now, sizeof(now) - 1) < 0 || strcmp(now, before))
		wl_fail("the child's cwd reads %s, not %s; ", now, before);
	int st = 0;
	if (write(pipefd[1], "x", 1) != 1 || waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		wl_fail("getcwd() in the child no longer fails with ENOENT (status %x); ", st);
	return wl_finish(NULL);
}
