/* pidfds. Before `ready`: a child A that waits to be killed, with pidfds of it at fd 40
 * (close-on-exec), 41 (PIDFD_NONBLOCK, no close-on-exec) and 42 (a dup of 40: the same file);
 * a pidfd of itself at fd 43; a child Z left a zombie, with a pidfd at fd 44; a child B that
 * exited with 7 and was reaped, with two pidfds opened apart at fds 45 and 46; a child C
 * killed by SIGTERM and reaped, pidfd at fd 47. After restore it checks that fdinfo names the
 * same pids (-1 for the reaped ones), the flags and close-on-exec, that 40 and 42 still share
 * their file and 41 does not, that pidfds of one process share an inode and those of others
 * do not, that the reaped ones poll readable with their exit status (PIDFD_GET_INFO, where
 * the kernel has it), that waitid(P_PIDFD) reaps the zombie with its status, and that
 * pidfd_send_signal() through fd 41 kills A, which waitid(P_PIDFD) on fd 40 then sees.
 * A PIDFD_THREAD pidfd of its own (leading) thread at fd 49 keeps the flag and its target.
 * A thread T, not the leader, has a PIDFD_THREAD pidfd at fd 50 and its dup at 51: after
 * restore fdinfo names T, and pidfd_send_signal(PIDFD_SIGNAL_THREAD) through it reaches T.
 * With `forkthread`, a child D holds fd 50 too (refused: only T's own process may).
 * With `live`, there are no B and C (nor fds 45-47).
 * In a pid namespace of its own (as its init) fdinfo's pids are only told dead or alive.
 * With argv[2] `outside`, it also holds a pidfd of its parent, outside the tree (refused);
 * with `sigkill`, B and C are killed by SIGKILL and there is no fd 49, which is all CRIU 4.2
 * keeps (it restores every reaped process as killed, and refuses PIDFD_THREAD). */
#include "wl.h"
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <pthread.h>
#include <sys/prctl.h>

#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif
#define PIDFD_GET_INFO 0xc040ff0bUL
#define PIDFD_INFO_EXIT 8ULL

static int pidfd_open(pid_t pid, unsigned flags) { return syscall(SYS_pidfd_open, pid, flags); }

static volatile pid_t thread_tid, signalled_tid;

static void on_usr2(int sig) { signalled_tid = syscall(SYS_gettid); }

static void *thread_main(void *arg)
{
	thread_tid = syscall(SYS_gettid);
	for (;;)
		pause();
	return NULL;
}

static void place(int fd, int want, int cloexec)
{
	if (fd < 0 || dup3(fd, want, cloexec ? O_CLOEXEC : 0) != want)
		exit(4);
	close(fd);
}

static int fdinfo_pid(int fd)
{
	char path[64], line[256];
	int pid = -2;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "r");
	if (!f)
		return -3;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Pid: %d", &pid) == 1)
			break;
	fclose(f);
	return pid;
}

/* PIDFD_GET_INFO's exit status, or -1 where the kernel does not say. */
static int exit_info(int fd)
{
	unsigned char info[64] = { 0 };
	*(uint64_t *)info = PIDFD_INFO_EXIT;
	if (ioctl(fd, PIDFD_GET_INFO, info) < 0 || !(*(uint64_t *)info & PIDFD_INFO_EXIT))
		return -1;
	return *(int32_t *)(info + 60);
}

static ino_t ino(int fd)
{
	struct stat st;
	return fstat(fd, &st) ? 0 : st.st_ino;
}

