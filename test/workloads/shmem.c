/* Shared memory across a process tree. `shmem DIR MODE`:
 *   share:    a parent and its child ping-pong a counter through MAP_SHARED|MAP_ANONYMOUS
 *             memory (each sees the other's writes, before and after the restore) and check
 *             the whole mapping's checksum, a shared /dev/zero mapping, and a memfd mapped at
 *             an offset whose fd was closed (and a page of it that is not mapped anywhere);
 *   sparse:   a 64 MiB shared mapping of which 1 MiB was touched, shared with a child;
 *   unmapped: a shared object whose middle and tail were written then unmapped by the only
 *             process that mapped them: read back through /proc/self/map_files;
 *   cow:      private memory written before fork, then diverged in parent and child;
 *   memfd-open: memfds held open, one of them mapped too.
 * Writes `pids` (parent child), then `ready`; after `go` checks, writes `result`. */
#include "wl.h"
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <stdint.h>

#define PAGE 4096UL

static uint64_t word(uint64_t seed, uint64_t page, uint64_t i) { return (seed * 0x9E3779B97F4A7C15ULL) ^ (page << 20) ^ i; }

static void fill(void *p, size_t pages, uint64_t seed, size_t first_page)
{
	for (size_t pg = 0; pg < pages; pg++) {
		uint64_t *w = (uint64_t *)((char *)p + pg * PAGE);
		for (size_t i = 0; i < PAGE / 8; i++)
			w[i] = word(seed, first_page + pg, i);
	}
}

/* The index of the first wrong word in `pages` pages, or -1. */
static long check(const void *p, size_t pages, uint64_t seed, size_t first_page)
{
	for (size_t pg = 0; pg < pages; pg++) {
		const uint64_t *w = (const uint64_t *)((const char *)p + pg * PAGE);
		for (size_t i = 0; i < PAGE / 8; i++)
			if (w[i] != word(seed, first_page + pg, i))
				return (long)(pg * PAGE / 8 + i);
	}
	return -1;
}

static uint64_t checksum(const void *p, size_t len)
{
	uint64_t h = 1469598103934665603ULL;
	const uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		h = (h ^ w[i]) * 1099511628211ULL;
	return h;
}

static void *map_shared_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		exit(4);
	return p;
}

static void write_pids(pid_t a, pid_t b)
{
	char s[64];
	snprintf(s, sizeof(s), "%d %d\n", a, b);
	wl_write("pids", s);
}

