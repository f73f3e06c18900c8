/* Open files whose path no longer leads to them.
 *   ghost.bin: 100 KiB (with a 64 KiB hole), mode 0640, opened twice (fd 10 read-write at
 *              offset 1234, fd 11 read-only at 99), then unlinked;
 *   victim.txt: opened read-only at offset 5 (fd 12), then replaced by another file through
 *              rename: the path now holds "new contents".
 * With argv[2] = SIZE (bytes), only big.bin of SIZE bytes, opened as fd 10 and unlinked.
 * After go each fd must still show its deleted file with its contents, size, mode and offset;
 * the two opens of ghost.bin must be one inode (a write through one is read through the
 * other) with offsets of their own; victim.txt must still hold the new contents. */
#include "wl.h"
#include <sys/stat.h>

static unsigned char pat(long at) { return (unsigned char)((at * 13 + 5) % 253); }

static void check_bytes(int fd, long at, long n)
{
	unsigned char buf[4096];
	for (long done = 0; done < n;) {
		long want = n - done > (long)sizeof(buf) ? (long)sizeof(buf) : n - done;
		if (pread(fd, buf, want, at + done) != want) {
			wl_fail("fd %d: short read at %ld", fd, at + done);
			return;
		}
		for (long i = 0; i < want; i++) {
			long off = at + done + i;
			unsigned char e = (off >= 8192 && off < 8192 + 65536) ? 0 : pat(off);
			if (buf[i] != e) {
				wl_fail("fd %d: byte at %ld is %u, expected %u", fd, off, buf[i], e);
				return;
			}
		}
		done += want;
	}
}

static void check_link(int fd, const char *suffix)
{
	char p[64], l[4096] = "";
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(p, l, sizeof(l) - 1);
	if (n < 0 || (size_t)n < strlen(suffix) || strcmp(l + n - strlen(suffix), suffix) != 0)
		wl_fail("fd %d links to \"%s\", expected it to end in \"%s\"", fd, l, suffix);
}

static int big(long size)
{
	int fd = open("big.bin", O_RDWR | O_CREAT | O_TRUNC, 0600);
	char buf[65536];
	memset(buf, 0x5a, sizeof(buf));
	for (long done = 0; done < size; done += sizeof(buf))
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			return 3;
	dup2(fd, 10);
	close(fd);
	unlink("big.bin");
	wl_ready();
	wl_wait_go();
	struct stat st;
	if (fstat(10, &st) != 0 || st.st_size != size || st.st_nlink != 0)
		wl_fail("big.bin: size %ld, %ld links; expected %ld, 0", (long)st.st_size, (long)st.st_nlink, size);
	return wl_finish(NULL);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	if (argc > 2)
		return big(atol(argv[2]));
	umask(0);
	int fd = open("ghost.bin", O_RDWR | O_CREAT | O_TRUNC, 0640);
	unsigned char buf[102400];
	for (long i = 0; i < (long)sizeof(buf); i++)
		buf[i] = pat(i);
	if (pwrite(fd, buf, 8192, 0) != 8192 || pwrite(fd, buf + 8192 + 65536, sizeof(buf) - 8192 - 65536, 8192 + 65536) < 0)
		return 3;
	dup2(fd, 10);
	close(fd);
	dup2(open("ghost.bin", O_RDONLY), 11);
	lseek(10, 1234, SEEK_SET);
	lseek(11, 99, SEEK_SET);
	unlink("ghost.bin");

	int v = open("victim.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (write(v, "original contents\n", 18) != 18)
		return 3;
	close(v);
	dup2(open("victim.txt", O_RDONLY), 12);
	lseek(12, 5, SEEK_SET);
	v = open("victim.new", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (write(v, "new contents\n", 13) != 13)
		return 3;
	close(v);
	rename("victim.new", "victim.txt");

	wl_ready();
	wl_wait_go();

	struct stat a, b;
	if (fstat(10, &a) != 0 || fstat(11, &b) != 0)
		wl_fail("fstat of the ghost failed");
	if (a.st_ino != b.st_ino || a.st_dev != b.st_dev)
		wl_fail("fds 10 and 11 are no longer one inode");
	if (a.st_nlink != 0 || a.st_size != (off_t)sizeof(buf) || (a.st_mode & 07777) != 0640)
		wl_fail("ghost: %ld links, size %ld, mode %o; expected 0, %ld, 640", (long)a.st_nlink, (long)a.st_size,
			a.st_mode & 07777, (long)sizeof(buf));
	if (lseek(10, 0, SEEK_CUR) != 1234 || lseek(11, 0, SEEK_CUR) != 99)
		wl_fail("ghost offsets are %ld and %ld, expected 1234 and 99", (long)lseek(10, 0, SEEK_CUR), (long)lseek(11, 0, SEEK_CUR));
	if ((fcntl(10, F_GETFL) & O_ACCMODE) != O_RDWR || (fcntl(11, F_GETFL) & O_ACCMODE) != O_RDONLY)
		wl_fail("ghost access modes changed");
	check_bytes(11, 0, sizeof(buf));
	check_link(10, "/ghost.bin (deleted)");
	/* Reading goes on from the offset; a write through 10 is seen through 11. */
	unsigned char c[4];
	if (read(10, c, 4) != 4 || c[0] != pat(1234) || c[3] != pat(1237))
		wl_fail("read through fd 10 did not carry on from offset 1234");
	if (write(10, "XY", 2) != 2 || pread(11, c, 2, 1238) != 2 || c[0] != 'X' || c[1] != 'Y')
		wl_fail("a write through fd 10 is not seen through fd 11");

	char t[64] = "";
	if (read(12, t, 13) != 13 || memcmp(t, "nal contents\n", 13) != 0)
		wl_fail("fd 12 reads \"%s\", not the rest of the original victim.txt", t);
	int now = open("victim.txt", O_RDONLY);
	memset(t, 0, sizeof(t));
	if (now < 0 || read(now, t, sizeof(t) - 1) != 13 || strcmp(t, "new contents\n") != 0)
		wl_fail("victim.txt now holds \"%s\", not the file that replaced it", t);
	struct stat vs, ns;
	fstat(12, &vs);
	fstat(now, &ns);
	if (vs.st_ino == ns.st_ino)
		wl_fail("fd 12 is the new victim.txt");
	return wl_finish(NULL);
}
