/* Things removed while open: the cwd a/in (rmdir'd, and a/ with it), a directory b/sub
 * open at fd 10 (rmdir'd), a FIFO at fd 11 holding "xy" (unlinked), a symlink ln -> target
 * open with O_PATH | O_NOFOLLOW at fd 12 (unlinked). After go each is still what it was,
 * deleted: the links of /proc/self read `... (deleted)` under the old names, the FIFO gives
 * its bytes, the symlink its target; and the directory holds nothing but b/. */
#include "wl.h"
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

static char top[4096];

static void expect_link(const char *what, const char *link, const char *want)
{
	char got[4096] = { 0 }, full[8300];
	snprintf(full, sizeof(full), "%s/%s (deleted)", top, want);
	if (readlink(link, got, sizeof(got) - 1) < 0 || strcmp(got, full))
		wl_fail("%s reads \"%s\", not \"%s\"; ", what, got, full);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	if (!getcwd(top, sizeof(top)))
		return 3;
	if (mkdir("a", 0755) || mkdir("a/in", 0711) || mkdir("b", 0755) || mkdir("b/sub", 0750) || mkfifo("f", 0640) ||
	    symlink("target", "ln"))
		return 3;
	int d = open("b/sub", O_RDONLY | O_DIRECTORY), f = open("f", O_RDWR), l = open("ln", O_PATH | O_NOFOLLOW);
	int in = open("a/in", O_RDONLY | O_DIRECTORY), t = open(".", O_RDONLY | O_DIRECTORY);
	if (d < 0 || f < 0 || l < 0 || in < 0 || t < 0 || dup2(d, 10) != 10 || dup2(f, 11) != 11 || dup2(l, 12) != 12)
		return 4;
	close(d);
	close(f);
	close(l);
	if (write(11, "xy", 2) != 2 || rmdir("b/sub") || unlink("f") || unlink("ln") || rmdir("a/in") || rmdir("a"))
		return 5;
	wl_ready();
	/* From now on the cwd is the removed a/in; the protocol's files are reached through t. */
	if (fchdir(in))
		return 6;
	close(in);
	while (faccessat(t, "go", F_OK, 0))
		wl_sleep_ms(1);
	expect_link("the cwd", "/proc/self/cwd", "a/in");
	struct stat st;
	if (stat(".", &st) || !S_ISDIR(st.st_mode) || st.st_nlink != 0 || (st.st_mode & 07777) != 0711)
		wl_fail("the cwd is not a removed directory of mode 0711; ");
	if (fchdir(t))
		return 7;
	expect_link("fd 10", "/proc/self/fd/10", "b/sub");
	if (fstat(10, &st) || !S_ISDIR(st.st_mode) || st.st_nlink != 0 || (st.st_mode & 07777) != 0750)
		wl_fail("fd 10 is not a removed directory of mode 0750; ");
	expect_link("fd 11", "/proc/self/fd/11", "f");
	char buf[4] = { 0 };
	if (fstat(11, &st) || !S_ISFIFO(st.st_mode) || read(11, buf, 2) != 2 || strcmp(buf, "xy"))
		wl_fail("fd 11 is not the FIFO with \"xy\" (read \"%s\"); ", buf);
	expect_link("fd 12", "/proc/self/fd/12", "ln");
	char target[64] = { 0 };
	if (readlinkat(12, "", target, sizeof(target) - 1) < 0 || strcmp(target, "target"))
		wl_fail("fd 12 is not the symlink to target (\"%s\"); ", target);
	DIR *dir = opendir(".");
	for (struct dirent *e; dir && (e = readdir(dir));)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "b") && strcmp(e->d_name, "ready") &&
		    strcmp(e->d_name, "go") && strncmp(e->d_name, "std", 3))
			wl_fail("%s is left in the directory; ", e->d_name);
	return wl_finish(NULL);
}
