/* TCP listeners, by mode (argv[2]):
 * - serve: 127.0.0.1 on an ephemeral port at fd 7 (dup'd at 9; O_NONBLOCK, backlog 13,
 *   SO_REUSEADDR, SO_KEEPALIVE, TCP_KEEPIDLE 33, TCP_NODELAY, TCP_DEFER_ACCEPT, SO_RCVBUF) and
 *   [::1] on another at fd 8 (IPV6_V6ONLY, SO_REUSEPORT, blocking, backlog 21). `ports` holds
 *   the two ports. After `go` it checks the options, flags and names, then accepts one client
 *   on each and answers "SECRET:what it read" (SECRET chosen at start, kept in memory only).
 * - tree: 127.0.0.1 at fd 7 shared with a forked child; after `go` each accepts one client
 *   and answers "parent" or "child".
 * - established: a child connected to the listener at fd 7 (its end at 8), the server's end
 *   at 9; after `go` they trade bytes.
 * - queued: the listener at fd 7 only; the test connects before the dump, and after `go` the
 *   server accepts it and answers.
 * - udp, udpqueued, raw: UDP and raw sockets (see udp()).
 * - netns: in a network namespace of its own, a listener on 0.0.0.0 at fd 7. */
#include "sock-wl.h"
#include <sched.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/wait.h>

static char secret[32];

static int port_of(int fd)
{
	struct sockaddr_in6 a;
	socklen_t l = sizeof(a);
	if (getsockname(fd, (struct sockaddr *)&a, &l) < 0)
		return -1;
	return ntohs(a.sin6_port); /* sin_port and sin6_port are at the same offset */
}

static int listener(int family, const char *addr, int backlog, int to)
{
	int fd = socket(family, SOCK_STREAM, 0);
	if (fd < 0)
		exit(7);
	if (family == AF_INET) {
		struct sockaddr_in a = { .sin_family = AF_INET };
		inet_pton(AF_INET, addr, &a.sin_addr);
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
			exit(8);
	} else {
		int one = 1;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
		struct sockaddr_in6 a = { .sin6_family = AF_INET6 };
		inet_pton(AF_INET6, addr, &a.sin6_addr);
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
			exit(8);
	}
	if (listen(fd, backlog) < 0)
		exit(9);
	move_to(fd, to);
	return to;
}

static int opt(int fd, int level, int name)
{
	int v = -1;
	socklen_t l = sizeof(v);
	if (getsockopt(fd, level, name, &v, &l) < 0)
		return -1000;
	return v;
}

/* What the test and the workload compare before and after: options, flags, port. */
static void describe(int fd, char *out, size_t n)
{
	snprintf(out, n, "fd %d: port %d fl %o reuseaddr %d reuseport %d keepalive %d keepidle %d nodelay %d defer %d rcvbuf %d sndbuf %d v6only %d",
		 fd, port_of(fd), fcntl(fd, F_GETFL) & (O_NONBLOCK | O_RDWR), opt(fd, SOL_SOCKET, SO_REUSEADDR), opt(fd, SOL_SOCKET, SO_REUSEPORT),
		 opt(fd, SOL_SOCKET, SO_KEEPALIVE), opt(fd, IPPROTO_TCP, TCP_KEEPIDLE), opt(fd, IPPROTO_TCP, TCP_NODELAY),
		 opt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT), opt(fd, SOL_SOCKET, SO_RCVBUF), opt(fd, SOL_SOCKET, SO_SNDBUF),
		 opt(fd, IPPROTO_IPV6, IPV6_V6ONLY));
}

static void wait_readable(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	if (poll(&p, 1, 10000) != 1)
		wl_fail("fd %d has nothing to read after 10 s", fd);
}

