/* A parent with a child that holds an io_uring instance (a kind stasis does not dump): the dump
 * of the tree must fail as a whole and leave both tasks running, untraced. */
#include "wl.h"
#include <sys/wait.h>
#include <sys/syscall.h>
#include <linux/io_uring.h>

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	pid_t c = fork();
	if (c == 0) {
		struct io_uring_params p;
		memset(&p, 0, sizeof(p));
		int ring = syscall(__NR_io_uring_setup, 4, &p);
		if (ring < 0)
			_exit(9);
		wl_write("child-ready", "1\n");
		wl_wait_go();
		/* The ring still works. */
		_exit(syscall(__NR_io_uring_enter, ring, 0, 0, 0, NULL, 0) == 0 ? 7 : 8);
	}
	while (access("child-ready", F_OK) != 0)
		wl_sleep_ms(1);
	char text[32];
	snprintf(text, sizeof(text), "%d\n", c);
	wl_write("child", text);
	wl_ready();
	wl_wait_go();
	int st = 0;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
		wl_fail("the child did not exit with 7 (status %x)", st);
	return wl_finish(NULL);
}