static int wait_child(pid_t child)
{
	int st;
	if (waitpid(child, &st, 0) != child)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* `go`, or an exit after two minutes: a test that failed before `go` leaves nothing running. */
static void wait_go(void)
{
	for (int t = 0; !wl_go_seen(); t++) {
		if (t > 120000)
			_exit(9);
		wl_sleep_ms(1);
	}
}

/* ---- share ---- */

struct pingpong {
	volatile int turn;
	volatile long count;
	volatile long stop;
	volatile int child_verdict;
	char child_why[256];
};

#define A_PAGES 1024 /* 4 MiB */
#define Z_PAGES 16
#define M_PAGES 8

static long pingpong(struct pingpong *pp, int side, long *mine, int parent)
{
	struct timespec begin;
	clock_gettime(CLOCK_MONOTONIC, &begin);
	for (;;) {
		struct timespec t0, t;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		while (pp->turn != side && !(pp->stop && pp->count >= pp->stop)) {
			sched_yield();
			clock_gettime(CLOCK_MONOTONIC, &t);
			if (parent && !pp->stop && wl_go_seen())
				pp->stop = pp->count + 2000;
			if (parent && !pp->stop && t.tv_sec - begin.tv_sec > 120)
				pp->stop = pp->count; /* no `go`: end the pair (the count check fails) */
			if (t.tv_sec - t0.tv_sec > 25)
				return -1; /* the other side's writes are not seen */
		}
		if (pp->stop && pp->count >= pp->stop)
			return 0;
		pp->count++;
		(*mine)++;
		__sync_synchronize();
		pp->turn = 1 - side;
		if (!pp->stop)
			wl_sleep_ms(0); /* a yield: the pair runs at a moderate pace until `go` */
	}
}

static int share(void)
{
	char *a = map_shared_anon(A_PAGES * PAGE);
	struct pingpong *pp = (struct pingpong *)a;
	fill(a + PAGE, A_PAGES - 1, 1, 1);
	uint64_t sum_a = checksum(a + PAGE, (A_PAGES - 1) * PAGE);

	int zfd = open("/dev/zero", O_RDWR);
	char *z = mmap(NULL, Z_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, zfd, 0);
	if (z == MAP_FAILED)
		return 5;
	close(zfd);
	fill(z, Z_PAGES / 2, 2, 0); /* the parent writes the first half, the child the second */

	int mfd = memfd_create("stasis-test", 0);
	if (mfd < 0 || ftruncate(mfd, M_PAGES * PAGE) != 0)
		return 6;
	char page0[PAGE];
	fill(page0, 1, 3, 0);
	if (pwrite(mfd, page0, PAGE, 0) != (ssize_t)PAGE) /* never mapped: only in the object */
		return 6;
	char *m = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, PAGE); /* pages 1-4 */
	if (m == MAP_FAILED)
		return 7;
	close(mfd);
	fill(m, 4, 3, 1);

	pid_t child = fork();
	if (child == 0) {
		fill(z + Z_PAGES / 2 * PAGE, Z_PAGES / 2, 2, Z_PAGES / 2);
		long mine = 0;
		char why[256] = "";
		if (pingpong(pp, 1, &mine, 0) < 0)
			snprintf(why, sizeof(why), "child: ping-pong stalled at %ld", pp->count);
		else if (checksum(a + PAGE, (A_PAGES - 1) * PAGE) != sum_a)
			snprintf(why, sizeof(why), "child: checksum of the shared anonymous mapping changed");
		else if (check(m, 4, 3, 1) >= 0)
			snprintf(why, sizeof(why), "child: memfd pages wrong");
		snprintf(pp->child_why, sizeof(pp->child_why), "%s (child counted %ld)", why, mine);
		pp->child_verdict = why[0] ? 2 : 1;
		_exit(why[0] ? 1 : 0);
	}
	write_pids(getpid(), child);
	/* Both sides have run before the dump: the child's half of /dev/zero is in. */
	while (check(z + Z_PAGES / 2 * PAGE, Z_PAGES / 2, 2, Z_PAGES / 2) >= 0)
		wl_sleep_ms(1);
	wl_ready();

	long mine = 0;
	if (pingpong(pp, 0, &mine, 1) < 0)
		wl_fail("parent: ping-pong stalled at count %ld: the child's writes are not seen", pp->count);
	int st = wait_child(child);
	if (st != 0)
		wl_fail("child exited with %d: %s", st, pp->child_why);
	long child_mine = 0;
	if (sscanf(strstr(pp->child_why, "counted") ? strstr(pp->child_why, "counted") : "", "counted %ld", &child_mine) != 1)
		wl_fail("no count from the child: %s", pp->child_why);
	if (mine + child_mine != pp->count)
		wl_fail("increments were lost: parent %ld + child %ld != %ld", mine, child_mine, pp->count);
	if (pp->count < 2000)
		wl_fail("count %ld is below the 2000 rounds after go", pp->count);
	if (checksum(a + PAGE, (A_PAGES - 1) * PAGE) != sum_a)
		wl_fail("the checksum of the shared anonymous mapping changed");
	long bad;
	if ((bad = check(z, Z_PAGES, 2, 0)) >= 0)
		wl_fail("/dev/zero mapping wrong at word %ld", bad);
	if ((bad = check(m, 4, 3, 1)) >= 0)
		wl_fail("memfd mapping wrong at word %ld", bad);
	/* The memfd page nobody maps, through the mapping's object. */
	char path[128];
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)m, (unsigned long)m + 4 * PAGE);
	int fd = open(path, O_RDONLY);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) != 0 || pread(fd, page0, PAGE, 0) != (ssize_t)PAGE)
		wl_fail("cannot read the memfd through %s", path);
	else if (check(page0, 1, 3, 0) >= 0 || sb.st_size != (off_t)(M_PAGES * PAGE))
		wl_fail("the unmapped memfd page or the memfd size (%ld) is wrong", (long)sb.st_size);
	char extra[160];
	snprintf(extra, sizeof(extra), "count %ld (parent %ld, child %ld)\n", pp->count, mine, child_mine);
	return wl_finish(extra);
}