static int readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	pid_t a = fork();
	if (a == 0) {
		for (;;)
			pause();
	}
	place(pidfd_open(a, 0), 40, 1);
	place(pidfd_open(a, PIDFD_NONBLOCK), 41, 0);
	if (dup3(40, 42, O_CLOEXEC) != 42)
		exit(4);
	place(pidfd_open(getpid(), 0), 43, 0);
	pid_t z = fork();
	if (z == 0)
		_exit(5);
	place(pidfd_open(z, 0), 44, 1);
	int sigkill = argc > 2 && !strcmp(argv[2], "sigkill");
	int dead = !(argc > 2 && !strcmp(argv[2], "live")), last = dead ? 47 : 44;
	int b_status = sigkill ? SIGKILL : 7 << 8, c_signal = sigkill ? SIGKILL : SIGTERM;
	pid_t b = dead ? fork() : -1;
	if (b == 0) {
		if (sigkill)
			for (;;)
				pause();
		_exit(7);
	}
	if (dead) {
		place(pidfd_open(b, 0), 45, 1);
		place(pidfd_open(b, 0), 46, 1);
		pid_t c = fork();
		if (c == 0) {
			for (;;)
				pause();
		}
		place(pidfd_open(c, 0), 47, 1);
		kill(c, c_signal);
		if (sigkill)
			kill(b, SIGKILL);
		if (waitpid(b, NULL, 0) != b || waitpid(c, NULL, 0) != c)
			exit(5);
	}
	/* The zombie: exited, not reaped (its pidfd polls readable already). */
	while (!readable(44))
		wl_sleep_ms(1);
	if (argc > 2 && !strcmp(argv[2], "outside"))
		place(pidfd_open(getppid(), 0), 48, 1);
	if (!sigkill) {
		place(pidfd_open(getpid(), PIDFD_THREAD), 49, 1);
		signal(SIGUSR2, on_usr2);
		pthread_t th;
		if (pthread_create(&th, NULL, thread_main, NULL))
			exit(6);
		while (!thread_tid)
			wl_sleep_ms(1);
		place(pidfd_open(thread_tid, PIDFD_THREAD), 50, 1);
		if (dup3(50, 51, 0) != 51)
			exit(4);
		if (argc > 2 && !strcmp(argv[2], "forkthread") && fork() == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			for (;;)
				pause();
		}
	}
	int have_info = dead && exit_info(45) >= 0;
	wl_ready();
	wl_wait_go();

	/* In a pid namespace of its own, /proc (stasis's) shows pids as stasis's namespace sees them. */
	int pidns = getpid() == 1;
	int want_pid[] = { a, a, a, getpid(), z, -1, -1, -1 };
	for (int fd = 40; fd <= last; fd++)
		if (pidns ? (fdinfo_pid(fd) == -1) != (want_pid[fd - 40] == -1) : fdinfo_pid(fd) != want_pid[fd - 40])
			wl_fail("fd %d: fdinfo says Pid %d, not %d", fd, fdinfo_pid(fd), want_pid[fd - 40]);
	if (!sigkill && ((!pidns && fdinfo_pid(49) != getpid()) || !(fcntl(49, F_GETFL) & PIDFD_THREAD) || (fcntl(43, F_GETFL) & PIDFD_THREAD)))
		wl_fail("fd 49: Pid %d, flags 0%o: not a PIDFD_THREAD pidfd of %d", fdinfo_pid(49), fcntl(49, F_GETFL), getpid());
	if (fcntl(40, F_GETFL) & O_NONBLOCK)
		wl_fail("fd 40 is non-blocking");
	if (!(fcntl(41, F_GETFL) & O_NONBLOCK))
		wl_fail("fd 41 lost PIDFD_NONBLOCK");
	int cloexec[] = { 1, 0, 1, 0, 1, 1, 1, 1 };
	for (int fd = 40; fd <= last; fd++)
		if (!!(fcntl(fd, F_GETFD) & FD_CLOEXEC) != cloexec[fd - 40])
			wl_fail("fd %d: close-on-exec is %d", fd, !cloexec[fd - 40]);
	/* 42 is 40's file (its flags are 40's), 41 a file of its own. */
	fcntl(42, F_SETFL, O_NONBLOCK);
	if (!(fcntl(40, F_GETFL) & O_NONBLOCK))
		wl_fail("fds 40 and 42 no longer share their file");
	fcntl(42, F_SETFL, 0);
	if (!(fcntl(41, F_GETFL) & O_NONBLOCK))
		wl_fail("fd 41 shares a file with 42");
	if (ino(40) != ino(41) || (dead && ino(45) != ino(46)))
		wl_fail("pidfds of one process have inodes %lu/%lu and %lu/%lu", (unsigned long)ino(40), (unsigned long)ino(41), (unsigned long)ino(45), (unsigned long)ino(46));
	if ((dead && (ino(40) == ino(45) || ino(45) == ino(47))) || ino(40) == ino(43))
		wl_fail("pidfds of different processes share an inode");
	if (readable(40) || readable(43))
		wl_fail("a pidfd of a live process polls readable");
	if (dead && (!readable(45) || !readable(46) || !readable(47)))
		wl_fail("a pidfd of a reaped process does not poll readable");
	if (have_info && (exit_info(45) != b_status || exit_info(46) != b_status || exit_info(47) != c_signal))
		wl_fail("reaped processes died with 0x%x, 0x%x and 0x%x, not 0x%x and 0x%x", exit_info(45), exit_info(46), exit_info(47), b_status, c_signal);
	siginfo_t si = { 0 };
	if (waitid(P_PIDFD, 44, &si, WEXITED) || si.si_pid != z || si.si_code != CLD_EXITED || si.si_status != 5)
		wl_fail("waitid on the zombie's pidfd: %s, pid %d code %d status %d", strerror(errno), si.si_pid, si.si_code, si.si_status);
	if (syscall(SYS_pidfd_send_signal, 41, SIGTERM, NULL, 0))
		wl_fail("pidfd_send_signal: %s", strerror(errno));
	memset(&si, 0, sizeof(si));
	if (waitid(P_PIDFD, 40, &si, WEXITED) || si.si_pid != a || si.si_code != CLD_KILLED || si.si_status != SIGTERM)
		wl_fail("waitid on A's pidfd: %s, pid %d code %d status %d", strerror(errno), si.si_pid, si.si_code, si.si_status);
	if (!readable(40))
		wl_fail("A's pidfd does not poll readable once A is dead");
	if (fdinfo_pid(40) != -1)
		wl_fail("A's pidfd says Pid %d once A is reaped", fdinfo_pid(40));
	if (!sigkill) {
		if ((!pidns && fdinfo_pid(50) != thread_tid) || fdinfo_pid(50) == -1 || !(fcntl(50, F_GETFL) & PIDFD_THREAD))
			wl_fail("fd 50: Pid %d, flags 0%o: not a PIDFD_THREAD pidfd of thread %d", fdinfo_pid(50), fcntl(50, F_GETFL), thread_tid);
		if (!(fcntl(50, F_GETFD) & FD_CLOEXEC) || (fcntl(51, F_GETFD) & FD_CLOEXEC))
			wl_fail("fds 50 and 51 do not have close-on-exec as they had");
		fcntl(51, F_SETFL, O_NONBLOCK | PIDFD_THREAD);
		if (!(fcntl(50, F_GETFL) & O_NONBLOCK))
			wl_fail("fds 50 and 51 no longer share their file");
		if (ino(50) == ino(49))
			wl_fail("the pidfds of thread %d and of the leader share an inode", thread_tid);
		if (syscall(SYS_pidfd_send_signal, 50, SIGUSR2, NULL, 1 /* PIDFD_SIGNAL_THREAD */))
			wl_fail("pidfd_send_signal to thread %d: %s", thread_tid, strerror(errno));
		for (int i = 0; i < 2000 && !signalled_tid; i++)
			wl_sleep_ms(1);
		if (signalled_tid != thread_tid)
			wl_fail("SIGUSR2 sent through fd 50 reached thread %d, not %d", signalled_tid, thread_tid);
	}
	return wl_finish(have_info ? NULL : "(no PIDFD_GET_INFO exit status on this kernel)\n");
}
