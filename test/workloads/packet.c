/* Packet sockets (run in a network namespace of its own, on its lo): a SOCK_RAW ETH_P_ALL
 * socket bound to lo with TPACKET_V2, PACKET_AUXDATA, a promiscuous membership and an RX ring
 * of 4 frames mapped shared (fd 5); a SOCK_DGRAM ETH_P_IP socket on lo with PACKET_RESERVE,
 * PACKET_ORIGDEV, a unicast membership, SO_RCVBUF and fanout group 77 (fd 6); a SOCK_PACKET
 * socket bound to "lo" (fd 7). After `go` each is bound where it was with its options; the ring
 * is mapped at the same address from the same socket and a datagram fd 6 sends on lo lands
 * in its first two frames (going out and coming in), 2048 bytes apart. (The test reads lo's
 * promiscuity: the membership's count, which no getsockopt reports.) With `used`, a datagram is sent before `ready` (the ring holds it:
 * refused); with `fanout2`, fd 8 joins fd 6's fanout group (refused). */
#include "sockopt-wl.h"
#include <errno.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <net/if.h>

#define FANOUT (77 | (PACKET_FANOUT_LB << 16))
#define RING_BYTES 8192

static void move_to(int fd, int to)
{
	if (fd < 0 || (fd != to && (dup2(fd, to) != to || close(fd) != 0)))
		exit(5);
}

static int packet(int type, int proto, int ifindex)
{
	int s = socket(AF_PACKET, type, htons(proto));
	struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_protocol = htons(proto), .sll_ifindex = ifindex };
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		exit(6);
	return s;
}

static void member(int fd, int type, int alen)
{
	struct packet_mreq m = { .mr_ifindex = (int)if_nametoindex("lo"), .mr_type = type, .mr_alen = alen };
	if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &m, sizeof(m)) < 0)
		exit(9);
}

static void send_on_lo(int fd)
{
	struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP), .sll_ifindex = (int)if_nametoindex("lo"), .sll_halen = 6 };
	if (sendto(fd, "not quite an IP packet", 22, 0, (struct sockaddr *)&to, sizeof(to)) != 22)
		wl_fail("fd %d cannot send: %s", fd, strerror(errno));
}

static struct sockaddr_ll name_of(int fd)
{
	struct sockaddr_ll a = { 0 };
	socklen_t l = sizeof(a);
	if (getsockname(fd, (struct sockaddr *)&a, &l) < 0)
		wl_fail("getsockname(%d): %s", fd, strerror(errno));
	return a;
}

