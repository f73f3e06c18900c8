/* State of the mm that is not memory: membarrier registrations, a MAP_DROPPABLE area and a
 * MADV_WIPEONFORK area. After the restore the registrations are the same, the droppable
 * area is empty (its contents are not kept), the wipe-on-fork area holds its bytes, and a
 * child forked now sees both areas zeroed. */
#include "wl.h"
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/membarrier.h>

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#define GET_REGISTRATIONS (1 << 9)

static long mb(int cmd) { return syscall(__NR_membarrier, cmd, 0, 0); }

static int zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	const size_t len = 3 * 4096;
	if (mb(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) || mb(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED))
		wl_fail("membarrier register failed");
	long regs = mb(GET_REGISTRATIONS);
	char *drop = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_DROPPABLE | MAP_ANONYMOUS, -1, 0);
	char *wipe = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (drop == MAP_FAILED || wipe == MAP_FAILED || madvise(wipe, len, MADV_WIPEONFORK))
		wl_fail("mmap or madvise failed");
	for (size_t i = 0; i < len; i++)
		drop[i] = wipe[i] = (char)(i * 7 + 1);
	char text[64];
	snprintf(text, sizeof(text), "%lx %lx %ld\n", (unsigned long)drop, (unsigned long)wipe, regs);
	wl_write("areas", text);
	wl_ready();
	wl_wait_go();
	long now = mb(GET_REGISTRATIONS);
	if (now != regs)
		wl_fail("membarrier registrations 0x%lx, were 0x%lx", now, regs);
	if (mb(MEMBARRIER_CMD_PRIVATE_EXPEDITED))
		wl_fail("MEMBARRIER_CMD_PRIVATE_EXPEDITED failed: not registered");
	if (!zero(drop, len))
		wl_fail("the droppable area kept its bytes");
	for (size_t i = 0; i < len; i++)
		if (wipe[i] != (char)(i * 7 + 1)) {
			wl_fail("wipe-on-fork byte %zu is %d", i, wipe[i]);
			break;
		}
	memset(drop, 5, len);
	pid_t c = fork();
	if (c == 0)
		_exit(zero(drop, len) && zero(wipe, len) ? 0 : 1);
	int st = 0;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_fail("a child forked after the restore did not see both areas wiped (status %x)", st);
	return wl_finish(NULL);
}
