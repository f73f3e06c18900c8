/* File leases held across a checkpoint. Before ready: a read lease on lease.dat (fd 10,
 * opened read-only), and a write lease on brk.dat (fd 11, opened write-only) that an open
 * for reading has started to break (down to a read lease: its SIGIO was counted). After go
 * both are held by this process: F_GETLEASE reads F_RDLCK on each, fd 11's lease is still
 * being broken, no break signal came meanwhile, and an open for writing of lease.dat is
 * refused with EWOULDBLOCK and signals this process (the lease's owner is the restored task). */
#include "wl.h"
#include <errno.h>
#include <signal.h>

static volatile sig_atomic_t sigios;

static void on_sigio(int sig)
{
	(void)sig;
	sigios++;
}

/* Whether fdinfo of fd shows a lease in `mode` (ACTIVE, BREAKING) taken by this process. */
static int lease_shown(int fd, const char *mode)
{
	char path[64], buf[4096], want[128];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	int f = open(path, O_RDONLY);
	ssize_t n = f < 0 ? -1 : read(f, buf, sizeof(buf) - 1);
	if (f >= 0)
		close(f);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	snprintf(want, sizeof(want), "LEASE  %s ", mode);
	char *at = strstr(buf, want), type[16];
	int pid;
	return at && sscanf(at + strlen(want), "%15s %d", type, &pid) == 2 && !strcmp(type, "READ") && pid == getpid();
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	signal(SIGIO, on_sigio);
	int r = open("lease.dat", O_RDONLY | O_CREAT, 0644), w = open("brk.dat", O_WRONLY | O_CREAT, 0644);
	if (r < 0 || w < 0 || dup2(r, 10) != 10 || dup2(w, 11) != 11)
		return 3;
	close(r);
	close(w);
	if (fcntl(10, F_SETLEASE, F_RDLCK) != 0 || fcntl(11, F_SETLEASE, F_WRLCK) != 0)
		return 4;
	if (open("brk.dat", O_RDONLY | O_NONBLOCK) >= 0 || errno != EWOULDBLOCK)
		return 5;
	while (!sigios)
		wl_sleep_ms(1);
	wl_ready();
	wl_wait_go();
	if (fcntl(10, F_GETLEASE) != F_RDLCK || !lease_shown(10, "ACTIVE"))
		wl_fail("the read lease of fd 10 is not held by this process after restore (F_GETLEASE %d); ", fcntl(10, F_GETLEASE));
	if (fcntl(11, F_GETLEASE) != F_RDLCK || !lease_shown(11, "BREAKING"))
		wl_fail("the lease of fd 11 is not being broken to a read lease after restore (F_GETLEASE %d); ", fcntl(11, F_GETLEASE));
	if (sigios != 1)
		wl_fail("%d break signals came, 1 expected; ", (int)sigios);
	int o = open("lease.dat", O_WRONLY | O_NONBLOCK);
	if (o >= 0 || errno != EWOULDBLOCK)
		wl_fail("an open for writing was not refused by the read lease (%s); ", o >= 0 ? "it opened" : strerror(errno));
	for (int i = 0; i < 1000 && sigios < 2; i++)
		wl_sleep_ms(1);
	if (sigios != 2)
		wl_fail("the read lease's break did not signal this process; ");
	return wl_finish(NULL);
}