/* Whether /proc/self/maps has the area at `at` mapping socket fd's inode. */
static int mapped_from(void *at, int fd)
{
	struct stat st;
	char line[512];
	int found = 0;
	fstat(fd, &st);
	FILE *f = fopen("/proc/self/maps", "r");
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long start, end, ino;
		unsigned maj, min;
		if (sscanf(line, "%lx-%lx %*s %*s %x:%x %lu", &start, &end, &maj, &min, &ino) == 5 && start == (unsigned long)at)
			found = end - start == RING_BYTES && makedev(maj, min) == st.st_dev && ino == st.st_ino;
	}
	if (f)
		fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int lo = (int)if_nametoindex("lo");
	int r = packet(SOCK_RAW, ETH_P_ALL, lo);
	seti(r, SOL_PACKET, PACKET_VERSION, TPACKET_V2);
	seti(r, SOL_PACKET, PACKET_AUXDATA, 1);
	member(r, PACKET_MR_PROMISC, 0);
	struct tpacket_req req = { .tp_block_size = 4096, .tp_block_nr = 2, .tp_frame_size = 2048, .tp_frame_nr = 4 };
	if (setsockopt(r, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) < 0)
		exit(10);
	move_to(r, 5);
	unsigned char *ring = mmap(NULL, RING_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, 5, 0);
	if (ring == MAP_FAILED)
		exit(11);
	int d = packet(SOCK_DGRAM, ETH_P_IP, lo);
	seti(d, SOL_PACKET, PACKET_RESERVE, 16);
	seti(d, SOL_PACKET, PACKET_ORIGDEV, 1);
	seti(d, SOL_SOCKET, SO_RCVBUF, 50000);
	member(d, PACKET_MR_UNICAST, 6);
	seti(d, SOL_PACKET, PACKET_FANOUT, FANOUT);
	move_to(d, 6);
	int sp = socket(AF_PACKET, SOCK_PACKET, htons(ETH_P_ALL));
	struct sockaddr sa = { .sa_family = AF_PACKET };
	strcpy(sa.sa_data, "lo");
	if (sp < 0 || bind(sp, &sa, sizeof(sa)) < 0)
		exit(12);
	move_to(sp, 7);
	if (argc > 2 && strcmp(argv[2], "fanout2") == 0) {
		int f = packet(SOCK_DGRAM, ETH_P_IP, lo);
		seti(f, SOL_PACKET, PACKET_FANOUT, FANOUT);
		move_to(f, 8);
	}
	if (argc > 2 && strcmp(argv[2], "used") == 0) {
		send_on_lo(6);
		for (int i = 0; i < 1000 && !(((struct tpacket2_hdr *)ring)->tp_status & TP_STATUS_USER); i++)
			wl_sleep_ms(1);
	}
	struct sockaddr_ll before[8];
	for (int fd = 5; fd <= 6; fd++)
		before[fd] = name_of(fd);
	int rcvbuf = geti(6, SOL_SOCKET, SO_RCVBUF);
	wl_ready();
	wl_wait_go();

	for (int fd = 5; fd <= 6; fd++) {
		struct sockaddr_ll now = name_of(fd);
		if (now.sll_ifindex != before[fd].sll_ifindex || now.sll_protocol != before[fd].sll_protocol || now.sll_ifindex != lo)
			wl_fail("fd %d is on interface %d protocol %x, not %d, %x", fd, now.sll_ifindex, ntohs(now.sll_protocol), before[fd].sll_ifindex, ntohs(before[fd].sll_protocol));
	}
	struct sockaddr spn = { 0 };
	socklen_t l = sizeof(spn);
	if (getsockname(7, &spn, &l) < 0 || spn.sa_family != AF_PACKET || strcmp(spn.sa_data, "lo") != 0)
		wl_fail("fd 7 is not bound to lo");
	if (geti(5, SOL_PACKET, PACKET_VERSION) != TPACKET_V2 || geti(5, SOL_PACKET, PACKET_AUXDATA) != 1)
		wl_fail("fd 5 lost its version or PACKET_AUXDATA");
	if (geti(6, SOL_PACKET, PACKET_RESERVE) != 16 || geti(6, SOL_PACKET, PACKET_ORIGDEV) != 1)
		wl_fail("fd 6 lost PACKET_RESERVE or PACKET_ORIGDEV");
	if (geti(6, SOL_PACKET, PACKET_FANOUT) != FANOUT)
		wl_fail("fd 6 is in fanout %x, not %x", geti(6, SOL_PACKET, PACKET_FANOUT), FANOUT);
	if (geti(5, SOL_PACKET, PACKET_FANOUT) != 0)
		wl_fail("fd 5 is in a fanout group");
	if (geti(6, SOL_SOCKET, SO_RCVBUF) != rcvbuf)
		wl_fail("fd 6 has SO_RCVBUF %d, not %d", geti(6, SOL_SOCKET, SO_RCVBUF), rcvbuf);
	if (!mapped_from(ring, 5))
		wl_fail("the ring is not mapped at %p from fd 5", (void *)ring);
	struct tpacket2_hdr *h = (struct tpacket2_hdr *)ring;
	if (h->tp_status != TP_STATUS_KERNEL)
		wl_fail("the ring's first frame has status %x before anything was sent", h->tp_status);
	send_on_lo(6);
	for (int i = 0; i < 1000 && !(h->tp_status & TP_STATUS_USER); i++)
		wl_sleep_ms(1);
	if (!(h->tp_status & TP_STATUS_USER) || h->tp_len != ETH_HLEN + 22)
		wl_fail("the ring's first frame has status %x, length %u after a datagram was sent", h->tp_status, h->tp_len);
	/* lo gives the socket the datagram twice (going out, coming in): the second copy is in
	 * the second frame, 2048 bytes on, as the ring was set up. */
	struct tpacket2_hdr *h2 = (struct tpacket2_hdr *)(ring + 2048);
	for (int i = 0; i < 1000 && !(h2->tp_status & TP_STATUS_USER); i++)
		wl_sleep_ms(1);
	if (!(h2->tp_status & TP_STATUS_USER) || h2->tp_len != ETH_HLEN + 22)
		wl_fail("the ring's second frame has status %x, length %u", h2->tp_status, h2->tp_len);
	return wl_finish(NULL);
}
