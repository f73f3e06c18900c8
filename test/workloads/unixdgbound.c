/* Bound datagram sockets that are connected. fd 5 and fd 6: a datagram socketpair whose ends
 * were bound afterwards, fd 5 to DIR/p5.sock (mode 0620), fd 6 to DIR/p6.sock, since unlinked.
 * fd 7: bound to DIR/self.sock and connected to itself. fd 8 (bound to DIR/one.sock) and
 * fd 9 (unbound): a pair, two datagrams queued on fd 8 from fd 9.
 * After `go`: every end keeps its name and its peer (a datagram from fd 5 says it came from
 * p5.sock; fd 7 reads what it sends itself; a third socket cannot send to fd 8, which is
 * connected), p6.sock is still gone and p5.sock keeps its mode, fd 8's queue reads in order. */
#include "sock-wl.h"
#include <stddef.h>

static char cwd[80];

static void name_at(struct sockaddr_un *a, const char *f)
{
	a->sun_family = AF_UNIX;
	snprintf(a->sun_path, sizeof(a->sun_path), "%s/%s", cwd, f);
}

static void check_name(int fd, int peer, const char *want)
{
	struct sockaddr_un got;
	socklen_t gl = sizeof(got);
	memset(&got, 0, sizeof(got));
	int r = peer ? getpeername(fd, (struct sockaddr *)&got, &gl) : getsockname(fd, (struct sockaddr *)&got, &gl);
	if (r < 0 || strcmp(got.sun_path, want))
		wl_fail("fd %d's %s is '%s', not '%s'", fd, peer ? "peer" : "name", got.sun_path, want);
}

/* A datagram sent on `from` arrives on `to`, naming `sender` (or no one) as its source. */
static void check_from(int from, int to, const char *sender)
{
	char b = 0;
	struct sockaddr_un src;
	socklen_t sl = sizeof(src);
	memset(&src, 0, sizeof(src));
	if (send(from, "d", 1, MSG_DONTWAIT) != 1 || recvfrom(to, &b, 1, MSG_DONTWAIT, (struct sockaddr *)&src, &sl) != 1 || b != 'd')
		wl_fail("a datagram from fd %d does not reach fd %d: %s", from, to, strerror(errno));
	else if (strcmp(src.sun_path, sender))
		wl_fail("a datagram from fd %d to fd %d comes from '%s', not '%s'", from, to, src.sun_path, sender);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	if (!getcwd(cwd, sizeof(cwd)))
		exit(6);
	struct sockaddr_un p5, p6, self, one;
	name_at(&p5, "p5.sock");
	name_at(&p6, "p6.sock");
	name_at(&self, "self.sock");
	name_at(&one, "one.sock");
	pair_at(SOCK_DGRAM, 5, 6);
	if (bind(5, (struct sockaddr *)&p5, sizeof(p5)) < 0 || chmod(p5.sun_path, 0620) < 0 || bind(6, (struct sockaddr *)&p6, sizeof(p6)) < 0 || unlink(p6.sun_path) < 0)
		exit(7);
	int s = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&self, sizeof(self)) < 0 || connect(s, (struct sockaddr *)&self, sizeof(self)) < 0)
		exit(8);
	move_to(s, 7);
	pair_at(SOCK_DGRAM, 8, 9);
	if (bind(8, (struct sockaddr *)&one, sizeof(one)) < 0)
		exit(9);
	send_dgram(9, 5, 0, 64);
	send_dgram(9, 5, 1, 128);
	for (int fd = 5; fd <= 9; fd++)
		srecord(fd);

	wl_ready();
	wl_wait_go();

	check_srecords();
	check_name(5, 0, p5.sun_path);
	check_name(6, 0, p6.sun_path);
	check_name(6, 1, p5.sun_path);
	check_name(7, 0, self.sun_path);
	check_name(7, 1, self.sun_path);
	check_name(8, 0, one.sun_path);
	check_name(9, 1, one.sun_path);
	struct stat st;
	if (lstat(p6.sun_path, &st) == 0 || errno != ENOENT)
		wl_fail("p6.sock is there again");
	if (lstat(p5.sun_path, &st) < 0 || !S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != 0620)
		wl_fail("p5.sock is not the socket file of mode 0620 it was");
	check_from(5, 6, p5.sun_path);
	check_from(6, 5, p6.sun_path);
	check_from(7, 7, self.sun_path);
	expect_dgram(8, 5, 0, 64, "fd 8's queue");
	expect_dgram(8, 5, 1, 128, "fd 8's queue");
	expect_empty(8, "fd 8's queue");
	check_from(9, 8, "");
	int c = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (sendto(c, "x", 1, MSG_DONTWAIT, (struct sockaddr *)&one, sizeof(one)) >= 0 || errno != EPERM)
		wl_fail("a third socket can send to fd 8, connected to fd 9 (%s)", strerror(errno));
	return wl_finish(NULL);
}
