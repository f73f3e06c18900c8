/* An open file that lost its name but keeps another link: a.dat (fd 10, read-write, at
 * offset 3) linked as b.dat, then a.dat unlinked. After go fd 10 is still the inode of b.dat
 * (a write through it shows in b.dat), at offset 3, its link reads `.../a.dat (deleted)`,
 * and no temporary link of the checkpoint is left in the directory. */
#include "wl.h"
#include <dirent.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int fd = open("a.dat", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "hello", 5) != 5 || link("a.dat", "b.dat") != 0 || dup2(fd, 10) != 10)
		return 3;
	close(fd);
	if (lseek(10, 3, SEEK_SET) != 3 || unlink("a.dat") != 0)
		return 4;
	struct stat before;
	fstat(10, &before);
	wl_ready();
	wl_wait_go();
	struct stat now, b;
	if (fstat(10, &now) != 0 || stat("b.dat", &b) != 0 || now.st_ino != before.st_ino || now.st_ino != b.st_ino || now.st_dev != b.st_dev)
		wl_fail("fd 10 is no longer the inode of b.dat; ");
	if (lseek(10, 0, SEEK_CUR) != 3)
		wl_fail("fd 10 is at offset %ld, not 3; ", (long)lseek(10, 0, SEEK_CUR));
	char buf[16] = { 0 };
	int r = open("b.dat", O_RDONLY);
	if (write(10, "X", 1) != 1 || r < 0 || read(r, buf, sizeof(buf) - 1) != 5 || strcmp(buf, "helXo"))
		wl_fail("a write through fd 10 does not show in b.dat (it reads \"%s\"); ", buf);
	char link[4096] = { 0 };
	ssize_t n = readlink("/proc/self/fd/10", link, sizeof(link) - 1);
	if (n < 0 || !strstr(link, "/a.dat (deleted)"))
		wl_fail("fd 10 reads %s; ", link);
	DIR *d = opendir(".");
	for (struct dirent *e; d && (e = readdir(d));)
		if (!strncmp(e->d_name, "link_remap", 10) || !strcmp(e->d_name, "a.dat"))
			wl_fail("%s is left in the directory; ", e->d_name);
	return wl_finish(NULL);
}
