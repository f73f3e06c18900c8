/* A tree in namespaces of its own (started by `unshare --fork` with some of --uts --ipc
 * --net --pid --cgroup --time --user): in a user namespace ("user"), records its maps,
 * setgroups, ids, capabilities and a file it made; with "usermap", waits for maps a parent
 * writes, becomes uid 0 there and its child uid 1000 (another range of the map). Sets a hostname and domainname, an IPC sysctl and lo up, forks a child; after
 * the checkpoint both check that they still see all of it: their own pids (1 and 2 in a pid
 * namespace), the names, the sysctl, lo's state, and that the child is still the root's. */
#include "wl.h"
#include <sys/utsname.h>
#include <sys/wait.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <signal.h>
#include <sys/file.h>
#include <mqueue.h>
#include <errno.h>
#include <sched.h>
#include <sys/msg.h>
#include <grp.h>
#include <sys/stat.h>

static int lo_flags(void)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	strcpy(ifr.ifr_name, "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	close(s);
	return ifr.ifr_flags;
}

static long read_long(const char *path)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0)
		return -1;
	close(fd);
	return atol(buf);
}

static void read_text(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, size - 1);
	buf[n > 0 ? n : 0] = 0;
	if (fd >= 0)
		close(fd);
}

/* The lines of /proc/self/status that start with `key`, e.g. "Cap". */
static void status_lines(const char *key, char *out, size_t size)
{
	char buf[4096], *line, *save;
	read_text("/proc/self/status", buf, sizeof(buf));
	out[0] = 0;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (!strncmp(line, key, strlen(key)) && strlen(out) + strlen(line) + 2 < size) {
			strcat(out, line);
			strcat(out, "\n");
		}
}

struct user_view {
	char uid_map[512], gid_map[512], setgroups[16], caps[512], ids[256];
	struct stat owned;
};

static void user_view(struct user_view *v, const char *owned)
{
	read_text("/proc/self/uid_map", v->uid_map, sizeof(v->uid_map));
	read_text("/proc/self/gid_map", v->gid_map, sizeof(v->gid_map));
	read_text("/proc/self/setgroups", v->setgroups, sizeof(v->setgroups));
	status_lines("Cap", v->caps, sizeof(v->caps));
	char ids[128], grp[128];
	status_lines("Uid", ids, sizeof(ids));
	status_lines("Gid", grp, sizeof(grp));
	snprintf(v->ids, sizeof(v->ids), "%s%s", ids, grp);
	if (stat(owned, &v->owned) != 0)
		memset(&v->owned, 0xff, sizeof(v->owned));
}

/* 0 when the user namespace looks as it did; else says what differs. */
static int same_user_view(const char *who, const struct user_view *a, const struct user_view *b)
{
	int bad = 0;
#define DIFF(f) if (strcmp(a->f, b->f)) { wl_fail("%s: " #f " is now '%s', was '%s'", who, b->f, a->f); bad = 1; }
	DIFF(uid_map) DIFF(gid_map) DIFF(setgroups) DIFF(caps) DIFF(ids)
#undef DIFF
	if (a->owned.st_uid != b->owned.st_uid || a->owned.st_gid != b->owned.st_gid) {
		wl_fail("%s: its file is owned by %d:%d, was %d:%d", who, (int)b->owned.st_uid, (int)b->owned.st_gid, (int)a->owned.st_uid, (int)a->owned.st_gid);
		bad = 1;
	}
	return bad;
}

