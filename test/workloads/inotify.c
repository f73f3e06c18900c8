/* An inotify instance (a kind stasis cannot dump yet): the dump must fail and leave this
 * running, its watch still working. */
#include "wl.h"
#include <sys/inotify.h>

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int in = inotify_init1(IN_NONBLOCK);
	if (in < 0 || inotify_add_watch(in, ".", IN_CREATE) < 0)
		return 3;
	wl_ready();
	wl_wait_go();
	char buf[4096];
	if (read(in, buf, sizeof(buf)) <= 0)
		wl_fail("the inotify watch saw nothing created");
	return wl_finish(NULL);
}