/* Accepts one client on lfd, reads its line, answers "tag:line". */
static void serve_one(int lfd, const char *tag)
{
	wait_readable(lfd);
	int c = accept(lfd, NULL, NULL);
	if (c < 0) {
		wl_fail("accept on fd %d after restore: %s", lfd, strerror(errno));
		return;
	}
	fcntl(c, F_SETFL, 0);
	char buf[256], out[320];
	ssize_t r = read(c, buf, sizeof(buf) - 1);
	if (r <= 0) {
		wl_fail("read from the client of fd %d: %s", lfd, r ? strerror(errno) : "end of file");
		close(c);
		return;
	}
	buf[r] = 0;
	snprintf(out, sizeof(out), "%s:%s", tag, buf);
	if (write(c, out, strlen(out)) != (ssize_t)strlen(out))
		wl_fail("write to the client of fd %d: %s", lfd, strerror(errno));
	close(c);
}

static void check_same(int fd, const char *before)
{
	char now[512];
	describe(fd, now, sizeof(now));
	if (strcmp(now, before))
		wl_fail("fd %d was \"%s\", is \"%s\"", fd, before, now);
}

static int serve(void)
{
	int one = 1, idle = 33, defer = 5, rcv = 100000;
	listener(AF_INET, "127.0.0.1", 13, 7);
	setsockopt(7, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(7, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(7, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(7, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(7, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer));
	setsockopt(7, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	fcntl(7, F_SETFL, O_NONBLOCK);
	dup2(7, 9);
	listener(AF_INET6, "::1", 21, 8);
	char d7[512], d8[512], text[1200];
	describe(7, d7, sizeof(d7));
	describe(8, d8, sizeof(d8));
	snprintf(text, sizeof(text), "%s\n%s\n", d7, d8);
	wl_write("before", text);
	snprintf(text, sizeof(text), "%d %d\n", port_of(7), port_of(8));
	wl_write("ports", text);
	wl_write("secret", secret);
	wl_ready();
	wl_wait_go();
	check_same(7, d7);
	check_same(8, d8);
	describe(7, d7, sizeof(d7));
	describe(8, d8, sizeof(d8));
	snprintf(text, sizeof(text), "%s\n%s\n", d7, d8);
	wl_write("after", text);
	if (port_of(9) != port_of(7) || (fcntl(9, F_GETFL) & O_NONBLOCK) == 0)
		wl_fail("fd 9 is not the same listener as fd 7");
	serve_one(7, secret);
	serve_one(8, secret);
	return wl_finish(NULL);
}

static int tree(void)
{
	listener(AF_INET, "127.0.0.1", 8, 7);
	char text[64];
	snprintf(text, sizeof(text), "%d\n", port_of(7));
	wl_write("ports", text);
	pid_t c = fork();
	if (c == 0) {
		wl_wait_go();
		serve_one(7, "child");
		_exit(wl_failed ? 1 : 0);
	}
	wl_ready();
	wl_wait_go();
	serve_one(7, "parent");
	int st = 0;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_fail("the child ended with %x", st);
	return wl_finish(NULL);
}

static int established(void)
{
	listener(AF_INET, "127.0.0.1", 8, 7);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port_of(7)) };
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	pid_t c = fork();
	if (c == 0) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
			_exit(2);
		move_to(fd, 8);
		wl_wait_go();
		put(8, 5, 0, 1000);
		_exit(expect(8, 6, 0, 500, "the server's answer") ? 1 : 0);
	}
	move_to(accept(7, NULL, NULL), 9);
	wl_ready();
	wl_wait_go();
	expect(9, 5, 0, 1000, "from the client");
	put(9, 6, 0, 500);
	int st = 0;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_fail("the client ended with %x", st);
	return wl_finish(NULL);
}

static int queued_mode(void)
{
	listener(AF_INET, "127.0.0.1", 8, 7);
	char text[64];
	snprintf(text, sizeof(text), "%d\n", port_of(7));
	wl_write("ports", text);
	wl_ready();
	wl_wait_go();
	serve_one(7, "late");
	return wl_finish(NULL);
}

/* udp: fd 7 bound to 127.0.0.1 (SO_BROADCAST on), fd 8 connected to it (bound by the kernel,
 * O_NONBLOCK). After `go` fd 7 reads the datagram the test sent it, then 8 and 7 trade one
 * each way. udpqueued: fd 7 has a datagram to itself queued. raw: fd 7 is a raw ICMP socket. */
static int udp(const char *mode)
{
	int one = 1;
	if (!strcmp(mode, "raw")) {
		int r = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
		if (r < 0)
			exit(8);
		move_to(r, 7);
		wl_ready();
		wl_wait_go();
		if (opt(7, SOL_SOCKET, SO_TYPE) != SOCK_RAW)
			wl_fail("fd 7 is no longer a raw socket");
		return wl_finish(NULL);
	}
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET }, b, from;
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		exit(8);
	move_to(fd, 7);
	setsockopt(7, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one));
	socklen_t l = sizeof(a);
	getsockname(7, (struct sockaddr *)&a, &l);
	char text[1200], d7[512], d8[512], buf[64];
	if (!strcmp(mode, "udpqueued")) {
		if (sendto(7, "q", 1, 0, (struct sockaddr *)&a, sizeof(a)) != 1)
			exit(9);
		wl_ready();
		wl_wait_go();
		if (recv(7, buf, sizeof(buf), MSG_DONTWAIT) != 1 || buf[0] != 'q')
			wl_fail("the queued datagram is gone");
		return wl_finish(NULL);
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		exit(9);
	move_to(fd, 8);
	fcntl(8, F_SETFL, O_NONBLOCK);
	l = sizeof(b);
	getsockname(8, (struct sockaddr *)&b, &l);
	describe(7, d7, sizeof(d7));
	describe(8, d8, sizeof(d8));
	snprintf(text, sizeof(text), "%s broadcast %d\n%s broadcast %d\n", d7, opt(7, SOL_SOCKET, SO_BROADCAST), d8, opt(8, SOL_SOCKET, SO_BROADCAST));
	wl_write("before", text);
	snprintf(text, sizeof(text), "%d %d\n", ntohs(a.sin_port), ntohs(b.sin_port));
	wl_write("ports", text);
	wl_ready();
	wl_wait_go();
	describe(7, d7, sizeof(d7));
	describe(8, d8, sizeof(d8));
	snprintf(text, sizeof(text), "%s broadcast %d\n%s broadcast %d\n", d7, opt(7, SOL_SOCKET, SO_BROADCAST), d8, opt(8, SOL_SOCKET, SO_BROADCAST));
	wl_write("after", text);
	ssize_t n = recv(7, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	if (n != 7 || memcmp(buf, "outside", 7))
		wl_fail("fd 7 did not get the test's datagram: %ld %s", (long)n, n < 0 ? strerror(errno) : "");
	if (send(8, "x", 1, 0) != 1)
		wl_fail("send on the connected fd 8: %s", strerror(errno));
	l = sizeof(from);
	wait_readable(7);
	if (recvfrom(7, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &l) != 1 || buf[0] != 'x' || from.sin_port != b.sin_port)
		wl_fail("fd 7 did not get fd 8's datagram from fd 8's port");
	if (sendto(7, "y", 1, 0, (struct sockaddr *)&b, sizeof(b)) != 1)
		wl_fail("sendto fd 8's address: %s", strerror(errno));
	wait_readable(8);
	if (recv(8, buf, sizeof(buf), MSG_DONTWAIT) != 1 || buf[0] != 'y')
		wl_fail("fd 8 did not get fd 7's answer");
	return wl_finish(NULL);
}

static int netns(void)
{
	if (unshare(CLONE_NEWNET) < 0) {
		wl_write("skip", strerror(errno));
		wl_ready();
		return 0;
	}
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4) < 0)
		exit(8);
	move_to(fd, 7);
	wl_ready();
	wl_wait_go();
	if (opt(7, SOL_SOCKET, SO_ACCEPTCONN) != 1)
		wl_fail("fd 7 no longer listens");
	return wl_finish(NULL);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	const char *mode = argc > 2 ? argv[2] : "serve";
	snprintf(secret, sizeof(secret), "s%ld", (long)getpid() * 7919 + (long)time(NULL) % 100000);
	if (!strcmp(mode, "tree"))
		return tree();
	if (!strcmp(mode, "established"))
		return established();
	if (!strcmp(mode, "queued"))
		return queued_mode();
	if (!strcmp(mode, "udp") || !strcmp(mode, "udpqueued") || !strcmp(mode, "raw"))
		return udp(mode);
	if (!strcmp(mode, "netns"))
		return netns();
	return serve();
}
