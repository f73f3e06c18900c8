/* A ptrace relation inside the tree: the child asks to be traced by its parent
 * (PTRACE_TRACEME), which lets it run on. A dump must be refused naming the tracer; the
 * parent then still traces the child, and the child still runs. */
#include "wl.h"
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	pid_t c = fork();
	if (c == 0) {
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		raise(SIGSTOP);
		for (;;)
			wl_sleep_ms(5);
	}
	int st;
	if (waitpid(c, &st, 0) != c || !WIFSTOPPED(st))
		return 3;
	ptrace(PTRACE_CONT, c, 0, 0);
	wl_ready();
	wl_wait_go();
	/* Still our tracee: a PTRACE_INTERRUPT needs a seized one, a kill shows as a stop to us. */
	kill(c, SIGUSR1);
	if (waitpid(c, &st, 0) != c || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGUSR1)
		wl_fail("the child is no longer traced by its parent (status %#x)", st);
	kill(c, SIGKILL);
	ptrace(PTRACE_CONT, c, 0, 0);
	waitpid(c, &st, 0);
	return wl_finish(NULL);
}
