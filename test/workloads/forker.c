/* A parent with a child (a tree, not supported yet): the dump must fail and leave both running. */
#include "wl.h"
#include <sys/wait.h>

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	pid_t c = fork();
	if (c == 0) {
		wl_wait_go();
		_exit(7);
	}
	wl_ready();
	wl_wait_go();
	int st = 0;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
		wl_fail("the child did not exit with 7 (status %x)", st);
	return wl_finish(NULL);
}
