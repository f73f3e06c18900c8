/* Sessions and groups whose leaders have exited or are elsewhere, in a pid namespace of
 * the tree's own (run as its init by `unshare --pid --fork`), as zdtm's ns tests make them:
 * - x: in the session of l, a zombie child of m (zombie_leader): l made it and exited, so x
 *   was left to the init;
 * - y: in the session of k, a live child of m, under the init since its parent h (k's child)
 *   exited (child_subreaper_and_reparent);
 * - v: under the init, in the session of s (its sibling) and in the group of g, which exited
 *   (sk-unix-restore-fs-share);
 * - c: forked by b before b made a session of its own, b by a before a did: c is in the
 *   init's session, under b (session01).
 * Every task but the zombie writes "pid ppid pgid sid" (as it sees them) to pre-NAME before
 * ready and to post-NAME after go, then, after go2, reaps its children and exits 1 if its ids
 * changed or a child did not exit 0. The init reaps all the others and writes the result. */
#include "wl.h"
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

static void ids(char *text, size_t size)
{
	snprintf(text, size, "%d %d %d %d\n", getpid(), getppid(), getpgrp(), getsid(0));
}

/* Reaps every child; the number of them that did not exit 0. */
static int reap_all(void)
{
	int bad = 0, st;
	while (wait(&st) > 0)
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad++;
	return bad;
}

/* The life of every task but the init: `orphan`: it waits until the init has it. */
static void body(const char *name, int orphan)
{
	char pre[64], post[64], file[32], now[64];
	while (orphan && getppid() != 1)
		wl_sleep_ms(1);
	ids(pre, sizeof(pre));
	snprintf(file, sizeof(file), "pre-%s", name);
	wl_write(file, pre);
	wl_wait_go();
	ids(now, sizeof(now));
	snprintf(post, sizeof(post), "post-%s", name);
	wl_write(post, now);
	wl_wait_file("go2");
	int bad = reap_all();
	_exit(bad || strcmp(pre, now) ? 1 : 0);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	if (getpid() != 1) {
		wl_fail("pid %d, not the init of a pid namespace", getpid());
		return wl_finish(NULL);
	}
	setsid();
	if (fork() == 0) { /* m */
		pid_t l = fork();
		if (l == 0) {
			setsid();
			if (fork() == 0)
				body("x", 1);
			_exit(0);
		}
		siginfo_t si;
		if (waitid(P_PID, l, &si, WEXITED | WNOWAIT) != 0)
			_exit(5);
		if (fork() == 0) { /* k */
			setsid();
			pid_t h = fork();
			if (h == 0) {
				if (fork() == 0)
					body("y", 1);
				_exit(0);
			}
			waitpid(h, NULL, 0);
			body("k", 0);
		}
		body("m", 0);
	}
	if (fork() == 0) { /* s */
		setsid();
		pid_t g = fork();
		if (g == 0) {
			setpgid(0, 0);
			if (fork() == 0)
				body("v", 1);
			_exit(0);
		}
		waitpid(g, NULL, 0);
		body("s", 0);
	}
	if (fork() == 0) { /* a */
		if (fork() == 0) { /* b */
			if (fork() == 0)
				body("c", 0);
			wl_wait_file("pre-c");
			setsid();
			body("b", 0);
		}
		wl_wait_file("pre-b");
		setsid();
		body("a", 0);
	}
	static const char *names[] = { "m", "x", "k", "y", "s", "v", "a", "b", "c" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char f[16];
		snprintf(f, sizeof(f), "pre-%s", names[i]);
		wl_wait_file(f);
	}
	char pre[64], now[64];
	ids(pre, sizeof(pre));
	wl_write("pre-init", pre);
	wl_ready();
	wl_wait_go();
	ids(now, sizeof(now));
	wl_write("post-init", now);
	wl_wait_file("go2");
	int bad = reap_all();
	if (bad)
		wl_fail("%d tasks ended other than with exit 0 (their ids changed, or a child of theirs failed)", bad);
	if (strcmp(pre, now))
		wl_fail("the init's ids were %s and are %s", pre, now);
	return wl_finish(NULL);
}
