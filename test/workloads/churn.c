/* A tree that never stops forking and starting threads, in the cgroup argv[2] (a v2 cgroup's
 * or v1 freezer cgroup's directory): the root moves itself there, forks a keeper child that
 * forks short-lived children of its own all the time, and runs a thread that starts and joins
 * short-lived threads all the time, while its main thread forks and reaps children too. Every
 * count is in shared memory. After go: the counts went on, a 4 MiB pattern is intact in both
 * processes, the keeper exits with 0 once told to. */
#include "wl.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PATTERN_BYTES (4 << 20)

struct counts {
	atomic_long forks, keeper_forks, threads;
	atomic_int stop;
};
static struct counts *c;
static unsigned char *pattern;

static int pattern_ok(void)
{
	for (size_t i = 0; i < PATTERN_BYTES; i++)
		if (pattern[i] != (unsigned char)(i * 7 + i / 4096))
			return 0;
	return 1;
}

static void *short_thread(void *arg)
{
	(void)arg;
	atomic_fetch_add(&c->threads, 1);
	return NULL;
}

static void *spawner(void *arg)
{
	(void)arg;
	while (!atomic_load(&c->stop)) {
		pthread_t t;
		if (pthread_create(&t, NULL, short_thread, NULL) == 0)
			pthread_join(t, NULL);
		usleep(200);
	}
	return NULL;
}

/* Forks a child that exits at once, and reaps it: 0, or why not. */
static const char *fork_once(void)
{
	pid_t p = fork();
	if (p < 0)
		return "fork failed";
	if (p == 0)
		_exit(5);
	int st = 0;
	if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 5)
		return "a short-lived child did not exit with 5";
	return NULL;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	if (argc < 3)
		return 2;
	wl_move_to_cgroup(argv[2]);
	c = mmap(NULL, sizeof(*c), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pattern = malloc(PATTERN_BYTES);
	if (c == MAP_FAILED || !pattern)
		return 3;
	for (size_t i = 0; i < PATTERN_BYTES; i++)
		pattern[i] = (unsigned char)(i * 7 + i / 4096);
	pid_t keeper = fork();
	if (keeper == 0) {
		while (!atomic_load(&c->stop)) {
			if (fork_once())
				_exit(6);
			atomic_fetch_add(&c->keeper_forks, 1);
			usleep(200);
		}
		_exit(pattern_ok() ? 0 : 7);
	}
	pthread_t sp;
	if (pthread_create(&sp, NULL, spawner, NULL) != 0)
		return 3;
	int said_ready = 0;
	while (!wl_go_seen()) {
		const char *why = fork_once();
		if (why) {
			wl_fail("%s", why);
			break;
		}
		atomic_fetch_add(&c->forks, 1);
		if (!said_ready && c->forks > 50 && c->keeper_forks > 50 && c->threads > 50) {
			said_ready = 1;
			wl_ready();
		}
		usleep(200);
	}
	/* The churn goes on after go, as it did before: each count grows again. */
	long f0 = c->forks, k0 = c->keeper_forks, t0 = c->threads;
	for (int i = 0; i < 20; i++) {
		if (fork_once())
			wl_fail("fork after go failed");
		atomic_fetch_add(&c->forks, 1);
	}
	for (int i = 0; i < 5000 && (c->keeper_forks <= k0 + 5 || c->threads <= t0 + 5); i++)
		wl_sleep_ms(1);
	if (c->keeper_forks <= k0 + 5 || c->threads <= t0 + 5)
		wl_fail("the churn stopped: keeper %ld -> %ld, threads %ld -> %ld", k0, (long)c->keeper_forks, t0, (long)c->threads);
	atomic_store(&c->stop, 1);
	pthread_join(sp, NULL);
	int st = 0;
	if (waitpid(keeper, &st, 0) != keeper || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_fail("the keeper exited with status %x", st);
	if (!pattern_ok())
		wl_fail("the pattern changed");
	char extra[128];
	snprintf(extra, sizeof(extra), "forks %ld keeper %ld threads %ld\n", f0, (long)c->keeper_forks, (long)c->threads);
	return wl_finish(extra);
}
