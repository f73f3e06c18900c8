/* A memfd mapped private (zdtm memfd02, more strictly): memfd "priv" of 3 pages mapped
 * shared (s), private (p: page 1 written, a private copy) and private read-only at page 2
 * (r); a child forked after that shares p's copy of page 1 copy-on-write. After `go` the
 * child checks its view and exits; then the parent: p's pages 0 and 2 and r are the
 * memfd's (a write through the fd shows through them), p's page 1 is its own copy (the
 * write does not), every mapping is the fd's inode. `areas` holds s p r. */
#include "wl.h"
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define PG 4096

static unsigned char pat(int page, int i) { return (unsigned char)(page * 29 + i * 5 + 3); }

static ino_t ino_of(const void *at, size_t len)
{
	char p[128];
	struct stat st;
	snprintf(p, sizeof(p), "/proc/self/map_files/%lx-%lx", (unsigned long)at, (unsigned long)at + len);
	return stat(p, &st) ? 0 : st.st_ino;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int fd = memfd_create("priv", MFD_CLOEXEC);
	unsigned char buf[PG];
	for (int p = 0; p < 3; p++) {
		for (int i = 0; i < PG; i++)
			buf[i] = pat(p, i);
		if (fd < 0 || write(fd, buf, PG) != PG)
			return 3;
	}
	unsigned char *s = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	unsigned char *p = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	unsigned char *r = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, fd, 2 * PG);
	if (s == MAP_FAILED || p == MAP_FAILED || r == MAP_FAILED)
		return 3;
	for (int i = 0; i < PG; i++)
		p[PG + i] = (unsigned char)(i ^ 0x5a);
	if (p[0] != pat(0, 0) || r[0] != pat(2, 0))
		return 3;
	char text[128];
	snprintf(text, sizeof(text), "%lx %lx %lx\n", (unsigned long)s, (unsigned long)p, (unsigned long)r);
	wl_write("areas", text);
	struct stat st;
	if (fstat(fd, &st))
		return 3;
	pid_t child = fork();
	if (child == 0) {
		wl_wait_go();
		if (fstat(fd, &st)) /* a restored memfd is another inode number */
			_exit(0x80);
		int bad = (p[5] != pat(0, 5)) | (p[PG + 7] != (unsigned char)(7 ^ 0x5a)) << 1 | (p[2 * PG + 9] != pat(2, 9)) << 2 |
			  (r[11] != pat(2, 11)) << 3 | (ino_of(p, 3 * PG) != st.st_ino) << 4 | (ino_of(r, PG) != st.st_ino) << 5;
		_exit(bad);
	}
	wl_ready();
	wl_wait_go();
	int status = 0;
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		wl_fail("the child's view of the mappings differs (failed checks %x); ", WIFEXITED(status) ? WEXITSTATUS(status) : 0x100 | status);
	for (int i = 0; i < PG; i++)
		if (p[i] != pat(0, i) || p[PG + i] != (unsigned char)(i ^ 0x5a) || p[2 * PG + i] != pat(2, i) || r[i] != pat(2, i) || s[PG + i] != pat(1, i)) {
			wl_fail("the mappings lost their bytes at %d; ", i);
			break;
		}
	unsigned char x = 0xc3;
	if (pwrite(fd, &x, 1, 100) != 1 || pwrite(fd, &x, 1, PG + 100) != 1 || pwrite(fd, &x, 1, 2 * PG + 100) != 1)
		wl_fail("pwrite failed; ");
	if (p[100] != 0xc3 || p[2 * PG + 100] != 0xc3 || r[100] != 0xc3 || s[100] != 0xc3)
		wl_fail("a write to the memfd does not show through the pages its private mappings did not copy; ");
	if (p[PG + 100] != (unsigned char)(100 ^ 0x5a))
		wl_fail("a write to the memfd reached the private copy of page 1; ");
	if (fstat(fd, &st) || ino_of(p, 3 * PG) != st.st_ino || ino_of(r, PG) != st.st_ino || ino_of(s, 3 * PG) != st.st_ino)
		wl_fail("the mappings are not the memfd's inode; ");
	p[200] = 1;
	if (s[200] != pat(0, 200))
		wl_fail("a write to the private mapping reached the memfd; ");
	return wl_finish(NULL);
}
