/* Seccomp filters across a checkpoint: the process installs a filter on every thread at once
 * (SECCOMP_FILTER_FLAG_TSYNC) that fails getppid() with errno 77, then thread B adds one of
 * its own (SECCOMP_FILTER_FLAG_LOG) that fails getsid() with errno 78. After restore each
 * thread gets exactly its errnos and the other syscalls work; a TSYNC from the leader fails
 * while B lives (its filter is not an ancestor of the leader's), naming B, and works once B
 * has exited. */
#include "wl.h"
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>

static int install(int nr, int err, unsigned flags)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

static volatile int b_ready, b_go, b_done, b_exit;
static volatile pid_t b_tid;

static void check(const char *who, long nr, int want)
{
	errno = 0;
	long r = syscall(nr, 0);
	if (want ? (r != -1 || errno != want) : r < 0)
		wl_fail("%s: syscall %ld gave %ld errno %d, not %s %d", who, nr, r, errno, want ? "errno" : "success", want);
}

static void *thread_b(void *arg)
{
	(void)arg;
	b_tid = syscall(SYS_gettid);
	while (!b_ready)
		wl_sleep_ms(1);
	if (install(SYS_getsid, 78, SECCOMP_FILTER_FLAG_LOG))
		wl_fail("thread B: seccomp: %s", strerror(errno));
	b_ready = 2;
	while (!b_go)
		wl_sleep_ms(1);
	check("thread B", SYS_getppid, 77);
	check("thread B", SYS_getsid, 78);
	check("thread B", SYS_getpid, 0);
	b_done = 1;
	while (!b_exit)
		wl_sleep_ms(1);
	return NULL;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	pthread_t b;
	pthread_create(&b, NULL, thread_b, NULL);
	if (install(SYS_getppid, 77, SECCOMP_FILTER_FLAG_TSYNC))
		wl_fail("main: seccomp tsync: %s", strerror(errno));
	b_ready = 1;
	while (b_ready != 2)
		wl_sleep_ms(1);
	wl_ready();
	wl_wait_go();
	check("main", SYS_getppid, 77);
	check("main", SYS_getsid, 0);
	b_go = 1;
	while (!b_done)
		wl_sleep_ms(1);
	long r = install(SYS_getpgrp, 79, SECCOMP_FILTER_FLAG_TSYNC);
	if (r != b_tid)
		wl_fail("main: a TSYNC filter while B lives gave %ld, not B's tid %d", r, (int)b_tid);
	b_exit = 1;
	pthread_join(b, NULL);
	if ((r = install(SYS_getpgrp, 79, SECCOMP_FILTER_FLAG_TSYNC)) != 0)
		wl_fail("main: a TSYNC filter once B is gone gave %ld", r);
	check("main", SYS_getpgrp, 79);
	return wl_finish(NULL);
}
