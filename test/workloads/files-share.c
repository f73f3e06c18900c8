/* Shared and separate open files across dup and fork. The parent opens data.bin as fd 10,
 * dups it to 11, opens it again separately as fd 12, then forks: the child inherits all
 * three (10, 11 share one open file with the parent's 10, 11; 12 shares the parent's 12)
 * and opens the file once more as fd 13, its own. Offsets: 10/11 at 100, 12 at 200, 13 at
 * 300. After go the two take turns (through step files) reading and seeking, and each
 * checks where every fd's offset is: a read through one fd moves exactly the fds that share
 * its open file, in both processes. */
#include "wl.h"
#include <sys/wait.h>

#define SIZE 4096

static unsigned char expect_byte(off_t at) { return (unsigned char)((at * 7 + 3) % 251); }

static void check_read(int fd, off_t at, int n, const char *who)
{
	unsigned char buf[64];
	if (read(fd, buf, n) != n) {
		wl_fail("%s: short read on fd %d", who, fd);
		return;
	}
	for (int i = 0; i < n; i++)
		if (buf[i] != expect_byte(at + i)) {
			wl_fail("%s: fd %d read byte %d as %u, expected the byte at offset %ld", who, fd, i, buf[i], (long)(at + i));
			return;
		}
}

static void check_pos(int fd, off_t want, const char *who)
{
	off_t got = lseek(fd, 0, SEEK_CUR);
	if (got != want)
		wl_fail("%s: fd %d is at offset %ld, expected %ld", who, fd, (long)got, (long)want);
}

static void wait_step(const char *name)
{
	while (access(name, F_OK) != 0)
		wl_sleep_ms(1);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	unsigned char data[SIZE];
	for (int i = 0; i < SIZE; i++)
		data[i] = expect_byte(i);
	int w = open("data.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (w < 0 || write(w, data, SIZE) != SIZE)
		return 3;
	close(w);
	if (dup2(open("data.bin", O_RDWR), 10) != 10 || dup2(10, 11) != 11 || dup2(open("data.bin", O_RDONLY), 12) != 12)
		return 4;
	lseek(10, 100, SEEK_SET);
	lseek(12, 200, SEEK_SET);
	pid_t child = fork();
	if (child == 0) {
		if (dup2(open("data.bin", O_RDONLY), 13) != 13)
			_exit(5);
		lseek(13, 300, SEEK_SET);
		wl_write("child-ready", "");
		wl_wait_go();
		/* Step 1 (parent) read 10 bytes through its fd 10: 10 and 11 are at 110 here too. */
		wait_step("step1");
		check_pos(10, 110, "child");
		check_pos(11, 110, "child");
		check_pos(12, 200, "child");
		check_pos(13, 300, "child");
		/* Step 2: read through 11 and through 12; the parent checks it sees both moves. */
		check_read(11, 110, 20, "child");
		check_read(12, 200, 5, "child");
		check_read(13, 300, 8, "child");
		check_pos(10, 130, "child");
		check_pos(13, 308, "child");
		wl_write("step2", "");
		wait_step("step3");
		/* Step 3 (parent) seeked 12 to 1000: shared; 13 did not move. */
		check_pos(12, 1000, "child");
		check_pos(13, 308, "child");
		check_pos(10, 130, "child");
		wl_write("child-result", wl_failed ? wl_why : "PASS\n");
		_exit(wl_failed ? 1 : 0);
	}
	while (access("child-ready", F_OK) != 0)
		wl_sleep_ms(1);
	char text[32];
	snprintf(text, sizeof(text), "%d\n", child);
	wl_write("child", text);
	wl_ready();
	wl_wait_go();
	check_pos(10, 100, "parent");
	check_pos(12, 200, "parent");
	check_read(10, 100, 10, "parent");
	check_pos(11, 110, "parent");
	check_pos(12, 200, "parent");
	wl_write("step1", "");
	wait_step("step2");
	check_pos(10, 130, "parent");
	check_pos(11, 130, "parent");
	check_pos(12, 205, "parent");
	lseek(12, 1000, SEEK_SET);
	check_pos(10, 130, "parent");
	wl_write("step3", "");
	int st = 0;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char why[4096] = "";
		int fd = open("child-result", O_RDONLY);
		if (fd >= 0 && read(fd, why, sizeof(why) - 1) < 0) {}
		wl_fail("the child failed (status %x): %s", st, why);
	}
	return wl_finish(NULL);
}
