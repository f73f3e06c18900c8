/* Kinds of mappings: a guard (PROT_NONE) page between two data pages, read-only data, a
 * shared file mapping written through, advice (MADV_DONTFORK), an untouched reservation.
 * After restore each holds its data and protections, and shared writes reach the file. */
#include "wl.h"
#include <sys/mman.h>
#include <setjmp.h>
#include <signal.h>

static sigjmp_buf jb;
static void on_segv(int sig) { (void)sig; siglongjmp(jb, 1); }

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	long pg = sysconf(_SC_PAGESIZE);
	char *g = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(g, 'a', pg);
	memset(g + 2 * pg, 'c', pg);
	mprotect(g + pg, pg, PROT_NONE);
	char *ro = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	strcpy(ro, "read-only data");
	mprotect(ro, pg, PROT_READ);
	int fd = open("shared.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (ftruncate(fd, 2 * pg))
		return 3;
	char *sh = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	strcpy(sh, "before");
	char *adv = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	adv[0] = 1;
	madvise(adv, 4 * pg, MADV_DONTFORK);
	char *resv = mmap(NULL, 1 << 30, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (g == MAP_FAILED || ro == MAP_FAILED || sh == MAP_FAILED || adv == MAP_FAILED || resv == MAP_FAILED)
		return 3;
	wl_ready();
	wl_wait_go();

	if (g[0] != 'a' || g[pg - 1] != 'a' || g[2 * pg] != 'c')
		wl_fail("the pages around the guard lost their data");
	signal(SIGSEGV, on_segv);
	if (!sigsetjmp(jb, 1)) {
		volatile char c = g[pg];
		(void)c;
		wl_fail("the guard page is readable");
	}
	if (!sigsetjmp(jb, 1)) {
		ro[0] = 'X';
		wl_fail("the read-only page is writable");
	}
	signal(SIGSEGV, SIG_DFL);
	if (strcmp(ro, "read-only data"))
		wl_fail("the read-only page holds \"%s\"", ro);
	if (strcmp(sh, "before"))
		wl_fail("the shared mapping holds \"%s\"", sh);
	strcpy(sh + pg, "after");
	msync(sh, 2 * pg, MS_SYNC);
	char buf[8] = { 0 };
	fd = open("shared.bin", O_RDONLY);
	if (pread(fd, buf, 5, pg) != 5 || strcmp(buf, "after"))
		wl_fail("a write to the shared mapping did not reach the file");
	if (adv[0] != 1)
		wl_fail("the advised area lost its data");
	return wl_finish(NULL);
}
