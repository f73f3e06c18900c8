/* Memory that changes between incremental dumps, deterministically (seeded): on `cmd-K`
 * the workload runs step K and answers `ack-K`; on `exit` it writes its result.
 * argv: DIR SEED MIB. Each step writes ~1% of the pages of region A (its own stores), reads
 * a file into pages of A and of B with read(2) (the kernel writes), moves B with mremap,
 * maps a new area, maps over the previous step's area, drops pages with MADV_DONTNEED and
 * writes into a private file mapping (a command file saying `read` does only a pread(2)
 * into page 5 of A instead). `regions` lists every data area (addr len, hex) for
 * the test, which hashes them from outside. */
#include "wl.h"
#include <stdint.h>
#include <sys/mman.h>

static uint64_t st;
static uint64_t xs(void) { uint64_t x = st; x ^= x << 13; x ^= x >> 7; x ^= x << 17; return st = x; }

#define PG 4096UL
static char *A, *B, *C, *D, *E;
static size_t a_pages, b_pages = 64, c_pages = 16, d_pages = 32, e_pages = 8;
static int srcfd;

static void fill_page(char *p)
{
	uint64_t *w = (uint64_t *)p;
	for (size_t i = 0; i < PG / 8; i++)
		w[i] = xs();
}

static void write_regions(void)
{
	char text[512];
	snprintf(text, sizeof(text), "%lx %lx\n%lx %lx\n%lx %lx\n%lx %lx\n%lx %lx\n",
		 (unsigned long)A, a_pages * PG, (unsigned long)B, b_pages * PG, (unsigned long)C, c_pages * PG,
		 (unsigned long)D, d_pages * PG, (unsigned long)E, e_pages * PG);
	wl_write("regions", text);
}

static void read_into(char *page)
{
	off_t off = (off_t)(xs() % 60) * PG;
	if (lseek(srcfd, off, SEEK_SET) != off || read(srcfd, page, PG) != (ssize_t)PG)
		wl_fail("read(2) into %p failed", (void *)page);
}

static void step(int k)
{
	st = 0x9e3779b97f4a7c15ull ^ ((uint64_t)k * 0x100000001b3ull);
	for (size_t i = 0; i < a_pages / 100 + 1; i++)
		fill_page(A + (xs() % a_pages) * PG);
	for (int i = 0; i < 4; i++)
		read_into(A + (xs() % a_pages) * PG);
	/* B moves (its pages keep their contents at a new address), then the kernel writes one. */
	/* With a mapped page either side: moved next to a registered area, the kernel merges
	 * the two and drops the userfaultfd registration of the whole (stasis then dumps that
	 * area in full, which is right but makes page counts depend on where mmap put it). */
	char *nb = mmap(NULL, (b_pages + 2) * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	B = mremap(B, b_pages * PG, b_pages * PG, MREMAP_MAYMOVE | MREMAP_FIXED, nb + PG);
	if (B == MAP_FAILED)
		wl_fail("mremap failed");
	read_into(B + (xs() % b_pages) * PG);
	/* The previous step's C is mapped over at the same address, with new contents. */
	C = mmap(C, c_pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (C ? MAP_FIXED : 0), -1, 0);
	for (size_t i = 0; i < c_pages; i += 2)
		fill_page(C + i * PG);
	/* A new area every step. */
	munmap(E, e_pages * PG);
	E = mmap(NULL, e_pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (size_t i = 0; i < e_pages; i++)
		fill_page(E + i * PG);
	/* Dropped pages read back as zeros: they must not come back from a parent image. */
	for (int i = 0; i < 3; i++)
		madvise(A + (xs() % a_pages) * PG, PG, MADV_DONTNEED);
	/* A copy-on-write page of a private file mapping. */
	fill_page(D + (xs() % d_pages) * PG);
	write_regions();
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	st = argc > 2 ? strtoull(argv[2], NULL, 0) : 1;
	a_pages = (argc > 3 ? strtoul(argv[3], NULL, 10) : 64) << 8;
	/* A file to read(2) from and to map privately. */
	srcfd = open("src.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
	char page[PG];
	for (int i = 0; i < 64; i++) {
		fill_page(page);
		if (write(srcfd, page, PG) != (ssize_t)PG)
			return 3;
	}
	A = mmap(NULL, a_pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	B = mmap(NULL, b_pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	D = mmap(NULL, d_pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, srcfd, 0);
	if (A == MAP_FAILED || B == MAP_FAILED || D == MAP_FAILED)
		return 3;
	for (size_t i = 0; i < a_pages; i++)
		fill_page(A + i * PG);
	for (size_t i = 0; i < b_pages; i++)
		fill_page(B + i * PG);
	E = mmap(NULL, e_pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	C = NULL;
	step(0);
	wl_ready();
	for (int k = 1;; ) {
		char name[32];
		snprintf(name, sizeof(name), "cmd-%d", k);
		if (access("exit", F_OK) == 0)
			break;
		if (access(name, F_OK) != 0) {
			wl_sleep_ms(1);
			continue;
		}
		/* `read` in the command file: the kernel's write only, read(2) into page 5 of A. */
		char what[8] = "";
		FILE *f = fopen(name, "r");
		if (f) {
			if (fscanf(f, "%7s", what) != 1)
				what[0] = 0;
			fclose(f);
		}
		if (!strcmp(what, "read")) {
			if (pread(srcfd, A + 5 * PG, PG, 7 * PG) != (ssize_t)PG)
				wl_fail("pread into A failed");
		} else
			step(k);
		snprintf(name, sizeof(name), "ack-%d", k);
		wl_write(name, "ok\n");
		k++;
	}
	/* Carried on after restore: one more step must work on the restored memory. */
	step(1000);
	return wl_finish(NULL);
}
