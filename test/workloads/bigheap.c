/* A large heap of pseudo-random words: after restore the buffer matches its checksum and
 * the regenerated stream word for word. argv[2]: size in MiB (default 256). */
#include "wl.h"
#include <stdint.h>

static uint64_t xs(uint64_t *s) { uint64_t x = *s; x ^= x << 13; x ^= x >> 7; x ^= x << 17; return *s = x; }

static uint64_t sum(const uint64_t *b, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	size_t mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 256;
	size_t n = mib << 17;
	uint64_t *b = malloc(n * 8), s = 0x9e3779b97f4a7c15ull;
	if (!b)
		return 3;
	for (size_t i = 0; i < n; i++)
		b[i] = xs(&s);
	uint64_t h = sum(b, n);
	char text[96];
	/* The checksum, and where the buffer is, for tests that hash it from outside. */
	snprintf(text, sizeof(text), "%016llx %llx %llx\n", (unsigned long long)h, (unsigned long long)(uintptr_t)b,
		 (unsigned long long)(n * 8));
	wl_write("sum", text);
	wl_ready();
	wl_wait_go();
	if (sum(b, n) != h)
		wl_fail("checksum changed");
	s = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < n; i++)
		if (b[i] != xs(&s)) { wl_fail("word %zu differs", i); break; }
	return wl_finish(NULL);
}
