/* A fanotify group (FAN_CLASS_NOTIF, non-blocking) at fd 10 with an inode mark on watched.txt
 * (FAN_MODIFY | FAN_CLOSE_WRITE) and on other.txt (FAN_OPEN, FAN_MODIFY ignored, surviving
 * modify). With argument "queued" an event is left queued before ready. After go: a write
 * to watched.txt yields FAN_MODIFY and FAN_CLOSE_WRITE events naming watched.txt by their
 * fd, nothing is reported for other.txt's write, and the marks read as before in fdinfo. */
#include "wl.h"
#include <errno.h>
#include <sys/fanotify.h>

static void marks(char *out, size_t n)
{
	char buf[4096] = { 0 };
	int f = open("/proc/self/fdinfo/10", O_RDONLY);
	ssize_t r = f < 0 ? -1 : read(f, buf, sizeof(buf) - 1);
	if (f >= 0)
		close(f);
	out[0] = 0;
	for (char *l = strtok(r > 0 ? buf : "", "\n"); l; l = strtok(NULL, "\n"))
		if (!strncmp(l, "fanotify ", 9)) {
			/* the inode numbers and handles change with the files: keep the flags and masks */
			char *m = strstr(l, "mflags:");
			char *h = strstr(l, " fhandle");
			if (h)
				*h = 0;
			strncat(out, m ? m : l, n - strlen(out) - 2);
			strcat(out, "|");
		}
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int fa = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK, O_RDONLY);
	int w = open("watched.txt", O_RDWR | O_CREAT, 0644), o = open("other.txt", O_RDWR | O_CREAT, 0644);
	if (fa < 0 || w < 0 || o < 0 || dup2(fa, 10) != 10)
		return 3;
	close(fa);
	close(w);
	close(o);
	if (fanotify_mark(10, FAN_MARK_ADD, FAN_MODIFY | FAN_CLOSE_WRITE, AT_FDCWD, "watched.txt") ||
	    fanotify_mark(10, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, "other.txt") ||
	    fanotify_mark(10, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY, FAN_MODIFY, AT_FDCWD, "other.txt"))
		return 4;
	if (argc > 2 && !strcmp(argv[2], "queued")) {
		int q = open("other.txt", O_RDONLY);
		close(q);
	}
	char before[1024], after[1024];
	marks(before, sizeof(before));
	wl_ready();
	wl_wait_go();
	marks(after, sizeof(after));
	if (strcmp(before, after))
		wl_fail("the marks read \"%s\", not \"%s\"; ", after, before);
	char buf[4096];
	while (read(10, buf, sizeof(buf)) > 0) /* the queued one, if any */
		;
	o = open("other.txt", O_WRONLY);
	if (o < 0 || write(o, "x", 1) != 1)
		return 5;
	w = open("watched.txt", O_WRONLY);
	if (w < 0 || write(w, "x", 1) != 1 || close(w))
		return 5;
	unsigned long long seen = 0;
	int other = 0;
	ssize_t n = read(10, buf, sizeof(buf));
	for (struct fanotify_event_metadata *m = (void *)buf; n > 0 && FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
		char path[64], name[4096] = { 0 };
		snprintf(path, sizeof(path), "/proc/self/fd/%d", m->fd);
		if (readlink(path, name, sizeof(name) - 1) > 0 && strstr(name, "/watched.txt"))
			seen |= m->mask;
		else if (strstr(name, "/other.txt") && m->mask != FAN_OPEN)
			other = 1;
		close(m->fd);
	}
	if ((seen & (FAN_MODIFY | FAN_CLOSE_WRITE)) != (FAN_MODIFY | FAN_CLOSE_WRITE))
		wl_fail("the events on watched.txt were %llx, not FAN_MODIFY and FAN_CLOSE_WRITE; ", seen);
	if (other)
		wl_fail("an ignored event of other.txt was reported; ");
	return wl_finish(NULL);
}
