/* Built static, run in a box (test/cr/ns/unix-mntns.test.ts) by a child in a mount namespace
 * of its own with a tmpfs on /mnt: binds a datagram socket at fd 5 to /mnt/s.sock (mode 0640),
 * connects fd 6 to it, and then appends each datagram fd 5 receives to /mnt/got. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int main(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX, .sun_path = "/mnt/s.sock" };
	int s = socket(AF_UNIX, SOCK_DGRAM, 0), c = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (s < 0 || c < 0 || dup2(s, 5) != 5 || dup2(c, 6) != 6)
		return 1;
	if (bind(5, (struct sockaddr *)&a, sizeof(a)) || chmod(a.sun_path, 0640) || connect(6, (struct sockaddr *)&a, sizeof(a)))
		return 2;
	for (;;) {
		char buf[256];
		ssize_t n = recv(5, buf, sizeof(buf), 0);
		if (n <= 0)
			continue;
		int f = open("/mnt/got", O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (f < 0 || write(f, buf, n) != n)
			return 3;
		close(f);
	}
}
