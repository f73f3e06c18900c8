/* An AIO context (io_setup) with a completed request not reaped: stasis must refuse it.
 * After `go` the event is still there to reap. */
#include "wl.h"
#include <linux/aio_abi.h>
#include <sys/syscall.h>

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	aio_context_t ctx = 0;
	char buf[1] = { 'x' };
	int fd = open("/dev/null", O_WRONLY);
	struct iocb cb = { .aio_fildes = fd, .aio_lio_opcode = IOCB_CMD_PWRITE, .aio_buf = (unsigned long)buf, .aio_nbytes = 1, .aio_data = 42 };
	struct iocb *cbs[1] = { &cb };
	if (fd < 0 || syscall(SYS_io_setup, 8, &ctx) || syscall(SYS_io_submit, ctx, 1, cbs) != 1)
		return 3;
	wl_ready();
	wl_wait_go();
	struct io_event ev;
	struct timespec ts = { 0, 0 };
	if (syscall(SYS_io_getevents, ctx, 1, 1, &ev, &ts) != 1 || ev.data != 42)
		wl_fail("the completed request is gone; ");
	return wl_finish(NULL);
}
