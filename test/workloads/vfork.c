/* A parent suspended in vfork() while its child waits for `go`: the dump must refuse it
 * (the parent cannot be stopped, the two share one address space) and leave both running. */
#include "wl.h"
#include <sys/wait.h>

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	pid_t pid = vfork();
	if (pid == 0) {
		wl_ready();
		wl_wait_go();
		_exit(7);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 7)
		wl_fail("the vfork child did not exit with 7 (status 0x%x)", status);
	return wl_finish(NULL);
}
