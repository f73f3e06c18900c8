/* A three-level tree: the parent (its own session and group), two children (the second
 * in a group of its own), a grandchild under the first child, and a zombie child that
 * exited with 42. After restore pids, parents, groups and sessions are the same; the
 * children report through files (test/cr/pipes covers pipes across a tree); the parent
 * reaps everyone and checks each exit status. With `creds`, the zombie died with credentials
 * of its own (uids 5001-5003, gids 4001-4003, group 4242): /proc shows them, and waitid() its
 * uid (CRIU keeps no credentials of a zombie: its interop case runs without). */
#include "wl.h"
#include <sys/wait.h>
#include <stdint.h>
#include <grp.h>

static void child_body(int id, int depth)
{
	/* Each task computes a little, waits for go, and exits with a code that proves it ran. */
	uint64_t x = id;
	for (int k = 0; k < 1000; k++)
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	while (!wl_go_seen())
		wl_sleep_ms(1);
	char name[32], text[64];
	snprintf(name, sizeof(name), "report-%d", id);
	snprintf(text, sizeof(text), "%d %d %d %d %llx\n", getpid(), getppid(), getpgrp(), getsid(0), (unsigned long long)x);
	wl_write(name, text);
	_exit(10 + id + depth);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int creds = argc > 2 && !strcmp(argv[2], "creds");
	setsid();
	pid_t zombie = fork();
	if (zombie == 0) {
		gid_t g = 4242;
		if (creds && (setgroups(1, &g) || setresgid(4001, 4002, 4003) || setresuid(5001, 5002, 5003)))
			_exit(43);
		_exit(42);
	}
	pid_t a = fork();
	if (a == 0) {
		pid_t g = fork();
		if (g == 0)
			child_body(3, 2);
		while (!wl_go_seen())
			wl_sleep_ms(1);
		int st = 0;
		if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 15)
			_exit(99);
		child_body(1, 1);
	}
	pid_t b = fork();
	if (b == 0) {
		setpgid(0, 0);
		child_body(2, 1);
	}
	/* The parent too (the usual pair): b is in its own group before ready, whoever runs first. */
	setpgid(b, b);
	/* Let the zombie die before ready, and check it is a zombie. */
	for (int i = 0; i < 1000; i++) {
		char path[64], buf[256] = { 0 };
		snprintf(path, sizeof(path), "/proc/%d/stat", zombie);
		int fd = open(path, O_RDONLY);
		if (read(fd, buf, sizeof(buf) - 1) < 0) {}
		close(fd);
		if (strstr(buf, ") Z "))
			break;
		wl_sleep_ms(1);
	}
	char text[64];
	snprintf(text, sizeof(text), "%d %d %d\n", zombie, a, b);
	wl_write("pids", text);
	wl_ready();
	wl_wait_go();
	char status[2048] = { 0 }, path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", zombie);
	int sfd = open(path, O_RDONLY);
	if (sfd < 0 || read(sfd, status, sizeof(status) - 1) < 0)
		wl_fail("cannot read the zombie's status");
	close(sfd);
	if (creds && (!strstr(status, "Uid:\t5001\t5002\t5003\t5002\n") || !strstr(status, "Gid:\t4001\t4002\t4003\t4002\n") || !strstr(status, "Groups:\t4242 \n")))
		wl_fail("the zombie's credentials are not its own: %s", strstr(status, "Uid:") ? strstr(status, "Uid:") : status);
	siginfo_t si = { 0 };
	if (waitid(P_PID, zombie, &si, WEXITED) != 0 || si.si_code != CLD_EXITED || si.si_status != 42 || si.si_uid != (creds ? 5001 : getuid()))
		wl_fail("the zombie ended with code %d status %d uid %d, not exit 42 by uid %d", si.si_code, si.si_status, (int)si.si_uid, creds ? 5001 : (int)getuid());
	int st = 0;
	if (waitpid(a, &st, 0) != a || !WIFEXITED(st) || WEXITSTATUS(st) != 12)
		wl_fail("child a ended with %x, not exit 12 (99: its grandchild failed)", st);
	if (waitpid(b, &st, 0) != b || !WIFEXITED(st) || WEXITSTATUS(st) != 13)
		wl_fail("child b ended with %x, not exit 13", st);
	return wl_finish(NULL);
}
