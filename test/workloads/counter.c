/* State in registers, stack, heap and a dirty private file mapping, and a running counter
 * written to counter.log with O_APPEND: after restore the counter carries on from the exact
 * value and every memory area holds what a pure function of the final count says. */
#include "wl.h"
#include <sys/mman.h>
#include <stdint.h>

#define HEAP_WORDS (512 * 1024)	/* 4 MiB */
#define STACK_WORDS 8192	/* 64 KiB */
#define MAP_SIZE 65536

static uint64_t mix(uint64_t n) { n ^= n >> 31; n *= 0x9e3779b97f4a7c15ull; return n ^ (n >> 29); }

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	volatile uint64_t stack[STACK_WORDS];
	uint64_t *heap = malloc(HEAP_WORDS * sizeof(*heap));
	unsigned char init[MAP_SIZE];
	for (int i = 0; i < MAP_SIZE; i++)
		init[i] = i & 255;
	int mf = open("mapped.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (mf < 0 || write(mf, init, MAP_SIZE) != MAP_SIZE)
		return 3;
	unsigned char *map = mmap(NULL, MAP_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, mf, 0);
	close(mf);
	if (map == MAP_FAILED || !heap)
		return 3;
	for (int i = 0; i < MAP_SIZE; i++)
		map[i] ^= 0x5a;
	for (int i = 0; i < HEAP_WORDS; i++)
		heap[i] = mix(i);
	for (int i = 0; i < STACK_WORDS; i++)
		stack[i] = ~(uint64_t)i;
	int log = open("counter.log", O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (log < 0)
		return 3;

	uint64_t n, stop = UINT64_MAX;
	register uint64_t acc = 0;	/* a running sum kept in a register across the loop */
	for (n = 0;; n++) {
		char line[32];
		int len = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)n);
		if (write(log, line, len) != len)
			return 3;
		heap[n % HEAP_WORDS] = mix(n) + n;
		stack[n % STACK_WORDS] = n * 3;
		map[n % MAP_SIZE] = (unsigned char)(n * 7);
		acc += n;
		if (n == 50)
			wl_ready();
		if (n >= stop)
			break;
		if (stop == UINT64_MAX && n > 50 && wl_go_seen())
			stop = n + 100;
		wl_sleep_ms(1);
	}

	/* Every cell holds the value of the last n that wrote it, or its initial value. */
	for (uint64_t i = 0; i < HEAP_WORDS; i++) {
		uint64_t want = i <= n ? mix(i + (n - i) / HEAP_WORDS * HEAP_WORDS) + i + (n - i) / HEAP_WORDS * HEAP_WORDS : mix(i);
		if (heap[i] != want) { wl_fail("heap[%llu] = %llx, want %llx", (unsigned long long)i, (unsigned long long)heap[i], (unsigned long long)want); break; }
	}
	for (uint64_t i = 0; i < STACK_WORDS; i++) {
		uint64_t want = i <= n ? (i + (n - i) / STACK_WORDS * STACK_WORDS) * 3 : ~i;
		if (stack[i] != want) { wl_fail("stack[%llu] = %llx, want %llx", (unsigned long long)i, (unsigned long long)stack[i], (unsigned long long)want); break; }
	}
	for (uint64_t i = 0; i < MAP_SIZE; i++) {
		unsigned char want = i <= n ? (unsigned char)((i + (n - i) / MAP_SIZE * MAP_SIZE) * 7) : (unsigned char)((i & 255) ^ 0x5a);
		if (map[i] != want) { wl_fail("map[%llu] = %x, want %x", (unsigned long long)i, map[i], want); break; }
	}
	if (acc != n * (n + 1) / 2)
		wl_fail("register sum %llu, want %llu", (unsigned long long)acc, (unsigned long long)(n * (n + 1) / 2));

	/* counter.log holds 0..n, each once, in order. */
	FILE *f = fopen("counter.log", "r");
	unsigned long long v, want = 0;
	while (f && fscanf(f, "%llu", &v) == 1) {
		if (v != want) { wl_fail("counter.log holds %llu where %llu belongs", v, want); break; }
		want++;
	}
	if (want != n + 1 && !wl_failed)
		wl_fail("counter.log ends at %llu, want %llu", want, (unsigned long long)n + 1);
	char extra[64];
	snprintf(extra, sizeof(extra), "n=%llu\n", (unsigned long long)n);
	return wl_finish(extra);
}
