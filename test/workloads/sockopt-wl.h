/* Integer socket options of the socket workloads: read one (a failure is the workload's),
 * set one (a failure is its set-up's, exit 8). */
#include "wl.h"
#include <errno.h>
#include <sys/socket.h>

static inline int geti(int fd, int level, int opt)
{
	int v = -1;
	socklen_t l = sizeof(v);
	if (getsockopt(fd, level, opt, &v, &l) < 0)
		wl_fail("getsockopt(%d, %d, %d): %s", fd, level, opt, strerror(errno));
	return v;
}

static inline void seti(int fd, int level, int opt, int v)
{
	if (setsockopt(fd, level, opt, &v, sizeof(v)) < 0)
		exit(8);
}
