/* Pipes shared by the processes of a tree. Pipe P: the parent keeps only the write end (13),
 * child 1 the read end (10), child 2 a dup of that same read end at 40; 3000 bytes in
 * flight. Pipe Q: parent and child 1 both hold both ends (11, 12), inherited through fork,
 * with O_NONBLOCK on the read end; child 1 wrote 1500 bytes into it. After `go`: every fd
 * keeps its flags and capacity, the parent checks with kcmp that the ends are still the
 * same open files across the processes, reads Q; child 1 reads P's 3000 bytes, then the
 * 1000 the parent writes after, then end of file once the parent closes its end. */
#include "pipe-wl.h"
#include <sys/wait.h>

static const char *why_of(const char *name)
{
	static char buf[2048];
	memset(buf, 0, sizeof(buf));
	int fd = open(name, O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) < 0)
		strcpy(buf, "(no reason written)");
	if (fd >= 0)
		close(fd);
	return buf;
}

static int kcmp_file(pid_t a, pid_t b, int fa, int fb) { return syscall(SYS_kcmp, a, b, KCMP_FILE, fa, fb); }

static void child1(void)
{
	close(13);
	put(12, 2, 0, 1500);
	record(10);
	record(11);
	record(12);
	record_sharing();
	wl_write("child1-ready", "1\n");
	wl_wait_go();
	check_records();
	expect(10, 1, 0, 3000, "P in child 1");
	expect(10, 1, 3000, 1000, "P in child 1, after");
	char c;
	if (!wl_failed && read(10, &c, 1) != 0)
		wl_fail("P does not reach end of file in child 1");
	if (wl_failed) {
		wl_write("child1-why", wl_why);
		_exit(1);
	}
	_exit(21);
}

static void child2(void)
{
	close(13);
	close(11);
	close(12);
	dup2(10, 40);
	close(10);
	record(40);
	record_sharing();
	wl_write("child2-ready", "1\n");
	wl_wait_go();
	check_records();
	/* It holds P's read end open until told the parent has checked. */
	while (access("parent-checked", F_OK) != 0)
		wl_sleep_ms(1);
	if (wl_failed) {
		wl_write("child2-why", wl_why);
		_exit(1);
	}
	_exit(22);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	pipe_at(10, 13);
	pipe_at(11, 12);
	fcntl(11, F_SETFL, O_NONBLOCK);
	put(13, 1, 0, 3000);
	pid_t c1 = fork();
	if (c1 == 0)
		child1();
	pid_t c2 = fork();
	if (c2 == 0)
		child2();
	close(10);
	while (access("child1-ready", F_OK) != 0 || access("child2-ready", F_OK) != 0)
		wl_sleep_ms(1);
	record(11);
	record(12);
	record(13);
	record_sharing();
	char text[64];
	snprintf(text, sizeof(text), "%d %d\n", c1, c2);
	wl_write("pids", text);
	wl_ready();
	wl_wait_go();

	check_records();
	if (kcmp_file(c1, c2, 10, 40) != 0)
		wl_fail("P's read end in child 1 (10) and child 2 (40) are not one open file");
	if (kcmp_file(getpid(), c1, 11, 11) != 0 || kcmp_file(getpid(), c1, 12, 12) != 0)
		wl_fail("Q's ends are not the same open files in the parent and child 1");
	if (kcmp_file(getpid(), c1, 13, 10) == 0)
		wl_fail("P's write end is the same file as its read end");
	if (!(fcntl(11, F_GETFL) & O_NONBLOCK))
		wl_fail("Q's read end lost O_NONBLOCK");
	expect(11, 2, 0, 1500, "Q in the parent");
	char c;
	if (read(11, &c, 1) != -1 || errno != EAGAIN)
		wl_fail("Q's read end does not say EAGAIN once empty");
	wl_write("parent-checked", "1\n");
	put(13, 1, 3000, 1000);
	close(13);
	int st = 0;
	if (waitpid(c1, &st, 0) != c1 || !WIFEXITED(st) || WEXITSTATUS(st) != 21)
		wl_fail("child 1 ended with %x: %s", st, why_of("child1-why"));
	if (waitpid(c2, &st, 0) != c2 || !WIFEXITED(st) || WEXITSTATUS(st) != 22)
		wl_fail("child 2 ended with %x: %s", st, why_of("child2-why"));
	return wl_finish(NULL);
}
