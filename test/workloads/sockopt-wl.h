/* Integer socket options of the socket workloads: read one (a failure is the workload's),
 * set one (a failure is its set-up's, exit 8); datagram sockets on 127.0.0.1 linked to each
 * other (a failure is the set-up's, exit 6 and 7). */
#include "wl.h"
#include <errno.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

static inline int geti(int fd, int level, int opt)
{
	int v = -1;
	socklen_t l = sizeof(v);
	if (getsockopt(fd, level, opt, &v, &l) < 0)
		wl_fail("getsockopt(%d, %d, %d): %s", fd, level, opt, strerror(errno));
	return v;
}

static inline void seti(int fd, int level, int opt, int v)
{
	if (setsockopt(fd, level, opt, &v, sizeof(v)) < 0)
		exit(8);
}

/* A datagram socket of `proto` (0, IPPROTO_UDP, IPPROTO_UDPLITE) bound to 127.0.0.1. */
static inline int udp_on_lo(int proto)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int s = socket(AF_INET, SOCK_DGRAM, proto);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		exit(6);
	return s;
}

/* Connects `s` to where `peer` is bound. */
static inline void link_to(int s, int peer)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);
	if (getsockname(peer, (struct sockaddr *)&a, &l) < 0 || connect(s, (struct sockaddr *)&a, l) < 0)
		exit(7);
}
