/* A TCP stream across a checkpoint, by mode (argv[2]):
 * - server FAMILY: listens on the loopback address of FAMILY (4 or 6) at an ephemeral port
 *   (`port`), accepts one client, and reads slowly (16 KiB a millisecond, so that both ends'
 *   queues stay full), keeping the count and an FNV-1a hash of what it read; `progress`
 *   appears after 1 MiB. At the end of the stream it answers "BYTES HASH\n", closes, and
 *   writes its result.
 *   With a third argument `uring`, it also holds an io_uring at fd 100 once connected (a
 *   kind of file stasis refuses: its dump fails after the connection was locked).
 * - client FAMILY PORT BYTES: connects, sends BYTES bytes of a fixed pseudo-random stream as
 *   fast as the server takes them, shuts its side, reads the answer and checks it against
 *   what it sent; any error (a reset above all) fails it. It is not checkpointed. */
#include "wl.h"
#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/syscall.h>

static uint32_t fnv(uint32_t h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static socklen_t addr_of(int family, int port, struct sockaddr_in6 *a6)
{
	memset(a6, 0, sizeof(*a6));
	if (family == 4) {
		struct sockaddr_in *a = (struct sockaddr_in *)a6;
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*a);
	}
	a6->sin6_family = AF_INET6;
	a6->sin6_port = htons(port);
	a6->sin6_addr = in6addr_loopback;
	return sizeof(*a6);
}

static int server(int family, int uring)
{
	struct sockaddr_in6 a;
	socklen_t len = addr_of(family, 0, &a);
	int l = socket(family == 4 ? AF_INET : AF_INET6, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, len) < 0 || listen(l, 1) < 0 || getsockname(l, (struct sockaddr *)&a, &len) < 0)
		return 7;
	char text[32];
	snprintf(text, sizeof(text), "%d\n", ntohs(a.sin6_port));
	wl_write("port", text);
	wl_ready();
	int c = accept(l, NULL, NULL);
	if (c < 0)
		return 8;
	if (uring) {
		char params[120] = { 0 }; /* struct io_uring_params */
		int u = syscall(__NR_io_uring_setup, 4, params);
		if (u < 0 || dup2(u, 100) < 0)
			return 9;
	}
	static unsigned char buf[16384];
	uint64_t total = 0;
	uint32_t h = 2166136261u;
	for (;;) {
		ssize_t n = read(c, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			wl_fail("read after %llu bytes: %s", (unsigned long long)total, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		h = fnv(h, buf, n);
		if (total < (1 << 20) && total + n >= (1 << 20))
			wl_write("progress", "1 MiB\n");
		total += n;
		wl_sleep_ms(1);
	}
	snprintf(text, sizeof(text), "%llu %08x\n", (unsigned long long)total, h);
	if (write(c, text, strlen(text)) != (ssize_t)strlen(text))
		wl_fail("answer: %s", strerror(errno));
	close(c);
	return wl_finish(text);
}

static int client(int family, int port, uint64_t bytes)
{
	struct sockaddr_in6 a;
	socklen_t len = addr_of(family, port, &a);
	int c = socket(family == 4 ? AF_INET : AF_INET6, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&a, len) < 0)
		return 7;
	static unsigned char buf[65536];
	uint64_t sent = 0, x = 88172645463325252ull;
	uint32_t h = 2166136261u;
	while (sent < bytes && !wl_failed) {
		size_t n = bytes - sent < sizeof(buf) ? bytes - sent : sizeof(buf);
		for (size_t i = 0; i < n; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			buf[i] = x;
		}
		h = fnv(h, buf, n);
		for (size_t off = 0; off < n;) {
			ssize_t w = write(c, buf + off, n - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				wl_fail("write after %llu bytes: %s", (unsigned long long)(sent + off), strerror(errno));
				break;
			}
			off += w;
		}
		sent += n;
	}
	shutdown(c, SHUT_WR);
	char want[32], got[32] = "";
	snprintf(want, sizeof(want), "%llu %08x\n", (unsigned long long)bytes, h);
	ssize_t n, at = 0;
	while ((n = read(c, got + at, sizeof(got) - 1 - at)) > 0)
		at += n;
	if (n < 0)
		wl_fail("reading the answer: %s", strerror(errno));
	got[at] = 0;
	if (strcmp(got, want))
		wl_fail("the server read \"%.30s\", the client sent \"%.30s\"", got, want);
	return wl_finish(got);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	if (argc >= 4 && !strcmp(argv[2], "server"))
		return server(atoi(argv[3]), argc >= 5 && !strcmp(argv[4], "uring"));
	if (argc >= 6 && !strcmp(argv[2], "client")) {
		wl_ready();
		return client(atoi(argv[3]), atoi(argv[4]), strtoull(argv[5], NULL, 10));
	}
	return 2;
}
