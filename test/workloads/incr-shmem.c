/* Shared memory changed between a pre-dump and a dump in a way no page table shows: a
 * 16-page shared anonymous object of which pages 4-11 are no longer mapped; on `cmd-1` the
 * task maps page 6 again through /proc/self/map_files, writes it, unmaps it, and writes
 * page 1, which stays mapped. After restore every page must hold what it held at the dump. */
#include "wl.h"
#include <sys/mman.h>

#define PG 4096
#define PAGES 16

static char want(int i) { return i == 1 ? 'Y' : i == 6 ? 'Z' : (char)('A' + i); }

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	char *p = mmap(NULL, PAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 3;
	for (int i = 0; i < PAGES; i++)
		memset(p + i * PG, 'A' + i, PG);
	munmap(p + 4 * PG, 8 * PG);
	char obj[64];
	snprintf(obj, sizeof(obj), "/proc/self/map_files/%lx-%lx", (unsigned long)p, (unsigned long)(p + 4 * PG));
	wl_ready();

	wl_wait_file("cmd-1");
	int fd = open(obj, O_RDWR);
	char *q = fd < 0 ? MAP_FAILED : mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 6 * PG);
	if (q == MAP_FAILED)
		return 4;
	memset(q, 'Z', PG);
	munmap(q, PG);
	close(fd);
	memset(p + PG, 'Y', PG);
	wl_write("ack-1", "1\n");

	wl_wait_go();
	fd = open(obj, O_RDONLY);
	char page[PG];
	for (int i = 0; i < PAGES; i++) {
		const char *at = p + i * PG;
		if (i >= 4 && i < 12) {
			if (pread(fd, page, PG, (off_t)i * PG) != PG) {
				wl_fail("cannot read page %d of the object", i);
				continue;
			}
			at = page;
		}
		for (int k = 0; k < PG; k++)
			if (at[k] != want(i)) {
				wl_fail("page %d holds %c at %d, want %c", i, at[k], k, want(i));
				break;
			}
	}
	return wl_finish(NULL);
}