/* ---- sparse ---- */

#define S_PAGES (64UL * 256) /* 64 MiB */
#define S_STRIDE 64          /* every 64th page: 256 pages, 1 MiB */

static int sparse(void)
{
	char *s = map_shared_anon(S_PAGES * PAGE);
	for (size_t pg = 0; pg < S_PAGES; pg += S_STRIDE)
		fill(s + pg * PAGE, 1, 4, pg);
	pid_t child = fork();
	if (child == 0) {
		wait_go();
		for (size_t pg = 0; pg < S_PAGES; pg += S_STRIDE)
			if (check(s + pg * PAGE, 1, 4, pg) >= 0)
				_exit(1);
		for (size_t pg = 1; pg < S_PAGES; pg += 997)
			if (pg % S_STRIDE && s[pg * PAGE + 17] != 0)
				_exit(2);
		s[PAGE + 1] = 42; /* seen by the parent */
		_exit(0);
	}
	write_pids(getpid(), child);
	wl_ready();
	wait_go();
	int st = wait_child(child);
	if (st != 0)
		wl_fail("child exited with %d (1: touched page wrong, 2: untouched page not zero)", st);
	if (s[PAGE + 1] != 42)
		wl_fail("the child's write after the restore is not seen by the parent");
	for (size_t pg = 0; pg < S_PAGES; pg += S_STRIDE)
		if (check(s + pg * PAGE, 1, 4, pg) >= 0)
			wl_fail("parent: page %zu wrong", pg);
	return wl_finish(NULL);
}

/* ---- unmapped ---- */

#define U_PAGES 16

static int unmapped(void)
{
	char *u = map_shared_anon(U_PAGES * PAGE);
	fill(u, U_PAGES, 5, 0);
	/* Pages 4-7 and 12-15 are only in the object now. */
	munmap(u + 4 * PAGE, 4 * PAGE);
	munmap(u + 12 * PAGE, 4 * PAGE);
	write_pids(getpid(), 0);
	wl_ready();
	wait_go();
	char path[128], buf[U_PAGES * PAGE];
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)u, (unsigned long)u + 4 * PAGE);
	int fd = open(path, O_RDONLY);
	struct stat sb;
	long bad;
	if (fd < 0 || fstat(fd, &sb) != 0 || pread(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
		wl_fail("cannot read 16 pages of the object through %s", path);
	else if ((bad = check(buf, U_PAGES, 5, 0)) >= 0)
		wl_fail("object page %ld is wrong (word %ld)", bad / 512, bad % 512);
	if ((bad = check(u, 4, 5, 0)) >= 0 || (bad = check(u + 8 * PAGE, 4, 5, 8)) >= 0)
		wl_fail("mapped pages wrong");
	u[0] = 'x'; /* still writable and shared with the object */
	if (pread(fd, buf, 1, 0) != 1 || buf[0] != 'x')
		wl_fail("a write to the mapping is not in the object");
	return wl_finish(NULL);
}

/* ---- memfd-open: memfds held open: one mapped shared and open at two fds (its own
 * offsets and modes, a seal), one only open, never mapped, its mode changed ---- */

static int memfd_open(void)
{
	int mfd = memfd_create("still-open", MFD_ALLOW_SEALING);
	if (mfd < 0 || dup2(mfd, 7) != 7 || ftruncate(7, 4 * PAGE) != 0)
		return 6;
	close(mfd);
	char *m = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, 7, 0);
	if (m == MAP_FAILED)
		return 7;
	fill(m, 4, 9, 0);
	lseek(7, 5000, SEEK_SET);
	int ro = open("/proc/self/fd/7", O_RDONLY);
	if (ro < 0 || dup2(ro, 8) != 8)
		return 8;
	close(ro);
	lseek(8, 100, SEEK_SET);
	fcntl(7, F_ADD_SEALS, F_SEAL_SHRINK);
	int only = memfd_create("only-fd", 0);
	if (only < 0 || dup2(only, 9) != 9)
		return 9;
	close(only);
	static char two[2 * PAGE];
	fill(two, 2, 11, 0);
	if (pwrite(9, two, sizeof(two), 0) != (ssize_t)sizeof(two))
		return 10;
	lseek(9, 123, SEEK_SET);
	fchmod(9, 0640);
	write_pids(getpid(), 0);
	wl_ready();
	wait_go();
	if (check(m, 4, 9, 0) >= 0)
		wl_fail("memfd pages changed");
	if (lseek(7, 0, SEEK_CUR) != 5000 || lseek(8, 0, SEEK_CUR) != 100 || lseek(9, 0, SEEK_CUR) != 123)
		wl_fail("memfd offsets are %ld %ld %ld, want 5000 100 123", (long)lseek(7, 0, SEEK_CUR), (long)lseek(8, 0, SEEK_CUR), (long)lseek(9, 0, SEEK_CUR));
	if ((fcntl(8, F_GETFL) & O_ACCMODE) != O_RDONLY || (fcntl(7, F_GETFL) & O_ACCMODE) != O_RDWR)
		wl_fail("memfd access modes changed");
	if (!(fcntl(7, F_GET_SEALS) & F_SEAL_SHRINK))
		wl_fail("the memfd lost its seal");
	char link[64] = { 0 };
	if (readlink("/proc/self/fd/7", link, sizeof(link) - 1) < 0 || strcmp(link, "/memfd:still-open (deleted)") != 0)
		wl_fail("fd 7 is %s", link);
	m[0] = 'q';
	char c = 0;
	if (pread(7, &c, 1, 0) != 1 || c != 'q' || pread(8, &c, 1, 0) != 1 || c != 'q')
		wl_fail("a write to the mapping is not seen through the memfd's fds");
	if (pwrite(7, "r", 1, PAGE) != 1 || m[PAGE] != 'r')
		wl_fail("a write through the fd is not seen in the mapping");
	static char back[2 * PAGE];
	struct stat st;
	if (fstat(9, &st) != 0 || st.st_size != (off_t)sizeof(back) || pread(9, back, sizeof(back), 0) != (ssize_t)sizeof(back) || check(back, 2, 11, 0) >= 0)
		wl_fail("the memfd that is only open lost its contents or size");
	if ((st.st_mode & 07777) != 0640)
		wl_fail("the memfd that is only open has mode %o, not 640", st.st_mode & 07777);
	return wl_finish(NULL);
}

