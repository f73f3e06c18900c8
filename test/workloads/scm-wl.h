/* SCM_RIGHTS for the workloads that pass fds over Unix sockets. */
#ifndef SCM_WL_H
#define SCM_WL_H
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Sends `fd` over `via` in a one-byte message `tag`; exits 6 if it is not sent whole. */
static inline void send_fd(int via, int fd, char tag)
{
	char buf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { &tag, 1 };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof(buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&h);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(via, &h, 0) != 1)
		exit(6);
}
#endif
