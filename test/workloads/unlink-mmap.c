/* Mappings of files that lost their names (zdtm's unlink_mmap00-02, more strictly).
 * a.bin (3 pages, mode 0640) is mapped shared twice (pages 0-1, at two addresses), private
 * at pages 1-2 (page 2 written: a private copy), kept open at fd `afd`, then unlinked.
 * b.bin is mapped shared read-only from an O_RDONLY fd, then unlinked (the mapping may never
 * become writable). c.bin is mapped private, then another file is renamed over its name.
 * After restore: every byte as it was; a write through one shared mapping is seen by the
 * other and through the fd, a write through the fd is seen by both shared mappings and by
 * the private mapping's page it did not copy, not by the page it copied; every mapping of
 * a.bin and the fd are one inode, with no link, mode 0640; b's mapping refuses PROT_WRITE
 * (EACCES); c's mapping holds c's bytes, not those of the file now at its name; the
 * names stay free. `areas` holds the addresses of s1 s2 p b c. With `fork`, a child forked
 * before `ready` shares the mappings (the private copy copy-on-write): it checks its bytes
 * and inodes after `go` before the parent writes, and exits 0 if they hold. */
#include "wl.h"
#include <sys/mman.h>
#include <sys/stat.h>
#include <errno.h>
#include <sys/wait.h>

#define PG 4096

static unsigned char pat(int page, int i) { return (unsigned char)(page * 37 + i * 11 + 1); }

static int fill(const char *name, int pages, int salt, mode_t mode)
{
	int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, mode);
	unsigned char buf[PG];
	for (int p = 0; p < pages; p++) {
		for (int i = 0; i < PG; i++)
			buf[i] = pat(p + salt, i);
		if (fd < 0 || write(fd, buf, PG) != PG)
			exit(3);
	}
	fchmod(fd, mode);
	return fd;
}

static int page_is(const unsigned char *m, int page, int salt)
{
	for (int i = 0; i < PG; i++)
		if (m[i] != pat(page + salt, i))
			return 0;
	return 1;
}

static ino_t ino_of(const void *at, size_t len, nlink_t *nlink)
{
	char p[128];
	struct stat st;
	snprintf(p, sizeof(p), "/proc/self/map_files/%lx-%lx", (unsigned long)at, (unsigned long)at + len);
	if (stat(p, &st))
		return 0;
	if (nlink)
		*nlink = st.st_nlink;
	return st.st_ino;
}

