/* The protocol every workload follows: argv[1] is its directory (also its cwd); it builds
 * its state, creates `ready`, polls for `go` (it may be checkpointed and restored in
 * between), checks itself and writes `result`: PASS, or FAIL: why. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <unistd.h>
#include <fcntl.h>
#include <time.h>
#include <errno.h>

static inline void wl_write(const char *name, const char *text)
{
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		exit(3);
	close(fd);
	rename(tmp, name);
}

static inline void wl_ready(void) { wl_write("ready", "ready\n"); }

static inline int wl_go_seen(void) { return access("go", F_OK) == 0; }

static inline void wl_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static inline void wl_wait_go(void)
{
	while (!wl_go_seen())
		wl_sleep_ms(1);
}

/* Waits until file `f` (of the workload's directory) exists. */
static inline void wl_wait_file(const char *f)
{
	while (access(f, F_OK) != 0)
		wl_sleep_ms(1);
}

static int wl_failed;
static char wl_why[4096];

static inline void wl_fail(const char *fmt, ...)
{
	va_list ap;
	size_t n = strlen(wl_why);
	if (n > sizeof(wl_why) - 200)
		return;
	va_start(ap, fmt);
	vsnprintf(wl_why + n, sizeof(wl_why) - n, fmt, ap);
	va_end(ap);
	strcat(wl_why, "\n");
	wl_failed = 1;
}

static inline int wl_finish(const char *extra)
{
	char out[8192];
	snprintf(out, sizeof(out), "%s%s%s%s", wl_failed ? "FAIL: " : "PASS\n", wl_failed ? wl_why : "", extra ? extra : "", "");
	wl_write("result", out);
	return wl_failed ? 1 : 0;
}

static inline int wl_enter(int argc, char **argv)
{
	if (argc < 2 || chdir(argv[1]) != 0) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		exit(2);
	}
	return 0;
}

/* Moves the calling task into the cgroup v2 directory DIR, or exits 3. */
static inline void wl_move_to_cgroup(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	int fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, "0", 1) != 1) {
		fprintf(stderr, "cannot move into %s: %s\n", dir, strerror(errno));
		exit(3);
	}
	close(fd);
}
