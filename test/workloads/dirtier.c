/* For bench/incremental.ts: A is MIB MiB of pseudo-random data, T 64 MiB. On `cmd-K`:
 * "touch" writes one word in every page of T and reports the ns per page (the first write
 * to a write-protected page pays a fault); "dirty" rewrites 1% of A's pages, spread
 * pseudo-randomly. The answer goes to `ack-K`. argv: DIR MIB. */
#include "wl.h"
#include <stdint.h>
#include <sys/mman.h>

#define PG 4096UL
static uint64_t st = 0x9e3779b97f4a7c15ull;
static uint64_t xs(void) { uint64_t x = st; x ^= x << 13; x ^= x >> 7; x ^= x << 17; return st = x; }

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	size_t a_pages = (argc > 2 ? strtoul(argv[2], NULL, 10) : 1024) << 8, t_pages = 64 << 8;
	uint64_t *A = mmap(NULL, a_pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *T = mmap(NULL, t_pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (A == MAP_FAILED || T == MAP_FAILED)
		return 3;
	for (size_t i = 0; i < a_pages * PG / 8; i++)
		A[i] = xs();
	for (size_t i = 0; i < t_pages * PG / 8; i++)
		T[i] = xs();
	wl_ready();
	for (int k = 1; access("exit", F_OK) != 0; ) {
		char name[32], text[64];
		snprintf(name, sizeof(name), "cmd-%d", k);
		FILE *f = fopen(name, "r");
		if (!f) {
			wl_sleep_ms(1);
			continue;
		}
		char what[16] = "";
		if (fscanf(f, "%15s", what) != 1)
			what[0] = 0;
		fclose(f);
		double t0 = now_ns();
		size_t n = 0;
		if (!strcmp(what, "touch"))
			for (n = 0; n < t_pages; n++)
				T[n * PG / 8] += 1;
		else if (!strcmp(what, "dirty"))
			for (n = 0; n < a_pages / 100; n++)
				A[(xs() % a_pages) * PG / 8 + 1] = xs();
		snprintf(text, sizeof(text), "%.1f %zu\n", (now_ns() - t0) / (n ? n : 1), n);
		snprintf(name, sizeof(name), "ack-%d", k++);
		wl_write(name, text);
	}
	return wl_finish(NULL);
}
