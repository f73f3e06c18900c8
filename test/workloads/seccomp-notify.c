/* A seccomp filter that hands getppid() to a user-space listener (SECCOMP_RET_USER_NOTIF).
 * None is installed here, so getppid() fails with ENOSYS; a dump must refuse the task (a
 * listener, where there is one, is not restored) and leave it running: getppid() still
 * fails with ENOSYS and getpid() works. */
#include "wl.h"
#include <errno.h>
#include <stddef.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		wl_fail("seccomp: %s", strerror(errno));
	wl_ready();
	wl_wait_go();
	errno = 0;
	if (syscall(SYS_getppid) != -1 || errno != ENOSYS)
		wl_fail("getppid did not fail with ENOSYS (errno %d)", errno);
	if (syscall(SYS_getpid) <= 0)
		wl_fail("getpid failed: %s", strerror(errno));
	return wl_finish(NULL);
}
