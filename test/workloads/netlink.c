/* Netlink sockets (run in a network namespace of its own): a NETLINK_ROUTE socket bound to
 * port id 0x51a50000 on RTMGRP_LINK with O_NONBLOCK and SO_RCVBUF set (fd 5); a
 * NETLINK_KOBJECT_UEVENT socket on group 5, its port id the kernel's (fd 6); one bound to port
 * 0x51a50001 (fd 7); one connected to fd 7's port and group 5 (fd 8); an unbound NETLINK_GENERIC
 * socket (fd 9). After `go` each has its port id, groups, options and flags; a change of lo's
 * MTU reaches fd 5 on its group; a message fd 8 sends reaches fd 6 through the group and fd 7
 * through the port. With `queued`, fd 8 sends before `ready`: fds 6 and 7 hold a message. */
#include "sockopt-wl.h"
#include <errno.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/ioctl.h>

#define ROUTE_PORT 0x51a50000u
#define UEV_PORT 0x51a50001u
#define GROUP 5

static void move_to(int fd, int to)
{
	if (fd < 0 || (fd != to && (dup2(fd, to) != to || close(fd) != 0)))
		exit(5);
}

static int nl(int proto, unsigned port, unsigned groups)
{
	int s = socket(AF_NETLINK, SOCK_RAW, proto);
	struct sockaddr_nl a = { .nl_family = AF_NETLINK, .nl_pid = port, .nl_groups = groups };
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		exit(6);
	return s;
}

static struct sockaddr_nl name_of(int fd)
{
	struct sockaddr_nl a = { 0 };
	socklen_t l = sizeof(a);
	if (getsockname(fd, (struct sockaddr *)&a, &l) < 0)
		wl_fail("getsockname(%d): %s", fd, strerror(errno));
	return a;
}

static void send_hello(int fd)
{
	struct nlmsghdr h = { .nlmsg_len = sizeof(h), .nlmsg_type = 0x1234, .nlmsg_seq = 7 };
	if (send(fd, &h, sizeof(h), 0) != sizeof(h))
		wl_fail("fd %d cannot send: %s", fd, strerror(errno));
}

/* A message on fd within a second, of type `type` (0: any); its type, or -1. */
static int recv_one(int fd, int type)
{
	char buf[8192];
	for (int i = 0; i < 1000; i++) {
		ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r >= (ssize_t)sizeof(struct nlmsghdr)) {
			struct nlmsghdr *h = (struct nlmsghdr *)buf;
			if (!type || h->nlmsg_type == type)
				return h->nlmsg_type;
			continue;
		}
		wl_sleep_ms(1);
	}
	return -1;
}

