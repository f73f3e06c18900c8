/* A tree in namespaces of its own (started by `unshare --fork` with some of --uts --ipc
 * --net --pid --cgroup --time): sets a hostname and domainname, an IPC sysctl and lo up, forks a child; after
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
	struct timespec m0, b0, m1, b1;
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
	pid_t child = fork();
	if (child == 0) {
		close(lk);
		while (!wl_go_seen())
			wl_sleep_ms(1);
		pid_t now = getpid();
		if (pidns && now != 2)
			_exit(10);
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
		wl_fail("child ended with status 0x%x%s", st, WEXITSTATUS(st) == 13 ? " (the root's flock was not held again)" : "");
	return wl_finish(NULL);
}
