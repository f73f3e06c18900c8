/* Files in flight (SCM_RIGHTS) in Unix sockets' queues: on the datagram pair 5-6, a message
 * passing the write end of a pipe whose read end is fd 7 (the task closed its own copy of
 * the write end: only the queue holds it) and one passing a regular file read up to offset 3
 * (closed too); on the seqpacket pair 8-9, a message passing fd 10 (a pipe's write end the
 * task still holds: the same open file). After `go` each is received: bytes written through
 * the passed write end come out of fd 7, the file reads on from offset 3, and the passed
 * fd 10 is the same file as the task's fd 10 (kcmp). With `epoll`, an epoll instance
 * watching fd 7 (EPOLLIN, data 0x1234567) is in flight instead, the pipe's write end at fd 11:
 * after `go` it is received, has no event until a byte is written to fd 11, then that one,
 * knows its target as fd 7 (EPOLL_CTL_MOD), and the task has no fd above 11. */
#include "wl.h"
#include "scm-wl.h"
#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>

/* Moves fd to `to` by way of a number far from both, so that no fd of ours is overwritten. */
static int far(int fd, int at)
{
	int n = fcntl(fd, F_DUPFD, at);
	close(fd);
	return n;
}

static void move_to(int fd, int to)
{
	int hi = fd < 0 ? -1 : fcntl(fd, F_DUPFD, 100);
	if (hi >= 0)
		close(fd);
	fd = hi;
	if (fd < 0 || (fd != to && (dup2(fd, to) != to || close(fd) != 0)))
		exit(5);
}

static int recv_fd(int via, char tag)
{
	char buf[CMSG_SPACE(sizeof(int))] = { 0 }, got = 0;
	struct iovec iov = { &got, 1 };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof(buf) };
	if (recvmsg(via, &h, MSG_DONTWAIT) != 1 || got != tag) {
		wl_fail("fd %d: no message '%c' (%s)", via, tag, strerror(errno));
		return -1;
	}
	struct cmsghdr *c = CMSG_FIRSTHDR(&h);
	if (!c || c->cmsg_type != SCM_RIGHTS) {
		wl_fail("fd %d: message '%c' passes no fd", via, tag);
		return -1;
	}
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int sv[2], p[2], q[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0 || pipe(p) < 0)
		exit(4);
	for (int i = 0; i < 2; i++) {
		sv[i] = far(sv[i], 200 + i);
		p[i] = far(p[i], 210 + i);
	}
	move_to(sv[0], 5);
	move_to(sv[1], 6);
	move_to(p[0], 7);
	if (argc > 2 && strcmp(argv[2], "epoll") == 0) {
		int ep = epoll_create1(0);
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0x1234567 };
		if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, 7, &ev) < 0)
			exit(9);
		send_fd(5, ep, 'e');
		close(ep);
		move_to(p[1], 11);
	} else {
		send_fd(5, p[1], 'p');
		close(p[1]);
		wl_write("data.txt", "abcdefgh");
		int f = open("data.txt", O_RDONLY);
		char skip[3];
		if (f < 0 || read(f, skip, 3) != 3)
			exit(7);
		send_fd(5, f, 'f');
		close(f);
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0 || pipe(q) < 0)
		exit(8);
	for (int i = 0; i < 2; i++) {
		sv[i] = far(sv[i], 220 + i);
		q[i] = far(q[i], 230 + i);
	}
	move_to(sv[0], 8);
	move_to(sv[1], 9);
	move_to(q[1], 10);
	close(q[0]);
	send_fd(8, 10, 'q');
	wl_ready();
	wl_wait_go();

	if (argc > 2 && strcmp(argv[2], "epoll") == 0) {
		int ep = recv_fd(6, 'e');
		struct epoll_event got, mod = { .events = EPOLLIN | EPOLLOUT, .data.u64 = 1 };
		if (ep < 0)
			return wl_finish(NULL);
		if (epoll_wait(ep, &got, 1, 0) != 0)
			wl_fail("the epoll in flight has an event before any write");
		else if (write(11, "x", 1) != 1 || epoll_wait(ep, &got, 1, 1000) != 1 || got.data.u64 != 0x1234567 || !(got.events & EPOLLIN))
			wl_fail("the epoll in flight does not report fd 7 readable with its data");
		if (epoll_ctl(ep, EPOLL_CTL_MOD, 7, &mod) != 0)
			wl_fail("the epoll in flight does not know fd 7 as its target: %s", strerror(errno));
		for (int fd = 12; fd < 64; fd++)
			if (fcntl(fd, F_GETFD) >= 0)
				wl_fail("fd %d is open: restore left it in the task", fd);
		return wl_finish(NULL);
	}
	int w = recv_fd(6, 'p');
	char buf[16] = "";
	if (w >= 0 && (write(w, "hello", 5) != 5 || read(7, buf, 5) != 5 || memcmp(buf, "hello", 5) != 0))
		wl_fail("the passed write end does not reach fd 7");
	int f = recv_fd(6, 'f');
	memset(buf, 0, sizeof(buf));
	if (f >= 0 && (read(f, buf, sizeof(buf)) != 5 || strcmp(buf, "defgh") != 0))
		wl_fail("the passed file reads \"%s\", not \"defgh\"", buf);
	int s = recv_fd(9, 'q');
	if (s >= 0 && syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, s, 10) != 0)
		wl_fail("the fd passed on the seqpacket pair is not the same file as fd 10");
	return wl_finish(NULL);
}
