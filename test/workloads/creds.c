/* Credentials and prctl state. Started as root, the process sets oom_score_adj 321,
 * personality ADDR_NO_RANDOMIZE, THP disabled and (where it may) loginuid 4242, makes a
 * second thread that drops to uids 1011/1012/1013 and gids 2011/2012/2013 with no caps at
 * all, then drops itself to uids 1001/1002/1003 (fsuid 1004), gids 2001/2002/2003 (fsgid
 * 2004) and groups 3001,3002, keeping CAP_NET_BIND_SERVICE (effective, permitted,
 * inheritable, ambient) and CAP_KILL (permitted, inheritable), CAP_SYS_ADMIN and CAP_MKNOD
 * out of its bounding set, securebits KEEP_CAPS|NOROOT, no_new_privs, dumpable 1 again and
 * pdeath signal SIGWINCH. After restore each thread checks every value, and that it still
 * cannot do what it could not before: read a root-only file, become root, raise a cap.
 * Every id change is a raw syscall: glibc's wrappers change all threads. */
#include "wl.h"
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <linux/securebits.h>

#ifndef PR_SET_THP_DISABLE
#define PR_SET_THP_DISABLE 41
#define PR_GET_THP_DISABLE 42
#endif

struct caps { unsigned long long eff, prm, inh; };

static struct caps capget_self(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { 0 };
	struct caps c = { 0, 0, 0 };
	if (syscall(SYS_capget, &h, d) == 0) {
		c.eff = d[0].effective | (unsigned long long)d[1].effective << 32;
		c.prm = d[0].permitted | (unsigned long long)d[1].permitted << 32;
		c.inh = d[0].inheritable | (unsigned long long)d[1].inheritable << 32;
	}
	return c;
}

static int capset_self(unsigned long long eff, unsigned long long prm, unsigned long long inh)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = {
		{ (unsigned)eff, (unsigned)prm, (unsigned)inh },
		{ (unsigned)(eff >> 32), (unsigned)(prm >> 32), (unsigned)(inh >> 32) },
	};
	return syscall(SYS_capset, &h, d);
}

#define BIT(c) (1ULL << (c))

static void check_ids(const char *who, uid_t u0, uid_t u1, uid_t u2, uid_t ufs, gid_t g0, gid_t g1, gid_t g2, gid_t gfs)
{
	uid_t r, e, s;
	gid_t gr, ge, gs;
	syscall(SYS_getresuid, &r, &e, &s);
	syscall(SYS_getresgid, &gr, &ge, &gs);
	uid_t fs = syscall(SYS_setfsuid, -1);
	gid_t gfsnow = syscall(SYS_setfsgid, -1);
	if (r != u0 || e != u1 || s != u2 || fs != ufs)
		wl_fail("%s: uids %u/%u/%u/%u instead of %u/%u/%u/%u", who, r, e, s, fs, u0, u1, u2, ufs);
	if (gr != g0 || ge != g1 || gs != g2 || gfsnow != gfs)
		wl_fail("%s: gids %u/%u/%u/%u instead of %u/%u/%u/%u", who, gr, ge, gs, gfsnow, g0, g1, g2, gfs);
}

static void check_powerless(const char *who, unsigned long long notPermitted)
{
	int fd = open("secret", O_RDONLY);
	if (fd >= 0 || errno != EACCES)
		wl_fail("%s: opening a root-only file gave fd %d, errno %d (not EACCES)", who, fd, errno);
	if (fd >= 0)
		close(fd);
	if (syscall(SYS_setresuid, 0, 0, 0) == 0 || errno != EPERM)
		wl_fail("%s: setresuid(0) was not refused with EPERM", who);
	struct caps c = capget_self();
	if (capset_self(c.eff, c.prm | notPermitted, c.inh) == 0 || errno != EPERM)
		wl_fail("%s: raising permitted caps 0x%llx was not refused with EPERM", who, notPermitted);
}

static volatile int thread_ready, thread_go;
static char thread_why[1024];

static void *second(void *arg)
{
	(void)arg;
	gid_t groups[] = { 3011 };
	if (syscall(SYS_setgroups, 1, groups) || syscall(SYS_setresgid, 2011, 2012, 2013) || syscall(SYS_setresuid, 1011, 1012, 1013))
		snprintf(thread_why, sizeof(thread_why), "thread setup failed: %s", strerror(errno));
	thread_ready = 1;
	while (!thread_go)
		wl_sleep_ms(1);
	check_ids("thread", 1011, 1012, 1013, 1012, 2011, 2012, 2013, 2012);
	gid_t got[8];
	int n = syscall(SYS_getgroups, 8, got);
	if (n != 1 || got[0] != 3011)
		wl_fail("thread: %d groups, the first %u, instead of 3011 alone", n, n > 0 ? got[0] : 0);
	struct caps c = capget_self();
	if (c.eff || c.prm || c.inh)
		wl_fail("thread: caps eff 0x%llx prm 0x%llx inh 0x%llx instead of none", c.eff, c.prm, c.inh);
	check_powerless("thread", BIT(CAP_DAC_OVERRIDE));
	return NULL;
}

