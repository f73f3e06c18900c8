// A Unix listener and connection whose name's file a mount now hides (zdtm overmount_sock): in
// /srv, a listener bound to the relative name dir/sock, a client connected to it and the
// connection accepted, then a tmpfs mounted on /srv/dir. Every 20 ms it sends a counter through
// the connection and appends each one it receives to /srv/count (a number out of order exits
// 1), and answers "hi" to whoever connected to the listener meanwhile.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int main(void) {
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  strcpy(a.sun_path, "dir/sock");
  if (chdir("/srv") || mkdir("dir", 0755)) return 2;
  int l = socket(AF_UNIX, SOCK_STREAM, 0), c = socket(AF_UNIX, SOCK_STREAM, 0);
  if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) || connect(c, (struct sockaddr *)&a, sizeof(a))) return 3;
  int s = accept(l, NULL, NULL);
  if (s < 0) return 4;
  fcntl(l, F_SETFL, O_NONBLOCK);
  if (mount("over", "dir", "tmpfs", 0, "size=64k")) return 5;
  for (unsigned i = 1;; i++) {
    unsigned got;
    if (write(c, &i, sizeof(i)) != sizeof(i) || read(s, &got, sizeof(got)) != sizeof(got) || got != i) return 1;
    FILE *f = fopen("/srv/count", "a");
    if (!f) return 6;
    fprintf(f, "%u\n", i);
    fclose(f);
    int v = accept(l, NULL, NULL);
    if (v >= 0) {
      if (write(v, "hi", 2) != 2) return 7;
      close(v);
    }
    usleep(20000);
  }
}