static void set_lo_mtu(unsigned mtu)
{
	struct {
		struct nlmsghdr h;
		struct ifinfomsg i;
		struct rtattr a;
		unsigned mtu;
	} req = {
		.h = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_NEWLINK, .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK },
		.i = { .ifi_family = AF_UNSPEC, .ifi_index = (int)if_nametoindex("lo") },
		.a = { .rta_len = RTA_LENGTH(sizeof(unsigned)), .rta_type = IFLA_MTU },
		.mtu = mtu,
	};
	int s = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	if (s < 0 || send(s, &req, sizeof(req), 0) != sizeof(req))
		wl_fail("cannot ask for lo's MTU: %s", strerror(errno));
	if (recv_one(s, NLMSG_ERROR) != NLMSG_ERROR)
		wl_fail("no answer to RTM_NEWLINK");
	close(s);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int r = nl(NETLINK_ROUTE, ROUTE_PORT, RTMGRP_LINK);
	int rcv = 100000;
	if (setsockopt(r, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)) < 0 || fcntl(r, F_SETFL, O_NONBLOCK) < 0)
		exit(7);
	move_to(r, 5);
	move_to(nl(NETLINK_KOBJECT_UEVENT, 0, 1u << (GROUP - 1)), 6);
	move_to(nl(NETLINK_KOBJECT_UEVENT, UEV_PORT, 0), 7);
	int c = socket(AF_NETLINK, SOCK_RAW, NETLINK_KOBJECT_UEVENT);
	struct sockaddr_nl to = { .nl_family = AF_NETLINK, .nl_pid = UEV_PORT, .nl_groups = 1u << (GROUP - 1) };
	if (c < 0 || connect(c, (struct sockaddr *)&to, sizeof(to)) < 0)
		exit(8);
	move_to(c, 8);
	move_to(socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC), 9);
	struct sockaddr_nl before[10];
	for (int fd = 5; fd <= 8; fd++)
		before[fd] = name_of(fd);
	int rcvbuf = geti(5, SOL_SOCKET, SO_RCVBUF);
	if (argc > 2 && strcmp(argv[2], "queued") == 0)
		send_hello(8);
	wl_ready();
	wl_wait_go();

	for (int fd = 5; fd <= 8; fd++) {
		struct sockaddr_nl now = name_of(fd);
		if (now.nl_pid != before[fd].nl_pid || now.nl_groups != before[fd].nl_groups)
			wl_fail("fd %d is at port %x groups %x, not port %x groups %x", fd, now.nl_pid, now.nl_groups, before[fd].nl_pid, before[fd].nl_groups);
	}
	if (before[5].nl_pid != ROUTE_PORT || before[7].nl_pid != UEV_PORT || before[6].nl_groups != 1u << (GROUP - 1))
		wl_fail("the sockets were not set up as asked");
	if (name_of(9).nl_pid != 0)
		wl_fail("fd 9 is bound, it was not");
	int protos[] = { [5] = NETLINK_ROUTE, [6] = NETLINK_KOBJECT_UEVENT, [7] = NETLINK_KOBJECT_UEVENT, [8] = NETLINK_KOBJECT_UEVENT, [9] = NETLINK_GENERIC };
	for (int fd = 5; fd <= 9; fd++)
		if (geti(fd, SOL_SOCKET, SO_PROTOCOL) != protos[fd])
			wl_fail("fd %d has protocol %d, not %d", fd, geti(fd, SOL_SOCKET, SO_PROTOCOL), protos[fd]);
	if (geti(5, SOL_SOCKET, SO_RCVBUF) != rcvbuf)
		wl_fail("fd 5 has SO_RCVBUF %d, not %d", geti(5, SOL_SOCKET, SO_RCVBUF), rcvbuf);
	if (!(fcntl(5, F_GETFL) & O_NONBLOCK) || (fcntl(6, F_GETFL) & O_NONBLOCK))
		wl_fail("O_NONBLOCK is not as it was");
	struct sockaddr_nl peer = { 0 };
	socklen_t l = sizeof(peer);
	if (getpeername(8, (struct sockaddr *)&peer, &l) < 0 || peer.nl_pid != UEV_PORT || peer.nl_groups != 1u << (GROUP - 1))
		wl_fail("fd 8 is connected to port %x groups %x", peer.nl_pid, peer.nl_groups);
	/* Another MTU than lo's now: setting the same one tells no one. */
	struct ifreq ifr = { 0 };
	strcpy(ifr.ifr_name, "lo");
	int q = socket(AF_INET, SOCK_DGRAM, 0);
	if (q < 0 || ioctl(q, SIOCGIFMTU, &ifr) < 0)
		wl_fail("SIOCGIFMTU: %s", strerror(errno));
	close(q);
	set_lo_mtu(ifr.ifr_mtu == 1501 ? 1502 : 1501);
	if (recv_one(5, RTM_NEWLINK) != RTM_NEWLINK)
		wl_fail("fd 5 got no RTM_NEWLINK on RTMGRP_LINK");
	send_hello(8);
	if (recv_one(6, 0x1234) != 0x1234)
		wl_fail("fd 6 got nothing on group %d", GROUP);
	if (recv_one(7, 0x1234) != 0x1234)
		wl_fail("fd 7 got nothing at its port");
	return wl_finish(NULL);
}
