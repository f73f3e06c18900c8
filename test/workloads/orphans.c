/* Groups and sessions whose leaders have exited. The root (a subreaper, its own session)
 * has a child B in the group of A, which has exited and been reaped; and a task T in the
 * session of S, which has exited (T was reparented to the root). The root blocks SIGCHLD
 * (with a handler installed) and reaps everything before `ready`; after restore it checks that no SIGCHLD came from
 * nowhere, lets B and T report their ids, and checks their exit codes. */
#include "wl.h"
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/wait.h>

static void report_and_exit(const char *name, int code)
{
	while (access("go2", F_OK) != 0)
		wl_sleep_ms(1);
	char text[64];
	snprintf(text, sizeof(text), "%d %d %d %d\n", getpid(), getppid(), getpgrp(), getsid(0));
	wl_write(name, text);
	_exit(code);
}

static volatile int chld_seen;
static void on_chld(int sig) { (void)sig; chld_seen++; }

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	setsid();
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	/* A handler, so that a pending SIGCHLD is kept (SIG_DFL would discard it). */
	signal(SIGCHLD, on_chld);

	pid_t a = fork();
	if (a == 0) {
		setpgid(0, 0);
		wl_write("a-ready", "1\n");
		wl_wait_file("b-joined");
		_exit(0);
	}
	wl_wait_file("a-ready");
	pid_t b = fork();
	if (b == 0) {
		if (setpgid(0, a) != 0)
			_exit(50);
		wl_write("b-joined", "1\n");
		report_and_exit("report-b", 21);
	}
	waitpid(a, NULL, 0);

	pid_t s = fork();
	if (s == 0) {
		setsid();
		pid_t t = fork();
		if (t == 0) {
			wl_wait_file("s-gone");
			report_and_exit("report-t", 22);
		}
		char text[32];
		snprintf(text, sizeof(text), "%d\n", t);
		wl_write("t-pid", text);
		_exit(0);
	}
	waitpid(s, NULL, 0);
	wl_wait_file("t-pid");
	wl_write("s-gone", "1\n");

	/* Nothing pending before ready. */
	struct timespec zero = { 0, 0 };
	while (sigtimedwait(&chld, NULL, &zero) > 0) {}
	char text[64];
	snprintf(text, sizeof(text), "%d %d %d\n", a, b, s);
	wl_write("pids", text);
	wl_ready();
	wl_wait_go();
	sigset_t pend;
	sigpending(&pend);
	if (sigismember(&pend, SIGCHLD))
		wl_fail("a SIGCHLD is pending that no child of the dumped task sent");
	wl_write("go2", "1\n");
	int st = 0, seen = 0;
	for (pid_t p; (p = wait(&st)) > 0; seen++) {
		if (p == b && !(WIFEXITED(st) && WEXITSTATUS(st) == 21))
			wl_fail("b ended with %x, not 21", st);
		else if (p != b && !(WIFEXITED(st) && WEXITSTATUS(st) == 22))
			wl_fail("t (%d) ended with %x, not 22", p, st);
	}
	if (seen != 2)
		wl_fail("reaped %d children, not 2", seen);
	return wl_finish(NULL);
}
