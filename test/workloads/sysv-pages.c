/* SysV shared memory segments with pages never touched, in an IPC namespace of the workload's
 * own: A (key 0x53504d41, 5 pages and 123 bytes, mode 0640) attached, pages 0, 2 and the
 * last partly written, page 3 written with zeroes, page 1 never touched; B (IPC_PRIVATE,
 * 3 pages, mode 0600) detached, only its middle page written; C (key 0x53504d43, 2 pages,
 * mode 0604) never touched at all. At `go` each segment is checked: its id, key, size and
 * mode, every byte, and that the pages never touched use no memory still (mincore). */
#include "wl.h"
#include <sched.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/mman.h>

#define PG 4096
#define A_SIZE (5 * PG + 123)
#define A_KEY 0x53504d41
#define B_SIZE (3 * PG)
#define C_SIZE (2 * PG)
#define C_KEY 0x53504d43

static unsigned char pat(long i, int seed) { return (unsigned char)(i * 13 + seed) | 1; }

/* The byte segment `seed` must hold at `i`. */
static unsigned char want(int seed, long i)
{
	long page = i / PG;
	if (seed == 'A')
		return page == 0 || page == 2 || (page == 5 && i < A_SIZE) ? pat(i, seed) : 0;
	if (seed == 'B')
		return page == 1 ? pat(i, seed) : 0;
	return 0;
}

static void fill(unsigned char *p, int seed, long size)
{
	for (long i = 0; i < size; i++)
		if (want(seed, i))
			p[i] = want(seed, i);
}

static void check(int id, int key, int seed, long size, int mode, const char *untouched)
{
	struct shmid_ds ds;
	if (key && shmget(key, 0, 0) != id)
		wl_fail("key 0x%x is not segment %d", key, id);
	if (shmctl(id, IPC_STAT, &ds)) {
		wl_fail("segment %d is gone: %m", id);
		return;
	}
	if ((long)ds.shm_segsz != size || (ds.shm_perm.mode & 0777) != mode || ds.shm_perm.__key != key)
		wl_fail("segment %d: size %zu mode %o key 0x%x, not %ld %o 0x%x", id, ds.shm_segsz, ds.shm_perm.mode & 0777, ds.shm_perm.__key, size, mode, key);
	unsigned char *p = shmat(id, NULL, SHM_RDONLY);
	if (p == (void *)-1) {
		wl_fail("shmat(%d): %m", id);
		return;
	}
	/* Before the bytes are read: reading a hole would not fill it, but be sure. */
	long pages = (size + PG - 1) / PG;
	unsigned char vec[16];
	if (mincore(p, pages * PG, vec))
		wl_fail("mincore of segment %d: %m", id);
	for (long n = 0; n < pages; n++)
		if (untouched[n] == 'u' && (vec[n] & 1))
			wl_fail("page %ld of segment %d, never touched, uses memory", n, id);
	for (long i = 0; i < size; i++)
		if (p[i] != want(seed, i)) {
			wl_fail("byte %ld of segment %d is %d, not %d", i, id, p[i], want(seed, i));
			break;
		}
	shmdt(p);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	if (unshare(CLONE_NEWIPC))
		wl_fail("unshare(CLONE_NEWIPC): %m");
	int a = shmget(A_KEY, A_SIZE, IPC_CREAT | 0640);
	int b = shmget(IPC_PRIVATE, B_SIZE, IPC_CREAT | 0600);
	int c = shmget(C_KEY, C_SIZE, IPC_CREAT | 0604);
	if (a < 0 || b < 0 || c < 0)
		wl_fail("shmget: %m");
	unsigned char *pa = shmat(a, NULL, 0), *pb = shmat(b, NULL, 0);
	if (pa == (void *)-1 || pb == (void *)-1)
		wl_fail("shmat: %m");
	fill(pa, 'A', A_SIZE);
	memset(pa + 3 * PG, 0, PG); /* written, with zeroes */
	fill(pb, 'B', B_SIZE);
	shmdt(pb);
	char ids[64];
	snprintf(ids, sizeof(ids), "%d %d %d\n", a, b, c);
	wl_write("ids", ids);
	wl_ready();
	wl_wait_go();
	/* ('u': a page never touched; reading one through a mapping gives it memory: checked first.) */
	check(a, A_KEY, 'A', A_SIZE, 0640, "tutttt");
	check(b, 0, 'B', B_SIZE, 0600, "utu");
	check(c, C_KEY, 'C', C_SIZE, 0604, "uu");
	for (long i = 0; i < A_SIZE; i++)
		if (pa[i] != want('A', i)) {
			wl_fail("byte %ld of segment %d (attached before the dump) is %d", i, a, pa[i]);
			break;
		}
	shmdt(pa);
	return wl_finish(NULL);
}
