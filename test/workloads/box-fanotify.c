// A fanotify group in a mount namespace of the tree's own (zdtm fanotify00's ns shape): a
// tmpfs mounted on /mnt in the box, a mount mark on it (FAN_OPEN, FAN_MODIFY ignored,
// surviving modify) and an inode mark on /srv/watched (FAN_MODIFY), the group at fd 10. It
// writes /srv/ready, then appends "MASK PATH" to /srv/events for each event it reads (the
// path of the event's fd as the box sees it). With argument "covered" a second tmpfs is
// mounted over /mnt after the mark, so that the marked mount is no longer at its mount point.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/mount.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (mount("box-tmp", "/mnt", "tmpfs", 0, "size=64k")) return 2;
  int w = open("/srv/watched", O_RDWR | O_CREAT, 0644);
  int fa = fanotify_init(FAN_CLASS_NOTIF, O_RDONLY);
  if (w < 0 || fa < 0 || dup2(fa, 10) != 10) return 3;
  close(fa);
  close(w);
  if (fanotify_mark(10, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN, AT_FDCWD, "/mnt") ||
      fanotify_mark(10, FAN_MARK_ADD | FAN_MARK_MOUNT | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY, FAN_MODIFY, AT_FDCWD, "/mnt") ||
      fanotify_mark(10, FAN_MARK_ADD, FAN_MODIFY, AT_FDCWD, "/srv/watched"))
    return 4;
  if (argc > 1 && !strcmp(argv[1], "covered") && mount("box-over", "/mnt", "tmpfs", 0, "size=64k")) return 5;
  FILE *ready = fopen("/srv/ready", "w");
  if (!ready) return 6;
  fclose(ready);
  char buf[4096];
  for (;;) {
    ssize_t n = read(10, buf, sizeof(buf));
    if (n <= 0) return 7;
    for (struct fanotify_event_metadata *m = (void *)buf; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
      char link[64], name[4096] = { 0 };
      snprintf(link, sizeof(link), "/proc/self/fd/%d", m->fd);
      if (readlink(link, name, sizeof(name) - 1) < 0) strcpy(name, "?");
      close(m->fd);
      FILE *f = fopen("/srv/events", "a");
      if (!f) return 8;
      fprintf(f, "%llx %s\n", (unsigned long long)m->mask, name);
      fclose(f);
    }
  }
}
