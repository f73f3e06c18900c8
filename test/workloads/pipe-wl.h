/* Helpers of the pipe and FIFO workloads: a deterministic byte pattern per stream, exact
 * reads and writes, and records of fds (flags, inode, capacity) checked after restore,
 * together with which fds share an open file (kcmp) or a pipe (inode). */
#include "wl.h"
#include <errno.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#ifndef F_SETPIPE_SZ
#define F_SETPIPE_SZ 1031
#define F_GETPIPE_SZ 1032
#endif
#define KCMP_FILE 0

static inline unsigned char pat(int k, long i) { return (unsigned char)(i * 31 + k * 7 + (i >> 8) + (i >> 16)); }

/* Writes bytes [off, off+n) of stream k, whatever the fd's O_NONBLOCK (retries EAGAIN). */
static inline void put(int fd, int k, long off, long n)
{
	unsigned char buf[65536];
	while (n > 0) {
		long c = n < (long)sizeof(buf) ? n : (long)sizeof(buf);
		for (long i = 0; i < c; i++)
			buf[i] = pat(k, off + i);
		ssize_t w = write(fd, buf, c);
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			wl_sleep_ms(1);
			continue;
		}
		if (w <= 0) {
			wl_fail("write of stream %d to fd %d failed: %s", k, fd, strerror(errno));
			return;
		}
		off += w;
		n -= w;
	}
}

/* Reads exactly bytes [off, off+n) of stream k from fd (retrying EAGAIN for up to 10 s). */
static inline int expect(int fd, int k, long off, long n, const char *what)
{
	unsigned char buf[65536];
	long got = 0;
	int tries = 0;
	while (got < n) {
		long c = n - got < (long)sizeof(buf) ? n - got : (long)sizeof(buf);
		ssize_t r = read(fd, buf, c);
		if (r < 0 && (errno == EAGAIN || errno == EINTR) && tries++ < 10000) {
			wl_sleep_ms(1);
			continue;
		}
		if (r <= 0) {
			wl_fail("%s: fd %d gave %ld of %ld bytes, then %s", what, fd, got, n, r == 0 ? "end of file" : strerror(errno));
			return -1;
		}
		for (long i = 0; i < r; i++)
			if (buf[i] != pat(k, off + got + i)) {
				wl_fail("%s: byte %ld of fd %d is %u, not %u", what, off + got + i, fd, buf[i], pat(k, off + got + i));
				return -1;
			}
		got += r;
	}
	return 0;
}

static inline int queued(int fd)
{
	int n = -1;
	if (ioctl(fd, FIONREAD, &n) < 0)
		return -1;
	return n;
}

struct rec {
	int fd, flags, pipesz;
	ino_t ino;
};
static struct rec recs[64];
static int nrecs;

static inline void record(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		wl_fail("fd %d is not open", fd);
		return;
	}
	recs[nrecs++] = (struct rec){ fd, fcntl(fd, F_GETFL), fcntl(fd, F_GETPIPE_SZ), st.st_ino };
}

static inline int same_file(int a, int b) { return syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, a, b) == 0; }

/* What kcmp and the inodes said before the dump, over every pair of recorded fds. */
static unsigned char shared_file[64][64];

static inline void record_sharing(void)
{
	for (int i = 0; i < nrecs; i++)
		for (int j = 0; j < nrecs; j++)
			shared_file[i][j] = same_file(recs[i].fd, recs[j].fd);
}

static inline void check_records(void)
{
	struct stat st[64];
	for (int i = 0; i < nrecs; i++) {
		struct rec *r = &recs[i];
		if (fstat(r->fd, &st[i]) < 0) {
			wl_fail("fd %d is gone", r->fd);
			return;
		}
		int fl = fcntl(r->fd, F_GETFL), sz = fcntl(r->fd, F_GETPIPE_SZ);
		if (fl != r->flags)
			wl_fail("fd %d has flags 0%o, not 0%o", r->fd, fl, r->flags);
		if (sz != r->pipesz)
			wl_fail("fd %d has capacity %d, not %d", r->fd, sz, r->pipesz);
	}
	for (int i = 0; i < nrecs; i++)
		for (int j = 0; j < nrecs; j++) {
			int was = recs[i].ino == recs[j].ino, is = st[i].st_ino == st[j].st_ino;
			if (was != is)
				wl_fail("fds %d and %d %s the same pipe", recs[i].fd, recs[j].fd, was ? "are no longer" : "are now");
			if (shared_file[i][j] != same_file(recs[i].fd, recs[j].fd))
				wl_fail("fds %d and %d %s one open file", recs[i].fd, recs[j].fd, shared_file[i][j] ? "are no longer" : "are now");
		}
}

/* pipe() with its ends moved to numbers of our choosing (either may be below the other). */
static inline void pipe_at(int rfd, int wfd)
{
	int p[2];
	if (pipe(p) < 0)
		exit(4);
	/* Park both ends high first, so that moving one never lands on the other. */
	int r = fcntl(p[0], F_DUPFD, 900), w = fcntl(p[1], F_DUPFD, 900);
	close(p[0]);
	close(p[1]);
	if (dup2(r, rfd) != rfd || dup2(w, wfd) != wfd)
		exit(5);
	close(r);
	close(w);
}
