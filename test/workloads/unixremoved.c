/* Unix sockets whose files were removed. fd 5: a stream listener bound to DIR/a/l.sock, with
 * a connection it accepted (client fd 6, accepted end fd 7, bytes queued both ways) and one it
 * has not accepted yet (client fd 8); then l.sock is unlinked and the directory a removed.
 * fd 9: a datagram socket bound to DIR/d.sock, two datagrams queued from fd 10 (unbound,
 * connected to it); then d.sock is unlinked and a regular file made in its place.
 * fd 11: a stream socket bound (never connected) to the relative name r.sock from DIR/sub,
 * whose file is then unlinked; the workload's cwd is DIR.
 * After `go`: every socket keeps its name; a is still gone, d.sock is still the regular
 * file, sub/r.sock still gone; the queues read as they were, fd 8's connection is accepted
 * with the bytes fd 8 sends, fd 10 still reaches fd 9, fd 11 listens. */
#include "sock-wl.h"
#include <stddef.h>

static char cwd[80];

static void check_name(int fd, const char *want)
{
	struct sockaddr_un got;
	socklen_t gl = sizeof(got);
	memset(&got, 0, sizeof(got));
	if (getsockname(fd, (struct sockaddr *)&got, &gl) < 0 || strcmp(got.sun_path, want))
		wl_fail("fd %d is bound to '%s', not '%s'", fd, got.sun_path, want);
}

static void check_gone(const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0 || errno != ENOENT)
		wl_fail("%s is there again after restore", path);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	if (!getcwd(cwd, sizeof(cwd)))
		exit(6);
	struct sockaddr_un l = { .sun_family = AF_UNIX }, d = { .sun_family = AF_UNIX }, r = { .sun_family = AF_UNIX };
	snprintf(l.sun_path, sizeof(l.sun_path), "%s/a/l.sock", cwd);
	snprintf(d.sun_path, sizeof(d.sun_path), "%s/d.sock", cwd);
	strcpy(r.sun_path, "r.sock");
	if (mkdir("a", 0700) < 0 || mkdir("sub", 0700) < 0)
		exit(7);

	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&l, sizeof(l)) < 0 || listen(s, 4) < 0)
		exit(8);
	move_to(s, 5);
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&l, sizeof(l)) < 0)
		exit(9);
	move_to(s, 6);
	move_to(accept(5, NULL, NULL), 7);
	put(6, 1, 0, 1000);
	put(7, 2, 0, 700);
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&l, sizeof(l)) < 0)
		exit(10);
	move_to(s, 8);
	if (unlink(l.sun_path) < 0 || rmdir("a") < 0)
		exit(11);

	s = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&d, sizeof(d)) < 0)
		exit(12);
	move_to(s, 9);
	s = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&d, sizeof(d)) < 0)
		exit(13);
	move_to(s, 10);
	send_dgram(10, 4, 0, 100);
	send_dgram(10, 4, 1, 200);
	if (unlink(d.sun_path) < 0)
		exit(14);
	wl_write("d.sock", "other\n");

	s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0 || chdir("sub") < 0 || bind(s, (struct sockaddr *)&r, offsetof(struct sockaddr_un, sun_path) + strlen(r.sun_path)) < 0 || chdir("..") < 0)
		exit(15);
	move_to(s, 11);
	if (unlink("sub/r.sock") < 0)
		exit(16);
	for (int fd = 5; fd <= 11; fd++)
		srecord(fd);

	wl_ready();
	wl_wait_go();

	check_srecords();
	check_name(5, l.sun_path);
	check_name(7, l.sun_path);
	check_name(9, d.sun_path);
	check_name(11, "r.sock");
	check_gone("a");
	check_gone("sub/r.sock");
	char buf[16] = { 0 };
	int f = open("d.sock", O_RDONLY);
	if (f < 0 || read(f, buf, sizeof(buf) - 1) != 6 || strcmp(buf, "other\n"))
		wl_fail("d.sock is not the regular file that replaced the socket's");
	expect(7, 1, 0, 1000, "the accepted connection's queue");
	expect(6, 2, 0, 700, "the accepted connection's queue back");
	put(8, 3, 0, 300);
	int n = accept(5, NULL, NULL);
	if (n < 0)
		wl_fail("the connection not accepted: %s", strerror(errno));
	else {
		check_name(n, l.sun_path);
		expect(n, 3, 0, 300, "the connection not accepted");
	}
	expect_dgram(9, 4, 0, 100, "the removed datagram socket's queue");
	expect_dgram(9, 4, 1, 200, "the removed datagram socket's queue");
	expect_empty(9, "the removed datagram socket's queue");
	send_dgram(10, 4, 2, 50);
	expect_dgram(9, 4, 2, 50, "fd 10 to the removed datagram socket");
	if (listen(11, 1) < 0)
		wl_fail("fd 11 cannot listen: %s", strerror(errno));
	return wl_finish(NULL);
}
