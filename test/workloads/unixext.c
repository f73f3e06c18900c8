/* A datagram socket (fd 5) connected to a bound datagram socket outside the tree, at the
 * path argv[2], after sending it one datagram. After `go`: fd 5's peer is still that path,
 * and a datagram sent on it reaches the socket outside. */
#include "sock-wl.h"

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (argc < 3)
		exit(2);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", argv[2]);
	int s = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0 || send(s, "1", 1, 0) != 1)
		exit(7);
	move_to(s, 5);
	wl_ready();
	wl_wait_go();
	struct sockaddr_un got;
	socklen_t gl = sizeof(got);
	memset(&got, 0, sizeof(got));
	if (getpeername(5, (struct sockaddr *)&got, &gl) < 0 || strcmp(got.sun_path, a.sun_path))
		wl_fail("fd 5's peer is '%s', not '%s'", got.sun_path, a.sun_path);
	if (send(5, "2", 1, MSG_DONTWAIT) != 1)
		wl_fail("send on fd 5: %s", strerror(errno));
	return wl_finish(NULL);
}
