/* Five threads, each computing its own deterministic sequence and sleeping between steps
 * in a different syscall (futex wait, nanosleep, clock_nanosleep, poll, and read on a pipe
 * that a feeder thread writes a byte to every millisecond). Each has a TLS
 * value and a name. They wait (still sleeping in their syscall) until `go`; after restore
 * every thread finishes its sequence, keeps its TLS and name, and pthread_join works. A
 * 1 MiB ballast written once before `ready` is never touched again (an incremental dump
 * leaves it to its parent) and is checked at the end. */
#include "wl.h"
#include <pthread.h>
#include <stdint.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <stdatomic.h>

#define N 5
#define STEPS 400
static __thread uint64_t tls;
static atomic_int at_pause;
static uint64_t out[N];
static char names_ok[N];
static int never = 0;
static int feed[2];
static atomic_int feeding = 1;

static uint64_t step(uint64_t x, uint64_t k) { x ^= k + 0x9e3779b97f4a7c15ull + (x << 6) + (x >> 2); return x * 0xff51afd7ed558ccdull; }

static void nap(int how)
{
	struct timespec ts = { 0, 1000000 };
	switch (how) {
	case 0: syscall(SYS_futex, &never, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0); break;
	case 1: nanosleep(&ts, NULL); break;
	case 2: clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL); break;
	case 3: poll(NULL, 0, 1); break;
	default: {
		char c;
		if (read(feed[0], &c, 1) != 1)
			wl_fail("read from the feeder pipe failed");
	}
	}
}

static void *worker(void *arg)
{
	int i = (int)(intptr_t)arg;
	char name[16];
	snprintf(name, sizeof(name), "worker-%d", i);
	pthread_setname_np(pthread_self(), name);
	tls = 0x1000 + i;
	uint64_t x = i;
	for (uint64_t k = 0; k < STEPS; k++) {
		x = step(x, k);
		nap(i);
		if (k == 100) {
			atomic_fetch_add(&at_pause, 1);
			while (!wl_go_seen())
				nap(i);
		}
	}
	char now[16] = { 0 };
	prctl(PR_GET_NAME, now);
	names_ok[i] = strcmp(now, name) == 0;
	out[i] = tls == (uint64_t)(0x1000 + i) ? x : 0;
	return NULL;
}

static void *feeder(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "feeder");
	while (atomic_load(&feeding)) {
		if (write(feed[1], "x", 1) != 1)
			break;
		wl_sleep_ms(1);
	}
	return NULL;
}

static unsigned char ballast[1 << 20];

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	pthread_t t[N], f;
	for (size_t i = 0; i < sizeof(ballast); i++)
		ballast[i] = (unsigned char)(i * 131 + 7);
	if (pipe(feed) != 0)
		return 3;
	pthread_create(&f, NULL, feeder, NULL);
	for (int i = 0; i < N; i++)
		pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
	while (atomic_load(&at_pause) < N)
		wl_sleep_ms(1);
	wl_ready();
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	atomic_store(&feeding, 0);
	pthread_join(f, NULL);
	for (int i = 0; i < N; i++) {
		uint64_t x = i;
		for (uint64_t k = 0; k < STEPS; k++)
			x = step(x, k);
		if (out[i] != x)
			wl_fail("thread %d: result %llx, want %llx (0 means its TLS changed)", i, (unsigned long long)out[i], (unsigned long long)x);
		if (!names_ok[i])
			wl_fail("thread %d lost its name", i);
	}
	for (size_t i = 0; i < sizeof(ballast); i++)
		if (ballast[i] != (unsigned char)(i * 131 + 7))
			wl_fail("ballast byte %zu is %u", i, ballast[i]);
	return wl_finish(NULL);
}
