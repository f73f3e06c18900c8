/* Multicast memberships of inet sockets, on interface mc0 (a dummy device the test makes, with
 * 10.77.0.1, 10.77.0.9 and fd77::1): an IPv4 UDP receiver (fd 5, port 45400) in 239.1.1.1
 * (any source), 239.1.1.2 (only from 10.77.0.1) and 239.1.1.4 (any but 10.77.0.9), that
 * joined and left 239.1.1.3, with IP_MULTICAST_ALL off; an IPv4 sender (6) from 10.77.0.1 with
 * IP_MULTICAST_IF 10.77.0.1 and IP_MULTICAST_TTL 5; an IPv6 UDP receiver (7, port 45406) in
 * ff15::1, ff15::2 (only from fd77::1) and, at SOL_IP, 239.1.1.5, that left ff15::3; an IPv6
 * sender (8) from fd77::1 with IPV6_MULTICAST_IF mc0 and IPV6_MULTICAST_HOPS 7; a raw IPv4
 * socket (9, protocol 253) in 239.1.1.6. The state is checked before `ready` and again after
 * `go`: each membership with its filter (MCAST_MSFILTER), each option, a datagram to each group
 * received, none to a group left or from a source filtered out. With a file `nomc` in its
 * directory at `go` (a restore from an image without memberships) it checks it has none.
 * With `tcp`, fd 10 is a TCP listener in 239.1.1.7 (refused). */
#include "sockopt-wl.h"
#include <errno.h>
#include <poll.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#define P4 45400
#define P6 45406

static unsigned ifx;

static void move_to(int fd, int to)
{
	if (fd < 0 || (fd != to && (dup2(fd, to) != to || close(fd) != 0)))
		exit(5);
}

static void sa(struct sockaddr_storage *ss, const char *addr, int port)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
		s->sin6_family = AF_INET6;
		s->sin6_port = htons(port);
		inet_pton(AF_INET6, addr, &s->sin6_addr);
	} else {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;
		s->sin_family = AF_INET;
		s->sin_port = htons(port);
		inet_pton(AF_INET, addr, &s->sin_addr);
	}
}

static socklen_t salen(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static void mc(int fd, int level, int opt, const char *group, const char *source)
{
	if (source) {
		struct group_source_req r = { .gsr_interface = ifx };
		sa(&r.gsr_group, group, 0);
		sa(&r.gsr_source, source, 0);
		if (setsockopt(fd, level, opt, &r, sizeof(r)) < 0)
			exit(20 + opt % 10);
	} else {
		struct group_req r = { .gr_interface = ifx };
		sa(&r.gr_group, group, 0);
		if (setsockopt(fd, level, opt, &r, sizeof(r)) < 0)
			exit(30 + opt % 10);
	}
}

static int bound(int family, int type, int proto, const char *addr, int port)
{
	struct sockaddr_storage ss;
	int s = socket(family, type, proto);
	if (s < 0)
		exit(6);
	sa(&ss, addr, port);
	if (bind(s, (struct sockaddr *)&ss, salen(&ss)) < 0)
		exit(7);
	return s;
}

/* The filter of fd's membership of `group` at `level`: -1 when it is no member. */
static int msfilter(int fd, int level, const char *group, char srcs[][64], int *n)
{
	char buf[GROUP_FILTER_SIZE(8)];
	struct group_filter *gf = (struct group_filter *)buf;
	socklen_t l = sizeof(buf);
	memset(buf, 0, sizeof(buf));
	gf->gf_interface = ifx;
	sa(&gf->gf_group, group, 0);
	gf->gf_numsrc = 8;
	if (getsockopt(fd, level, MCAST_MSFILTER, gf, &l) < 0) {
		if (errno != EADDRNOTAVAIL)
			wl_fail("fd %d: MCAST_MSFILTER of %s: %s", fd, group, strerror(errno));
		return -1;
	}
	*n = gf->gf_numsrc;
	for (int i = 0; i < *n && i < 8; i++) {
		struct sockaddr_storage *s = &gf->gf_slist[i];
		void *a = s->ss_family == AF_INET ? (void *)&((struct sockaddr_in *)s)->sin_addr : (void *)&((struct sockaddr_in6 *)s)->sin6_addr;
		inet_ntop(s->ss_family, a, srcs[i], 64);
	}
	return gf->gf_fmode;
}

/* fd is in `group` with `mode` and the one source `src` (or none), or (mode -1) not in it. */
static void member(int fd, int level, const char *group, int mode, const char *src)
{
	char srcs[8][64];
	int n = 0, m = msfilter(fd, level, group, srcs, &n);
	if (m != mode)
		wl_fail("fd %d: filter mode of %s is %d, not %d (-1: no member)", fd, group, m, mode);
	else if (m >= 0 && (n != (src ? 1 : 0) || (src && strcmp(srcs[0], src) != 0)))
		wl_fail("fd %d: %s has %d sources (%s), not %s", fd, group, n, n ? srcs[0] : "", src ? src : "none");
}

static void want(int fd, int level, int opt, int v)
{
	int got = geti(fd, level, opt);
	if (got != v)
		wl_fail("fd %d: option %d/%d is %d, not %d", fd, level, opt, got, v);
}

static void send_to(int from, const char *group, int port, const char *msg)
{
	struct sockaddr_storage ss;
	sa(&ss, group, port);
	if (sendto(from, msg, strlen(msg), 0, (struct sockaddr *)&ss, salen(&ss)) != (ssize_t)strlen(msg))
		wl_fail("fd %d cannot send to %s: %s", from, group, strerror(errno));
}

/* The next datagram on fd within 300 ms is `msg` (or, msg NULL, none comes). */
static void expect(int fd, const char *msg, const char *what)
{
	char buf[128];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t r = poll(&p, 1, 300) == 1 ? recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT) : -1;
	if (r >= 0)
		buf[r] = 0;
	if (!msg && r >= 0)
		wl_fail("fd %d received \"%s\": %s", fd, buf, what);
	if (msg && (r < 0 || strcmp(buf, msg) != 0))
		wl_fail("fd %d did not receive \"%s\" (%s): %s", fd, msg, r < 0 ? "nothing" : buf, what);
}

