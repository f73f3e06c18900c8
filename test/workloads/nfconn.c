/* A TCP connection inside the tree, through the rules of its own network namespace (started
 * by `unshare -n --fork` after the rules are set): the root listens on loopback (argv[2]: "v4"
 * 127.0.0.1 or "v6" ::1; "udp" also leaves a UDP flow to itself), its child connects, and they
 * trade a first message, so that conntrack holds the connection ESTABLISHED and ASSURED. After
 * `go` they trade 200 more messages of 1000 bytes each way, each checked, with 5 s timeouts: a
 * packet the rules drop (a connection conntrack no longer knows) fails the run. The root
 * exits once `end` exists. */
#include "wl.h"
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>

static int full(int fd, char *buf, size_t n, int out)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = out ? write(fd, buf + done, n - done) : read(fd, buf + done, n - done);
		if (r <= 0)
			return -1;
		done += r;
	}
	return 0;
}

static void timeouts(int fd)
{
	struct timeval tv = { 5, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Round i: the root sends bytes i+k, the child answers each byte plus one. */
static int round_trip(int fd, int i, int root)
{
	char buf[1000];
	if (root) {
		for (int k = 0; k < 1000; k++)
			buf[k] = (char)(i + k);
		if (full(fd, buf, sizeof(buf), 1) || full(fd, buf, sizeof(buf), 0))
			return -1;
		for (int k = 0; k < 1000; k++)
			if (buf[k] != (char)(i + k + 1))
				return -2;
		return 0;
	}
	if (full(fd, buf, sizeof(buf), 0))
		return -1;
	for (int k = 0; k < 1000; k++)
		buf[k]++;
	return full(fd, buf, sizeof(buf), 1);
}

int main(int argc, char **argv)
{
	if (argc < 3 || chdir(argv[1]))
		return 2;
	int v6 = !strcmp(argv[2], "v6");
	struct sockaddr_storage ss = { 0 };
	socklen_t len = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (v6) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	} else {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}
	int l = socket(ss.ss_family, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&ss, len) || listen(l, 1) || getsockname(l, (struct sockaddr *)&ss, &len))
		return 3;
	if (!strcmp(argv[2], "udp")) {
		int u = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(9999), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		if (u < 0 || bind(u, (struct sockaddr *)&a, sizeof(a)) || sendto(u, "x", 1, 0, (struct sockaddr *)&a, sizeof(a)) != 1)
			return 4;
		char c;
		if (recv(u, &c, 1, 0) != 1) /* nothing left queued: only the conntrack entry stays */
			return 4;
	}
	pid_t child = fork();
	if (child == 0) {
		int c = socket(ss.ss_family, SOCK_STREAM, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&ss, len))
			_exit(10);
		timeouts(c);
		if (round_trip(c, 0, 0))
			_exit(11);
		wl_wait_go();
		for (int i = 1; i <= 200; i++)
			if (round_trip(c, i, 0))
				_exit(12);
		_exit(0);
	}
	int s = accept(l, NULL, NULL);
	if (s < 0)
		return 5;
	timeouts(s);
	if (round_trip(s, 0, 1))
		return 6;
	wl_write("port", v6 ? "v6\n" : "v4\n");
	wl_ready();
	wl_wait_go();
	for (int i = 1; i <= 200; i++) {
		int r = round_trip(s, i, 1);
		if (r) {
			wl_fail("round %d: %s", i, r == -2 ? "wrong bytes" : strerror(errno));
			break;
		}
	}
	int st = 0;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_fail("the child ended with status 0x%x", st);
	int ret = wl_finish(NULL);
	/* The namespace lives until `end`: its counters can be read. */
	for (int i = 0; i < 30000 && access("end", F_OK); i++)
		wl_sleep_ms(1);
	return ret;
}
