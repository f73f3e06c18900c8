/* Fd state: sparse numbers (3, 5, 9, 17, 200), offsets, access modes, O_APPEND,
 * close-on-exec, a directory fd; after restore all of it is identical and works. */
#include "wl.h"
#include <dirent.h>
#include <sys/stat.h>

#define NFD 5
static const int fds[NFD] = { 3, 5, 9, 17, 200 };
struct rec { int fl, fdfl; off_t pos; dev_t dev; ino_t ino; };

static void place(int fd, int want)
{
	if (fd != want) {
		if (dup3(fd, want, fcntl(fd, F_GETFD) & FD_CLOEXEC ? O_CLOEXEC : 0) != want)
			exit(3);
		close(fd);
	}
}

static void record(struct rec *r)
{
	for (int i = 0; i < NFD; i++) {
		struct stat st;
		fstat(fds[i], &st);
		r[i] = (struct rec){ fcntl(fds[i], F_GETFL), fcntl(fds[i], F_GETFD), lseek(fds[i], 0, SEEK_CUR), st.st_dev, st.st_ino };
	}
}

static int list_fds(int *out, int max)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0, self = dirfd(d);
	struct dirent *e;
	while ((e = readdir(d)) && n < max)
		if (e->d_name[0] != '.' && atoi(e->d_name) != self)
			out[n++] = atoi(e->d_name);
	closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	static char data[100 * 1024];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = 'a' + i % 23;
	int fd = open("data.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (write(fd, data, sizeof(data)) != sizeof(data))
		return 3;
	lseek(fd, 12345, SEEK_SET);
	place(fd, 3);
	fd = open("append.log", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	if (write(fd, "hello\n", 6) != 6)
		return 3;
	place(fd, 17);
	place(open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), 200);
	place(open("/dev/null", O_RDWR), 5);
	wl_write("ro.txt", "0123456789abcdef\n");
	fd = open("ro.txt", O_RDONLY | O_CLOEXEC);
	lseek(fd, 7, SEEK_SET);
	place(fd, 9);

	struct rec before[NFD], after[NFD];
	int fl_before[64], fl_after[64];
	record(before);
	int nb = list_fds(fl_before, 64);
	wl_ready();
	wl_wait_go();
	record(after);
	int na = list_fds(fl_after, 64);

	if (na != nb || memcmp(fl_before, fl_after, nb * sizeof(int)))
		wl_fail("the set of open fds changed (%d fds before, %d after)", nb, na);
	for (int i = 0; i < NFD; i++) {
		struct rec *b = &before[i], *a = &after[i];
		if (a->fl != b->fl) wl_fail("fd %d: F_GETFL %o, was %o", fds[i], a->fl, b->fl);
		if (a->fdfl != b->fdfl) wl_fail("fd %d: F_GETFD %d, was %d", fds[i], a->fdfl, b->fdfl);
		if (a->pos != b->pos) wl_fail("fd %d: offset %lld, was %lld", fds[i], (long long)a->pos, (long long)b->pos);
		if (a->dev != b->dev || a->ino != b->ino) wl_fail("fd %d: another file", fds[i]);
	}
	if (write(17, "world\n", 6) != 6)
		wl_fail("write to fd 17 failed");
	char buf[32] = { 0 };
	int lf = open("append.log", O_RDONLY);
	if (read(lf, buf, sizeof(buf) - 1) < 0 || strcmp(buf, "hello\nworld\n"))
		wl_fail("append.log holds \"%s\": O_APPEND lost", buf);
	close(lf);
	memset(buf, 0, sizeof(buf));
	if (read(3, buf, 5) != 5 || memcmp(buf, data + 12345, 5))
		wl_fail("fd 3 does not read from offset 12345");
	if (read(9, buf, 3) != 3 || memcmp(buf, "789", 3))
		wl_fail("fd 9 does not read from offset 7");
	int viadir = openat(200, "data.txt", O_RDONLY);
	if (viadir < 0)
		wl_fail("openat through the directory fd 200 failed");
	return wl_finish(NULL);
}
