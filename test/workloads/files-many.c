/* Many fds over many processes, for the kcmp economy of shared-file detection.
 *   files-many DIR NPROC SHARED OWN FDS: the root opens SHARED files, each dup'd into 5 fds,
 *   then forks NPROC-1 children (which inherit them); every process then opens OWN files of
 *   its own and spreads FDS fds over them round-robin (dup). Each open file gets its own
 *   offset; after go every process checks that every fd is at its file's offset, moves one
 *   fd of each file and checks that exactly that file's fds moved; then the root moves the
 *   shared files and every child checks it sees the move.
 *   files-many DIR distinct N: one process, N files each opened once (no sharing at all). */
#include "wl.h"
#include <sys/resource.h>
#include <sys/wait.h>

#define BASE 3
#define MAXFD 20000

static int obj_of[MAXFD]; /* fd -> object index + 1 (0: not ours) */
static long want_pos[MAXFD]; /* object -> offset */
static int nfds;

static int open_obj(const char *name, int obj, int copies, long pos)
{
	int fd = open(name, O_RDWR | O_CREAT, 0644);
	if (fd < 0)
		return -1;
	lseek(fd, pos, SEEK_SET);
	obj_of[fd] = obj + 1;
	for (int i = 1; i < copies; i++) {
		int d = dup(fd);
		if (d < 0)
			return -1;
		obj_of[d] = obj + 1;
	}
	want_pos[obj] = pos;
	return fd;
}

static void check_all(const char *who)
{
	for (int fd = BASE; fd < nfds; fd++) {
		if (!obj_of[fd])
			continue;
		long got = lseek(fd, 0, SEEK_CUR);
		if (got != want_pos[obj_of[fd] - 1]) {
			wl_fail("%s: fd %d (file %d) at %ld, expected %ld", who, fd, obj_of[fd] - 1, got, want_pos[obj_of[fd] - 1]);
			return;
		}
	}
}

static void move_own(int from_obj, int to_obj, long delta)
{
	/* Move one fd of each file in [from_obj, to_obj): its other fds must follow. */
	for (int fd = BASE; fd < nfds; fd++) {
		int o = obj_of[fd] - 1;
		if (o >= from_obj && o < to_obj && want_pos[o] < delta) {
			want_pos[o] += delta;
			lseek(fd, want_pos[o], SEEK_SET);
		}
	}
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	char name[64];
	if (argc == 4 && strcmp(argv[2], "distinct") == 0) {
		int n = atoi(argv[3]);
		for (int i = 0; i < n; i++) {
			snprintf(name, sizeof(name), "d-%d", i);
			if (open_obj(name, i, 1, 0) < 0)
				return 3;
		}
		nfds = BASE + n + 16;
		wl_ready();
		wl_wait_go();
		check_all("distinct");
		return wl_finish(NULL);
	}
	if (argc != 6)
		return 2;
	int nproc = atoi(argv[2]), shared = atoi(argv[3]), own = atoi(argv[4]), fds = atoi(argv[5]);
	for (int k = 0; k < shared; k++) {
		snprintf(name, sizeof(name), "s-%d", k);
		if (open_obj(name, k, 5, 1000 + k) < 0)
			return 3;
	}
	int id = 0;
	pid_t kids[64];
	for (int c = 1; c < nproc; c++) {
		pid_t p = fork();
		if (p == 0) {
			id = c;
			break;
		}
		kids[c] = p;
	}
	int first = -1;
	for (int k = 0; k < own; k++) {
		snprintf(name, sizeof(name), "p%d-%d", id, k);
		int fd = open_obj(name, shared + k, 1, 100000 + k * 10 + id);
		if (fd < 0)
			return 3;
		if (first < 0)
			first = fd;
	}
	for (int i = own; i < fds; i++) {
		int fd = dup(first + (i % own));
		if (fd < 0)
			return 3;
		obj_of[fd] = obj_of[first + (i % own)];
	}
	nfds = MAXFD;
	char who[32];
	snprintf(who, sizeof(who), "process %d", id);
	if (id != 0) {
		snprintf(name, sizeof(name), "ready-%d", id);
		wl_write(name, "");
		wl_wait_go();
		check_all(who);
		move_own(shared, shared + own, 500000);
		check_all(who);
		snprintf(name, sizeof(name), "checked-%d", id);
		wl_write(name, wl_failed ? wl_why : "PASS\n");
		/* The root moves the shared files by 1,000,000 once all have checked: wait, then look. */
		while (access("moved", F_OK) != 0)
			wl_sleep_ms(1);
		for (int k = 0; k < shared; k++)
			want_pos[k] += 1000000;
		check_all(who);
		snprintf(name, sizeof(name), "result-%d", id);
		wl_write(name, wl_failed ? wl_why : "PASS\n");
		_exit(wl_failed ? 1 : 0);
	}
	for (int c = 1; c < nproc; c++) {
		snprintf(name, sizeof(name), "ready-%d", c);
		while (access(name, F_OK) != 0)
			wl_sleep_ms(1);
	}
	wl_ready();
	wl_wait_go();
	check_all(who);
	move_own(shared, shared + own, 500000);
	check_all(who);
	for (int c = 1; c < nproc; c++) {
		snprintf(name, sizeof(name), "checked-%d", c);
		while (access(name, F_OK) != 0)
			wl_sleep_ms(1);
	}
	move_own(0, shared, 1000000);
	wl_write("moved", "");
	for (int c = 1; c < nproc; c++) {
		int st = 0;
		if (waitpid(kids[c], &st, 0) != kids[c] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		{
			char why[512] = "", f[32];
			snprintf(f, sizeof(f), "result-%d", c);
			int fd = open(f, O_RDONLY);
			if (fd < 0)
				snprintf(f, sizeof(f), "checked-%d", c), fd = open(f, O_RDONLY);
			if (fd >= 0 && read(fd, why, sizeof(why) - 1) < 0) {}
			wl_fail("process %d failed (status %x): %s", c, st, why);
		}
	}
	return wl_finish(NULL);
}
