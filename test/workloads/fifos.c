/* FIFOs in every mode, with data in them. f1: one process holds it O_RDWR (10),
 * O_RDONLY|O_NONBLOCK (11) and O_WRONLY (12), 2000 bytes queued, capacity 128 KiB. f2: the
 * parent reads (20, O_RDONLY|O_NONBLOCK), a child writes (its fd 21, O_WRONLY): 3000
 * bytes before the dump, 500 after, then the child exits and the parent sees end of file.
 * f3: only a reader is left (30), with 1234 bytes. f4: only a writer is left (31), with
 * 4321 bytes: after restore a fresh reader gets them. Checks flags, capacities, sharing
 * (kcmp), the exact bytes, and that each FIFO still carries data. */
#include "pipe-wl.h"
#include <sys/wait.h>

static int open_at(const char *path, int flags, int fd)
{
	int t = open(path, flags);
	if (t < 0) {
		wl_fail("open %s: %s", path, strerror(errno));
		return -1;
	}
	if (t != fd) {
		dup2(t, fd);
		close(t);
	}
	return fd;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	const char *names[] = { "f1", "f2", "f3", "f4" };
	for (int i = 0; i < 4; i++)
		if (mkfifo(names[i], 0600) < 0)
			wl_fail("mkfifo %s: %s", names[i], strerror(errno));
	open_at("f1", O_RDWR, 10);
	open_at("f1", O_RDONLY | O_NONBLOCK, 11);
	open_at("f1", O_WRONLY, 12);
	if (fcntl(10, F_SETPIPE_SZ, 128 << 10) < 0)
		wl_fail("F_SETPIPE_SZ: %s", strerror(errno));
	put(12, 1, 0, 2000);

	open_at("f2", O_RDONLY | O_NONBLOCK, 20);
	pid_t c = fork();
	if (c == 0) {
		for (int fd = 10; fd <= 20; fd++)
			close(fd);
		open_at("f2", O_WRONLY, 21);
		put(21, 2, 0, 3000);
		record(21);
		record_sharing();
		wl_write("child-ready", "1\n");
		wl_wait_go();
		check_records();
		put(21, 2, 3000, 500);
		_exit(wl_failed ? 1 : 23);
	}
	while (access("child-ready", F_OK) != 0)
		wl_sleep_ms(1);

	int tmp = open("f3", O_RDWR);
	put(tmp, 3, 0, 1234);
	open_at("f3", O_RDONLY, 30);
	close(tmp);
	tmp = open("f4", O_RDWR);
	open_at("f4", O_WRONLY, 31);
	put(31, 4, 0, 4321);
	close(tmp);

	int fds[] = { 10, 11, 12, 20, 30, 31 };
	for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		record(fds[i]);
	record_sharing();
	wl_ready();
	wl_wait_go();

	check_records();
	if (queued(10) != 2000 || queued(30) != 1234)
		wl_fail("f1 holds %d bytes (not 2000), f3 %d (not 1234)", queued(10), queued(30));
	expect(11, 1, 0, 1000, "f1 through its O_RDONLY end");
	expect(10, 1, 1000, 1000, "f1 through its O_RDWR end");
	put(12, 1, 2000, 100);
	expect(10, 1, 2000, 100, "f1 after");
	put(10, 1, 2100, 100);
	expect(11, 1, 2100, 100, "f1 written through its O_RDWR end");

	/* f2: everything the child wrote, then end of file when it is gone. */
	expect(20, 2, 0, 3500, "f2");
	int st = 0;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 23)
		wl_fail("the writer child ended with %x", st);
	char ch;
	if (read(20, &ch, 1) != 0)
		wl_fail("f2 does not reach end of file once its writer is gone");

	/* f3: its data, then end of file (it has no writer). */
	expect(30, 3, 0, 1234, "f3");
	if (read(30, &ch, 1) != 0)
		wl_fail("f3 does not reach end of file");

	/* f4: a new reader gets what the writer left. */
	int r4 = open("f4", O_RDONLY | O_NONBLOCK);
	if (r4 < 0)
		wl_fail("open f4 for reading: %s", strerror(errno));
	else {
		if (queued(r4) != 4321)
			wl_fail("f4 holds %d bytes, not 4321", queued(r4));
		expect(r4, 4, 0, 4321, "f4");
		put(31, 4, 4321, 100);
		expect(r4, 4, 4321, 100, "f4 after");
	}
	return wl_finish(NULL);
}
