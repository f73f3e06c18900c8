/* A counter written to stdout, one line a millisecond ("N\n", atomic: shorter than PIPE_BUF),
 * as a container's process writes to the pipe its runtime reads. The test reads it; after a
 * restore the lines must go on from where they stopped, none missing and none twice. It
 * stops 100 lines after `go` and checks that every write went through. */
#include "wl.h"
#include <signal.h>

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	unsigned long long n, stop = ~0ull;
	for (n = 0;; n++) {
		char line[32];
		int len = snprintf(line, sizeof(line), "%llu\n", n);
		ssize_t w = write(1, line, len);
		if (w != len)
			wl_fail("write of line %llu returned %zd", n, w);
		if (n == 50)
			wl_ready();
		if (n >= stop || wl_failed)
			break;
		if (stop == ~0ull && n > 50 && wl_go_seen())
			stop = n + 100;
		wl_sleep_ms(1);
	}
	char extra[64];
	snprintf(extra, sizeof(extra), "n=%llu\n", n);
	return wl_finish(extra);
}
