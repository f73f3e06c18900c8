/* THP disabled except where advised (PR_THP_DISABLE_EXCEPT_ADVISED, Linux 6.18), which the
 * image has no place for: the dump must refuse it and leave the process running. Writes
 * `unsupported` instead when the kernel does not know the flag. */
#include "wl.h"
#include <sys/prctl.h>

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	if (prctl(41 /* PR_SET_THP_DISABLE */, 1, 1 << 1 /* PR_THP_DISABLE_EXCEPT_ADVISED */, 0, 0))
		wl_write("unsupported", "");
	wl_ready();
	wl_wait_go();
	if (prctl(42 /* PR_GET_THP_DISABLE */, 0, 0, 0, 0) == 1)
		wl_fail("THP-disable lost its except-advised flag");
	return wl_finish(NULL);
}
