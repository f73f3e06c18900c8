/* Private memory shared copy-on-write across fork: a parent fills 64 pages and forks a child,
 * which forks a grandchild; the child rewrites page 1 and drops page 2 (MADV_DONTNEED), the
 * grandchild rewrites page 3. Every task writes the area's address to `area`, and at `go`
 * checks its own bytes. The test compares their pagemap entries (shared pages have the same
 * frame) before the dump and after the restore. */
#include "wl.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define NPAGES 64
static char *area;

static int check(int who)
{
	for (int p = 0; p < NPAGES; p++) {
		char want = (char)(p + 1);
		if (who >= 1 && p == 1)
			want = 'c';
		if (who >= 1 && p == 2)
			want = 0;
		if (who == 2 && p == 3)
			want = 'g';
		for (int i = 0; i < 4096; i++)
			if (area[p * 4096 + i] != want)
				return p + 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	area = mmap(NULL, NPAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int p = 0; p < NPAGES; p++)
		memset(area + p * 4096, p + 1, 4096);
	pid_t c = fork();
	if (c == 0) {
		memset(area + 4096, 'c', 4096);
		madvise(area + 2 * 4096, 4096, MADV_DONTNEED);
		pid_t g = fork();
		if (g == 0) {
			memset(area + 3 * 4096, 'g', 4096);
			wl_write("grandchild-ready", "1\n");
			wl_wait_go();
			_exit(check(2));
		}
		while (access("grandchild-ready", F_OK) != 0)
			wl_sleep_ms(1);
		char t[32];
		snprintf(t, sizeof(t), "%d\n", g);
		wl_write("grandchild", t);
		wl_wait_go();
		int st = 0;
		if (waitpid(g, &st, 0) != g || !WIFEXITED(st))
			_exit(100);
		_exit(WEXITSTATUS(st) ? 50 + WEXITSTATUS(st) : check(1));
	}
	while (access("grandchild", F_OK) != 0)
		wl_sleep_ms(1);
	char text[64];
	snprintf(text, sizeof(text), "%lx %d\n", (unsigned long)area, c);
	wl_write("area", text);
	wl_ready();
	wl_wait_go();
	int st = 0, bad = check(0);
	if (bad)
		wl_fail("the parent's page %d is wrong", bad - 1);
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		wl_fail("a descendant found its page wrong (status %x)", st);
	return wl_finish(NULL);
}
