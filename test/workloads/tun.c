/* Tun files in the tree's own network namespace (started by `unshare -n --fork`): fd 10 opened
 * and never attached; fd 11 attached to tun tsq0 (IFF_NO_PI, a socket buffer of 65536 (unless
 * argv[2] is "nobuf") and a
 * virtio header size of 12 set by ioctl, owner uid 4242), which has 10.77.0.1/24 and is up;
 * fds 12 and 13 two queues of the multi-queue tun tmq0, 13 detached; fd 14 attached to tap
 * tap0, up; and tper0, a persistent tap whose group is 4343, which no file holds. Ready, it
 * writes what TUNGETIFF says of each fd to `before`. After `go` (checkpointed and restored in
 * between): each fd says the same; 11 has its buffer and header size, and a datagram sent to
 * 10.77.0.2 comes out of it (nonblocking, as it was) as an IPv4 packet; 13's queue is detached (attaching it works, and
 * detaching 12's); tap0 has its MAC; tper0 is still there (IFF_TUN_EXCL fails with EBUSY); fd
 * 10 attaches to a new device. The root exits once `end` exists. */
#include "wl.h"
#include <errno.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <linux/if_tun.h>

static int tun_open(int at)
{
	int fd = open("/dev/net/tun", O_RDWR);
	if (fd < 0 || dup2(fd, at) != at)
		exit(4);
	close(fd);
	return at;
}

static int tun_attach(int fd, const char *name, int flags)
{
	struct ifreq ifr = { .ifr_flags = flags };
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	return ioctl(fd, TUNSETIFF, &ifr);
}

static int tun_queue(int fd, int flags)
{
	struct ifreq ifr = { .ifr_flags = flags };
	return ioctl(fd, TUNSETQUEUE, &ifr);
}

/* What TUNGETIFF says of fd: its device and flags, or the error. */
static void describe(int fd, char *out, size_t n)
{
	struct ifreq ifr = { 0 };
	if (ioctl(fd, TUNGETIFF, &ifr) < 0)
		snprintf(out, n, "fd %d: %s\n", fd, strerror(errno));
	else
		snprintf(out, n, "fd %d: %s 0x%x\n", fd, ifr.ifr_name, ifr.ifr_flags);
}

static void describe_all(char *out, size_t n)
{
	out[0] = 0;
	for (int fd = 10; fd <= 14; fd++) {
		size_t k = strlen(out);
		describe(fd, out + k, n - k);
	}
}

