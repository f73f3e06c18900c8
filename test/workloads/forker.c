/* A parent with a child that holds an eventfd (a kind stasis does not dump yet): the dump
 * of the tree must fail as a whole and leave both tasks running, untraced. */
#include "wl.h"
#include <sys/wait.h>
#include <sys/eventfd.h>
#include <stdint.h>

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	pid_t c = fork();
	if (c == 0) {
		int efd = eventfd(5, 0);
		uint64_t v = 0;
		wl_write("child-ready", "1\n");
		wl_wait_go();
		if (read(efd, &v, sizeof(v)) != sizeof(v) || v != 5)
			_exit(8);
		_exit(7);
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
