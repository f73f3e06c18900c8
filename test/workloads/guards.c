/* Guard regions (MADV_GUARD_INSTALL, zdtm maps12): an anonymous area of 4 pages with page 1
 * guarded, a private file mapping of 3 pages with pages 1-2 guarded. After `go`: an access
 * to a guard page faults (SIGSEGV), every other page keeps its bytes (the anonymous ones
 * written, the file ones the file's). `areas` holds the two addresses; exits 77 where the
 * kernel has no guard regions. */
#include "wl.h"
#include <sys/mman.h>
#include <signal.h>
#include <setjmp.h>
#include <errno.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#define PG 4096

static sigjmp_buf jb;
static void on_segv(int sig) { (void)sig; siglongjmp(jb, 1); }

static int faults(volatile unsigned char *p)
{
	if (sigsetjmp(jb, 1))
		return 1;
	p[0] = p[0];
	return 0;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	signal(SIGSEGV, on_segv);
	unsigned char *a = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = open("f.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
	unsigned char buf[3 * PG];
	for (int i = 0; i < 3 * PG; i++)
		buf[i] = (unsigned char)(i * 3 + 1);
	if (a == MAP_FAILED || fd < 0 || write(fd, buf, sizeof(buf)) != sizeof(buf))
		return 3;
	unsigned char *f = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (f == MAP_FAILED)
		return 3;
	for (int i = 0; i < 4 * PG; i++)
		a[i] = (unsigned char)(i * 7 + 5);
	f[10] = 0x99; /* page 0 of f: a private copy */
	if (madvise(a + PG, PG, MADV_GUARD_INSTALL))
		return errno == EINVAL ? 77 : 3;
	if (madvise(f + PG, 2 * PG, MADV_GUARD_INSTALL))
		return 3;
	char text[64];
	snprintf(text, sizeof(text), "%lx %lx\n", (unsigned long)a, (unsigned long)f);
	wl_write("areas", text);
	wl_ready();
	wl_wait_go();
	if (!faults(a + PG) || !faults(a + 2 * PG - 1) || !faults(f + PG) || !faults(f + 3 * PG - 1))
		wl_fail("a guard page does not fault; ");
	if (faults(a) || faults(a + 2 * PG) || faults(a + 3 * PG) || faults(f))
		wl_fail("a page outside the guards faults; ");
	for (int i = 0; i < 4 * PG; i++)
		if ((i < PG || i >= 2 * PG) && a[i] != (unsigned char)(i * 7 + 5)) {
			wl_fail("anonymous byte %d differs; ", i);
			break;
		}
	if (f[10] != 0x99 || f[11] != (unsigned char)(11 * 3 + 1))
		wl_fail("the file mapping's page 0 differs; ");
	return wl_finish(NULL);
}
