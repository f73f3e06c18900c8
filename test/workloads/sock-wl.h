/* Helpers of the Unix socket workloads: socket pairs at fds of our choosing, a byte pattern
 * per stream, exact reads, datagrams of known sizes and contents, and records of each fd's
 * flags, type, buffer sizes and peek offset, checked after restore. */
#include "pipe-wl.h"
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>

/* socketpair() with its ends moved to numbers of our choosing. */
static inline void pair_at(int type, int a, int b)
{
	int sv[2];
	if (socketpair(AF_UNIX, type, 0, sv) < 0)
		exit(4);
	int x = fcntl(sv[0], F_DUPFD, 900), y = fcntl(sv[1], F_DUPFD, 900);
	close(sv[0]);
	close(sv[1]);
	if (dup2(x, a) != a || dup2(y, b) != b)
		exit(5);
	close(x);
	close(y);
}

static inline void move_to(int fd, int to)
{
	if (fd == to)
		return;
	if (dup2(fd, to) != to)
		exit(5);
	close(fd);
}

/* Datagram i of stream k: its size and its bytes. */
static inline void dgram_fill(unsigned char *buf, int k, int i, long n)
{
	for (long j = 0; j < n; j++)
		buf[j] = pat(k * 16 + i, j);
}

static inline void send_dgram(int fd, int k, int i, long n)
{
	static unsigned char buf[1 << 17];
	dgram_fill(buf, k, i, n);
	if (send(fd, buf, n, MSG_DONTWAIT) != n)
		wl_fail("send of datagram %d (%ld bytes) of stream %d to fd %d: %s", i, n, k, fd, strerror(errno));
}

/* Receives datagram i of stream k: exactly n bytes, as sent. */
static inline void expect_dgram(int fd, int k, int i, long n, const char *what)
{
	static unsigned char buf[1 << 17], want[1 << 17];
	ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
	if (r != n) {
		wl_fail("%s: datagram %d on fd %d has %ld bytes, not %ld (%s)", what, i, fd, (long)r, n, r < 0 ? strerror(errno) : "");
		return;
	}
	dgram_fill(want, k, i, n);
	if (memcmp(buf, want, n) != 0)
		wl_fail("%s: datagram %d on fd %d has other bytes", what, i, fd);
}

/* Nothing more is queued on fd (it would block). */
static inline void expect_empty(int fd, const char *what)
{
	char c;
	ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
	if (!(r < 0 && errno == EAGAIN))
		wl_fail("%s: fd %d has more queued (recv gave %ld, %s)", what, fd, (long)r, r < 0 ? strerror(errno) : "data");
}

static inline void expect_eof(int fd, const char *what)
{
	char c;
	ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
	if (r != 0)
		wl_fail("%s: fd %d does not reach end of file (recv gave %ld, %s)", what, fd, (long)r, r < 0 ? strerror(errno) : "data");
}

static inline int sockopt(int fd, int opt)
{
	int v = -1;
	socklen_t l = sizeof(v);
	getsockopt(fd, SOL_SOCKET, opt, &v, &l);
	return v;
}

struct srec {
	int fd, flags, type, sndbuf, rcvbuf, peekoff;
};
static struct srec srecs[64];
static int nsrecs;

static inline void srecord(int fd)
{
	srecs[nsrecs++] = (struct srec){ fd, fcntl(fd, F_GETFL), sockopt(fd, SO_TYPE), sockopt(fd, SO_SNDBUF), sockopt(fd, SO_RCVBUF), sockopt(fd, SO_PEEK_OFF) };
}

static inline void check_srecords(void)
{
	for (int i = 0; i < nsrecs; i++) {
		struct srec *r = &srecs[i], now = { r->fd, fcntl(r->fd, F_GETFL), sockopt(r->fd, SO_TYPE), sockopt(r->fd, SO_SNDBUF), sockopt(r->fd, SO_RCVBUF), sockopt(r->fd, SO_PEEK_OFF) };
		if (now.flags != r->flags)
			wl_fail("fd %d has flags 0%o, not 0%o", r->fd, now.flags, r->flags);
		if (now.type != r->type)
			wl_fail("fd %d is of socket type %d, not %d", r->fd, now.type, r->type);
		if (now.sndbuf != r->sndbuf || now.rcvbuf != r->rcvbuf)
			wl_fail("fd %d has SO_SNDBUF %d / SO_RCVBUF %d, not %d / %d", r->fd, now.sndbuf, now.rcvbuf, r->sndbuf, r->rcvbuf);
		if (now.peekoff != r->peekoff)
			wl_fail("fd %d has SO_PEEK_OFF %d, not %d", r->fd, now.peekoff, r->peekoff);
	}
}

/* The two fds are the ends of one connection: a byte written on each arrives on the other. */
static inline void check_connected(int a, int b, int dgram, const char *what)
{
	char x = 'x', y = 0;
	if (send(a, &x, 1, MSG_DONTWAIT | MSG_NOSIGNAL) != 1 || recv(b, &y, 1, MSG_DONTWAIT) != 1 || y != 'x')
		wl_fail("%s: a byte sent on fd %d does not arrive on fd %d (%s)", what, a, b, strerror(errno));
	x = 'y';
	if (send(b, &x, 1, MSG_DONTWAIT | MSG_NOSIGNAL) != 1 || recv(a, &y, 1, MSG_DONTWAIT) != 1 || y != 'y')
		wl_fail("%s: a byte sent on fd %d does not arrive on fd %d (%s)", what, b, a, strerror(errno));
	(void)dgram;
}
