/* The leader and a thread asleep in futex wait, SIGTERM caught. A SIGTERM sent to the process
 * goes to its leader (complete_signal() takes the thread it was sent to when that thread
 * wants it), also when it comes just as the restore returns: the handler notes the thread
 * that ran it, and the result says whether that was the leader. */
#include "wl.h"
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <linux/futex.h>

static volatile int woken, handled_by, started;

static void wait_woken(void)
{
	while (!woken)
		syscall(SYS_futex, &woken, FUTEX_WAIT, 0, NULL, NULL, 0);
}

static void on_term(int sig)
{
	handled_by = gettid();
	woken = 1;
	syscall(SYS_futex, &woken, FUTEX_WAKE, 1 << 30, NULL, NULL, 0);
}

/* With argv[2] "behind": the leader on CPU 0 at SCHED_IDLE, so that it runs only once whoever
 * else runs there lets the CPU go (the test's restorer, pinned to CPU 0), the thread on CPU 1. */
static int pinned;

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pinned && sched_setaffinity(0, sizeof(set), &set))
		exit(3);
}

static void *thread(void *arg)
{
	pin(1);
	started = 1;
	wait_woken();
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	pinned = argc > 2 && !strcmp(argv[2], "behind");
	pin(0);
	struct sigaction sa = { .sa_handler = on_term };
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL))
		return 3;
	pthread_t t;
	if (pthread_create(&t, NULL, thread, NULL))
		return 3;
	while (!started)
		wl_sleep_ms(1);
	struct sched_param idle = { 0 };
	if (pinned && sched_setscheduler(0, SCHED_IDLE, &idle))
		return 3;
	wl_ready();
	wait_woken();
	if (handled_by != getpid())
		wl_fail("SIGTERM was taken by thread %d, not by the leader %d", handled_by, getpid());
	return wl_finish(NULL);
}
