/* Unix sockets stasis refuses to dump, on fd 5, one per mode (argv[2]): `outside` (its
 * peer, fd 6, is held by a grandchild that left the tree), `abstract` (a listener on an
 * abstract name), `rights` (an fd in flight, SCM_RIGHTS), `creds` (SO_PASSCRED with data
 * queued), `async` (O_ASYNC), `owner` (F_SETOWN), `pending` (a listener with a connection
 * not accepted yet whose client wrote to it), `pendingclosed` (one whose client was closed), `boundsender` (a bound datagram socket with a datagram queued from
 * another bound socket, whose address restore could not give back), `moved` (a datagram
 * socket bound to r.sock, whose file was renamed to m.sock). After `go` it checks that the socket still works as it did: the
 * queued data or fd is there, the listener accepts. */
#include "sock-wl.h"
#include <sys/wait.h>
#include <stddef.h>

static char path[90];

static void grandchild(void)
{
	close(5);
	wl_write("gc-ready", "1\n");
	for (int i = 0; i < 30000 && !wl_go_seen(); i++)
		wl_sleep_ms(1);
	char c;
	struct pollfd p = { 6, POLLIN, 0 };
	if (poll(&p, 1, 10000) == 1 && read(6, &c, 1) == 1)
		if (write(6, &c, 1) != 1)
			_exit(1);
	_exit(0);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	const char *mode = argc > 2 ? argv[2] : "";
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	socklen_t alen = sizeof(a);
	int pending = !strcmp(mode, "pending") || !strcmp(mode, "pendingclosed");
	if (!strcmp(mode, "abstract") || pending) {
		if (!strcmp(mode, "abstract"))
			snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "stasis-test-%d", getpid());
		else if (getcwd(path, 90))
			snprintf(a.sun_path, sizeof(a.sun_path), "%s/srv.sock", path);
		alen = !strcmp(mode, "abstract") ? offsetof(struct sockaddr_un, sun_path) + 1 + strlen(a.sun_path + 1) : sizeof(a);
		int l = socket(AF_UNIX, SOCK_STREAM, 0);
		if (bind(l, (struct sockaddr *)&a, alen) < 0 || listen(l, 4) < 0)
			exit(7);
		move_to(l, 5);
		if (pending) {
			int c = socket(AF_UNIX, SOCK_STREAM, 0);
			if (connect(c, (struct sockaddr *)&a, alen) < 0)
				exit(8);
			move_to(c, 6);
			if (!strcmp(mode, "pending"))
				put(6, 1, 0, 100);
			else
				close(6);
		}
	} else if (!strcmp(mode, "moved")) {
		if (!getcwd(path, 80))
			exit(6);
		snprintf(a.sun_path, sizeof(a.sun_path), "%s/r.sock", path);
		int r = socket(AF_UNIX, SOCK_DGRAM, 0);
		if (bind(r, (struct sockaddr *)&a, sizeof(a)) < 0 || rename("r.sock", "m.sock") < 0)
			exit(7);
		move_to(r, 5);
	} else if (!strcmp(mode, "boundsender")) {
		struct sockaddr_un b = { .sun_family = AF_UNIX };
		if (!getcwd(path, 80))
			exit(6);
		snprintf(a.sun_path, sizeof(a.sun_path), "%s/r.sock", path);
		snprintf(b.sun_path, sizeof(b.sun_path), "%s/s.sock", path);
		int r = socket(AF_UNIX, SOCK_DGRAM, 0), s = socket(AF_UNIX, SOCK_DGRAM, 0);
		if (bind(r, (struct sockaddr *)&a, sizeof(a)) < 0 || bind(s, (struct sockaddr *)&b, sizeof(b)) < 0)
			exit(7);
		move_to(r, 5);
		move_to(s, 6);
		if (sendto(6, "b", 1, 0, (struct sockaddr *)&a, sizeof(a)) != 1)
			exit(9);
	} else {
		pair_at(SOCK_STREAM, 5, 6);
	}
	if (!strcmp(mode, "outside")) {
		pid_t c = fork();
		if (c == 0) {
			if (fork() == 0)
				grandchild();
			_exit(0);
		}
		waitpid(c, NULL, 0);
		close(6);
		while (access("gc-ready", F_OK) != 0)
			wl_sleep_ms(1);
	} else if (!strcmp(mode, "rights")) {
		char b = 'r', cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { &b, 1 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		int zero = 0;
		memcpy(CMSG_DATA(c), &zero, sizeof(int));
		if (sendmsg(6, &m, 0) != 1)
			exit(9);
	} else if (!strcmp(mode, "creds")) {
		int on = 1;
		setsockopt(5, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on));
		put(6, 1, 0, 100);
	} else if (!strcmp(mode, "async")) {
		fcntl(5, F_SETFL, fcntl(5, F_GETFL) | O_ASYNC);
	} else if (!strcmp(mode, "owner")) {
		fcntl(5, F_SETOWN, getpid());
	}
	wl_ready();
	wl_wait_go();

	if (!strcmp(mode, "outside")) {
		char c = 'o', d = 0;
		struct pollfd p = { 5, POLLIN, 0 };
		if (write(5, &c, 1) != 1 || poll(&p, 1, 10000) != 1 || read(5, &d, 1) != 1 || d != 'o')
			wl_fail("the grandchild does not echo on fd 5");
	} else if (!strcmp(mode, "abstract") || pending) {
		if (!strcmp(mode, "abstract")) {
			int c = socket(AF_UNIX, SOCK_STREAM, 0);
			if (connect(c, (struct sockaddr *)&a, alen) < 0)
				wl_fail("connect to the abstract name: %s", strerror(errno));
		}
		int n = accept(5, NULL, NULL);
		if (n < 0)
			wl_fail("accept: %s", strerror(errno));
		else if (!strcmp(mode, "pending"))
			expect(n, 1, 0, 100, "the pending connection");
		else
			expect_eof(n, "the pending connection whose client was closed");
	} else if (!strcmp(mode, "rights")) {
		char b = 0, cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { &b, 1 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c;
		if (recvmsg(5, &m, MSG_DONTWAIT) != 1 || b != 'r' || !(c = CMSG_FIRSTHDR(&m)) || c->cmsg_type != SCM_RIGHTS)
			wl_fail("the fd in flight is gone: %s", strerror(errno));
		expect_empty(5, "after the fd in flight");
	} else if (!strcmp(mode, "moved")) {
		char b = 0;
		struct sockaddr_un m = { .sun_family = AF_UNIX };
		snprintf(m.sun_path, sizeof(m.sun_path), "%s/m.sock", path);
		int c = socket(AF_UNIX, SOCK_DGRAM, 0);
		if (sendto(c, "m", 1, 0, (struct sockaddr *)&m, sizeof(m)) != 1 || recv(5, &b, 1, MSG_DONTWAIT) != 1 || b != 'm')
			wl_fail("m.sock does not reach fd 5: %s", strerror(errno));
	} else if (!strcmp(mode, "boundsender")) {
		char b = 0;
		struct sockaddr_un from;
		socklen_t fl = sizeof(from);
		if (recvfrom(5, &b, 1, MSG_DONTWAIT, (struct sockaddr *)&from, &fl) != 1 || b != 'b' || !strstr(from.sun_path, "/s.sock"))
			wl_fail("the datagram from the bound sender is gone: %s", strerror(errno));
	} else if (!strcmp(mode, "creds")) {
		expect(5, 1, 0, 100, "the data with credentials");
		expect_empty(5, "after the data with credentials");
	} else {
		check_connected(5, 6, 0, "the pair");
		if (!strcmp(mode, "async") && !(fcntl(5, F_GETFL) & O_ASYNC))
			wl_fail("fd 5 lost O_ASYNC");
		if (!strcmp(mode, "owner") && fcntl(5, F_GETOWN) != getpid())
			wl_fail("fd 5 lost its owner");
	}
	return wl_finish(NULL);
}
