/* The demo's workload: counts, keeps a checksum of its heap, and prints one line every 50 ms. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(void)
{
	size_t n = 4 << 20;
	uint64_t *heap = malloc(n * sizeof(*heap)), sum = 0;
	struct timespec ts = { 0, 50 * 1000 * 1000 };

	for (size_t i = 0; i < n; i++)
		heap[i] = i * 0x9e3779b97f4a7c15ull;
	for (unsigned long count = 1;; count++) {
		heap[count % n] += count;
		sum += count;
		printf("count %lu sum %llu\n", count, (unsigned long long)sum);
		fflush(stdout);
		nanosleep(&ts, NULL);
	}
}
