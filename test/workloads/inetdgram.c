/* Datagram and raw inet sockets with their options: an unbound UDP socket with SO_BROADCAST
 * (fd 5); two UDP-Lite sockets on loopback connected to each other (6, 7); a UDP receiver
 * (8) whose classic BPF filter cuts every datagram to 3 bytes, and a sender connected to it
 * (9); a raw ICMP socket (10) with ICMP_FILTER, IP_HDRINCL, IP_TOS, IP_TTL and IP_PKTINFO;
 * a raw ICMPv6 socket (11) with ICMPV6_FILTER and IPV6_RECVPKTINFO. After `go` each option
 * reads as before, the UDP-Lite pair carries datagrams both ways and the filter still cuts.
 * With `cork`, fd 12 is a UDP socket corked with a datagram half gathered (refused). */
#include "sockopt-wl.h"
#include <errno.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/icmp6.h>
#include <linux/icmp.h>
#include <linux/filter.h>
#include <linux/udp.h>

#ifndef IPPROTO_UDPLITE
#define IPPROTO_UDPLITE 136
#endif

static void move_to(int fd, int to)
{
	if (fd < 0 || (fd != to && (dup2(fd, to) != to || close(fd) != 0)))
		exit(5);
}

static void want(int fd, int level, int opt, int v)
{
	int got = geti(fd, level, opt);
	if (got != v)
		wl_fail("fd %d: option %d/%d is %d, not %d", fd, level, opt, got, v);
}

static void trip(int from, int to, const char *msg, int expect)
{
	char buf[64];
	if (send(from, msg, strlen(msg), 0) != (ssize_t)strlen(msg))
		wl_fail("fd %d cannot send: %s", from, strerror(errno));
	ssize_t r = -1;
	for (int i = 0; i < 1000 && (r = recv(to, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC)) < 0; i++)
		wl_sleep_ms(1);
	if (r != expect || memcmp(buf, msg, expect) != 0)
		wl_fail("fd %d got %ld bytes of \"%s\" from fd %d, not %d", to, (long)r, msg, from, expect);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int b = socket(AF_INET, SOCK_DGRAM, 0);
	seti(b, SOL_SOCKET, SO_BROADCAST, 1);
	move_to(b, 5);
	int x = udp_on_lo(IPPROTO_UDPLITE), y = udp_on_lo(IPPROTO_UDPLITE);
	link_to(x, y);
	link_to(y, x);
	move_to(x, 6);
	move_to(y, 7);
	int r = udp_on_lo(IPPROTO_UDP), s = udp_on_lo(IPPROTO_UDP);
	struct sock_filter cut[] = { BPF_STMT(BPF_RET | BPF_K, 8 + 3) /* the UDP header, then 3 bytes */ };
	struct sock_fprog prog = { 1, cut };
	if (setsockopt(r, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
		exit(9);
	link_to(s, r);
	move_to(r, 8);
	move_to(s, 9);
	int icmp = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	struct icmp_filter f = { .data = 1 << ICMP_TIMESTAMP };
	if (icmp < 0 || setsockopt(icmp, SOL_RAW, ICMP_FILTER, &f, sizeof(f)) < 0)
		exit(10);
	seti(icmp, SOL_IP, IP_HDRINCL, 1);
	seti(icmp, SOL_IP, IP_TOS, IPTOS_THROUGHPUT);
	seti(icmp, SOL_IP, IP_TTL, 33);
	seti(icmp, SOL_IP, IP_PKTINFO, 1);
	move_to(icmp, 10);
	int icmp6 = socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
	struct icmp6_filter f6;
	ICMP6_FILTER_SETBLOCKALL(&f6);
	ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f6);
	if (icmp6 < 0 || setsockopt(icmp6, SOL_ICMPV6, ICMP6_FILTER, &f6, sizeof(f6)) < 0)
		exit(11);
	seti(icmp6, SOL_IPV6, IPV6_RECVPKTINFO, 1);
	move_to(icmp6, 11);
	if (argc > 2 && strcmp(argv[2], "cork") == 0) {
		int c = udp_on_lo(IPPROTO_UDP);
		link_to(c, 8);
		seti(c, IPPROTO_UDP, UDP_CORK, 1);
		if (send(c, "half", 4, 0) != 4)
			exit(12);
		move_to(c, 12);
	}
	wl_ready();
	wl_wait_go();

	want(5, SOL_SOCKET, SO_BROADCAST, 1);
	trip(6, 7, "lite one way", 12);
	trip(7, 6, "and back", 8);
	trip(9, 8, "cut to three", 3);
	struct icmp_filter g = { 0 };
	socklen_t l = sizeof(g);
	if (getsockopt(10, SOL_RAW, ICMP_FILTER, &g, &l) < 0 || g.data != f.data)
		wl_fail("fd 10: ICMP_FILTER is %x, not %x", g.data, f.data);
	want(10, SOL_IP, IP_HDRINCL, 1);
	want(10, SOL_IP, IP_TOS, IPTOS_THROUGHPUT);
	want(10, SOL_IP, IP_TTL, 33);
	want(10, SOL_IP, IP_PKTINFO, 1);
	struct icmp6_filter g6;
	l = sizeof(g6);
	if (getsockopt(11, SOL_ICMPV6, ICMP6_FILTER, &g6, &l) < 0 || memcmp(&g6, &f6, sizeof(f6)) != 0)
		wl_fail("fd 11: ICMP6_FILTER differs");
	want(11, SOL_IPV6, IPV6_RECVPKTINFO, 1);
	return wl_finish(NULL);
}
