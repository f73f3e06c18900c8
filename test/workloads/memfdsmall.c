/* A memfd smaller than a page (5 bytes), mapped shared and held open: after the restore it
 * is still 5 bytes long (its last page is dumped whole, but not written back past its end)
 * and holds the same bytes, through the fd and through the mapping. A second memfd holds a
 * script and is run with execveat() by a child, before and after (an O_RDWR fd reopened
 * through /proc would make the kernel refuse with ETXTBSY). */
#include "wl.h"
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <errno.h>

static int run(int fd)
{
	pid_t c = fork();
	if (c == 0) {
		char *argv[] = { "true", NULL }, *envp[] = { NULL };
		syscall(SYS_execveat, fd, "", argv, envp, 0x1000 /* AT_EMPTY_PATH */);
		_exit(errno);
	}
	int st = -1;
	waitpid(c, &st, 0);
	return st;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int fd = memfd_create("small", 0);
	if (fd < 0 || write(fd, "hello", 5) != 5)
		wl_fail("memfd_create/write");
	char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		wl_fail("mmap");
	p[1] = 'E'; /* through the mapping */
	int ex = memfd_create("script", 0);
	if (ex < 0 || write(ex, "#!/bin/true\n", 12) != 12 || run(ex) != 0)
		wl_fail("the script memfd did not run before the dump");
	wl_ready();
	wl_wait_go();
	struct stat st;
	char buf[16] = "";
	if (fstat(fd, &st) || st.st_size != 5)
		wl_fail("the memfd is %ld bytes long, not 5", (long)st.st_size);
	if (pread(fd, buf, sizeof(buf), 0) != 5 || memcmp(buf, "hEllo", 5))
		wl_fail("the memfd holds '%.16s'", buf);
	if (memcmp(p, "hEllo", 5))
		wl_fail("the mapping holds '%.5s'", p);
	for (int i = 5; i < 4096; i++)
		if (p[i]) {
			wl_fail("the mapping's byte %d past the end is %d", i, p[i]);
			break;
		}
	int rst = run(ex);
	if (rst != 0)
		wl_fail("execveat() of the memfd failed after the restore (status 0x%x)", rst);
	return wl_finish(NULL);
}
