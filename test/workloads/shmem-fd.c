/* Shared anonymous memory open as a file and mapped private (zdtm shmemfd-priv, more
 * strictly): 5 pages mapped shared (s), opened through /proc/self/map_files (fd, at offset
 * 123), mapped private from that fd at page 1 for 5 pages (p: its last page is past the
 * end; page 1 written, a private copy). After `go`: the fd, s and p are one inode of 5
 * pages named "/dev/zero (deleted)"; a write through the fd shows in s and in p's pages not
 * copied, not in p's copy; p's page past the end faults with SIGBUS; the fd keeps its offset
 * and O_RDWR. `areas` holds s p. */
#include "wl.h"
#include <sys/mman.h>
#include <sys/stat.h>
#include <signal.h>
#include <setjmp.h>

#define PG 4096

static sigjmp_buf jb;
static void on_bus(int sig) { (void)sig; siglongjmp(jb, 1); }

static ino_t ino_of(const char *path)
{
	struct stat st;
	return stat(path, &st) ? 0 : st.st_ino;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	signal(SIGBUS, on_bus);
	unsigned char *s = mmap(NULL, 5 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s == MAP_FAILED)
		return 3;
	for (int i = 0; i < 5 * PG; i++)
		s[i] = (unsigned char)(i * 13 + 7);
	char path[128], sp[128], pp[128];
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)s, (unsigned long)s + 5 * PG);
	int fd = open(path, O_RDWR);
	unsigned char *p = fd < 0 ? MAP_FAILED : mmap(NULL, 5 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, PG);
	if (p == MAP_FAILED || lseek(fd, 123, SEEK_SET) != 123)
		return 3;
	p[10] = 0xab; /* page 1 of the object, copied */
	snprintf(sp, sizeof(sp), "/proc/self/map_files/%lx-%lx", (unsigned long)s, (unsigned long)s + 5 * PG);
	snprintf(pp, sizeof(pp), "/proc/self/map_files/%lx-%lx", (unsigned long)p, (unsigned long)p + 5 * PG);
	char text[64];
	snprintf(text, sizeof(text), "%lx %lx %d\n", (unsigned long)s, (unsigned long)p, fd);
	wl_write("areas", text);
	wl_ready();
	wl_wait_go();
	struct stat st;
	char link[128] = "", self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	if (readlink(self, link, sizeof(link) - 1) < 0 || strcmp(link, "/dev/zero (deleted)"))
		wl_fail("the fd reads %s; ", link);
	if (fstat(fd, &st) || st.st_size != 5 * PG || ino_of(sp) != st.st_ino || ino_of(pp) != st.st_ino)
		wl_fail("the fd and the mappings are not one object of 5 pages; ");
	if (lseek(fd, 0, SEEK_CUR) != 123 || (fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDWR)
		wl_fail("the fd lost its offset or mode; ");
	for (int i = 0; i < 5 * PG; i++)
		if (s[i] != (unsigned char)(i * 13 + 7)) {
			wl_fail("the shared mapping differs at %d; ", i);
			break;
		}
	if (p[10] != 0xab || p[11] != (unsigned char)((PG + 11) * 13 + 7) || p[PG + 5] != (unsigned char)((2 * PG + 5) * 13 + 7))
		wl_fail("the private mapping differs; ");
	unsigned char x = 0x5c;
	if (pwrite(fd, &x, 1, 2 * PG + 1) != 1 || pwrite(fd, &x, 1, PG + 20) != 1)
		wl_fail("pwrite failed; ");
	if (s[2 * PG + 1] != 0x5c || p[PG + 1] != 0x5c)
		wl_fail("a write through the fd does not show in the mappings; ");
	if (p[20] == 0x5c)
		wl_fail("a write through the fd reached the private copy; ");
	s[3 * PG] = 0x77;
	if (p[2 * PG] != 0x77)
		wl_fail("a write through the shared mapping does not show in the private one; ");
	int bus = 0;
	if (sigsetjmp(jb, 1))
		bus = 1;
	else
		(void)*(volatile unsigned char *)(p + 4 * PG);
	if (!bus)
		wl_fail("the private mapping's page past the end does not fault; ");
	return wl_finish(NULL);
}
