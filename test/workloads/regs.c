/* Register state: rbx, r12-r15 and ymm0-15 (xmm0-15 without AVX) are loaded with known
 * values inside one asm block, which then makes `ready` appear (rename) and polls for `go`
 * with raw syscalls (which keep every one of these registers), so a checkpoint taken
 * between the two sees them live; after the loop they are stored and compared. */
#include "wl.h"
#include <stddef.h>
#include <stdint.h>

struct state {
	uint64_t gp_in[5], gp_out[5];
	const char *tmp, *ready, *go;
	struct timespec ts;
	uint8_t vin[16 * 32] __attribute__((aligned(32)));
	uint8_t vout[16 * 32] __attribute__((aligned(32)));
};

#define LOAD_GP "mov 0(%[s]), %%rbx\n mov 8(%[s]), %%r12\n mov 16(%[s]), %%r13\n mov 24(%[s]), %%r14\n mov 32(%[s]), %%r15\n"
#define STORE_GP "mov %%rbx, 40(%[s])\n mov %%r12, 48(%[s])\n mov %%r13, 56(%[s])\n mov %%r14, 64(%[s])\n mov %%r15, 72(%[s])\n"
#define LOOP \
	"mov $82, %%eax\n mov %c[otmp](%[s]), %%rdi\n mov %c[oready](%[s]), %%rsi\n syscall\n" \
	"1: mov $21, %%eax\n mov %c[ogo](%[s]), %%rdi\n xor %%esi, %%esi\n syscall\n test %%rax, %%rax\n jz 2f\n" \
	"mov $35, %%eax\n lea %c[ots](%[s]), %%rdi\n xor %%esi, %%esi\n syscall\n jmp 1b\n 2:\n"
#define YLOAD(n) "vmovdqu %c[ovin]+" #n "*32(%[s]), %%ymm" #n "\n"
#define YSTORE(n) "vmovdqu %%ymm" #n ", %c[ovout]+" #n "*32(%[s])\n"
#define XLOAD(n) "movdqu %c[ovin]+" #n "*32(%[s]), %%xmm" #n "\n"
#define XSTORE(n) "movdqu %%xmm" #n ", %c[ovout]+" #n "*32(%[s])\n"
#define ALL16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define OPS : : [s] "r" (st), [otmp] "i" (offsetof(struct state, tmp)), [oready] "i" (offsetof(struct state, ready)), \
	[ogo] "i" (offsetof(struct state, go)), [ots] "i" (offsetof(struct state, ts)), \
	[ovin] "i" (offsetof(struct state, vin)), [ovout] "i" (offsetof(struct state, vout)) \
	: "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r11", "r12", "r13", "r14", "r15", "memory", "cc", \
	  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", \
	  "xmm12", "xmm13", "xmm14", "xmm15"

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	static struct state s = { .tmp = "ready.tmp", .ready = "ready", .go = "go", .ts = { 0, 1000000 } };
	struct state *st = &s;
	for (int i = 0; i < 5; i++)
		s.gp_in[i] = 0x0123456789abcdefull * (i + 3) ^ 0xa5a5a5a5a5a5a5a5ull;
	for (int i = 0; i < 16 * 32; i++)
		s.vin[i] = (uint8_t)(i * 37 + 11);
	int fd = open("ready.tmp", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "ready\n", 6) != 6)
		return 3;
	close(fd);
	int avx = __builtin_cpu_supports("avx");
	if (avx)
		asm volatile(LOAD_GP ALL16(YLOAD) LOOP STORE_GP ALL16(YSTORE) "vzeroupper\n" OPS);
	else
		asm volatile(LOAD_GP ALL16(XLOAD) LOOP STORE_GP ALL16(XSTORE) OPS);
	static const char *gp[5] = { "rbx", "r12", "r13", "r14", "r15" };
	for (int i = 0; i < 5; i++)
		if (s.gp_out[i] != s.gp_in[i])
			wl_fail("%s = %llx, want %llx", gp[i], (unsigned long long)s.gp_out[i], (unsigned long long)s.gp_in[i]);
	for (int r = 0; r < 16; r++)
		if (memcmp(s.vout + r * 32, s.vin + r * 32, avx ? 32 : 16))
			wl_fail("%s%d differs", avx ? "ymm" : "xmm", r);
	return wl_finish(avx ? "checked ymm0-15\n" : "checked xmm0-15\n");
}