static void check(void)
{
	member(5, SOL_IP, "239.1.1.1", MCAST_EXCLUDE, NULL);
	member(5, SOL_IP, "239.1.1.2", MCAST_INCLUDE, "10.77.0.1");
	member(5, SOL_IP, "239.1.1.3", -1, NULL);
	member(5, SOL_IP, "239.1.1.4", MCAST_EXCLUDE, "10.77.0.9");
	member(5, SOL_IP, "224.0.0.1", -1, NULL);
	want(5, SOL_IP, IP_MULTICAST_ALL, 0);
	want(6, SOL_IP, IP_MULTICAST_TTL, 5);
	struct in_addr a;
	socklen_t l = sizeof(a);
	if (getsockopt(6, SOL_IP, IP_MULTICAST_IF, &a, &l) < 0 || a.s_addr != inet_addr("10.77.0.1"))
		wl_fail("fd 6: IP_MULTICAST_IF is not 10.77.0.1");
	member(7, SOL_IPV6, "ff15::1", MCAST_EXCLUDE, NULL);
	member(7, SOL_IPV6, "ff15::2", MCAST_INCLUDE, "fd77::1");
	member(7, SOL_IPV6, "ff15::3", -1, NULL);
	member(7, SOL_IPV6, "ff02::1", -1, NULL);
	member(7, SOL_IP, "239.1.1.5", MCAST_EXCLUDE, NULL);
	want(7, SOL_IPV6, IPV6_MULTICAST_ALL, 0);
	want(8, SOL_IPV6, IPV6_MULTICAST_IF, (int)ifx);
	want(8, SOL_IPV6, IPV6_MULTICAST_HOPS, 7);
	member(9, SOL_IP, "239.1.1.6", MCAST_EXCLUDE, NULL);

	send_to(6, "239.1.1.1", P4, "to one");
	expect(5, "to one", "239.1.1.1");
	send_to(6, "239.1.1.2", P4, "to two");
	expect(5, "to two", "239.1.1.2 from 10.77.0.1");
	send_to(6, "239.1.1.3", P4, "to three");
	expect(5, NULL, "239.1.1.3 was left");
	send_to(6, "239.1.1.4", P4, "to four");
	expect(5, "to four", "239.1.1.4 from 10.77.0.1");
	int other = bound(AF_INET, SOCK_DGRAM, 0, "10.77.0.9", 0);
	struct in_addr at = { inet_addr("10.77.0.9") };
	if (setsockopt(other, SOL_IP, IP_MULTICAST_IF, &at, sizeof(at)) < 0)
		exit(9);
	send_to(other, "239.1.1.2", P4, "two from nine");
	expect(5, NULL, "239.1.1.2 includes only 10.77.0.1");
	send_to(other, "239.1.1.4", P4, "four from nine");
	expect(5, NULL, "239.1.1.4 excludes 10.77.0.9");
	send_to(6, "239.1.1.5", P6, "to five");
	expect(7, "to five", "239.1.1.5 on an IPv6 socket");
	close(other);
	send_to(8, "ff15::1", P6, "to v6 one");
	expect(7, "to v6 one", "ff15::1");
	send_to(8, "ff15::2", P6, "to v6 two");
	expect(7, "to v6 two", "ff15::2 from fd77::1");
	send_to(8, "ff15::3", P6, "to v6 three");
	expect(7, NULL, "ff15::3 was left");
}

