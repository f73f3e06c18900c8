/* An inotify instance watching a directory (IN_CREATE) and a file (IN_MODIFY), at wds 2 and
 * 4: wds 1 and 3 were used by watches removed again. After restore, creating a file in the
 * directory and writing to the file report events with those wds, and nothing else comes.
 * With argument `queued` an event is left unread at the dump (which must refuse it), and
 * it is read after `go`. */
#include "wl.h"
#include <sys/inotify.h>
#include <sys/stat.h>
#include <poll.h>

static int in;

/* The next event within `ms`, or 0. */
static int next_event(struct inotify_event *ev, char *name, size_t len, int ms)
{
	static char buf[4096] __attribute__((aligned(8)));
	static ssize_t have, at;
	if (at >= have) {
		struct pollfd p = { in, POLLIN, 0 };
		if (poll(&p, 1, ms) != 1)
			return 0;
		have = read(in, buf, sizeof(buf));
		at = 0;
		if (have <= 0)
			return 0;
	}
	struct inotify_event *e = (struct inotify_event *)(buf + at);
	*ev = *e;
	snprintf(name, len, "%s", e->len ? e->name : "");
	at += sizeof(*e) + e->len;
	return 1;
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int queued = argc > 2 && !strcmp(argv[2], "queued");
	if (mkdir("watched", 0755) || close(open("file", O_CREAT | O_WRONLY, 0644)))
		return 3;
	in = inotify_init1(IN_NONBLOCK);
	int gone1 = inotify_add_watch(in, ".", IN_CREATE);
	inotify_rm_watch(in, gone1);
	int dir = inotify_add_watch(in, "watched", IN_CREATE);
	int gone3 = inotify_add_watch(in, ".", IN_CREATE);
	inotify_rm_watch(in, gone3);
	int file = inotify_add_watch(in, "file", IN_MODIFY);
	if (in < 0 || gone1 != 1 || dir != 2 || gone3 != 3 || file != 4)
		return 3;
	/* The IN_IGNORED events of the removed watches. */
	char buf[4096];
	while (read(in, buf, sizeof(buf)) > 0)
		;
	if (queued)
		close(open("watched/early", O_CREAT | O_WRONLY, 0644));
	char text[32];
	snprintf(text, sizeof(text), "%d %d %d\n", in, dir, file);
	wl_write("wds", text);
	wl_ready();
	wl_wait_go();

	if (!(fcntl(in, F_GETFL) & O_NONBLOCK))
		wl_fail("the inotify fd lost O_NONBLOCK");
	struct inotify_event ev;
	char name[256];
	if (queued) {
		if (!next_event(&ev, name, sizeof(name), 1000) || ev.wd != dir || strcmp(name, "early"))
			wl_fail("the event queued before the dump was lost");
	}
	close(open("watched/new", O_CREAT | O_WRONLY, 0644));
	if (!next_event(&ev, name, sizeof(name), 1000))
		wl_fail("no event for a file created in the watched directory");
	else if (ev.wd != dir || !(ev.mask & IN_CREATE) || strcmp(name, "new"))
		wl_fail("creating watched/new gave wd %d mask %x name %s, expected wd %d IN_CREATE new", ev.wd, ev.mask, name, dir);
	int f = open("file", O_WRONLY | O_APPEND);
	if (f < 0 || write(f, "x", 1) != 1)
		wl_fail("cannot write the watched file");
	close(f);
	if (!next_event(&ev, name, sizeof(name), 1000))
		wl_fail("no event for a write to the watched file");
	else if (ev.wd != file || !(ev.mask & IN_MODIFY))
		wl_fail("writing the file gave wd %d mask %x, expected wd %d IN_MODIFY", ev.wd, ev.mask, file);
	while (next_event(&ev, name, sizeof(name), 100))
		wl_fail("an unexpected event: wd %d mask %x name %s", ev.wd, ev.mask, name);
	return wl_finish(NULL);
}
