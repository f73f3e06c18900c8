/* A half-closed TCP connection with data in flight, both of its ends in the tree, in a network
 * namespace the tree made itself (unshare(CLONE_NEWNET), lo up), as zdtm's ns flavour has them.
 * The client sent "hello" and its FIN (FIN_WAIT2); the server (CLOSE_WAIT) has them unread and
 * has sent BYTES the client has not read, more than its window takes, so that part of them was
 * never sent. A rule of the namespace's own (iptables, `rule` holds it) drops FIN segments to
 * the server's port: the restore hands the server the client's FIN again, as if from the
 * client, and must get it past that rule. `ports` holds the server's port. After `go` the
 * server reads "hello" and end of file, the client reads every byte (their sum checked), the
 * server closes, and the client reads end of file. */
#include "wl.h"
#include <errno.h>
#include <sched.h>
#include <poll.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#define BYTES (4 << 20)

static int state_of(int fd)
{
	struct tcp_info ti;
	socklen_t l = sizeof(ti);
	return getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &l) < 0 ? -1 : ti.tcpi_state;
}

static unsigned char byte_at(long i) { return (unsigned char)(i * 7 + (i >> 11)); }

static int skip(const char *why)
{
	wl_write("skip", why);
	wl_ready();
	return 0;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	if (unshare(CLONE_NEWNET) < 0)
		return skip(strerror(errno));
	struct ifreq ifr = { .ifr_name = "lo" };
	int c = socket(AF_INET, SOCK_DGRAM, 0);
	if (ioctl(c, SIOCGIFFLAGS, &ifr) < 0 || (ifr.ifr_flags |= IFF_UP, ioctl(c, SIOCSIFFLAGS, &ifr) < 0))
		return skip("cannot bring lo up");
	close(c);

	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 || getsockname(l, (struct sockaddr *)&a, &al) < 0)
		exit(7);
	int rcv = 16384;
	c = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(c, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	if (connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
		exit(8);
	int s = accept(l, NULL, NULL);
	if (s < 0)
		exit(9);
	close(l);
	setsockopt(s, SOL_TCP, TCP_NODELAY, &one, sizeof(one));

	/* The server sends until its buffer is full: the client's window is long closed by then. */
	static unsigned char buf[1 << 16];
	long sent = 0;
	while (sent < BYTES) {
		int n = sizeof(buf) < BYTES - sent ? (int)sizeof(buf) : (int)(BYTES - sent);
		for (int i = 0; i < n; i++)
			buf[i] = byte_at(sent + i);
		ssize_t w = send(s, buf, n, MSG_DONTWAIT);
		if (w < 0 && errno == EAGAIN)
			break;
		if (w < 0)
			exit(10);
		sent += w;
	}
	int unsent = 0;
	ioctl(s, 0x894B /* SIOCOUTQNSD: the bytes never sent */, &unsent);
	if (write(c, "hello", 5) != 5 || shutdown(c, SHUT_WR) < 0)
		exit(11);
	for (int i = 0; state_of(s) != TCP_CLOSE_WAIT || state_of(c) != TCP_FIN_WAIT2; i++) {
		if (i > 5000)
			exit(12);
		wl_sleep_ms(1);
	}
	char port[16], rule[256];
	snprintf(port, sizeof(port), "%d", ntohs(a.sin_port));
	snprintf(rule, sizeof(rule), "-p tcp --dport %s --tcp-flags FIN FIN -j DROP", port);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "PATH=$PATH:/usr/sbin:/sbin iptables -w -A INPUT %s", rule);
	if (system(cmd) != 0)
		return skip("iptables cannot add a rule in the namespace");
	wl_write("rule", rule);
	char info[64];
	snprintf(info, sizeof(info), "%ld %d", sent, unsent);
	wl_write("sent", info);
	wl_write("ports", port);
	wl_ready();
	wl_wait_go();

	if (state_of(s) != TCP_CLOSE_WAIT)
		wl_fail("the server is in state %d, not CLOSE_WAIT", state_of(s));
	if (state_of(c) != TCP_FIN_WAIT2)
		wl_fail("the client is in state %d, not FIN_WAIT2", state_of(c));
	char got[8] = { 0 };
	ssize_t r = recv(s, got, sizeof(got), MSG_DONTWAIT);
	if (r != 5 || memcmp(got, "hello", 5))
		wl_fail("the server read %zd bytes (%s), not hello", r, r < 0 ? strerror(errno) : got);
	else if ((r = recv(s, got, sizeof(got), MSG_DONTWAIT)) != 0)
		wl_fail("the server read %zd (%s), not the end of the client's stream", r, r < 0 ? strerror(errno) : "bytes");
	long read_n = 0;
	while (read_n < sent && !wl_failed) {
		struct pollfd p = { .fd = c, .events = POLLIN };
		if (poll(&p, 1, 10000) != 1) {
			wl_fail("the client read %ld of %ld bytes, then nothing came for 10 s", read_n, sent);
			break;
		}
		ssize_t n = recv(c, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0) {
			wl_fail("the client read %ld of %ld bytes, then %s", read_n, sent, n == 0 ? "end of file" : strerror(errno));
			break;
		}
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != byte_at(read_n + i)) {
				wl_fail("byte %ld differs", read_n + i);
				break;
			}
		read_n += n;
	}
	close(s);
	struct pollfd p = { .fd = c, .events = POLLIN };
	if (!wl_failed && (poll(&p, 1, 10000) != 1 || recv(c, buf, 1, MSG_DONTWAIT) != 0))
		wl_fail("the client did not read the end of the server's stream");
	snprintf(info, sizeof(info), "%ld\n", read_n);
	return wl_finish(info);
}
