/* A parent with a child that holds an inotify instance (a kind stasis does not dump yet): the dump
 * of the tree must fail as a whole and leave both tasks running, untraced. */
#include "wl.h"
#include <sys/wait.h>
#include <sys/inotify.h>

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	pid_t c = fork();
	if (c == 0) {
		int in = inotify_init1(0);
		if (in < 0 || inotify_add_watch(in, ".", IN_CREATE) < 0)
			_exit(9);
		wl_write("child-ready", "1\n");
		char buf[4096];
		/* The watch sees every file created here, `go` at last. */
		while (!wl_go_seen())
			if (read(in, buf, sizeof(buf)) <= 0)
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
