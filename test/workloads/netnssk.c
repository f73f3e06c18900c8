/* Unix, packet and netlink sockets of a tree in a network namespace of its own (started by
 * `unshare -n --fork`): a stream socket pair with data queued both ways (fds 10, 11), a
 * listener bound to the abstract name argv[2] (fd 12) with a client (13) it accepted (14),
 * which has sent it data not read yet, and a client (15) it has not accepted yet; a packet
 * socket bound to lo with no protocol (16) and a NETLINK_ROUTE socket bound to the port the
 * kernel chose (17). After `go`: the queued data, the pair's SO_PEERCRED (this process, which
 * made it), the name, the connections, the packet
 * socket's interface and the netlink port are back, the pair and the connections carry data
 * both ways, and a new client reaches the listener by its name (in the namespace: the name is
 * its). The root exits once `end` exists. */
#include "sock-wl.h"
#include <errno.h>
#include <stddef.h>
#include <sys/time.h>
#include <net/if.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>

static socklen_t abstract_addr(struct sockaddr_un *a, const char *name)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	size_t n = strlen(name);
	memcpy(a->sun_path + 1, name, n);
	return offsetof(struct sockaddr_un, sun_path) + 1 + n;
}

/* Reads exactly `want` from fd (waiting at most 5 s). */
static void expect_text(int fd, const char *want, const char *what)
{
	char buf[64] = { 0 };
	size_t n = strlen(want), got = 0;
	struct timeval tv = { 5, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r <= 0) {
			wl_fail("%s: read %zu of %zu bytes (%s)", what, got, n, r < 0 ? strerror(errno) : "end of stream");
			return;
		}
		got += r;
	}
	if (memcmp(buf, want, n))
		wl_fail("%s: read \"%s\", not \"%s\"", what, buf, want);
}

static void say(int fd, const char *text)
{
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		wl_fail("write to fd %d: %s", fd, strerror(errno));
}

int main(int argc, char **argv)
{
	if (argc < 3 || chdir(argv[1]))
		return 2;
	pair_at(SOCK_STREAM, 10, 11);
	say(10, "queued-a");
	say(11, "queued-b");
	struct sockaddr_un a;
	socklen_t alen = abstract_addr(&a, argv[2]);
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, alen) || listen(l, 4))
		return 3;
	move_to(l, 12);
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&a, alen))
		return 3;
	move_to(c, 13);
	int s = accept(12, NULL, NULL);
	if (s < 0)
		return 3;
	move_to(s, 14);
	say(13, "hello");
	int p = socket(AF_UNIX, SOCK_STREAM, 0);
	if (p < 0 || connect(p, (struct sockaddr *)&a, alen))
		return 3;
	move_to(p, 15);
	int lo = if_nametoindex("lo");
	struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = 0, .sll_ifindex = lo };
	int pk = socket(AF_PACKET, SOCK_DGRAM, 0);
	if (pk < 0 || bind(pk, (struct sockaddr *)&ll, sizeof(ll)))
		return 4;
	move_to(pk, 16);
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK };
	socklen_t nlen = sizeof(nl);
	int n = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	if (n < 0 || bind(n, (struct sockaddr *)&nl, sizeof(nl)) || getsockname(n, (struct sockaddr *)&nl, &nlen))
		return 5;
	unsigned portid = nl.nl_pid;
	move_to(n, 17);
	wl_ready();
	wl_wait_go();

	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	if (getsockopt(10, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) || cr.pid != getpid())
		wl_fail("the pair's SO_PEERCRED names pid %d, not %d, which made it", (int)cr.pid, (int)getpid());
	expect_text(11, "queued-a", "the pair's end 11");
	expect_text(10, "queued-b", "the pair's end 10");
	say(10, "after-a");
	expect_text(11, "after-a", "the pair after restore");
	say(11, "after-b");
	expect_text(10, "after-b", "the pair after restore (back)");

	struct sockaddr_un got;
	socklen_t glen = sizeof(got);
	if (getsockname(12, (struct sockaddr *)&got, &glen) || glen != alen || memcmp(&got, &a, alen))
		wl_fail("the listener is not bound to @%s", argv[2]);
	expect_text(14, "hello", "the accepted end's queue");
	say(14, "back");
	expect_text(13, "back", "the client from the accepted end");
	int q = accept4(12, NULL, NULL, SOCK_NONBLOCK);
	if (q < 0) {
		wl_fail("the connection not accepted yet is gone: %s", strerror(errno));
	} else {
		fcntl(q, F_SETFL, 0);
		say(15, "late");
		expect_text(q, "late", "the connection accepted after restore");
	}
	int c2 = socket(AF_UNIX, SOCK_STREAM, 0);
	if (c2 < 0 || connect(c2, (struct sockaddr *)&a, alen)) {
		wl_fail("a new client cannot reach @%s: %s", argv[2], strerror(errno));
	} else {
		int s2 = accept(12, NULL, NULL);
		say(c2, "new");
		if (s2 < 0)
			wl_fail("accept of the new client: %s", strerror(errno));
		else
			expect_text(s2, "new", "the new client");
	}

	struct sockaddr_ll pl;
	socklen_t plen = sizeof(pl);
	if (getsockname(16, (struct sockaddr *)&pl, &plen) || pl.sll_family != AF_PACKET || pl.sll_ifindex != lo)
		wl_fail("the packet socket is not bound to lo (%d): interface %d", lo, pl.sll_ifindex);
	nlen = sizeof(nl);
	if (getsockname(17, (struct sockaddr *)&nl, &nlen) || nl.nl_pid != portid)
		wl_fail("the netlink socket has port %u, not %u", nl.nl_pid, portid);
	int ret = wl_finish(NULL);
	for (int i = 0; i < 30000 && access("end", F_OK); i++)
		wl_sleep_ms(1);
	return ret;
}
