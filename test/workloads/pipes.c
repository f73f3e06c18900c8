/* Pipes of one process in every layout: the write end below the read end, ends on 0/1/2
 * (swapped), on 3/4, dup'd, O_RDWR and O_RDONLY ends reopened through /proc, ends just under
 * RLIMIT_NOFILE, a 1 MiB pipe filled to capacity, a pipe of which only the write end is
 * left and one of which only the read end is, an empty pipe of 8 KiB; data in flight in
 * each, O_NONBLOCK on some ends. After `go` it checks fd numbers, flags, capacities, which
 * fds share a file and a pipe, the exact bytes of every pipe, and that the pipes still
 * carry data both ways. The same checks hold after a dump with --leave-running. */
#include "pipe-wl.h"
#include <sys/resource.h>

#define MIB (1L << 20)

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

/* Stream k: the pipe's data is bytes [0, n) of it; after the checks bytes [n, n+100). */
static void more(int wfd, int rfd, int k, long n, const char *what)
{
	put(wfd, k, n, 100);
	expect(rfd, k, n, 100, what);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	/* 1: write end (7) below read end (10); read end non-blocking. */
	pipe_at(10, 7);
	set_nonblock(10);
	put(7, 1, 0, 1000);
	/* 2: the standard fds: read end on 1, write end on 0, a dup of the write end on 2. */
	pipe_at(1, 0);
	dup2(0, 2);
	put(0, 2, 0, 77);
	/* 3: on 3 and 4, the numbers a fresh pipe() takes; write end non-blocking. */
	pipe_at(3, 4);
	set_nonblock(4);
	put(4, 3, 0, 3 * 4096 + 5);
	/* 4: 1 MiB, filled to the last byte. */
	pipe_at(30, 31);
	if (fcntl(31, F_SETPIPE_SZ, MIB) != MIB)
		wl_fail("F_SETPIPE_SZ 1 MiB: %s", strerror(errno));
	set_nonblock(31);
	long full = 0;
	for (;;) {
		unsigned char b[4096];
		for (int i = 0; i < 4096; i++)
			b[i] = pat(4, full + i);
		ssize_t w = write(31, b, sizeof(b));
		if (w <= 0)
			break;
		full += w;
	}
	if (full != MIB)
		wl_fail("the 1 MiB pipe took %ld bytes", full);
	/* 5: the write end dup'd twice (20, 21, 40), read end 22, an O_RDWR end reopened at 23, */
	pipe_at(22, 20);
	dup2(20, 21);
	dup2(20, 40);
	int rw = open("/proc/self/fd/22", O_RDWR);
	if (rw < 0 || dup2(rw, 23) != 23)
		wl_fail("reopening fd 22 O_RDWR: %s", strerror(errno));
	close(rw);
	/* ... and a read-only end reopened at 19, below the read end that pipe() made. */
	int ro = open("/proc/self/fd/22", O_RDONLY);
	if (ro < 0 || dup2(ro, 19) != 19)
		wl_fail("reopening fd 22 O_RDONLY: %s", strerror(errno));
	close(ro);
	put(21, 5, 0, 5000);
	/* 6: just under the limit on fds, which is set to 300 below. */
	pipe_at(299, 298);
	put(298, 6, 0, 333);
	/* 7: only the write end is left, with its data. */
	pipe_at(49, 50);
	put(50, 7, 0, 6000);
	close(49);
	/* 8: only the read end is left, with its data. */
	pipe_at(51, 52);
	put(52, 8, 0, 7000);
	close(52);
	/* 9: empty, 8 KiB. */
	pipe_at(60, 61);
	fcntl(60, F_SETPIPE_SZ, 8192);

	struct rlimit rl = { 300, 20000 };
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = 300;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		wl_fail("setrlimit: %s", strerror(errno));
	int fds[] = { 0, 1, 2, 3, 4, 7, 10, 19, 20, 21, 22, 23, 30, 31, 40, 50, 51, 60, 61, 298, 299 };
	for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		record(fds[i]);
	record_sharing();
	wl_ready();
	wl_wait_go();

	check_records();
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur != 300)
		wl_fail("RLIMIT_NOFILE is %ld, not 300", (long)rl.rlim_cur);
	struct { int rfd; long n; } q[] = { { 10, 1000 }, { 1, 77 }, { 3, 3 * 4096 + 5 }, { 30, MIB }, { 22, 5000 }, { 299, 333 }, { 51, 7000 }, { 60, 0 } };
	for (unsigned i = 0; i < sizeof(q) / sizeof(q[0]); i++)
		if (queued(q[i].rfd) != q[i].n)
			wl_fail("fd %d holds %d bytes, not %ld", q[i].rfd, queued(q[i].rfd), q[i].n);
	expect(10, 1, 0, 1000, "pipe 1");
	expect(1, 2, 0, 77, "pipe 2");
	expect(3, 3, 0, 3 * 4096 + 5, "pipe 3");
	expect(30, 4, 0, MIB, "the 1 MiB pipe");
	expect(23, 5, 0, 2500, "pipe 5 through its O_RDWR end");
	expect(22, 5, 2500, 1500, "pipe 5");
	expect(19, 5, 4000, 1000, "pipe 5 through its reopened read end");
	expect(299, 6, 0, 333, "pipe 6");
	/* The pipe of which only a write end was left: a read end through /proc gets its data. */
	int r7 = open("/proc/self/fd/50", O_RDONLY | O_NONBLOCK);
	if (r7 < 0)
		wl_fail("reopening fd 50 for reading: %s", strerror(errno));
	else
		expect(r7, 7, 0, 6000, "the pipe with only a write end");
	/* The pipe of which only the read end was left: its data, then end of file. */
	expect(51, 8, 0, 7000, "the pipe with only a read end");
	char c;
	if (read(51, &c, 1) != 0)
		wl_fail("fd 51 does not reach end of file");
	/* Every pipe still carries data. */
	more(7, 10, 1, 1000, "pipe 1 after");
	more(2, 1, 2, 77, "pipe 2 after");
	more(4, 3, 3, 3 * 4096 + 5, "pipe 3 after");
	more(31, 30, 4, MIB, "the 1 MiB pipe after");
	more(40, 23, 5, 5000, "pipe 5 after");
	more(298, 299, 6, 333, "pipe 6 after");
	if (r7 >= 0)
		more(50, r7, 7, 6000, "the pipe with only a write end, after");
	more(61, 60, 9, 0, "pipe 9");
	return wl_finish(NULL);
}
