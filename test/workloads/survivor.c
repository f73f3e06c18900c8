/* A task that notices when a tracer leaves it broken. Each thread loops: it loads rbx,
 * r12-r15, ymm0-15 (and zmm16-31, k1-k7 with AVX-512) with values of its round, sleeps in a
 * raw nanosleep (1 ms for the main thread, 20 ms for the others, which are so nearly always
 * caught inside a syscall that must restart), then
 * checks every one of them, and that the syscall returned 0 or -EINTR (never a kernel restart
 * code). The main thread also checks a 1 MiB buffer and writes `progress` every 20 ms:
 * "SIGUSR1-count round-of-each-thread...". Any failure is written at once to `fail`.
 * argv[2]: threads besides the main one (default 1). On `go`: PASS or FAIL in `result`. */
#include "wl.h"
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>

#define MAXT 8
struct state {
	uint64_t gp_in[5], gp_out[5];
	struct timespec ts;
	int64_t ret;
	uint8_t vin[16 * 32] __attribute__((aligned(64)));
	uint8_t vout[16 * 32] __attribute__((aligned(64)));
	uint8_t zin[16 * 64 + 7 * 8] __attribute__((aligned(64)));
	uint8_t zout[16 * 64 + 7 * 8] __attribute__((aligned(64)));
};

static volatile sig_atomic_t usr1;
static volatile uint64_t rounds[MAXT];
static int nthreads, avx512;
static uint8_t *buf;
static uint64_t bufsum;
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char *fmt, uint64_t a, uint64_t b)
{
	pthread_mutex_lock(&fail_lock);
	char text[256];
	snprintf(text, sizeof(text), fmt, (unsigned long long)a, (unsigned long long)b);
	wl_fail("%s", text);
	wl_write("fail", text);
	pthread_mutex_unlock(&fail_lock);
}

#define LOAD_GP "mov 0(%[s]), %%rbx\n mov 8(%[s]), %%r12\n mov 16(%[s]), %%r13\n mov 24(%[s]), %%r14\n mov 32(%[s]), %%r15\n"
#define STORE_GP "mov %%rbx, 40(%[s])\n mov %%r12, 48(%[s])\n mov %%r13, 56(%[s])\n mov %%r14, 64(%[s])\n mov %%r15, 72(%[s])\n"
#define SLEEP "mov $35, %%eax\n lea %c[ots](%[s]), %%rdi\n xor %%esi, %%esi\n syscall\n mov %%rax, %c[oret](%[s])\n"
#define YLOAD(n) "vmovdqu %c[ovin]+" #n "*32(%[s]), %%ymm" #n "\n"
#define YSTORE(n) "vmovdqu %%ymm" #n ", %c[ovout]+" #n "*32(%[s])\n"
#define ZLOAD(n) "vmovdqu64 %c[ozin]+(" #n "-16)*64(%[s]), %%zmm" #n "\n"
#define ZSTORE(n) "vmovdqu64 %%zmm" #n ", %c[ozout]+(" #n "-16)*64(%[s])\n"
#define KLOAD(n) "kmovq %c[ozin]+1024+(" #n "-1)*8(%[s]), %%k" #n "\n"
#define KSTORE(n) "kmovq %%k" #n ", %c[ozout]+1024+(" #n "-1)*8(%[s])\n"
#define ALL16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define HI16(M) M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28) M(29) M(30) M(31)
#define K7(M) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define OPS : : [s] "r" (st), [ots] "i" (offsetof(struct state, ts)), [oret] "i" (offsetof(struct state, ret)), \
	[ovin] "i" (offsetof(struct state, vin)), [ovout] "i" (offsetof(struct state, vout)), \
	[ozin] "i" (offsetof(struct state, zin)), [ozout] "i" (offsetof(struct state, zout)) \
	: "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r11", "r12", "r13", "r14", "r15", "memory", "cc", \
	  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", \
	  "xmm12", "xmm13", "xmm14", "xmm15"

