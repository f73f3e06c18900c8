/* Sockets on the addresses of the tree's own network namespace (started by `unshare -n --fork`
 * after lo got them): a TCP listener bound to argv[2] (an IPv4 address of lo), made before the
 * checkpoint. After `go` a child connects to it and they trade a message; then a new UDP
 * socket is bound to argv[3] (an IPv6 address of lo) and sends a datagram to itself: neither
 * bind works unless the restored namespace has the addresses, and the datagram needs its
 * routes. The root exits once `end` exists. */
#include "wl.h"
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>

int main(int argc, char **argv)
{
	if (argc < 4 || chdir(argv[1]))
		return 2;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1)
		return 2;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, len) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &len))
		return 3;
	wl_ready();
	wl_wait_go();
	struct timeval tv = { 5, 0 };
	pid_t child = fork();
	if (child == 0) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&a, len) || write(c, "ping", 4) != 4)
			_exit(10);
		_exit(0);
	}
	int s = accept(l, NULL, NULL);
	char buf[8] = { 0 };
	if (s < 0)
		wl_fail("accept on %s: %s", argv[2], strerror(errno));
	else if (setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) || read(s, buf, 4) != 4 || strcmp(buf, "ping"))
		wl_fail("the connection to %s brought %s", argv[2], buf);
	int st = 0;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_fail("the client of %s ended with status 0x%x", argv[2], st);
	struct sockaddr_in6 b = { .sin6_family = AF_INET6 };
	socklen_t blen = sizeof(b);
	int u = socket(AF_INET6, SOCK_DGRAM, 0);
	if (inet_pton(AF_INET6, argv[3], &b.sin6_addr) != 1 || u < 0)
		wl_fail("no UDP socket for %s", argv[3]);
	else if (bind(u, (struct sockaddr *)&b, blen) || getsockname(u, (struct sockaddr *)&b, &blen))
		wl_fail("bind to %s: %s", argv[3], strerror(errno));
	else if (setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) || sendto(u, "dgram", 5, 0, (struct sockaddr *)&b, blen) != 5)
		wl_fail("send to %s: %s", argv[3], strerror(errno));
	else if (recv(u, buf, sizeof(buf), 0) != 5 || memcmp(buf, "dgram", 5))
		wl_fail("no datagram from %s: %s", argv[3], strerror(errno));
	int ret = wl_finish(NULL);
	for (int i = 0; i < 30000 && access("end", F_OK); i++)
		wl_sleep_ms(1);
	return ret;
}
