/* Pages a dump moves by the task's own vmsplice (page-splice.ts): 40 MiB of pseudo-random
 * words, 1 MiB of them then made PROT_NONE (vmsplice stops there: those are read another way)
 * and 8 MiB more made read-only. Before it is ready it notes its maps and its fds; after go,
 * both must be the same (a dump that leaves it running takes its pipes and mappings away
 * again) and every word must be what it wrote. */
#include "wl.h"
#include <stdint.h>
#include <sys/mman.h>
#include <dirent.h>

#define MIB (1ul << 20)
static uint64_t xs(uint64_t *s) { uint64_t x = *s; x ^= x << 13; x ^= x >> 7; x ^= x << 17; return *s = x; }

static void fill(uint64_t *p, size_t n, uint64_t seed) { for (size_t i = 0; i < n; i++) p[i] = xs(&seed); }
static size_t check(const uint64_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != xs(&seed)) return i;
	return n;
}

static void snapshot(char *out, size_t size)
{
	size_t at = 0;
	FILE *f = fopen("/proc/self/maps", "r");
	if (f) { at = fread(out, 1, size - 1024, f); fclose(f); }
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	while (d && (e = readdir(d)) && at < size - 64) {
		char link[256] = "", path[300];
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(path, link, sizeof(link) - 1);
		if (n > 0 && e->d_name[0] != '.' && (size_t)atoi(e->d_name) != (size_t)dirfd(d))
			at += snprintf(out + at, size - at, "fd %s %s\n", e->d_name, link);
	}
	if (d) closedir(d);
	out[at] = 0;
}

static char before[1 << 16], after[1 << 16];

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	uint64_t *a = mmap(NULL, 40 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *b = mmap(NULL, 8 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED || b == MAP_FAILED)
		return 3;
	fill(a, 40 * MIB / 8, 1);
	fill(b, 8 * MIB / 8, 2);
	uint64_t *hole = a + 20 * MIB / 8;
	if (mprotect(hole, MIB, PROT_NONE) || mprotect(b, 8 * MIB, PROT_READ))
		return 4;
	snapshot(before, sizeof(before));
	wl_ready();
	wl_wait_go();
	snapshot(after, sizeof(after));
	if (strcmp(before, after))
		wl_fail("maps or fds changed:\n--- before\n%.1500s\n--- after\n%.1500s", before, after);
	if (mprotect(hole, MIB, PROT_READ))
		wl_fail("mprotect");
	size_t i = check(a, 40 * MIB / 8, 1);
	if (i != 40 * MIB / 8)
		wl_fail("word %zu of the 40 MiB differs", i);
	i = check(b, 8 * MIB / 8, 2);
	if (i != 8 * MIB / 8)
		wl_fail("word %zu of the read-only 8 MiB differs", i);
	return wl_finish(NULL);
}
