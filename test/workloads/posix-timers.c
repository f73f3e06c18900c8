/* POSIX timers: a CLOCK_MONOTONIC periodic timer signalling SIGUSR1 to a handler that counts
 * ticks, a CLOCK_REALTIME one-shot SIGEV_NONE timer a long way off, and a CLOCK_BOOTTIME one
 * that would signal this thread (SIGEV_THREAD_ID), disarmed, at ids with gaps
 * before them (timers made and deleted first). After restore the same timer_t values still
 * work, the periodic one keeps its interval and carries on firing with its sigev_value and
 * id, the one-shot one has the time it had left. With argument `bare` it makes no timer at
 * all and only waits, its timer signals ignored (the test puts timers into it). */
#include "wl.h"
#include <signal.h>
#include <stdint.h>

#define PERIOD_NS 20000000L		/* 20 ms */
#define ONESHOT_S 1000
#define MARK ((void *)0x5717a5e5UL)

static volatile sig_atomic_t ticks, bad_value, bad_id;
static timer_t periodic, oneshot, threaded;

static void on_tick(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	if (si->si_code != SI_TIMER || si->si_value.sival_ptr != MARK)
		bad_value++;
	else if (si->si_timerid != (int)(intptr_t)periodic)
		bad_id++;
	ticks++;
}

static double now(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	if (argc > 2 && !strcmp(argv[2], "bare")) {
		/* The periodic timer the test puts in fires within 20 ms of the thaw: on a loaded
		 * machine, before this task has seen go and exited. */
		signal(SIGUSR1, SIG_IGN);
		signal(SIGUSR2, SIG_IGN);
		wl_ready();
		wl_wait_go();
		return wl_finish(NULL);
	}
	struct sigaction sa = { .sa_sigaction = on_tick, .sa_flags = SA_SIGINFO | SA_RESTART };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	/* Ids 0, 2, 3 are made and deleted again: the timers keep ids 1 and 4. */
	timer_t gap[3];
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	struct sigevent sig = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1, .sigev_value.sival_ptr = MARK };
	if (timer_create(CLOCK_MONOTONIC, &none, &gap[0]) || timer_create(CLOCK_MONOTONIC, &sig, &periodic) ||
	    timer_create(CLOCK_MONOTONIC, &none, &gap[1]) || timer_create(CLOCK_MONOTONIC, &none, &gap[2]))
		return 3;
	none.sigev_value.sival_ptr = (void *)0x1234;
	struct sigevent tid = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGUSR2, ._sigev_un._tid = gettid() };
	if (timer_create(CLOCK_REALTIME, &none, &oneshot) || timer_create(CLOCK_BOOTTIME, &tid, &threaded))
		return 3;
	for (int i = 0; i < 3; i++)
		timer_delete(gap[i]);
	struct itimerspec p = { .it_interval = { 0, PERIOD_NS }, .it_value = { 0, PERIOD_NS } };
	struct itimerspec o = { .it_value = { ONESHOT_S, 0 } };
	if (timer_settime(periodic, 0, &p, NULL) || timer_settime(oneshot, 0, &o, NULL))
		return 3;
	double armed = now(CLOCK_MONOTONIC);
	char ids[64];
	snprintf(ids, sizeof(ids), "%d %d %d\n", (int)(intptr_t)periodic, (int)(intptr_t)oneshot, (int)(intptr_t)threaded);
	wl_write("ids", ids);
	while (ticks < 5)
		wl_sleep_ms(1);
	wl_ready();
	wl_wait_go();

	/* The time left on the one-shot timer: what it had at the dump, so no less than what an
	 * unstopped clock would leave and no more than that plus the time the task was stopped. */
	struct itimerspec got;
	if (timer_gettime(oneshot, &got)) {
		wl_fail("timer_gettime on the one-shot timer %d: %m", (int)(intptr_t)oneshot);
	} else {
		double left = got.it_value.tv_sec + got.it_value.tv_nsec / 1e9, expect = ONESHOT_S - (now(CLOCK_MONOTONIC) - armed);
		if (got.it_interval.tv_sec || got.it_interval.tv_nsec)
			wl_fail("the one-shot timer has an interval %ld.%09ld", (long)got.it_interval.tv_sec, got.it_interval.tv_nsec);
		if (left < expect - 0.5 || left > expect + 30)
			wl_fail("the one-shot timer has %.3f s left, expected %.3f s (+ the downtime)", left, expect);
	}
	if (timer_gettime(periodic, &got)) {
		wl_fail("timer_gettime on the periodic timer %d: %m", (int)(intptr_t)periodic);
	} else {
		if (got.it_interval.tv_sec != 0 || got.it_interval.tv_nsec != PERIOD_NS)
			wl_fail("the periodic timer's interval is %ld.%09ld", (long)got.it_interval.tv_sec, got.it_interval.tv_nsec);
		if (got.it_value.tv_sec != 0 || got.it_value.tv_nsec <= 0 || got.it_value.tv_nsec > PERIOD_NS)
			wl_fail("the periodic timer has %ld.%09ld left", (long)got.it_value.tv_sec, got.it_value.tv_nsec);
	}
	if (timer_gettime(threaded, &got))
		wl_fail("timer_gettime on the thread's timer %d: %m", (int)(intptr_t)threaded);
	else if (got.it_value.tv_sec || got.it_value.tv_nsec || got.it_interval.tv_sec || got.it_interval.tv_nsec)
		wl_fail("the thread's timer, never armed, is armed");
	int before = ticks;
	for (double until = now(CLOCK_MONOTONIC) + 0.3; now(CLOCK_MONOTONIC) < until;)
		wl_sleep_ms(1); /* each tick cuts a nanosleep short (EINTR even with SA_RESTART) */
	int after = ticks;
	if (after - before < 5)
		wl_fail("the periodic timer fired %d times in 300 ms after restore", after - before);
	if (bad_value)
		wl_fail("%d ticks came with the wrong si_code or sigev_value", (int)bad_value);
	if (bad_id)
		wl_fail("%d ticks came with another timer id than %d", (int)bad_id, (int)(intptr_t)periodic);
	char extra[128];
	snprintf(extra, sizeof(extra), "ticks %d -> %d\n", before, after);
	return wl_finish(extra);
}
