/* A socket pair made by a task that is now a zombie, held by its child (given to the root, a
 * child subreaper): z makes the pair, forks c, which keeps both ends, and exits unreaped. */
#include "wl.h"
#include <sys/prctl.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	pid_t root = getpid();
	if (fork() == 0) { /* z */
		int sk[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sk) != 0)
			_exit(2);
		if (fork() == 0) { /* c */
			while (getppid() != root)
				wl_sleep_ms(1);
			wl_write("c-adopted", "");
			wl_wait_go();
			_exit(0);
		}
		_exit(0);
	}
	wl_wait_file("c-adopted");
	wl_ready();
	wl_wait_go();
	return wl_finish(NULL);
}