/* Restored from an image without memberships: no group, and nothing arrives. */
static void check_none(void)
{
	const char *v4[] = { "239.1.1.1", "239.1.1.2", "239.1.1.4" };
	for (int i = 0; i < 3; i++)
		member(5, SOL_IP, v4[i], -1, NULL);
	member(7, SOL_IPV6, "ff15::1", -1, NULL);
	member(7, SOL_IP, "239.1.1.5", -1, NULL);
	member(9, SOL_IP, "239.1.1.6", -1, NULL);
	/* Its IP_MULTICAST_IF was not in the image either: the route to the group is mc0's. */
	struct in_addr at = { inet_addr("10.77.0.1") };
	if (setsockopt(6, SOL_IP, IP_MULTICAST_IF, &at, sizeof(at)) < 0)
		exit(9);
	send_to(6, "239.1.1.1", P4, "to one");
	expect(5, NULL, "no membership after a restore without them");
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	ifx = if_nametoindex("mc0");
	if (!ifx)
		exit(4);
	int r4 = bound(AF_INET, SOCK_DGRAM, 0, "0.0.0.0", P4);
	move_to(r4, 5);
	mc(5, SOL_IP, MCAST_JOIN_GROUP, "239.1.1.1", NULL);
	mc(5, SOL_IP, MCAST_JOIN_SOURCE_GROUP, "239.1.1.2", "10.77.0.1");
	mc(5, SOL_IP, MCAST_JOIN_GROUP, "239.1.1.3", NULL);
	mc(5, SOL_IP, MCAST_LEAVE_GROUP, "239.1.1.3", NULL);
	mc(5, SOL_IP, MCAST_JOIN_GROUP, "239.1.1.4", NULL);
	mc(5, SOL_IP, MCAST_BLOCK_SOURCE, "239.1.1.4", "10.77.0.9");
	seti(5, SOL_IP, IP_MULTICAST_ALL, 0);
	int s4 = bound(AF_INET, SOCK_DGRAM, 0, "10.77.0.1", 0);
	struct in_addr at = { inet_addr("10.77.0.1") };
	if (setsockopt(s4, SOL_IP, IP_MULTICAST_IF, &at, sizeof(at)) < 0)
		exit(9);
	seti(s4, SOL_IP, IP_MULTICAST_TTL, 5);
	move_to(s4, 6);
	int r6 = bound(AF_INET6, SOCK_DGRAM, 0, "::", P6);
	move_to(r6, 7);
	mc(7, SOL_IPV6, MCAST_JOIN_GROUP, "ff15::1", NULL);
	mc(7, SOL_IPV6, MCAST_JOIN_SOURCE_GROUP, "ff15::2", "fd77::1");
	mc(7, SOL_IPV6, MCAST_JOIN_GROUP, "ff15::3", NULL);
	mc(7, SOL_IPV6, MCAST_LEAVE_GROUP, "ff15::3", NULL);
	mc(7, SOL_IP, MCAST_JOIN_GROUP, "239.1.1.5", NULL);
	seti(7, SOL_IPV6, IPV6_MULTICAST_ALL, 0);
	int s6 = bound(AF_INET6, SOCK_DGRAM, 0, "fd77::1", 0);
	seti(s6, SOL_IPV6, IPV6_MULTICAST_IF, (int)ifx);
	seti(s6, SOL_IPV6, IPV6_MULTICAST_HOPS, 7);
	move_to(s6, 8);
	int raw = socket(AF_INET, SOCK_RAW, 253);
	move_to(raw, 9);
	mc(9, SOL_IP, MCAST_JOIN_GROUP, "239.1.1.6", NULL);
	if (argc > 2 && strcmp(argv[2], "tcp") == 0) {
		int t = bound(AF_INET, SOCK_STREAM, 0, "10.77.0.1", 45410);
		if (listen(t, 4) < 0)
			exit(10);
		move_to(t, 10);
		mc(10, SOL_IP, MCAST_JOIN_GROUP, "239.1.1.7", NULL);
	}
	check();
	if (wl_failed)
		return wl_finish("(before the dump)\n");
	wl_ready();
	wl_wait_go();
	if (access("nomc", F_OK) == 0)
		check_none();
	else
		check();
	return wl_finish(NULL);
}
