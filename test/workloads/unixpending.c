/* Unix connections a listener has not accepted yet, and a socket bound but never connected.
 * fd 5: a stream listener on DIR/srv.sock (mode 0640) that accepted one connection (the client
 * at fd 6, the accepted end at fd 7, bytes queued both ways) and holds three more not accepted
 * yet, connected in the order fd 12, fd 10 (O_NONBLOCK), fd 11 (its sending side shut).
 * fd 13: a stream socket bound to the relative name bound.sock (mode 0604), never listening.
 * fd 14: a seqpacket listener on "\0stasis-pend-PID" with one connection not accepted (fd 15).
 * After `go`: the accepted pair reads its queues; each pending client sends its own stream,
 * and accept() returns the connections in the order they were made, each bound to the
 * listener's path, with the bytes its client sent, the shut one at end of file, then no more;
 * bound.sock is still fd 13's, which listens and accepts; the seqpacket connection keeps its
 * message boundaries. */
#include "sock-wl.h"
#include <stddef.h>

static struct sockaddr_un srv = { .sun_family = AF_UNIX }, sq = { .sun_family = AF_UNIX };
static socklen_t sqlen;

static int connected_to(int type, struct sockaddr_un *a, socklen_t len, int to)
{
	int c = socket(AF_UNIX, type, 0);
	if (c < 0 || connect(c, (struct sockaddr *)a, len) < 0)
		exit(8);
	move_to(c, to);
	return to;
}

static void check_mode(const char *path, mode_t want)
{
	struct stat st;
	if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
		wl_fail("%s is not a socket file any more: %s", path, strerror(errno));
	else if ((st.st_mode & 07777) != want)
		wl_fail("%s has mode 0%o, not 0%o", path, st.st_mode & 07777, want);
}

/* accept() on fd l gives a connection whose name is `a`'s. */
static int accepted(int l, struct sockaddr_un *a, socklen_t len, const char *what)
{
	int n = accept(l, NULL, NULL);
	if (n < 0) {
		wl_fail("%s: accept: %s", what, strerror(errno));
		return -1;
	}
	struct sockaddr_un got;
	socklen_t gl = sizeof(got);
	memset(&got, 0, sizeof(got));
	int ok = getsockname(n, (struct sockaddr *)&got, &gl) == 0;
	if (!ok || !(a->sun_path[0] ? !strcmp(got.sun_path, a->sun_path) : gl == len && !memcmp(got.sun_path, a->sun_path, len - offsetof(struct sockaddr_un, sun_path))))
		wl_fail("%s: the accepted end is not bound to the listener's name", what);
	return n;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	char cwd[80];
	if (!getcwd(cwd, sizeof(cwd)))
		exit(6);
	snprintf(srv.sun_path, sizeof(srv.sun_path), "%s/srv.sock", cwd);
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&srv, sizeof(srv)) < 0 || chmod(srv.sun_path, 0640) < 0 || listen(l, 8) < 0)
		exit(7);
	move_to(l, 5);
	connected_to(SOCK_STREAM, &srv, sizeof(srv), 6);
	move_to(accept(5, NULL, NULL), 7);
	put(6, 1, 0, 3000);
	put(7, 2, 0, 2000);
	connected_to(SOCK_STREAM, &srv, sizeof(srv), 12);
	connected_to(SOCK_STREAM, &srv, sizeof(srv), 10);
	connected_to(SOCK_STREAM, &srv, sizeof(srv), 11);
	fcntl(10, F_SETFL, O_NONBLOCK);
	shutdown(11, SHUT_WR);

	struct sockaddr_un b = { .sun_family = AF_UNIX };
	strcpy(b.sun_path, "bound.sock");
	socklen_t blen = offsetof(struct sockaddr_un, sun_path) + strlen(b.sun_path);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&b, blen) < 0 || chmod("bound.sock", 0604) < 0)
		exit(9);
	move_to(s, 13);

	snprintf(sq.sun_path + 1, sizeof(sq.sun_path) - 1, "stasis-pend-%d", getpid());
	sqlen = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sq.sun_path + 1);
	int q = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	if (q < 0 || bind(q, (struct sockaddr *)&sq, sqlen) < 0 || listen(q, 2) < 0)
		exit(10);
	move_to(q, 14);
	connected_to(SOCK_SEQPACKET, &sq, sqlen, 15);
	for (int fd = 5; fd <= 15; fd++)
		if (fd != 8 && fd != 9)
			srecord(fd);

	wl_ready();
	wl_wait_go();

	check_srecords();
	expect(7, 1, 0, 3000, "the accepted connection's queue");
	expect(6, 2, 0, 2000, "the accepted connection's queue back");
	check_connected(6, 7, 0, "the accepted connection");
	put(12, 11, 0, 500);
	put(10, 12, 0, 600);
	int n1 = accepted(5, &srv, sizeof(srv), "the first connection not accepted");
	int n2 = accepted(5, &srv, sizeof(srv), "the second connection not accepted");
	int n3 = accepted(5, &srv, sizeof(srv), "the third connection not accepted");
	if (n1 >= 0)
		expect(n1, 11, 0, 500, "the first accepted (fd 12's)");
	if (n2 >= 0)
		expect(n2, 12, 0, 600, "the second accepted (fd 10's)");
	if (n3 >= 0)
		expect_eof(n3, "the third accepted (fd 11 shut its sending side)");
	if (n1 >= 0) {
		put(n1, 13, 0, 100);
		expect(12, 13, 0, 100, "fd 12 from its accepted end");
	}
	fcntl(5, F_SETFL, O_NONBLOCK);
	if (accept(5, NULL, NULL) >= 0 || errno != EAGAIN)
		wl_fail("fd 5 has a fourth connection not accepted: %s", strerror(errno));
	check_mode(srv.sun_path, 0640);

	struct sockaddr_un got;
	socklen_t gl = sizeof(got);
	memset(&got, 0, sizeof(got));
	if (getsockname(13, (struct sockaddr *)&got, &gl) < 0 || strcmp(got.sun_path, "bound.sock"))
		wl_fail("fd 13 is not bound to bound.sock any more");
	check_mode("bound.sock", 0604);
	if (listen(13, 1) < 0)
		wl_fail("fd 13 cannot listen: %s", strerror(errno));
	connected_to(SOCK_STREAM, &b, blen, 20);
	if (accept(13, NULL, NULL) < 0)
		wl_fail("fd 13 accepts no connection to bound.sock: %s", strerror(errno));

	send_dgram(15, 3, 0, 10);
	send_dgram(15, 3, 1, 20);
	int m = accepted(14, &sq, sqlen, "the seqpacket connection not accepted");
	if (m >= 0) {
		expect_dgram(m, 3, 0, 10, "the seqpacket connection");
		expect_dgram(m, 3, 1, 20, "the seqpacket connection");
		expect_empty(m, "the seqpacket connection");
	}
	return wl_finish(NULL);
}
