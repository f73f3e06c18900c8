/* A pipe whose read end does signal-driven I/O (O_ASYNC, F_SETOWN to itself), which stasis
 * cannot restore yet: the dump must fail and leave it running with its pipe as it was. With
 * argument "owner" the read end has only an owner, no O_ASYNC. */
#include "pipe-wl.h"
#include <signal.h>

static volatile int sigio;
static void on_sigio(int s) { (void)s; sigio++; }

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int only_owner = argc > 2 && strcmp(argv[2], "owner") == 0;
	signal(SIGIO, on_sigio);
	pipe_at(5, 6);
	if (fcntl(5, F_SETOWN, getpid()) < 0)
		wl_fail("F_SETOWN: %s", strerror(errno));
	if (!only_owner)
		fcntl(5, F_SETFL, fcntl(5, F_GETFL) | O_ASYNC);
	put(6, 1, 0, 4000);
	wl_ready();
	wl_wait_go();
	if (!only_owner && sigio == 0)
		wl_fail("no SIGIO came for the data written");
	expect(5, 1, 0, 4000, "the pipe after the failed dump");
	return wl_finish(NULL);
}