static void check_names(const char *who)
{
	struct utsname u;
	uname(&u);
	if (strcmp(u.nodename, "stasis-ns") != 0)
		wl_fail("%s: hostname is %s", who, u.nodename);
	if (strcmp(u.domainname, "stasis-dom") != 0)
		wl_fail("%s: domainname is %s", who, u.domainname);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int uts = strstr(argv[2], "uts") != NULL, ipc = strstr(argv[2], "ipc") != NULL;
	int net = strstr(argv[2], "net") != NULL, pidns = strstr(argv[2], "pid") != NULL;
	int cgroup = strstr(argv[2], "cgroup") != NULL, timens = strstr(argv[2], "time") != NULL;
	int user = strstr(argv[2], "user") != NULL, usermap = strstr(argv[2], "usermap") != NULL;
	if (strstr(argv[2], "setsid") && setsid() < 0)
		return 18; /* started without unshare: CRIU dumps a tree whose root leads its session */
	struct user_view u0, u1;
	struct timespec m0, b0, m1, b1;
	if (usermap) {
		/* A user namespace of its own (an exec in it before the maps are written would drop
		 * every capability), whose maps the parent writes; then it takes the ids they give. */
		if (unshare(CLONE_NEWUSER | (ipc ? CLONE_NEWIPC : 0)) != 0)
			return 17;
		wl_write("unshared", "\n");
		char m[256] = "";
		for (int i = 0; i < 10000 && !m[0]; i++) {
			read_text("/proc/self/gid_map", m, sizeof(m));
			if (!m[0])
				wl_sleep_ms(1);
		}
		if (setresgid(0, 0, 0) || setgroups(0, NULL) || setresuid(0, 0, 0))
			return 14;
	}
	if (user && (getuid() != 0 || geteuid() != 0 || getgid() != 0))
		return 15;
	int ghost = -1, mfd = -1;
	if (strstr(argv[2], "ghost")) {
		/* A removed file held open and a memfd, both made by uid 0 of the namespace (gid 1000 there). */
		ghost = open("ghost", O_CREAT | O_RDWR, 0640);
		mfd = memfd_create("stasis-owned", 0);
		if (ghost < 0 || mfd < 0 || write(ghost, "boo", 3) != 3 || fchown(ghost, 0, 1000) || fchown(mfd, 0, 1000) || unlink("ghost"))
			return 20;
	}
	int q = -1;
	if (strstr(argv[2], "sysv")) {
		/* A message queue made by uid 0 of the namespace, given to uid 1000 and gid 1000 there. */
		struct msqid_ds ds;
		q = msgget(0x5354, IPC_CREAT | 0640);
		if (q < 0 || msgctl(q, IPC_STAT, &ds) != 0)
			return 19;
		ds.msg_perm.uid = 1000;
		ds.msg_perm.gid = 1000;
		if (msgctl(q, IPC_SET, &ds) != 0)
			return 19;
	}
	if (user) {
		int fd = open("owned", O_CREAT | O_WRONLY, 0644);
		if (fd < 0)
			return 16;
		close(fd);
		user_view(&u0, "owned");
	}
	clock_gettime(CLOCK_MONOTONIC, &m0);
	clock_gettime(CLOCK_BOOTTIME, &b0);
	if (timens && (m0.tv_sec < 100000 || b0.tv_sec < 200000))
		return 9; /* not in the time namespace the test made */
	if (uts && (sethostname("stasis-ns", 9) || setdomainname("stasis-dom", 10)))
		return 3;
	if (ipc) {
		int fd = open("/proc/sys/kernel/msgmax", O_WRONLY);
		if (fd < 0 || write(fd, "12345", 5) != 5)
			return 4;
		close(fd);
	}
	int sv[2];
	if (strstr(argv[2], "sock") && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return 11; /* kept open: a socket of the namespace */
	if (strstr(argv[2], "mqueue")) {
		/* A POSIX message queue left in the namespace, no fd open on it. */
		mqd_t q = mq_open("/stasis-q", O_CREAT | O_RDWR, 0600, NULL);
		if (q == (mqd_t)-1)
			return 10;
		mq_close(q);
	}
	if (net) {
		struct ifreq ifr = { 0 };
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		strcpy(ifr.ifr_name, "lo");
		ifr.ifr_flags = IFF_UP;
		if (s < 0 || ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			return 5;
		close(s);
	}
	pid_t me = getpid();
	if (pidns && me != 1)
		return 6;
	int up = lo_flags();
	/* The root holds a flock: file locks name their holder by pid, which differs in a pid namespace. */
	int lk = open("lockfile", O_RDWR | O_CREAT, 0644);
	if (lk < 0 || flock(lk, LOCK_EX) != 0)
		return 8;
	if (usermap)
		fchmod(lk, 0666); /* the child, another uid, opens it too */
	pid_t child = fork();
	if (child == 0) {
		close(lk);
		struct user_view c0, c1;
		if (usermap) {
			/* uid 1000 of the namespace: the map's second range. */
			if (setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000))
				_exit(20);
			int fd = open("owned-child", O_CREAT | O_WRONLY, 0644);
			if (fd < 0)
				_exit(21);
			close(fd);
			user_view(&c0, "owned-child");
		}
		while (!wl_go_seen())
			wl_sleep_ms(1);
		pid_t now = getpid();
		if (pidns && now != 2)
			_exit(10);
		if (usermap) {
			user_view(&c1, "owned-child");
			if (getuid() != 1000 || geteuid() != 1000 || getgid() != 1000)
				_exit(22);
			if (same_user_view("child", &c0, &c1))
				_exit(23);
		} else if (user && (getuid() != 0 || geteuid() != 0))
			_exit(24);
		if (getppid() != me)
			_exit(11);
		int mine = open("lockfile", O_RDWR);
		if (mine < 0 || flock(mine, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK)
			_exit(13);
		struct utsname u;
		uname(&u);
		if (uts && strcmp(u.nodename, "stasis-ns") != 0)
			_exit(12);
		_exit(0);
	}
	if (pidns && child != 2)
		return 7;
	char pids[64];
	snprintf(pids, sizeof(pids), "%d %d\n", me, child);
	wl_write("pids", pids);
	wl_ready();
	wl_wait_go();

	if (getpid() != me)
		wl_fail("getpid() is %d, was %d", getpid(), me);
	for (int i = 0, fds[2] = { ghost, mfd }; i < 2; i++) {
		struct stat st;
		if (fds[i] < 0)
			continue;
		if (fstat(fds[i], &st) != 0 || st.st_uid != 0 || st.st_gid != 1000)
			wl_fail("the %s is owned by %d:%d, was 0:1000", i ? "memfd" : "removed file", (int)st.st_uid, (int)st.st_gid);
	}
	if (q >= 0) {
		struct msqid_ds ds;
		if (msgctl(q, IPC_STAT, &ds) != 0)
			wl_fail("the message queue is gone");
		else if (ds.msg_perm.uid != 1000 || ds.msg_perm.gid != 1000 || (ds.msg_perm.mode & 0777) != 0640)
			wl_fail("the message queue is owned by %d:%d mode %o, was 1000:1000 640", (int)ds.msg_perm.uid, (int)ds.msg_perm.gid, ds.msg_perm.mode & 0777);
		else if (ds.msg_perm.cuid != 0 || ds.msg_perm.cgid != 0)
			wl_fail("the message queue was created by %d:%d, was by 0:0 (the namespace's root)", (int)ds.msg_perm.cuid, (int)ds.msg_perm.cgid);
	}
	if (user) {
		user_view(&u1, "owned");
		same_user_view("root", &u0, &u1);
		if (getuid() != 0 || geteuid() != 0)
			wl_fail("getuid() is %d, geteuid() %d", getuid(), geteuid());
		/* It carries on as uid 0 there: it may make a file and own it. */
		int fd = open("owned-after", O_CREAT | O_WRONLY, 0644);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) != 0 || st.st_uid != 0)
			wl_fail("cannot make a file as uid 0 after the restore");
		if (fd >= 0)
			close(fd);
	}
	if (uts)
		check_names("root");
	if (ipc && read_long("/proc/sys/kernel/msgmax") != 12345)
		wl_fail("msgmax is %ld", read_long("/proc/sys/kernel/msgmax"));
	if (net && lo_flags() != up)
		wl_fail("lo flags are 0x%x, were 0x%x", lo_flags(), up);
	if (timens) {
		/* Both clocks carry on from where they were: the namespace's offsets came back. */
		clock_gettime(CLOCK_MONOTONIC, &m1);
		clock_gettime(CLOCK_BOOTTIME, &b1);
		if (m1.tv_sec < m0.tv_sec || m1.tv_sec > m0.tv_sec + 120)
			wl_fail("CLOCK_MONOTONIC went from %ld to %ld s", (long)m0.tv_sec, (long)m1.tv_sec);
		if (b1.tv_sec < b0.tv_sec || b1.tv_sec > b0.tv_sec + 120)
			wl_fail("CLOCK_BOOTTIME went from %ld to %ld s", (long)b0.tv_sec, (long)b1.tv_sec);
	}
	if (cgroup) {
		/* At the root of its cgroup namespace in every hierarchy: each line ends in ":/". */
		char buf[4096] = "", *line, *save;
		int fd = open("/proc/self/cgroup", O_RDONLY);
		if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0)
			wl_fail("cannot read /proc/self/cgroup");
		if (fd >= 0)
			close(fd);
		for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			size_t n = strlen(line);
			if (n < 2 || strcmp(line + n - 2, ":/") != 0)
				wl_fail("cgroup line %s is not at the namespace's root", line);
		}
	}
	int st;
	if (waitpid(child, &st, 0) != child)
		wl_fail("child %d is not mine any more", child);
	else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_fail("child ended with status 0x%x%s", st, WEXITSTATUS(st) == 13 ? " (the root's flock was not held again)" : WEXITSTATUS(st) >= 22 ? " (its ids or user namespace differ)" : "");
	return wl_finish(NULL);
}