static void hwaddr(int fd, unsigned char *a)
{
	struct ifreq ifr = { 0 };
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
		memset(a, 0, 6);
	else
		memcpy(a, ifr.ifr_hwaddr.sa_data, 6);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	char before[1024], after[1024];
	unsigned char mac[6], mac2[6];
	int v;

	/* argv[2] "nobuf": no socket buffer of its own (CRIU 4.2 gives its restored files the default one). */
	int buf = argc > 2 && !strcmp(argv[2], "nobuf") ? 0x7fffffff : 65536;
	tun_open(10);
	if (tun_attach(tun_open(11), "tsq0", IFF_TUN | IFF_NO_PI) < 0)
		return 5;
	v = buf;
	if (ioctl(11, TUNSETSNDBUF, &v) < 0)
		return 5;
	v = 12;
	if (ioctl(11, TUNSETVNETHDRSZ, &v) < 0 || ioctl(11, TUNSETOWNER, 4242) < 0)
		return 5;
	if (tun_attach(tun_open(12), "tmq0", IFF_TUN | IFF_MULTI_QUEUE | IFF_NO_PI) < 0 ||
	    tun_attach(tun_open(13), "tmq0", IFF_TUN | IFF_MULTI_QUEUE | IFF_NO_PI) < 0 || tun_queue(13, IFF_DETACH_QUEUE) < 0)
		return 6;
	if (tun_attach(tun_open(14), "tap0", IFF_TAP | IFF_NO_PI) < 0)
		return 7;
	int p = tun_open(15);
	if (tun_attach(p, "tper0", IFF_TAP) < 0 || ioctl(p, TUNSETGROUP, 4343) < 0 || ioctl(p, TUNSETPERSIST, 1) < 0)
		return 8;
	close(p);
	/* Nonblocking, and no IPv6 on the devices that are up: nothing queued to read at the checkpoint (stasis refuses that). */
	if (fcntl(11, F_SETFL, O_NONBLOCK) < 0)
		return 9;
	if (system("sysctl -q -w net.ipv6.conf.tsq0.disable_ipv6=1 net.ipv6.conf.tap0.disable_ipv6=1 && "
		   "ip addr add 10.77.0.1/24 dev tsq0 && ip link set tsq0 up && ip link set tap0 up"))
		return 9;
	hwaddr(14, mac);
	describe_all(before, sizeof(before));
	wl_write("before", before);
	wl_ready();
	wl_wait_go();

	describe_all(after, sizeof(after));
	if (strcmp(before, after))
		wl_fail("TUNGETIFF said\n%sbefore, and now\n%s", before, after);
	int sndbuf = 0, hdr = 0;
	if (ioctl(11, TUNGETSNDBUF, &sndbuf) < 0 || sndbuf != buf)
		wl_fail("fd 11 has a socket buffer of %d, not %d", sndbuf, buf);
	if (ioctl(11, TUNGETVNETHDRSZ, &hdr) < 0 || hdr != 12)
		wl_fail("tsq0 has a header size of %d, not 12", hdr);
	/* A datagram routed to tsq0 is read from fd 11: the file is attached and the device up, its address and route there. */
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(9) };
	inet_pton(AF_INET, "10.77.0.2", &to.sin_addr);
	if (u < 0 || sendto(u, "tun-payload", 11, 0, (struct sockaddr *)&to, sizeof(to)) != 11)
		wl_fail("no datagram sent to 10.77.0.2: %s", strerror(errno));
	unsigned char pkt[2048];
	ssize_t got = -1;
	for (int i = 0; i < 2000 && got < 0; i++) {
		got = read(11, pkt, sizeof(pkt));
		if (got < 0 && errno == EAGAIN)
			wl_sleep_ms(1);
		/* IPv6 router solicitations and the like may come first: the datagram is the IPv4 one. */
		if (got >= 0 && (got < 20 || (pkt[0] >> 4) != 4 || !memmem(pkt, got, "tun-payload", 11)))
			got = -1;
	}
	if (got < 0)
		wl_fail("fd 11 gave no IPv4 packet with the datagram");
	if (tun_queue(13, IFF_ATTACH_QUEUE) < 0)
		wl_fail("fd 13's queue could not be attached again: %s", strerror(errno));
	if (tun_queue(12, IFF_DETACH_QUEUE) < 0)
		wl_fail("fd 12's queue could not be detached: %s", strerror(errno));
	hwaddr(14, mac2);
	if (memcmp(mac, mac2, 6))
		wl_fail("tap0 has MAC %02x:%02x:..:%02x, not %02x:%02x:..:%02x", mac2[0], mac2[1], mac2[5], mac[0], mac[1], mac[5]);
	int q = open("/dev/net/tun", O_RDWR);
	if (tun_attach(q, "tper0", IFF_TAP | IFF_TUN_EXCL) == 0 || errno != EBUSY)
		wl_fail("tper0 is gone (IFF_TUN_EXCL: %s)", strerror(errno));
	close(q);
	if (tun_attach(10, "tnew0", IFF_TUN) < 0)
		wl_fail("fd 10 could not be attached: %s", strerror(errno));
	int ret = wl_finish(NULL);
	for (int i = 0; i < 30000 && access("end", F_OK); i++)
		wl_sleep_ms(1);
	return ret;
}
