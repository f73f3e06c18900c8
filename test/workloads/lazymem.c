/* Memory for restore --lazy-pages: four areas of pseudo-random words (argv[2] MiB in all,
 * default 256), every 8th page of the last one never touched (a hole: zero after restore),
 * a checksum of each. Once `go` exists (the test writes it before the restore, so this runs
 * while the pages are still being filled) the areas are changed under the filler: one is
 * moved with mremap, part of another dropped with MADV_DONTNEED (reads zeroes), and a child
 * forked checks a third; meanwhile four threads check the areas at once, word by word and
 * against the checksum. argv[3] = "tree": a child made before the dump checks its own copy
 * too; "plain": no changes, only the checks (the benchmark).
 * Writes `ran` (CLOCK_REALTIME ns when it first ran after `go`) and `verified` (when the
 * first full pass was done). */
#include "wl.h"
#include <stdint.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define AREAS 4
static uint64_t *area[AREAS];
static size_t words; /* per area */
static uint64_t sums[AREAS];
static const size_t PW = 4096 / 8;

static uint64_t xs(uint64_t *s) { uint64_t x = *s; x ^= x << 13; x ^= x >> 7; x ^= x << 17; return *s = x; }
static int hole(int a, size_t i) { return a == AREAS - 1 && (i / PW) % 8 == 3; }
static int dropped; /* area 1's third quarter was dropped (MADV_DONTNEED): zeroes */
static int gone(int a, size_t i) { return hole(a, i) || (dropped && a == 1 && i >= words / 2 && i < words / 2 + words / 4); }

static uint64_t expect_sum(int a)
{
	uint64_t s = 0x9e3779b97f4a7c15ull + a, h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < words; i++) {
		uint64_t x = xs(&s);
		h = (h ^ (hole(a, i) ? 0 : x)) * 0x100000001b3ull;
	}
	return h;
}

static char errs[AREAS][160];
static void *check(void *arg)
{
	int a = (int)(intptr_t)arg;
	uint64_t s = 0x9e3779b97f4a7c15ull + a, h = 0xcbf29ce484222325ull, hw = h;
	/* Four threads at once: faults come from all over, not only in order. */
	for (size_t i = 0; i < words; i++) {
		uint64_t x = xs(&s), want = gone(a, i) ? 0 : x;
		h = (h ^ area[a][i]) * 0x100000001b3ull;
		hw = (hw ^ want) * 0x100000001b3ull;
		if (area[a][i] != want && !errs[a][0])
			snprintf(errs[a], sizeof(errs[a]), "area %d word %zu is %llx, not %llx", a, i, (unsigned long long)area[a][i], (unsigned long long)want);
	}
	if (h != (dropped ? hw : sums[a]) && !errs[a][0])
		snprintf(errs[a], sizeof(errs[a]), "area %d checksum differs", a);
	return NULL;
}

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return t.tv_sec * 1000000000ll + t.tv_nsec;
}

static int check_all(void)
{
	pthread_t th[AREAS];
	for (int a = 0; a < AREAS; a++)
		pthread_create(&th[a], NULL, check, (void *)(intptr_t)a);
	for (int a = 0; a < AREAS; a++)
		pthread_join(th[a], NULL);
	int bad = 0;
	for (int a = 0; a < AREAS; a++)
		if (errs[a][0]) { wl_fail("%s", errs[a]); bad = 1; }
	return bad;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	size_t mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 256;
	int tree = argc > 3 && !strcmp(argv[3], "tree");
	int changes = !(argc > 3 && !strcmp(argv[3], "plain"));
	words = (mib << 17) / AREAS;
	for (int a = 0; a < AREAS; a++) {
		area[a] = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (area[a] == MAP_FAILED)
			return 3;
		uint64_t s = 0x9e3779b97f4a7c15ull + a;
		for (size_t i = 0; i < words; i++) {
			uint64_t x = xs(&s);
			if (!hole(a, i))
				area[a][i] = x;
		}
		sums[a] = expect_sum(a);
	}
	pid_t child = -1;
	if (tree) {
		child = fork();
		if (child == 0) {
			while (!wl_go_seen())
				wl_sleep_ms(1);
			_exit(check_all() ? 1 : 0);
		}
	}
	wl_ready();
	while (!wl_go_seen())
		wl_sleep_ms(1);
	char t[64];
	snprintf(t, sizeof(t), "%lld\n", now_ns());
	wl_write("ran", t);
	/* Before the areas are read: the filler is still at work, its pages to come follow the
	 * area moved, and the part dropped stays zero. A child forked now checks area 2. */
	size_t bytes = words * 8;
	if (changes) {
		uint64_t *moved = mremap(area[0], bytes, bytes, MREMAP_MAYMOVE | MREMAP_FIXED, (char *)area[0] - (1ull << 40));
		if (moved == MAP_FAILED)
			wl_fail("mremap failed");
		else
			area[0] = moved;
		madvise((char *)area[1] + bytes / 2, bytes / 4, MADV_DONTNEED);
		dropped = 1;
	}
	pid_t late = changes ? fork() : 1;
	if (late == 0) {
		uint64_t s = 0x9e3779b97f4a7c15ull + 2;
		for (size_t i = 0; i < words; i++)
			if (area[2][i] != xs(&s)) _exit(1);
		_exit(0);
	}
	check_all();
	snprintf(t, sizeof(t), "%lld\n", now_ns());
	wl_write("verified", t);
	if (child > 0) {
		int st;
		if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st))
			wl_fail("the child made before the dump found its memory wrong (status %x)", st);
	}
	if (changes) {
		int st;
		if (waitpid(late, &st, 0) != late || !WIFEXITED(st) || WEXITSTATUS(st))
			wl_fail("a child forked after the restore found area 2 wrong");
	}
	return wl_finish(NULL);
}
