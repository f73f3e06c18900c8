/* mlock()ed memory of a task that gave up root afterwards (zdtm's mlock_setuid): a locked
 * anonymous area, written, and a locked private file mapping; then setuid(18943). After
 * restore both areas are still locked (VM_LOCKED in smaps), hold their bytes, and the task is
 * still uid 18943. `areas` holds the two start addresses. */
#include "wl.h"
#include <sys/mman.h>
#include <stdint.h>
#include <sys/stat.h>

#define ANON (17 * 4096)

static int locked(void *at)
{
	char want[32], line[512];
	snprintf(want, sizeof(want), "%lx-", (unsigned long)at);
	FILE *f = fopen("/proc/self/smaps", "r");
	int in = 0, lo = -1;
	while (f && fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && !strncmp(line, want, strlen(want)))
			in = 1;
		else if (in && !strncmp(line, "VmFlags:", 8)) {
			lo = strstr(line, " lo") != NULL;
			break;
		}
	}
	if (f)
		fclose(f);
	return lo;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	unsigned char *anon = mmap(NULL, ANON, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = open("data.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
	unsigned char page[4096];
	for (int i = 0; i < 4096; i++)
		page[i] = i * 13;
	if (anon == MAP_FAILED || fd < 0 || write(fd, page, 4096) != 4096)
		return 3;
	unsigned char *file = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (file == MAP_FAILED || mlock(anon, ANON) || mlock(file, 4096))
		return 3;
	for (int i = 0; i < ANON; i++)
		anon[i] = (unsigned char)(i * 7 + 1);
	char text[64];
	snprintf(text, sizeof(text), "%lx %lx\n", (unsigned long)anon, (unsigned long)file);
	wl_write("areas", text);
	/* Its directory stays writable for it (ready, result) once it is not root. */
	if (chmod(".", 0777) || setuid(18943))
		return 3;
	wl_ready();
	wl_wait_go();
	if (locked(anon) != 1)
		wl_fail("the anonymous area is not locked (%d); ", locked(anon));
	if (locked(file) != 1)
		wl_fail("the file mapping is not locked (%d); ", locked(file));
	for (int i = 0; i < ANON; i++)
		if (anon[i] != (unsigned char)(i * 7 + 1)) {
			wl_fail("anonymous byte %d is %d; ", i, anon[i]);
			break;
		}
	if (memcmp(file, page, 4096))
		wl_fail("the file mapping's bytes differ; ");
	if (getuid() != 18943 || geteuid() != 18943)
		wl_fail("uid %d euid %d, not 18943; ", getuid(), geteuid());
	return wl_finish(NULL);
}