static void write_self(const char *file, const char *value)
{
	int fd = open(file, O_WRONLY);
	if (fd < 0 || write(fd, value, strlen(value)) != (ssize_t)strlen(value))
		wl_fail("cannot write %s to %s: %s", value, file, strerror(errno));
	if (fd >= 0)
		close(fd);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	if (chmod(".", 0777))
		return 2;
	int fd = open("secret", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "root only\n", 10) != 10)
		return 2;
	close(fd);

	write_self("/proc/self/oom_score_adj", "321");
	personality(ADDR_NO_RANDOMIZE);
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		wl_fail("PR_SET_THP_DISABLE: %s", strerror(errno));
	fd = open("/proc/self/loginuid", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "4242", 4) != 4) { /* immutable loginuid: the test compares what there is */ }
		close(fd);
	}

	pthread_t t;
	pthread_create(&t, NULL, second, NULL);
	while (!thread_ready)
		wl_sleep_ms(1);
	if (thread_why[0])
		wl_fail("%s", thread_why);

	gid_t groups[] = { 3001, 3002 };
	if (syscall(SYS_setgroups, 2, groups))
		wl_fail("setgroups: %s", strerror(errno));
	if (prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0))
		wl_fail("PR_SET_SECUREBITS: %s", strerror(errno));
	if (syscall(SYS_setresgid, 2001, 2002, 2003) || syscall(SYS_setresuid, 1001, 1002, 1003))
		wl_fail("set*id: %s", strerror(errno));
	syscall(SYS_setfsgid, 2004);
	syscall(SYS_setfsuid, 1004);
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0) || prctl(PR_CAPBSET_DROP, CAP_MKNOD, 0, 0, 0))
		wl_fail("PR_CAPBSET_DROP: %s", strerror(errno));
	if (prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS | SECBIT_NOROOT, 0, 0, 0))
		wl_fail("PR_SET_SECUREBITS: %s", strerror(errno));
	unsigned long long keep = BIT(CAP_NET_BIND_SERVICE) | BIT(CAP_KILL);
	if (capset_self(BIT(CAP_NET_BIND_SERVICE), keep, keep))
		wl_fail("capset: %s", strerror(errno));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0))
		wl_fail("PR_CAP_AMBIENT_RAISE: %s", strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		wl_fail("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	prctl(PR_SET_PDEATHSIG, SIGWINCH, 0, 0, 0);

	wl_ready();
	wl_wait_go();

	check_ids("main", 1001, 1002, 1003, 1004, 2001, 2002, 2003, 2004);
	gid_t got[8];
	int n = syscall(SYS_getgroups, 8, got);
	if (n != 2 || got[0] != 3001 || got[1] != 3002)
		wl_fail("main: %d groups instead of 3001,3002", n);
	struct caps c = capget_self();
	if (c.eff != BIT(CAP_NET_BIND_SERVICE) || c.prm != keep || c.inh != keep)
		wl_fail("main: caps eff 0x%llx prm 0x%llx inh 0x%llx", c.eff, c.prm, c.inh);
	if (prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) != 0 || prctl(PR_CAPBSET_READ, CAP_MKNOD, 0, 0, 0) != 0 ||
	    prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0) != 1)
		wl_fail("main: the bounding set changed");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_BIND_SERVICE, 0, 0) != 1 ||
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_KILL, 0, 0) != 0)
		wl_fail("main: the ambient set changed");
	int bits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	if (bits != (SECBIT_KEEP_CAPS | SECBIT_NOROOT))
		wl_fail("main: securebits 0x%x", bits);
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		wl_fail("main: no_new_privs is off");
	if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 1)
		wl_fail("main: dumpable is %d", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
	if (prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) != 1)
		wl_fail("main: THP is no longer disabled");
	int sig = 0;
	prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0);
	if (sig != SIGWINCH)
		wl_fail("main: pdeath signal %d", sig);
	int pers = personality(0xffffffff);
	if (pers != ADDR_NO_RANDOMIZE)
		wl_fail("main: personality 0x%x", pers);
	char buf[32] = { 0 };
	fd = open("/proc/self/oom_score_adj", O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0 || atoi(buf) != 321)
		wl_fail("main: oom_score_adj %s", buf);
	if (fd >= 0)
		close(fd);
	check_powerless("main", BIT(CAP_DAC_OVERRIDE));

	thread_go = 1;
	pthread_join(t, NULL);
	return wl_finish(NULL);
}
