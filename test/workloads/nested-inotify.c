// An inotify watch on a tmpfs of a nested mount namespace (zdtm inotify01's shape): a child
// unshares a mount namespace, mounts a tmpfs on /mnt there (its parent's /mnt stays the root's
// directory) and holds it open at fd 100; the parent watches it through /proc/CHILD/fd/100 for
// IN_CREATE and appends the name of each file created there to /srv/events.
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <unistd.h>

int main(void) {
  int p[2];
  if (pipe(p)) return 2;
  pid_t c = fork();
  if (c < 0) return 2;
  if (c == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL) || mount("nested-tmp", "/mnt", "tmpfs", 0, "size=64k")) return 3;
    if (dup2(open("/mnt", 0), 100) != 100) return 4;
    if (write(p[1], "r", 1) != 1) return 5;
    for (;;) pause();
  }
  char r, path[64], buf[4096];
  if (read(p[0], &r, 1) != 1) return 6;
  snprintf(path, sizeof(path), "/proc/%d/fd/100", c);
  int fd = inotify_init1(0);
  if (fd < 0 || inotify_add_watch(fd, path, IN_CREATE) < 0) return 7;
  FILE *ready = fopen("/srv/ready", "w");
  if (!ready) return 8;
  fclose(ready);
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return 9;
    for (char *at = buf; at < buf + n;) {
      struct inotify_event *e = (struct inotify_event *)at;
      FILE *f = fopen("/srv/events", "a");
      if (!f) return 10;
      fprintf(f, "%s\n", e->len ? e->name : "?");
      fclose(f);
      at += sizeof(*e) + e->len;
    }
  }
}
