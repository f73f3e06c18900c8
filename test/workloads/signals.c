/* Signal state: a SIGUSR1 handler (SA_RESTART|SA_SIGINFO, SIGTERM in its mask), SIGINT
 * ignored, SIGUSR2 blocked and pending. After restore the test sends SIGUSR1: the handler
 * must run; SIGUSR2 must still be blocked and pending. */
#include "wl.h"
#include <signal.h>

static volatile sig_atomic_t hits;
static void on_usr1(int sig, siginfo_t *si, void *uc) { (void)sig; (void)si; (void)uc; hits++; }

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	struct sigaction sa = { 0 };
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_RESTART | SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGTERM);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGINT, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	raise(SIGUSR2);
	wl_ready();
	wl_wait_go();
	for (int i = 0; i < 5000 && !hits; i++)
		wl_sleep_ms(1);
	if (!hits)
		wl_fail("the SIGUSR1 handler did not run");
	sigset_t pend, mask;
	sigpending(&pend);
	sigprocmask(SIG_BLOCK, NULL, &mask);
	if (!sigismember(&pend, SIGUSR2)) wl_fail("SIGUSR2 is no longer pending");
	if (!sigismember(&mask, SIGUSR2)) wl_fail("SIGUSR2 is no longer blocked");
	struct sigaction cur;
	sigaction(SIGINT, NULL, &cur);
	if (cur.sa_handler != SIG_IGN) wl_fail("SIGINT is not ignored");
	sigaction(SIGUSR1, NULL, &cur);
	if (cur.sa_sigaction != on_usr1) wl_fail("the SIGUSR1 handler changed");
	if ((cur.sa_flags & (SA_RESTART | SA_SIGINFO)) != (SA_RESTART | SA_SIGINFO)) wl_fail("SIGUSR1 flags %x", cur.sa_flags);
	if (!sigismember(&cur.sa_mask, SIGTERM)) wl_fail("SIGTERM left the SIGUSR1 handler's mask");
	return wl_finish(NULL);
}
