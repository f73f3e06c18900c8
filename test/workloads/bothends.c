/* Memory that restore fills from both ends (more than 64 MiB of pages): areas of pseudo-random
 * words of every kind a fill meets. A 50 MiB area with every 5th page never touched (over
 * two thousand runs of pages, more than one iovec array holds), 16 MiB made read-only and
 * 8 MiB made PROT_NONE after they were written, 12 MiB whose middle 4 MiB were dropped
 * (MADV_DONTNEED: zeroes), and single pages between them. After restore every page holds
 * its words (or zeroes), and every area its protection. */
#include "wl.h"
#include <stdint.h>
#include <sys/mman.h>

#define PG 4096ul
#define MIB (1ul << 20)

struct area {
	const char *name;
	size_t size;
	int prot;
	char *at;
};

static struct area areas[] = {
	{ "holes", 50 * MIB, PROT_READ | PROT_WRITE, 0 },
	{ "single1", PG, PROT_READ | PROT_WRITE, 0 },
	{ "readonly", 16 * MIB, PROT_READ, 0 },
	{ "single2", PG, PROT_READ | PROT_WRITE, 0 },
	{ "none", 8 * MIB, PROT_NONE, 0 },
	{ "dropped", 12 * MIB, PROT_READ | PROT_WRITE, 0 },
	{ "single3", PG, PROT_READ, 0 },
};
#define N (sizeof(areas) / sizeof(areas[0]))

static uint64_t xs(uint64_t *s) { uint64_t x = *s; x ^= x << 13; x ^= x >> 7; x ^= x << 17; return *s = x; }

/* Whether page p of area a holds words (else it reads zeroes). */
static int has_data(size_t a, size_t p)
{
	if (!strcmp(areas[a].name, "holes"))
		return p % 5 != 4;
	if (!strcmp(areas[a].name, "dropped"))
		return p < 1024 || p >= 2048;
	return 1;
}

static void fill(size_t a, int check)
{
	uint64_t s = 0x9e3779b97f4a7c15ull + a;
	uint64_t *w = (uint64_t *)areas[a].at;
	for (size_t p = 0; p < areas[a].size / PG; p++) {
		for (size_t i = 0; i < PG / 8; i++) {
			uint64_t x = xs(&s);
			size_t k = p * (PG / 8) + i;
			if (!check) {
				if (has_data(a, p))
					w[k] = x;
			} else if (w[k] != (has_data(a, p) ? x : 0)) {
				wl_fail("%s: page %zu word %zu differs", areas[a].name, p, i);
				return;
			}
		}
	}
}

/* The protection /proc/self/maps shows for the area at `at`. */
static int prot_of(char *at)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int prot = -1;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) == 3 && (char *)s <= at && at < (char *)e) {
			prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) | (perms[2] == 'x' ? PROT_EXEC : 0);
			break;
		}
	}
	if (f)
		fclose(f);
	return prot;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	/* One reservation, the areas in it with a page left unmapped between any two (so that none merge). */
	size_t total = 0;
	for (size_t a = 0; a < N; a++)
		total += areas[a].size + PG;
	char *base = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return 3;
	char *at = base;
	for (size_t a = 0; a < N; a++) {
		areas[a].at = mmap(at, areas[a].size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (areas[a].at == MAP_FAILED)
			return 3;
		munmap(at + areas[a].size, PG);
		at += areas[a].size + PG;
		fill(a, 0);
		if (!strcmp(areas[a].name, "dropped"))
			madvise(areas[a].at + 1024 * PG, 1024 * PG, MADV_DONTNEED);
		if (areas[a].prot != (PROT_READ | PROT_WRITE))
			mprotect(areas[a].at, areas[a].size, areas[a].prot);
	}
	wl_ready();
	wl_wait_go();
	for (size_t a = 0; a < N; a++) {
		int p = prot_of(areas[a].at);
		if (p != areas[a].prot)
			wl_fail("%s: protection %d after restore, %d before", areas[a].name, p, areas[a].prot);
		if (areas[a].prot != (PROT_READ | PROT_WRITE))
			mprotect(areas[a].at, areas[a].size, PROT_READ);
		fill(a, 1);
	}
	return wl_finish(NULL);
}
