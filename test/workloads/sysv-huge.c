/* A SysV segment made with SHM_HUGETLB (3 MiB: two 2 MiB pages, the second half used; argv[2]
 * "whole": 4 MiB, as CRIU 4.2 dumps only segments of whole huge pages) in an IPC namespace of
 * the workload's own, attached, its first MiB and its last byte written, the rest a hole. At
 * `go` the bytes, size and mode are checked through the attachment and a second one by key. */
#include "wl.h"
#include <sched.h>
#include <sys/ipc.h>
#include <sys/shm.h>

static long SEG = 3 << 20;
#define KEY 0x48554745

static unsigned char pat(long i) { return (unsigned char)(i * 7 + 3); }

static int check(const unsigned char *p, const char *how)
{
	for (long i = 0; i < SEG; i++) {
		unsigned char want = i < (1 << 20) ? pat(i) : i == SEG - 1 ? 0x5a : 0;
		if (p[i] != want) {
			wl_fail("byte %ld of the segment %s is %d, not %d", i, how, p[i], want);
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	if (argc > 2 && !strcmp(argv[2], "whole"))
		SEG = 4 << 20;
	if (unshare(CLONE_NEWIPC))
		wl_fail("unshare(CLONE_NEWIPC): %m");
	int id = shmget(KEY, SEG, IPC_CREAT | SHM_HUGETLB | 0600);
	if (id < 0)
		wl_fail("shmget(SHM_HUGETLB): %m");
	unsigned char *p = shmat(id, NULL, 0);
	if (p == (void *)-1)
		wl_fail("shmat: %m");
	for (long i = 0; i < (1 << 20); i++)
		p[i] = pat(i);
	p[SEG - 1] = 0x5a;
	char ids[64];
	snprintf(ids, sizeof(ids), "%d %lx\n", id, (unsigned long)p);
	wl_write("ids", ids);
	wl_ready();
	wl_wait_go();
	check(p, "attached before the dump");
	if (shmget(KEY, 0, 0) != id)
		wl_fail("key 0x%x is not segment %d", KEY, id);
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds) || (long)ds.shm_segsz != SEG || (ds.shm_perm.mode & 0777) != 0600)
		wl_fail("segment %d: size or mode wrong (%zu, %o)", id, ds.shm_segsz, ds.shm_perm.mode & 0777);
	unsigned char *q = shmat(id, NULL, SHM_RDONLY);
	if (q == (void *)-1)
		wl_fail("shmat again: %m");
	else
		check(q, "attached again");
	shmdt(q);
	shmdt(p);
	shmctl(id, IPC_RMID, NULL);
	return wl_finish(NULL);
}
