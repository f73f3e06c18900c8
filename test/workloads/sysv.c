/* SysV IPC in an IPC namespace of the workload's own (argv[2] "host": stasis's, with a
 * segment attached, which the dump must refuse). Two shared memory segments (one attached by
 * the parent and its child, one attached by nobody), a semaphore set and a message queue with
 * messages of several types and sizes. At `go` every object is checked at its id: contents,
 * values, every message in order with its type, modes. */
#include "wl.h"
#include <sched.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/sem.h>
#include <sys/msg.h>
#include <sys/wait.h>

#define SEG (3 * 4096 + 100)
struct msgb { long mtype; char text[256]; };
static const char *texts[] = { "first", "", "a third, longer message of the queue" };
static const long types[] = { 3, 1, 7 };

static unsigned char pat(int i, int seed) { return (unsigned char)(i * 31 + seed); }

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int host = argc > 2 && !strcmp(argv[2], "host");
	if (!host && unshare(CLONE_NEWIPC))
		wl_fail("unshare(CLONE_NEWIPC): %m");
	int shm1 = shmget(host ? IPC_PRIVATE : 0x5157, SEG, IPC_CREAT | 0640);
	int shm2 = host ? -1 : shmget(IPC_PRIVATE, 8192, IPC_CREAT | 0600);
	unsigned char *p = shmat(shm1, NULL, 0);
	if (shm1 < 0 || p == (void *)-1)
		wl_fail("shmget/shmat: %m");
	if (host) {
		/* Removed once attached: nothing is left behind when the workload ends. */
		shmctl(shm1, IPC_RMID, NULL);
		wl_ready();
		wl_wait_go();
		return wl_finish(NULL);
	}
	for (int i = 0; i < SEG; i++)
		p[i] = pat(i, 1);
	unsigned char *q = shmat(shm2, NULL, 0);
	for (int i = 0; i < 4096; i++)
		q[i] = pat(i, 2); /* the second page stays a hole */
	shmdt(q);
	int sem = semget(IPC_PRIVATE, 3, IPC_CREAT | 0604);
	unsigned short vals[3] = { 5, 0, 32767 }, got[3];
	if (sem < 0 || semctl(sem, 0, SETALL, vals))
		wl_fail("semget/SETALL: %m");
	int mq = msgget(0x4d51, IPC_CREAT | 0622);
	for (int i = 0; i < 3; i++) {
		struct msgb m = { types[i], "" };
		strcpy(m.text, texts[i]);
		if (msgsnd(mq, &m, strlen(texts[i]), 0))
			wl_fail("msgsnd: %m");
	}
	pid_t c = fork();
	if (c == 0) {
		wl_wait_go();
		for (int i = 0; i < SEG; i++)
			if (p[i] != pat(i, 1))
				_exit(1);
		p[0] = 0xab; /* the parent sees it: the segment is still shared */
		_exit(0);
	}
	char ids[64];
	snprintf(ids, sizeof(ids), "%d %d %d %d %lx\n", shm1, shm2, sem, mq, (unsigned long)p);
	wl_write("ids", ids);
	wl_ready();
	wl_wait_go();
	int st;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		wl_fail("the child found the segment wrong (status %x)", st);
	if (p[0] != 0xab)
		wl_fail("the child's write to the segment is not seen by its parent");
	for (int i = 1; i < SEG; i++)
		if (p[i] != pat(i, 1)) {
			wl_fail("segment %d byte %d is %d", shm1, i, p[i]);
			break;
		}
	struct shmid_ds ds;
	if (shmget(0x5157, 0, 0) != shm1 || shmctl(shm1, IPC_STAT, &ds) || ds.shm_segsz != SEG || (ds.shm_perm.mode & 0777) != 0640 || ds.shm_nattch != 1)
		wl_fail("segment %d: key, size, mode or attach count wrong (nattch %lu)", shm1, (unsigned long)ds.shm_nattch);
	q = shmat(shm2, NULL, SHM_RDONLY);
	if (q == (void *)-1)
		wl_fail("segment %d is gone: %m", shm2);
	else {
		for (int i = 0; i < 8192; i++)
			if (q[i] != (i < 4096 ? pat(i, 2) : 0)) {
				wl_fail("segment %d byte %d is %d", shm2, i, q[i]);
				break;
			}
	}
	if (semctl(sem, 0, GETALL, got) || memcmp(got, vals, sizeof(vals)))
		wl_fail("semaphore set %d values %d %d %d", sem, got[0], got[1], got[2]);
	if (msgget(0x4d51, 0) != mq)
		wl_fail("queue key 0x4d51 is not id %d", mq);
	for (int i = 0; i < 3; i++) {
		struct msgb m;
		ssize_t n = msgrcv(mq, &m, sizeof(m.text), 0, IPC_NOWAIT);
		if (n != (ssize_t)strlen(texts[i]) || m.mtype != types[i] || memcmp(m.text, texts[i], n))
			wl_fail("message %d: %zd bytes of type %ld", i, n, n >= 0 ? m.mtype : 0);
	}
	struct msgb m;
	if (msgrcv(mq, &m, sizeof(m.text), 0, IPC_NOWAIT) >= 0)
		wl_fail("the queue holds more messages than were sent");
	return wl_finish(NULL);
}
