/* A tree of N processes (process i is the child of (i-1)/2), each with PRIV MiB of dirty
 * private memory of its own, all sharing one SHARED MiB MAP_SHARED|MAP_ANONYMOUS mapping of
 * which TOUCH MiB were written, a slice per process. After `go` each checks its private
 * memory, its own slice and the next process's slice (written by another process), then
 * marks the next process in the shared head page and waits to be marked by the previous one.
 * `treeshmem DIR N PRIV SHARED TOUCH`. */
#include "wl.h"
#include <sys/mman.h>
#include <sys/wait.h>
#include <stdint.h>

#define MIB (1UL << 20)

static uint64_t word(uint64_t seed, uint64_t i) { return (seed + 1) * 0x9E3779B97F4A7C15ULL ^ i; }

static void fill(uint64_t *p, size_t words, uint64_t seed)
{
	for (size_t i = 0; i < words; i++)
		p[i] = word(seed, i);
}

static int check(const uint64_t *p, size_t words, uint64_t seed)
{
	for (size_t i = 0; i < words; i++)
		if (p[i] != word(seed, i))
			return 1;
	return 0;
}

struct head {
	volatile int ready;
	volatile int marks[1024];
};

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int n = argc > 2 ? atoi(argv[2]) : 16;
	size_t priv = (argc > 3 ? strtoul(argv[3], NULL, 10) : 64) * MIB;
	size_t shared = (argc > 4 ? strtoul(argv[4], NULL, 10) : 256) * MIB;
	size_t touch = (argc > 5 ? strtoul(argv[5], NULL, 10) : 64) * MIB;
	if (n < 1 || n > 1024 || touch > shared - MIB)
		return 2;
	char *sh = mmap(NULL, shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 3;
	struct head *h = (struct head *)sh;
	size_t slice = touch / n / 4096 * 4096;
	char *slices = sh + MIB;

	int me = 0;
	pid_t kids[2];
	int nkids = 0;
	for (;;) {
		int forked = 0;
		for (int c = 2 * me + 1; c <= 2 * me + 2 && c < n; c++) {
			pid_t p = fork();
			if (p == 0) {
				me = c;
				nkids = 0;
				forked = 1;
				break;
			}
			kids[nkids++] = p;
		}
		if (!forked)
			break;
	}
	uint64_t *mine = malloc(priv);
	if (!mine)
		return 3;
	fill(mine, priv / 8, 1000 + me);
	fill((uint64_t *)(slices + me * slice), slice / 8, me);
	__sync_fetch_and_add(&h->ready, 1);
	if (me == 0) {
		while (h->ready != n)
			wl_sleep_ms(1);
		wl_ready();
	}
	wl_wait_go();
	int next = (me + 1) % n;
	int bad = 0;
	if (check(mine, priv / 8, 1000 + me))
		bad |= 1;
	if (check((uint64_t *)(slices + me * slice), slice / 8, me))
		bad |= 2;
	if (check((uint64_t *)(slices + next * slice), slice / 8, next))
		bad |= 4;
	h->marks[next] = 1;
	for (int t = 0; !h->marks[me] && t < 20000; t++)
		wl_sleep_ms(1);
	if (!h->marks[me])
		bad |= 8;
	for (int k = 0; k < nkids; k++) {
		int st;
		if (waitpid(kids[k], &st, 0) != kids[k] || !WIFEXITED(st) || WEXITSTATUS(st))
			bad |= WIFEXITED(st) ? WEXITSTATUS(st) : 16;
	}
	if (me != 0)
		_exit(bad);
	if (bad)
		wl_fail("bits %d: 1 private memory, 2 own slice, 4 another's slice, 8 another's write after restore not seen, 16 killed", bad);
	return wl_finish(NULL);
}
