/* Unix socket pairs split across a parent and its child. Stream pair 5/6 (parent 5, child 6),
 * 4000 bytes queued for the child, 2500 for the parent; datagram pair 8/9 (parent 8, child
 * 9), messages queued both ways; stream pair 20/21 whose 20 both share through fork and whose
 * 21 only the child holds, 600 bytes queued on 21. After `go` each checks what was queued
 * for it, then they talk: the child answers on 6, 9 and 21 and the parent reads the answers
 * on 5, 8 and 20, so each end's peer is the right fd of the right process. */
#include "sock-wl.h"
#include <sys/wait.h>

static const int DP[] = { 100, 0, 9000 }, DC[] = { 3, 4 };
#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void wait_readable(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	if (poll(&p, 1, 10000) != 1)
		wl_fail("fd %d has nothing to read after 10 s", fd);
}

static void child(void)
{
	close(5);
	close(8);
	wl_write("child-ready", "1\n");
	wl_wait_go();
	expect(6, 1, 0, 4000, "stream for the child");
	expect_empty(6, "stream for the child");
	for (int i = 0; i < N(DP); i++)
		expect_dgram(9, 1, i, DP[i], "datagrams for the child");
	expect_empty(9, "datagrams for the child");
	expect(21, 3, 0, 600, "shared stream for the child");
	/* The parent compares fd 20 of both first: an exited child has no fds. */
	while (access("parent-checked", F_OK) != 0)
		wl_sleep_ms(1);
	put(6, 2, 2500, 1000);
	send_dgram(9, 2, 7, 1234);
	put(21, 4, 0, 321);
	if (wl_failed) {
		wl_write("child-why", wl_why);
		_exit(1);
	}
	_exit(23);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	pair_at(SOCK_STREAM, 5, 6);
	pair_at(SOCK_DGRAM, 8, 9);
	pair_at(SOCK_STREAM, 20, 21);
	put(5, 1, 0, 4000);
	put(6, 2, 0, 2500);
	for (int i = 0; i < N(DP); i++)
		send_dgram(8, 1, i, DP[i]);
	for (int i = 0; i < N(DC); i++)
		send_dgram(9, 2, i, DC[i]);
	put(20, 3, 0, 600);
	pid_t c = fork();
	if (c == 0)
		child();
	close(6);
	close(9);
	close(21);
	while (access("child-ready", F_OK) != 0)
		wl_sleep_ms(1);
	char text[32];
	snprintf(text, sizeof(text), "%d\n", c);
	wl_write("pids", text);
	wl_ready();
	wl_wait_go();

	if (syscall(SYS_kcmp, getpid(), c, KCMP_FILE, 20, 20) != 0)
		wl_fail("fd 20 of the parent and of the child are not one open file (kcmp %ld, %s)", (long)syscall(SYS_kcmp, getpid(), c, KCMP_FILE, 20, 20), strerror(errno));
	wl_write("parent-checked", "1\n");
	expect(5, 2, 0, 2500, "stream for the parent");
	for (int i = 0; i < N(DC); i++)
		expect_dgram(8, 2, i, DC[i], "datagrams for the parent");
	wait_readable(5);
	expect(5, 2, 2500, 1000, "the child's answer on the stream");
	wait_readable(8);
	expect_dgram(8, 2, 7, 1234, "the child's answer datagram");
	wait_readable(20);
	expect(20, 4, 0, 321, "the child's answer on the shared stream");
	int st = 0;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 23) {
		char why[2048] = "";
		int fd = open("child-why", O_RDONLY);
		if (fd >= 0 && read(fd, why, sizeof(why) - 1) < 0)
			why[0] = 0;
		wl_fail("the child ended with %x: %s", st, why);
	}
	return wl_finish(NULL);
}
