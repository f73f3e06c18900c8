/* Scheduling, itimers and job control across a checkpoint. The main thread runs at nice 7
 * on CPU 0 only; thread A is SCHED_FIFO 5 with SCHED_RESET_ON_FORK; thread B is SCHED_BATCH
 * at nice 3 on the last CPU; child C is SCHED_IDLE; child D (a group of its own, so that
 * SIGTSTP is not dropped) is stopped by SIGTSTP, its stop not yet collected. The three
 * itimers run with intervals. After restore each is checked from inside; D must still be
 * stopped by SIGTSTP, and go on (and exit 0) on SIGCONT. */
#include "wl.h"
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>

#ifndef SCHED_RESET_ON_FORK
#define SCHED_RESET_ON_FORK 0x40000000
#endif

static volatile pid_t tid_a, tid_b;
static int ncpu;

static void *thread_a(void *arg)
{
	(void)arg;
	struct sched_param p = { .sched_priority = 5 };
	tid_a = syscall(SYS_gettid);
	if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &p))
		wl_fail("thread A: sched_setscheduler: %s", strerror(errno));
	for (;;)
		wl_sleep_ms(50);
	return NULL;
}

static void *thread_b(void *arg)
{
	(void)arg;
	struct sched_param p = { .sched_priority = 0 };
	cpu_set_t set;
	tid_b = syscall(SYS_gettid);
	if (sched_setscheduler(0, SCHED_BATCH, &p))
		wl_fail("thread B: sched_setscheduler: %s", strerror(errno));
	if (setpriority(PRIO_PROCESS, 0, 3))
		wl_fail("thread B: setpriority: %s", strerror(errno));
	CPU_ZERO(&set);
	CPU_SET(ncpu - 1, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		wl_fail("thread B: sched_setaffinity: %s", strerror(errno));
	for (;;)
		wl_sleep_ms(50);
	return NULL;
}

static void check_itimer(int which, const char *name, long value, long interval)
{
	struct itimerval it;
	getitimer(which, &it);
	/* A CPU-time timer barely moves while the process sleeps; ITIMER_REAL moves with the clock. */
	if (it.it_value.tv_sec > value || it.it_value.tv_sec < value - 120)
		wl_fail("%s has %ld s left, not about %ld", name, (long)it.it_value.tv_sec, value);
	if (it.it_interval.tv_sec != interval || it.it_interval.tv_usec != 0)
		wl_fail("%s has an interval of %ld.%06ld s, not %ld", name, (long)it.it_interval.tv_sec, (long)it.it_interval.tv_usec, interval);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	pthread_t a, b;
	cpu_set_t set;

	pid_t c = fork();
	if (c == 0) {
		struct sched_param p = { .sched_priority = 0 };
		if (sched_setscheduler(0, SCHED_IDLE, &p))
			_exit(3);
		for (;;)
			pause();
	}
	while (sched_getscheduler(c) != SCHED_IDLE)
		wl_sleep_ms(1);
	pid_t d = fork();
	if (d == 0) {
		setpgid(0, 0);
		for (;;)
			wl_sleep_ms(5);
	}
	setpgid(d, d);
	kill(d, SIGTSTP);
	siginfo_t si = { 0 };
	if (waitid(P_PID, d, &si, WSTOPPED | WNOWAIT))
		wl_fail("waitid before: %s", strerror(errno));

	setpriority(PRIO_PROCESS, 0, 7);
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	sched_setaffinity(0, sizeof(set), &set);
	pthread_create(&a, NULL, thread_a, NULL);
	pthread_create(&b, NULL, thread_b, NULL);
	while (!tid_a || !tid_b)
		wl_sleep_ms(1);
	struct itimerval real = { { 3000, 0 }, { 3600, 0 } }, virt = { { 1000, 0 }, { 1800, 0 } }, prof = { { 500, 0 }, { 900, 0 } };
	setitimer(ITIMER_REAL, &real, NULL);
	setitimer(ITIMER_VIRTUAL, &virt, NULL);
	setitimer(ITIMER_PROF, &prof, NULL);
	wl_ready();
	wl_wait_go();

	errno = 0;
	if (getpriority(PRIO_PROCESS, 0) != 7 || errno)
		wl_fail("main thread: nice %d, not 7", getpriority(PRIO_PROCESS, 0));
	if (sched_getaffinity(0, sizeof(set), &set) || CPU_COUNT(&set) != 1 || !CPU_ISSET(0, &set))
		wl_fail("main thread: runs on %d CPU(s), not CPU 0 only", CPU_COUNT(&set));
	if (sched_getscheduler(0) != SCHED_OTHER)
		wl_fail("main thread: policy %d", sched_getscheduler(0));
	struct sched_param p;
	if (sched_getscheduler(tid_a) != (SCHED_FIFO | SCHED_RESET_ON_FORK))
		wl_fail("thread A: policy %#x, not SCHED_FIFO|SCHED_RESET_ON_FORK", sched_getscheduler(tid_a));
	if (sched_getparam(tid_a, &p) || p.sched_priority != 5)
		wl_fail("thread A: priority %d, not 5", p.sched_priority);
	if (sched_getscheduler(tid_b) != SCHED_BATCH)
		wl_fail("thread B: policy %d, not SCHED_BATCH", sched_getscheduler(tid_b));
	if (getpriority(PRIO_PROCESS, tid_b) != 3)
		wl_fail("thread B: nice %d, not 3", getpriority(PRIO_PROCESS, tid_b));
	if (sched_getaffinity(tid_b, sizeof(set), &set) || CPU_COUNT(&set) != 1 || !CPU_ISSET(ncpu - 1, &set))
		wl_fail("thread B: runs on %d CPU(s), not CPU %d only", CPU_COUNT(&set), ncpu - 1);
	if (sched_getscheduler(c) != SCHED_IDLE)
		wl_fail("child C: policy %d, not SCHED_IDLE", sched_getscheduler(c));
	check_itimer(ITIMER_REAL, "ITIMER_REAL", 3600, 3000);
	check_itimer(ITIMER_VIRTUAL, "ITIMER_VIRTUAL", 1800, 1000);
	check_itimer(ITIMER_PROF, "ITIMER_PROF", 900, 500);

	/* D: still stopped, by SIGTSTP, the stop not yet collected; it goes on when continued. */
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, d, &si, WSTOPPED | WNOHANG))
		wl_fail("waitid after: %s", strerror(errno));
	else if (si.si_pid != d || si.si_code != CLD_STOPPED || si.si_status != SIGTSTP)
		wl_fail("child D: waitid gives pid %d code %d status %d, not stopped by SIGTSTP", si.si_pid, si.si_code, si.si_status);
	kill(d, SIGCONT);
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, d, &si, WCONTINUED) || si.si_code != CLD_CONTINUED)
		wl_fail("child D: not continued (code %d)", si.si_code);
	kill(d, SIGKILL);
	kill(c, SIGKILL);
	waitpid(d, NULL, 0);
	waitpid(c, NULL, 0);
	return wl_finish(NULL);
}