static int deleted_in_maps(const void *at)
{
	char want[32], line[1024];
	snprintf(want, sizeof(want), "%lx-", (unsigned long)at);
	FILE *f = fopen("/proc/self/maps", "r");
	int r = 0;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, want, strlen(want)))
			r = strstr(line, "a.bin (deleted)") != NULL;
	if (f)
		fclose(f);
	return r;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int afd = fill("a.bin", 3, 0, 0640);
	int bw = fill("b.bin", 1, 5, 0644);
	close(bw);
	int bfd = open("b.bin", O_RDONLY);
	int cfd = fill("c.bin", 1, 9, 0644);
	unsigned char *s1 = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, afd, 0);
	unsigned char *s2 = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, afd, 0);
	unsigned char *p = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, afd, PG);
	unsigned char *b = mmap(NULL, PG, PROT_READ, MAP_SHARED, bfd, 0);
	unsigned char *c = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, cfd, 0);
	if (s1 == MAP_FAILED || s2 == MAP_FAILED || p == MAP_FAILED || b == MAP_FAILED || c == MAP_FAILED)
		return 3;
	close(bfd);
	close(cfd);
	for (int i = 0; i < PG; i++)
		p[PG + i] = (unsigned char)(i * 3 + 7); /* a private copy of page 2 */
	close(fill("c.new", 1, 13, 0644));
	if (unlink("a.bin") || unlink("b.bin") || rename("c.new", "c.bin"))
		return 3;
	char text[160];
	snprintf(text, sizeof(text), "%lx %lx %lx %lx %lx\n", (unsigned long)s1, (unsigned long)s2, (unsigned long)p, (unsigned long)b, (unsigned long)c);
	wl_write("areas", text);
	pid_t child = -1;
	if (argc > 2 && !strcmp(argv[2], "fork")) {
		child = fork();
		if (child == 0) {
			struct stat cst;
			wl_wait_go();
			int ok = page_is(s1, 0, 0) && page_is(s2 + PG, 1, 0) && page_is(p, 1, 0) && p[PG + 9] == (unsigned char)(9 * 3 + 7) &&
				 page_is(c, 0, 9) && !fstat(afd, &cst) && ino_of(s1, 2 * PG, NULL) == cst.st_ino && ino_of(p, 2 * PG, NULL) == cst.st_ino;
			_exit(ok ? 0 : 1);
		}
	}
	wl_ready();
	wl_wait_go();
	if (child > 0) {
		int status = 0;
		if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			wl_fail("the child's mappings differ (status %x); ", status);
	}

	if (!page_is(s1, 0, 0) || !page_is(s1 + PG, 1, 0) || !page_is(s2, 0, 0) || !page_is(s2 + PG, 1, 0))
		wl_fail("the shared mappings lost their bytes; ");
	if (!page_is(p, 1, 0))
		wl_fail("the private mapping's page 1 lost its bytes; ");
	for (int i = 0; i < PG; i++)
		if (p[PG + i] != (unsigned char)(i * 3 + 7)) {
			wl_fail("the private copy of page 2 differs at %d; ", i);
			break;
		}
	if (!page_is(b, 0, 5))
		wl_fail("b's mapping lost its bytes; ");
	if (!page_is(c, 0, 9))
		wl_fail("c's mapping does not hold c's bytes (%02x, the new file's would be %02x); ", c[0], pat(13, 0));
	s1[10] = 0xee;
	if (s2[10] != 0xee)
		wl_fail("a write through one shared mapping is not seen by the other; ");
	unsigned char x = 0;
	if (pread(afd, &x, 1, 10) != 1 || x != 0xee)
		wl_fail("a write through a shared mapping is not seen through the fd (%02x); ", x);
	unsigned char y = 0xab;
	if (pwrite(afd, &y, 1, PG + 5) != 1 || s1[PG + 5] != 0xab || s2[PG + 5] != 0xab || p[5] != 0xab)
		wl_fail("a write through the fd is not seen by every mapping of page 1 (%02x %02x %02x); ", s1[PG + 5], s2[PG + 5], p[5]);
	if (pwrite(afd, &y, 1, 2 * PG + 5) != 1 || p[PG + 5] != (unsigned char)(5 * 3 + 7))
		wl_fail("a write through the fd reached the private copy of page 2; ");
	struct stat st;
	nlink_t n1 = 99, n2 = 99, n3 = 99;
	if (fstat(afd, &st) || st.st_nlink != 0 || (st.st_mode & 07777) != 0640 || st.st_size != 3 * PG)
		wl_fail("a.bin's fd is not the deleted file of mode 0640 and 3 pages; ");
	if (ino_of(s1, 2 * PG, &n1) != st.st_ino || ino_of(s2, 2 * PG, &n2) != st.st_ino || ino_of(p, 2 * PG, &n3) != st.st_ino || n1 || n2 || n3)
		wl_fail("the mappings of a.bin are not the fd's inode with no link; ");
	if (!deleted_in_maps(s1) || !deleted_in_maps(p))
		wl_fail("maps does not show a.bin (deleted); ");
	errno = 0;
	if (mprotect(b, PG, PROT_READ | PROT_WRITE) == 0 || errno != EACCES)
		wl_fail("b's read-only shared mapping became writable (errno %d); ", errno);
	if (access("a.bin", F_OK) == 0 || access("b.bin", F_OK) == 0)
		wl_fail("a deleted file has a name again; ");
	return wl_finish(NULL);
}
