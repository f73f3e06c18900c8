/* An io_uring instance (a kind stasis cannot dump): the dump must fail and leave this
 * running, its ring still working. */
#include "wl.h"
#include <sys/syscall.h>
#include <linux/io_uring.h>

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	int ring = syscall(__NR_io_uring_setup, 4, &p);
	if (ring < 0)
		return 3;
	wl_ready();
	wl_wait_go();
	if (syscall(__NR_io_uring_enter, ring, 0, 0, 0, NULL, 0) != 0)
		wl_fail("io_uring_enter on the ring failed: %m");
	return wl_finish(NULL);
}
