/* An eventfd (a kind stasis cannot dump yet): the dump must fail and leave this running. */
#include "wl.h"
#include <stdint.h>
#include <sys/eventfd.h>

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int efd = eventfd(7, 0);
	wl_ready();
	wl_wait_go();
	uint64_t v = 0;
	if (read(efd, &v, 8) != 8 || v != 7)
		wl_fail("eventfd holds %llu, want 7", (unsigned long long)v);
	return wl_finish(NULL);
}
