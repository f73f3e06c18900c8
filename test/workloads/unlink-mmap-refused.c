/* A mapping stasis must refuse to dump, then goes on untouched: `linked` maps m.bin shared
 * and unlinks it while m.lnk keeps the inode; `big` maps a deleted m.bin of 2 MiB of data
 * (past the default ghost limit). After `go` the mapping still holds its bytes. */
#include "wl.h"
#include <sys/mman.h>

#define LEN (2 << 20)

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int big = argc > 2 && !strcmp(argv[2], "big");
	size_t len = big ? LEN : 4096;
	int fd = open("m.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, len))
		return 3;
	unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return 3;
	for (size_t i = 0; i < len; i++)
		m[i] = (unsigned char)(i * 7 + 3);
	close(fd);
	if ((!big && link("m.bin", "m.lnk")) || unlink("m.bin"))
		return 3;
	wl_ready();
	wl_wait_go();
	for (size_t i = 0; i < len; i++)
		if (m[i] != (unsigned char)(i * 7 + 3)) {
			wl_fail("byte %zu changed; ", i);
			break;
		}
	return wl_finish(NULL);
}
