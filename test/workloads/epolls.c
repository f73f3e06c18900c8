/* epoll targets whose fds were closed, and an epoll watching an epoll. Pipes 1-4, read ends
 * at fds 41-44. Epoll fd 30 watches pipe 1 added as fd 50 (fd 50 closed since), pipe 2 at
 * fd 51 (kept), and pipe 3 added as fd 52 (fd 52 then made a dup of pipe 4, close-on-exec).
 * Epoll fd 31 watches epoll 30. After go: a byte in pipe 1 wakes epoll 30 with data 1 and
 * epoll 31 with data 30; fd 52 still reads pipe 4 and keeps close-on-exec; EPOLL_CTL_DEL by
 * fd 52 (now pipe 4) finds no target, and by fd 50 once pipe 1 is there again finds it. */
#include "wl.h"
#include <errno.h>
#include <sys/epoll.h>

static int add(int ep, int fd, unsigned long long data)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = data };
	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int p[4][2];
	for (int i = 0; i < 4; i++)
		if (pipe(p[i]) || dup2(p[i][0], 41 + i) != 41 + i || dup2(p[i][1], 61 + i) != 61 + i)
			return 3;
	if (dup2(epoll_create1(0), 30) != 30 || dup2(epoll_create1(0), 31) != 31)
		return 3;
	if (dup2(41, 50) != 50 || add(30, 50, 1) || close(50))
		return 4;
	if (dup2(42, 51) != 51 || add(30, 51, 2))
		return 4;
	if (dup2(43, 52) != 52 || add(30, 52, 3) || dup3(44, 52, O_CLOEXEC) != 52)
		return 4;
	if (add(31, 30, 30))
		return 4;
	if (write(64, "4", 1) != 1)
		return 5;
	wl_ready();
	wl_wait_go();
	struct epoll_event ev;
	if (write(61, "1", 1) != 1)
		return 6;
	if (epoll_wait(30, &ev, 1, 1000) != 1 || ev.data.u64 != 1)
		wl_fail("epoll 30 did not report pipe 1 (data %llu); ", (unsigned long long)ev.data.u64);
	if (epoll_wait(31, &ev, 1, 1000) != 1 || ev.data.u64 != 30)
		wl_fail("epoll 31 did not report epoll 30; ");
	char c = 0;
	if (read(52, &c, 1) != 1 || c != '4' || fcntl(52, F_GETFD) != FD_CLOEXEC)
		wl_fail("fd 52 is no longer pipe 4 with close-on-exec (read '%c', flags %d); ", c, fcntl(52, F_GETFD));
	if (epoll_ctl(30, EPOLL_CTL_DEL, 52, NULL) == 0 || errno != ENOENT)
		wl_fail("EPOLL_CTL_DEL of fd 52 (pipe 4) found a target; ");
	if (dup2(41, 50) != 50 || epoll_ctl(30, EPOLL_CTL_DEL, 50, NULL) != 0)
		wl_fail("EPOLL_CTL_DEL of pipe 1 as fd 50 failed: %s; ", strerror(errno));
	return wl_finish(NULL);
}
