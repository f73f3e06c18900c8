/* A datagram pair whose queues pass the pair's own ends (zdtm scm06's loop): fds 5 and 6, bound
 * to a.sock and b.sock in the cwd; each end sends both ends to the other, one message each
 * ('0' passing 5, '1' passing 6), and the task keeps both. After `go`, each message is received
 * from its queue in order with the sender's address (recvmsg's msg_name: the other end's
 * path, as before the dump) and the fd it passes is the end it named (getsockname() and kcmp
 * with the task's own fd). */
#include "sock-wl.h"
#include "scm-wl.h"
#include <sys/syscall.h>

static char dir[90];

static void name_of(struct sockaddr_un *a, const char *f)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	snprintf(a->sun_path, sizeof(a->sun_path), "%s/%s", dir, f);
}

/* The next message on `via`: its tag must be `tag`, its sender `from`, the fd it passes the task's `same`. */
static void expect_msg(int via, char tag, const char *from, int same)
{
	char buf[CMSG_SPACE(sizeof(int))] = { 0 }, got = 0;
	struct sockaddr_un who = { 0 }, mine = { 0 }, want;
	struct iovec iov = { &got, 1 };
	struct msghdr h = { .msg_name = &who, .msg_namelen = sizeof(who), .msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof(buf) };
	if (recvmsg(via, &h, MSG_DONTWAIT) != 1 || got != tag) {
		wl_fail("fd %d: no message '%c' (%s)", via, tag, strerror(errno));
		return;
	}
	name_of(&want, from);
	if (h.msg_namelen <= sizeof(sa_family_t) || strcmp(who.sun_path, want.sun_path) != 0)
		wl_fail("fd %d: message '%c' comes from \"%s\" (%d bytes of address), not from %s", via, tag, who.sun_path, (int)h.msg_namelen, want.sun_path);
	struct cmsghdr *c = CMSG_FIRSTHDR(&h);
	if (!c || c->cmsg_type != SCM_RIGHTS) {
		wl_fail("fd %d: message '%c' passes no fd", via, tag);
		return;
	}
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	socklen_t len = sizeof(mine);
	name_of(&want, same == 5 ? "a.sock" : "b.sock");
	if (getsockname(fd, (struct sockaddr *)&mine, &len) != 0 || strcmp(mine.sun_path, want.sun_path) != 0)
		wl_fail("fd %d: the fd message '%c' passes is bound to \"%s\", not %s", via, tag, mine.sun_path, want.sun_path);
	if (syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, fd, same) != 0)
		wl_fail("fd %d: the fd message '%c' passes is not the task's fd %d", via, tag, same);
	close(fd);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	if (!getcwd(dir, 80))
		exit(3);
	pair_at(SOCK_DGRAM, 5, 6);
	struct sockaddr_un a, b;
	name_of(&a, "a.sock");
	name_of(&b, "b.sock");
	if (bind(5, (struct sockaddr *)&a, sizeof(a)) < 0 || bind(6, (struct sockaddr *)&b, sizeof(b)) < 0)
		exit(4);
	for (int via = 5; via <= 6; via++) {
		send_fd(via, 5, '0');
		send_fd(via, 6, '1');
	}
	wl_ready();
	wl_wait_go();
	for (int at = 5; at <= 6; at++) {
		const char *from = at == 5 ? "b.sock" : "a.sock";
		expect_msg(at, '0', from, 5);
		expect_msg(at, '1', from, 6);
	}
	expect_empty(5, "fd 5");
	expect_empty(6, "fd 6");
	return wl_finish(NULL);
}