/* ---- cow ---- */

#define C_PAGES 64

static int cow(void)
{
	char *c = mmap(NULL, C_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fill(c, C_PAGES, 6, 0);
	int p[2];
	if (pipe(p) != 0)
		return 8;
	pid_t child = fork();
	if (child == 0) {
		fill(c + 8 * PAGE, 16, 8, 8); /* pages 8-23 */
		close(p[0]);
		if (write(p[1], "x", 1) != 1)
			_exit(3);
		close(p[1]); /* no fds but the workload's own when dumped */
		wait_go();
		int bad = check(c, 8, 6, 0) >= 0 || check(c + 8 * PAGE, 16, 8, 8) >= 0 ||
			  check(c + 24 * PAGE, C_PAGES - 24, 6, 24) >= 0;
		_exit(bad ? 1 : 0);
	}
	fill(c, 16, 7, 0); /* pages 0-15 */
	char x;
	if (read(p[0], &x, 1) != 1)
		return 9;
	close(p[0]);
	close(p[1]);
	write_pids(getpid(), child);
	wl_ready();
	wait_go();
	int st = wait_child(child);
	if (st != 0)
		wl_fail("the child's private pages are wrong after the restore (exit %d)", st);
	if (check(c, 16, 7, 0) >= 0)
		wl_fail("the parent's own pages 0-15 are wrong");
	if (check(c + 16 * PAGE, C_PAGES - 16, 6, 16) >= 0)
		wl_fail("the parent's pages 16-63 (from before the fork) are wrong");
	return wl_finish(NULL);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	const char *mode = argc > 2 ? argv[2] : "share";
	if (!strcmp(mode, "share"))
		return share();
	if (!strcmp(mode, "sparse"))
		return sparse();
	if (!strcmp(mode, "unmapped"))
		return unmapped();
	if (!strcmp(mode, "cow"))
		return cow();
	if (!strcmp(mode, "memfd-open"))
		return memfd_open();
	fprintf(stderr, "unknown mode %s\n", mode);
	return 2;
}