static void round_of(struct state *st, uint64_t seed, long sleep_ns)
{
	for (int i = 0; i < 5; i++)
		st->gp_in[i] = (seed + i) * 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < (int)sizeof(st->vin); i++)
		st->vin[i] = (uint8_t)(seed * 31 + i * 7);
	for (int i = 0; i < (int)sizeof(st->zin); i++)
		st->zin[i] = (uint8_t)(seed * 17 + i * 13);
	st->ts.tv_sec = 0;
	st->ts.tv_nsec = sleep_ns;
	/* zmm16-31 and k1-k7: compiled without -mavx512f, gcc never uses them, so no clobbers. */
	if (avx512)
		asm volatile(LOAD_GP ALL16(YLOAD) HI16(ZLOAD) K7(KLOAD) SLEEP STORE_GP ALL16(YSTORE) HI16(ZSTORE) K7(KSTORE) "vzeroupper\n" OPS);
	else
		asm volatile(LOAD_GP ALL16(YLOAD) SLEEP STORE_GP ALL16(YSTORE) "vzeroupper\n" OPS);
	for (int i = 0; i < 5; i++)
		if (st->gp_out[i] != st->gp_in[i])
			fail("a general register changed across a syscall: %llx, want %llx", st->gp_out[i], st->gp_in[i]);
	if (memcmp(st->vout, st->vin, sizeof(st->vin)))
		fail("a ymm register changed across a syscall (round %llu%llu)", seed, 0);
	if (avx512 && memcmp(st->zout, st->zin, sizeof(st->zin)))
		fail("zmm16-31 or k1-k7 changed across a syscall (round %llu%llu)", seed, 0);
	if (st->ret != 0 && st->ret != -EINTR)
		fail("nanosleep returned %lld (round %llu)", (uint64_t)st->ret, seed);
}

static void *thread_main(void *arg)
{
	int id = (int)(intptr_t)arg;
	static struct state states[MAXT];
	struct state *st = &states[id];
	for (uint64_t r = 1; !wl_go_seen(); r++) {
		round_of(st, r * MAXT + id, 20000000);
		rounds[id] = r;
	}
	return NULL;
}

static void on_usr1(int sig)
{
	(void)sig;
	usr1++;
}

static uint64_t sum(void)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < (1 << 20); i += 8)
		h = (h ^ *(uint64_t *)(buf + i)) * 0x100000001b3ull;
	return h;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	nthreads = argc > 2 ? atoi(argv[2]) + 1 : 2;
	if (nthreads > MAXT)
		nthreads = MAXT;
	avx512 = __builtin_cpu_supports("avx512f");
	buf = malloc(1 << 20);
	for (size_t i = 0; i < (1 << 20); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	bufsum = sum();
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigaction(SIGUSR1, &sa, NULL);
	pthread_t th[MAXT];
	for (int i = 1; i < nthreads; i++)
		pthread_create(&th[i], NULL, thread_main, (void *)(intptr_t)i);
	static struct state st0;
	char text[256];
	struct timespec last = { 0, 0 }, now;
	for (uint64_t r = 1; !wl_go_seen(); r++) {
		round_of(&st0, r * MAXT, 1000000);
		rounds[0] = r;
		if (r % 64 == 0 && sum() != bufsum)
			fail("the buffer changed (round %llu%llu)", r, 0);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - last.tv_sec) * 1000 + (now.tv_nsec - last.tv_nsec) / 1000000 >= 20 || r == 1) {
			int n = snprintf(text, sizeof(text), "%d", (int)usr1);
			for (int i = 0; i < nthreads; i++)
				n += snprintf(text + n, sizeof(text) - n, " %llu", (unsigned long long)rounds[i]);
			snprintf(text + n, sizeof(text) - n, "\n");
			wl_write("progress", text);
			if (r == 1)
				wl_ready();
			last = now;
		}
	}
	for (int i = 1; i < nthreads; i++)
		pthread_join(th[i], NULL);
	snprintf(text, sizeof(text), "rounds %llu, SIGUSR1 %d, avx512 %d\n", (unsigned long long)rounds[0], (int)usr1, !!avx512);
	return wl_finish(text);
}
