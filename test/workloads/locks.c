/* Advisory locks held across a checkpoint. Before ready: flock(LOCK_EX) on flock.dat (fd
 * 10), a POSIX write lock on bytes 10-29 and a read lock from 100 to EOF of posix.dat (fd
 * 11), an OFD write lock on bytes 0-99 of ofd.dat (fd 12). After go a child process (another
 * lock owner, with files of its own) finds every lock still held: flock LOCK_NB fails with
 * EWOULDBLOCK, F_SETLK and F_OFD_SETLK fail with EAGAIN, F_GETLK names this process; bytes
 * outside the locks can be taken. Then this process unlocks everything and a second child
 * takes every lock at once. */
#include "wl.h"
#include <errno.h>
#include <sys/file.h>
#include <sys/wait.h>

static int setlk(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	return fcntl(fd, cmd, &fl);
}

/* Returns a bitmask of failed checks; held = 1: the parent still holds its locks. */
static int probe(int held, pid_t owner)
{
	int bad = 0;
	int f = open("flock.dat", O_RDWR), p = open("posix.dat", O_RDWR), o = open("ofd.dat", O_RDWR);
	int r = flock(f, LOCK_EX | LOCK_NB);
	if (held ? !(r < 0 && errno == EWOULDBLOCK) : r != 0)
		bad |= 1;
	r = setlk(p, F_SETLK, F_WRLCK, 15, 2);
	if (held ? !(r < 0 && (errno == EAGAIN || errno == EACCES)) : r != 0)
		bad |= 2;
	r = setlk(p, F_SETLK, F_WRLCK, 200, 1);
	if (held ? !(r < 0 && (errno == EAGAIN || errno == EACCES)) : r != 0)
		bad |= 4;
	if (held) {
		/* A read lock shares with the read lock, and 50-60 is free. */
		if (setlk(p, F_SETLK, F_RDLCK, 300, 1) != 0 || setlk(p, F_SETLK, F_WRLCK, 50, 10) != 0)
			bad |= 8;
		struct flock q = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 20, .l_len = 1 };
		if (fcntl(p, F_GETLK, &q) != 0 || q.l_type != F_WRLCK || q.l_pid != owner || q.l_start != 10 || q.l_len != 20)
			bad |= 16;
	}
	r = setlk(o, F_OFD_SETLK, F_WRLCK, 90, 20);
	if (held ? !(r < 0 && errno == EAGAIN) : r != 0)
		bad |= 32;
	return bad;
}

static int run_probe(int held)
{
	pid_t me = getpid();
	pid_t c = fork();
	if (c == 0)
		_exit(probe(held, me));
	int st = 0;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st))
		return 255;
	return WEXITSTATUS(st);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	const char *names[] = { "flock.dat", "posix.dat", "ofd.dat" };
	for (int i = 0; i < 3; i++) {
		int fd = open(names[i], O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || ftruncate(fd, 4096) != 0 || dup2(fd, 10 + i) != 10 + i)
			return 3;
		close(fd);
	}
	if (flock(10, LOCK_EX) != 0 || setlk(11, F_SETLK, F_WRLCK, 10, 20) != 0 || setlk(11, F_SETLK, F_RDLCK, 100, 0) != 0 ||
	    setlk(12, F_OFD_SETLK, F_WRLCK, 0, 100) != 0)
		return 4;
	int before = run_probe(1);
	if (before)
		wl_fail("before the checkpoint the probe already failed (%x)", before);
	wl_ready();
	wl_wait_go();
	int bad = run_probe(1);
	if (bad)
		wl_fail("after restore a second process could take locks this one holds (failed checks %x: 1 flock, 2/4 POSIX, 8 free ranges, 16 F_GETLK owner, 32 OFD)", bad);
	if (flock(10, LOCK_UN) != 0 || setlk(11, F_SETLK, F_UNLCK, 0, 0) != 0 || setlk(12, F_OFD_SETLK, F_UNLCK, 0, 0) != 0)
		wl_fail("the restored owner cannot unlock: %s", strerror(errno));
	bad = run_probe(0);
	if (bad)
		wl_fail("after unlocking, a second process still cannot take the locks (failed checks %x)", bad);
	return wl_finish(NULL);
}
