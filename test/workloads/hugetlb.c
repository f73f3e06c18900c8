/* hugetlb memory of 2 MiB pages (zdtm maps09, maps10, memfd02-hugetlb, together): p is private
 * anonymous hugetlb memory of 3 huge pages, of which the first is filled and the second has a
 * few bytes (the third never touched); s is shared anonymous hugetlb memory of 2 huge pages,
 * shared with a child that filled it; m is a memfd made with MFD_HUGETLB of 2 huge pages, kept
 * open, its first one filled through the mapping; o is another of one huge page, filled through
 * a mapping since unmapped, only held open. `areas` holds p s m, `pids` the child.
 * After `go`: every area holds its bytes and is still of 2048 kB pages (smaps), the memfd reads
 * the same through its fd, and s is one object with the child again: the parent writes a word,
 * the child sees it, checks p and s in turn, and answers through s.
 * Mode "privshared": s mapped private as well through its map_files link (refused at dump).
 * Mode "incr": after `ready`, on `step`, it rewrites bytes of p's second huge page and the
 * first small page of m (a pre-dump was taken before), and writes `stepped`. */
#include "wl.h"
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <linux/memfd.h>

#define HP (2UL << 20)
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21U << 26)
#endif

static unsigned char pat(uintptr_t off, int salt) { return (unsigned char)((off * 131 + (off >> 12) * 7 + salt) ^ (off >> 20)); }

