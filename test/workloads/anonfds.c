/* eventfds, a signalfd and an epoll instance. Before `ready`: an eventfd holding 7 at fd 5,
 * a non-blocking semaphore eventfd holding 3 at fd 40, a signalfd for SIGUSR1 (blocked, one
 * queued) at fd 9, and an epoll at fd 30 watching fd 5 (level, data 0x1234) and fd 9 (edge,
 * data 0x99). After restore it checks every value, that the epoll reports the same targets
 * with the same data, that EPOLL_CTL_MOD and DEL find them by their fd numbers, and that
 * the eventfd still wakes the epoll when written. Two timerfds too: a periodic one (every
 * 10 s, first due after 20 ms) at fd 12 with its first expiration unread, and a one-shot at fd 13 due in 100 s, which must still be
 * armed with its time left and its interval kept. */
#include "wl.h"
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

static void move_to(int fd, int want)
{
	if (dup2(fd, want) != want)
		exit(4);
	close(fd);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	move_to(eventfd(7, 0), 5);
	move_to(eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK), 40);
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	move_to(signalfd(-1, &usr1, 0), 9);
	kill(getpid(), SIGUSR1);
	move_to(epoll_create1(0), 30);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0x1234 };
	epoll_ctl(30, EPOLL_CTL_ADD, 5, &ev);
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLET, .data.u64 = 0x99 };
	epoll_ctl(30, EPOLL_CTL_ADD, 9, &ev);
	move_to(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), 12);
	struct itimerspec periodic = { { 10, 0 }, { 0, 20000000 } }, oneshot = { { 0, 0 }, { 100, 0 } };
	timerfd_settime(12, 0, &periodic, NULL);
	move_to(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), 13);
	timerfd_settime(13, 0, &oneshot, NULL);
	wl_sleep_ms(40);
	wl_ready();
	wl_wait_go();

	uint64_t ticks = 0;
	if (read(12, &ticks, 8) != 8 || ticks != 1)
		wl_fail("the periodic timerfd gave %llu expirations (%s), want the 1 unread before the dump", (unsigned long long)ticks, strerror(errno));
	struct itimerspec now;
	timerfd_gettime(12, &now);
	if (now.it_interval.tv_sec != 10 || now.it_interval.tv_nsec != 0 || now.it_value.tv_sec > 10)
		wl_fail("the periodic timerfd's interval is %ld.%09ld, %ld s left", (long)now.it_interval.tv_sec, now.it_interval.tv_nsec, (long)now.it_value.tv_sec);
	timerfd_gettime(13, &now);
	if (now.it_value.tv_sec < 80 || now.it_value.tv_sec > 100)
		wl_fail("the one-shot timerfd has %ld s left, want 80-100", (long)now.it_value.tv_sec);
	if (!(fcntl(13, F_GETFL) & O_NONBLOCK) || read(13, &ticks, 8) != -1 || errno != EAGAIN)
		wl_fail("the one-shot timerfd is not non-blocking and unexpired");

	struct epoll_event got[4];
	int n = epoll_wait(30, got, 4, 1000);
	uint64_t seen = 0;
	for (int i = 0; i < n; i++)
		seen |= got[i].data.u64 == 0x1234 ? 1 : got[i].data.u64 == 0x99 ? 2 : 4;
	if (n != 2 || seen != 3)
		wl_fail("epoll_wait gave %d events (mask %llx), want the eventfd and the signalfd", n, (unsigned long long)seen);
	if (!(fcntl(40, F_GETFL) & O_NONBLOCK))
		wl_fail("the semaphore eventfd lost O_NONBLOCK");
	uint64_t v = 0;
	for (int i = 0; i < 3; i++)
		if (read(40, &v, 8) != 8 || v != 1)
			wl_fail("semaphore read %d gave %llu, want 1", i, (unsigned long long)v);
	if (read(40, &v, 8) != -1 || errno != EAGAIN)
		wl_fail("the semaphore eventfd is not empty after 3 reads");
	struct signalfd_siginfo si;
	if (read(9, &si, sizeof(si)) != sizeof(si) || si.ssi_signo != SIGUSR1)
		wl_fail("the signalfd did not give the queued SIGUSR1");
	if (read(5, &v, 8) != 8 || v != 7)
		wl_fail("the eventfd held %llu, want 7", (unsigned long long)v);
	if (epoll_wait(30, got, 4, 0) != 0)
		wl_fail("epoll still reports events after they were read");
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 0x5678 };
	if (epoll_ctl(30, EPOLL_CTL_MOD, 5, &ev) != 0)
		wl_fail("EPOLL_CTL_MOD of fd 5 failed: %s", strerror(errno));
	v = 2;
	if (write(5, &v, 8) != 8)
		wl_fail("cannot write the eventfd");
	n = epoll_wait(30, got, 4, 1000);
	if (n != 1 || got[0].data.u64 != 0x5678)
		wl_fail("after a write epoll gave %d events (data %llx)", n, n > 0 ? (unsigned long long)got[0].data.u64 : 0ull);
	if (epoll_ctl(30, EPOLL_CTL_DEL, 9, NULL) != 0)
		wl_fail("EPOLL_CTL_DEL of fd 9 failed: %s", strerror(errno));
	return wl_finish(NULL);
}
