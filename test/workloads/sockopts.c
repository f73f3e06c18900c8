/* Socket state beyond addresses: two connected UDP sockets shut one way each (fd 5 SHUT_WR,
 * fd 6 SHUT_RD); a TCP socket never bound (fd 7) and a bound UDP socket (fd 8) with
 * SO_BINDTODEVICE, SO_PRIORITY, SO_MARK, SO_RCVLOWAT, SO_OOBINLINE and SO_DONTROUTE set; a
 * Unix socket pair (fds 9, 10) made by a child, since gone, that ran as uid 4321, gid 1234
 * (SO_PEERCRED names it). After `go` each option reads as before, the shut sides hold (5
 * cannot send, 6 reads end of file, 6 still sends to 5) and the peer credentials name the child. */
#include "sockopt-wl.h"
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

static void move_to(int fd, int to)
{
	if (fd != to && (dup2(fd, to) != to || close(fd) != 0))
		exit(5);
}

static const struct { int opt, val; } opts[] = {
	{ SO_PRIORITY, 5 }, { SO_MARK, 77 }, { SO_RCVLOWAT, 3 }, { SO_OOBINLINE, 1 }, { SO_DONTROUTE, 1 },
};

static void set_opts(int fd, int bias)
{
	for (unsigned i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		int v = opts[i].val + (opts[i].val > 1 ? bias : 0);
		if (setsockopt(fd, SOL_SOCKET, opts[i].opt, &v, sizeof(v)) < 0)
			exit(8);
	}
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3) < 0)
		exit(9);
}

static void check_opts(int fd, int bias)
{
	for (unsigned i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		int v = -1, want = opts[i].val + (opts[i].val > 1 ? bias : 0);
		socklen_t l = sizeof(v);
		if (getsockopt(fd, SOL_SOCKET, opts[i].opt, &v, &l) < 0 || v != want)
			wl_fail("fd %d: option %d is %d, not %d", fd, opts[i].opt, v, want);
	}
	char dev[16] = "";
	socklen_t l = sizeof(dev);
	if (getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, &l) < 0 || strcmp(dev, "lo") != 0)
		wl_fail("fd %d is bound to device \"%s\", not lo", fd, dev);
}

static int maker(void *arg)
{
	(void)arg;
	int sv[2];
	if (setgid(1234) || setuid(4321) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 1;
	move_to(sv[0], 9);
	move_to(sv[1], 10);
	return 0;
}

/* Connects `fd` to a listener made now at `name`, and sends a byte through. */
static void connect_late(int fd, int type, const char *name)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	strcpy(a.sun_path, name);
	int l = socket(AF_UNIX, type, 0);
	char c = 0;
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		wl_fail("fd %d cannot connect to %s: %s", fd, name, strerror(errno));
		return;
	}
	int s = accept(l, NULL, NULL);
	if (s < 0 || write(fd, "z", 1) != 1 || read(s, &c, 1) != 1 || c != 'z')
		wl_fail("fd %d does not carry a byte to %s", fd, name);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int a = udp_on_lo(0), b = udp_on_lo(0);
	link_to(a, b);
	link_to(b, a);
	move_to(a, 5);
	move_to(b, 6);
	if (shutdown(5, SHUT_WR) || shutdown(6, SHUT_RD))
		exit(10);
	int t = socket(AF_INET, SOCK_STREAM, 0);
	move_to(t, 7);
	set_opts(7, 0);
	move_to(udp_on_lo(0), 8);
	set_opts(8, 1);
	static char stack[1 << 16];
	pid_t c = clone(maker, stack + sizeof(stack), CLONE_FILES | SIGCHLD, NULL);
	int st = 0;
	if (c < 0 || waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		exit(11);
	char text[32];
	snprintf(text, sizeof(text), "%d\n", c);
	wl_write("maker", text);
	move_to(socket(AF_UNIX, SOCK_STREAM, 0), 11);
	int one = 1;
	if (setsockopt(11, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
		exit(12);
	move_to(socket(AF_UNIX, SOCK_SEQPACKET, 0), 12);
	wl_ready();
	wl_wait_go();

	check_opts(7, 0);
	check_opts(8, 1);
	char buf[16];
	if (send(5, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0 || errno != EPIPE)
		wl_fail("fd 5 (shut for writing) sends: %s", strerror(errno));
	struct pollfd p = { 6, POLLRDHUP, 0 };
	if (poll(&p, 1, 0) != 1 || !(p.revents & POLLRDHUP))
		wl_fail("fd 6 (shut for reading) does not poll POLLRDHUP");
	if (send(6, "hello", 5, 0) != 5)
		wl_fail("fd 6 cannot send: %s", strerror(errno));
	for (int i = 0; i < 1000 && recv(5, buf, sizeof(buf), MSG_DONTWAIT) != 5; i++)
		wl_sleep_ms(1);
	if (memcmp(buf, "hello", 5) != 0)
		wl_fail("fd 5 did not get what fd 6 sent");
	for (int fd = 9; fd <= 10; fd++) {
		struct ucred u;
		socklen_t l = sizeof(u);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &u, &l) < 0 || u.pid != c || u.uid != 4321 || u.gid != 1234)
			wl_fail("fd %d: SO_PEERCRED is pid %d uid %d gid %d, not %d 4321 1234", fd, u.pid, u.uid, u.gid, c);
	}
	if (write(9, "ab", 2) != 2 || read(10, buf, 2) != 2 || memcmp(buf, "ab", 2) != 0)
		wl_fail("the pair does not carry bytes");
	int pc = 0;
	socklen_t pl = sizeof(pc);
	if (getsockopt(11, SOL_SOCKET, SO_PASSCRED, &pc, &pl) < 0 || pc != 1)
		wl_fail("fd 11 lost SO_PASSCRED");
	connect_late(11, SOCK_STREAM, "late-stream.sock");
	connect_late(12, SOCK_SEQPACKET, "late-seq.sock");
	return wl_finish(NULL);
}
