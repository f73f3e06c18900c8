/* Memfds without a page of data: one empty, one truncated to two pages and never written, held
 * open on fds 5 and 6. After the restore each has its size again, reads as zeroes, and takes
 * a write. (CRIU writes no pagemap-shmem image for such a memfd.) */
#include "wl.h"
#include <sys/mman.h>
#include <sys/stat.h>

static void check(int fd, off_t size, const char *name)
{
	struct stat st;
	if (fstat(fd, &st) || st.st_size != size) {
		wl_fail("%s is %lld bytes, not %lld", name, (long long)st.st_size, (long long)size);
		return;
	}
	char buf[8192];
	if (size && (pread(fd, buf, size, 0) != size || memcmp(buf, (char[8192]){ 0 }, size)))
		wl_fail("%s does not read as zeroes", name);
	if (pwrite(fd, "x", 1, 0) != 1)
		wl_fail("%s takes no write", name);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int a = memfd_create("empty", MFD_CLOEXEC), b = memfd_create("sized", 0);
	if (a < 0 || b < 0 || ftruncate(b, 8192) || dup2(a, 5) != 5 || dup2(b, 6) != 6)
		return 4;
	close(a);
	close(b);
	wl_ready();
	wl_wait_go();
	check(5, 0, "the empty memfd");
	check(6, 8192, "the truncated memfd");
	return wl_finish(NULL);
}
