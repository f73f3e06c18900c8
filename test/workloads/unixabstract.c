/* Unix sockets with abstract names: a datagram socket (fd 5) bound to "\0stasis-dg-PID" with two
 * datagrams queued from an unbound socket connected to it (fd 6); a listener (fd 7) on
 * "\0stasis-ln-PID" and a connection it accepted (fd 8, the client's end at fd 9) with bytes
 * queued. After `go` the queue reads in order, fd 6 still reaches fd 5, the accepted end names
 * the listener's name, and a new client connects to the listener. */
#include "wl.h"
#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stddef.h>

static struct sockaddr_un dg = { .sun_family = AF_UNIX }, ln = { .sun_family = AF_UNIX };
static socklen_t dglen, lnlen;

/* Moves fd to `to` by way of a number far from both, so that no fd of ours is overwritten. */
static void move_to(int fd, int to)
{
	int hi = fd < 0 ? -1 : fcntl(fd, F_DUPFD, 100);
	if (hi < 0 || close(fd) != 0 || dup2(hi, to) != to || close(hi) != 0)
		exit(5);
}

static int far(int fd)
{
	int hi = fcntl(fd, F_DUPFD, 100);
	close(fd);
	return hi;
}

static socklen_t name(struct sockaddr_un *a, const char *what)
{
	int n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "stasis-%s-%d", what, getpid());
	return offsetof(struct sockaddr_un, sun_path) + 1 + n;
}

static void expect(int fd, const char *msg)
{
	char buf[64] = "";
	ssize_t r = -1;
	for (int i = 0; i < 1000 && (r = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) < 0; i++)
		wl_sleep_ms(1);
	if (r != (ssize_t)strlen(msg) || strcmp(buf, msg) != 0)
		wl_fail("fd %d got \"%s\" (%ld), not \"%s\"", fd, buf, (long)r, msg);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	dglen = name(&dg, "dg");
	lnlen = name(&ln, "ln");
	int r = socket(AF_UNIX, SOCK_DGRAM, 0), s = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (r < 0 || s < 0 || bind(r, (struct sockaddr *)&dg, dglen) < 0 || connect(s, (struct sockaddr *)&dg, dglen) < 0)
		exit(6);
	if (send(s, "first", 5, 0) != 5 || send(s, "second", 6, 0) != 6)
		exit(7);
	move_to(r, 5);
	move_to(s, 6);
	int l = socket(AF_UNIX, SOCK_STREAM, 0), c = socket(AF_UNIX, SOCK_STREAM, 0);
	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&ln, lnlen) < 0 || listen(l, 5) < 0 || connect(c, (struct sockaddr *)&ln, lnlen) < 0)
		exit(8);
	int a = accept(l, NULL, NULL);
	if (a < 0 || write(c, "queued", 6) != 6)
		exit(9);
	l = far(l);
	a = far(a);
	c = far(c);
	move_to(l, 7);
	move_to(a, 8);
	move_to(c, 9);
	wl_ready();
	wl_wait_go();

	expect(5, "first");
	expect(5, "second");
	if (send(6, "third", 5, 0) != 5)
		wl_fail("fd 6 cannot send: %s", strerror(errno));
	expect(5, "third");
	expect(8, "queued");
	struct sockaddr_un got;
	socklen_t gl = sizeof(got);
	if (getsockname(8, (struct sockaddr *)&got, &gl) < 0 || gl != lnlen || memcmp(&got, &ln, lnlen) != 0)
		wl_fail("the accepted end is not bound to the listener's abstract name");
	int n = socket(AF_UNIX, SOCK_STREAM, 0);
	if (n < 0 || connect(n, (struct sockaddr *)&ln, lnlen) < 0)
		wl_fail("a new client cannot connect to the listener: %s", strerror(errno));
	int na = accept(7, NULL, NULL);
	if (na < 0 || write(n, "new", 3) != 3)
		wl_fail("the listener does not accept the new client");
	else
		expect(na, "new");
	return wl_finish(NULL);
}
