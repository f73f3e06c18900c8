/* Two processes sharing one fd table (clone with CLONE_FILES, not a thread), holding
 * shared.txt at fd 10. After go the child opens child.txt as fd 20 and exits; the parent
 * then finds fd 20 in its own table (the table is still one) and reads the child's file. */
#include "wl.h"
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>

static char stack[65536];

static int child(void *arg)
{
	(void)arg;
	wl_wait_go();
	int fd = open("child.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "child", 5) != 5 || dup2(fd, 20) != 20)
		return 1;
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int fd = open("shared.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || dup2(fd, 10) != 10)
		return 3;
	close(fd);
	pid_t c = clone(child, stack + sizeof(stack), CLONE_FILES | SIGCHLD, NULL);
	if (c < 0)
		return 3;
	wl_ready();
	wl_wait_go();
	int st = 0;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		wl_fail("the child failed (status %x); ", st);
	char buf[8] = { 0 };
	if (pread(20, buf, 5, 0) != 5 || strcmp(buf, "child"))
		wl_fail("fd 20 the child opened is not in the parent's table (the table was not shared after restore); ");
	if (fcntl(10, F_GETFD) < 0)
		wl_fail("fd 10 is gone; ");
	return wl_finish(NULL);
}