/* KernelPageSize of the VMA starting at `at`, in kB (0 when not found). */
static long page_kb(void *at)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	unsigned long s, e;
	int in = 0;
	long kb = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = s == (unsigned long)at;
			continue;
		}
		if (in && sscanf(line, "KernelPageSize: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return in ? kb : 0;
}

/* 0, or 1 + the first offset in [from, from + len) of `a` that is not pat(offset, salt). */
static int check_at(const unsigned char *a, size_t from, size_t len, int salt)
{
	for (size_t i = from; i < from + len; i++)
		if (a[i] != pat(i, salt))
			return (int)i + 1;
	return 0;
}
static int check(const unsigned char *a, size_t len, int salt) { return check_at(a, 0, len, salt); }

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int privshared = argc > 2 && !strcmp(argv[2], "privshared");
	int incr = argc > 2 && !strcmp(argv[2], "incr");
	const char *second = "second huge page";
	unsigned char *p = mmap(NULL, 3 * HP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
	unsigned char *s = mmap(NULL, 2 * HP, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
	int fd = syscall(SYS_memfd_create, "hugefd", MFD_CLOEXEC | MFD_HUGETLB | MFD_HUGE_2MB);
	if (p == MAP_FAILED || s == MAP_FAILED || fd < 0 || ftruncate(fd, 2 * HP)) {
		fprintf(stderr, "cannot make hugetlb memory: %m\n");
		return 77;
	}
	unsigned char *m = mmap(NULL, 2 * HP, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int ofd = syscall(SYS_memfd_create, "hugeonly", MFD_HUGETLB | MFD_HUGE_2MB);
	if (m == MAP_FAILED || ofd < 0 || ftruncate(ofd, HP))
		return 77;
	unsigned char *o = mmap(NULL, HP, PROT_READ | PROT_WRITE, MAP_SHARED, ofd, 0);
	if (o == MAP_FAILED)
		return 77;
	for (size_t i = 0; i < HP; i++)
		o[i] = pat(i, 6);
	munmap(o, HP);
	for (size_t i = 0; i < HP; i++)
		p[i] = pat(i, 1), m[i] = pat(i, 3);
	memcpy(p + HP + 100, "second huge page", 16);
	if (privshared) {
		char link[128];
		snprintf(link, sizeof(link), "/proc/self/map_files/%lx-%lx", (unsigned long)s, (unsigned long)s + 2 * HP);
		int sfd = open(link, O_RDWR);
		if (sfd < 0 || mmap(NULL, 2 * HP, PROT_READ, MAP_PRIVATE, sfd, 0) == MAP_FAILED)
			return 3;
		close(sfd);
	}
	volatile uint32_t *word = (uint32_t *)(s + 2 * HP - 8);
	pid_t child = fork();
	if (child == 0) {
		for (size_t i = 0; i < 2 * HP - 8; i++)
			s[i] = pat(i, 2);
		*word = 1;
		while (*word != 0xfeed)
			wl_sleep_ms(1);
		int bad = (check(p, HP, 1) != 0) | (memcmp(p + HP + 100, "second huge page", 16) != 0) << 1 |
			  (check(s, 2 * HP - 8, 2) != 0) << 2 | (page_kb(p) != 2048) << 3 | (page_kb(s) != 2048) << 4;
		*word = 0xd00d0000 | bad;
		_exit(bad);
	}
	while (*word != 1)
		wl_sleep_ms(1);
	char text[160];
	snprintf(text, sizeof(text), "%lx %lx %lx\n", (unsigned long)p, (unsigned long)s, (unsigned long)m);
	wl_write("areas", text);
	snprintf(text, sizeof(text), "%d\n", child);
	wl_write("pids", text);
	wl_ready();
	if (incr) {
		while (access("step", F_OK))
			wl_sleep_ms(1);
		second = "changed huge pg!";
		memcpy(p + HP + 100, second, 16);
		for (size_t i = 0; i < 4096; i++)
			m[i] = pat(i, 4);
		wl_write("stepped", "stepped\n");
	}
	wl_wait_go();

	int at;
	if ((at = check(p, HP, 1)))
		wl_fail("the private hugetlb memory lost its bytes at %d; ", at - 1);
	if (memcmp(p + HP + 100, second, 16))
		wl_fail("the second huge page of the private memory lost its bytes (%.16s, not %s); ", p + HP + 100, second);
	for (size_t i = 0; i < HP; i += 4096)
		if (p[2 * HP + i]) {
			wl_fail("the untouched huge page holds data; ");
			break;
		}
	if ((at = check(s, 2 * HP - 8, 2)))
		wl_fail("the shared hugetlb memory lost its bytes at %d; ", at - 1);
	int m0 = incr ? 4096 : 0;
	if ((at = check_at(m, m0, HP - m0, 3)) || (incr && (at = check(m, 4096, 4))))
		wl_fail("the hugetlb memfd's mapping lost its bytes at %d; ", at - 1);
	unsigned char *buf = malloc(HP);
	if (!buf || pread(fd, buf, HP, 0) != (ssize_t)HP || check_at(buf, m0, HP - m0, 3) || (incr && check(buf, 4096, 4)))
		wl_fail("the hugetlb memfd reads otherwise through its fd; ");
	struct statfs sf;
	if (pread(ofd, buf, HP, 0) != (ssize_t)HP || check(buf, HP, 6))
		wl_fail("the hugetlb memfd only held open lost its bytes; ");
	if (fstatfs(ofd, &sf) || sf.f_bsize != (long)HP)
		wl_fail("the hugetlb memfd only held open is not of 2 MiB pages any more (%ld); ", (long)sf.f_bsize);
	if (page_kb(p) != 2048 || page_kb(s) != 2048 || page_kb(m) != 2048)
		wl_fail("the areas are not of 2048 kB pages any more (p %ld, s %ld, m %ld kB); ", page_kb(p), page_kb(s), page_kb(m));
	/* The memfd and its mapping are one object still. */
	m[HP + 5] = 0x77;
	if (pread(fd, buf, 1, HP + 5) != 1 || buf[0] != 0x77)
		wl_fail("a write to the memfd's mapping does not reach the memfd; ");
	/* Carrying on: s is shared with the child again. */
	*word = 0xfeed;
	for (int i = 0; i < 5000 && *word == 0xfeed; i++)
		wl_sleep_ms(1);
	if ((*word & 0xffff0000) != 0xd00d0000)
		wl_fail("the child never answered through the shared hugetlb memory (word %x); ", *word);
	int status = 0;
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		wl_fail("the child's view differs (failed checks %x); ", WIFEXITED(status) ? WEXITSTATUS(status) : 0x100 | status);
	return wl_finish(NULL);
}
