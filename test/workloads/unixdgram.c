/* A datagram socket bound to DIR/log.sock (fd 5, mode 0620) and the sockets connected to it
 * one way: fd 6 of the parent and fd 7 of a child. Queued on 5: datagrams from 6, from the
 * child's 7 and from a socket since closed that sent with sendto(), interleaved. After `go`
 * the receiver reads them in order, then each sender sends once more and the receiver gets
 * both; the senders still name the path as their peer. */
#include "sock-wl.h"
#include <sys/wait.h>
#include <sys/stat.h>

static struct sockaddr_un addr = { .sun_family = AF_UNIX };

static void connect_at(int fd)
{
	int s = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		exit(8);
	move_to(s, fd);
}

static void peer_is_path(int fd)
{
	struct sockaddr_un a;
	socklen_t l = sizeof(a);
	if (getpeername(fd, (struct sockaddr *)&a, &l) < 0 || strcmp(a.sun_path, addr.sun_path) != 0)
		wl_fail("fd %d's peer is not %s", fd, addr.sun_path);
}

static void child(void)
{
	close(5);
	close(6);
	connect_at(7);
	send_dgram(7, 2, 1, 222);
	wl_write("child-ready", "1\n");
	while (access("child-go", F_OK) != 0)
		wl_sleep_ms(1);
	send_dgram(7, 2, 2, 2222);
	wl_write("child-sent", "1\n");
	wl_wait_go();
	peer_is_path(7);
	while (access("parent-got", F_OK) != 0)
		wl_sleep_ms(1);
	send_dgram(7, 2, 9, 99);
	if (wl_failed) {
		wl_write("child-why", wl_why);
		_exit(1);
	}
	_exit(24);
}

static void wait_readable(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	if (poll(&p, 1, 10000) != 1)
		wl_fail("fd %d has nothing to read after 10 s", fd);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	if (!getcwd(addr.sun_path, 90))
		exit(6);
	strcat(addr.sun_path, "/log.sock");
	int r = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (r < 0 || bind(r, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		exit(7);
	chmod(addr.sun_path, 0620);
	move_to(r, 5);
	connect_at(6);
	send_dgram(6, 1, 0, 100);
	pid_t c = fork();
	if (c == 0)
		child();
	while (access("child-ready", F_OK) != 0)
		wl_sleep_ms(1);
	int t = socket(AF_UNIX, SOCK_DGRAM, 0);
	unsigned char buf[64];
	dgram_fill(buf, 3, 0, 33);
	if (sendto(t, buf, 33, 0, (struct sockaddr *)&addr, sizeof(addr)) != 33)
		wl_fail("sendto: %s", strerror(errno));
	close(t);
	send_dgram(6, 1, 1, 0);
	wl_write("child-go", "1\n");
	while (access("child-sent", F_OK) != 0)
		wl_sleep_ms(1);
	srecord(5);
	srecord(6);
	char text[32];
	snprintf(text, sizeof(text), "%d\n", c);
	wl_write("pids", text);
	wl_ready();
	wl_wait_go();

	check_srecords();
	expect_dgram(5, 1, 0, 100, "from fd 6");
	expect_dgram(5, 2, 1, 222, "from the child");
	expect_dgram(5, 3, 0, 33, "from a closed sender");
	expect_dgram(5, 1, 1, 0, "an empty one from fd 6");
	expect_dgram(5, 2, 2, 2222, "from the child, again");
	expect_empty(5, "the receiver");
	peer_is_path(6);
	send_dgram(6, 1, 9, 66);
	wait_readable(5);
	expect_dgram(5, 1, 9, 66, "from fd 6 after restore");
	wl_write("parent-got", "1\n");
	wait_readable(5);
	expect_dgram(5, 2, 9, 99, "from the child after restore");
	struct sockaddr_un a;
	socklen_t l = sizeof(a);
	if (getsockname(5, (struct sockaddr *)&a, &l) < 0 || strcmp(a.sun_path, addr.sun_path) != 0)
		wl_fail("fd 5 is not bound to %s", addr.sun_path);
	struct stat st;
	if (stat(addr.sun_path, &st) < 0 || !S_ISSOCK(st.st_mode) || (st.st_mode & 0777) != 0620)
		wl_fail("%s is not a socket with mode 0620", addr.sun_path);
	int s = 0;
	if (waitpid(c, &s, 0) != c || !WIFEXITED(s) || WEXITSTATUS(s) != 24)
		wl_fail("the child ended with %x", s);
	return wl_finish(NULL);
}
