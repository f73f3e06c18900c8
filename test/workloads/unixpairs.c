/* Unix socket pairs of one process, with data in flight both ways. A stream pair on 10/11
 * (11 non-blocking, 10 dup'd at 30, SO_SNDBUF set on 10); a datagram pair on 12/7 (messages
 * of 1, 0, 300, 4096 and 17 bytes one way, 60000 and 5 the other; SO_RCVBUF set on 7); a
 * seqpacket pair on 3/14; a stream pair on 15/16 whose 15 was shut for writing after 300
 * bytes (16 still wrote 50 back); a stream end on 17 whose peer wrote 200 bytes and closed;
 * an unconnected datagram socket on 19; datagram ends on 20 and 22 whose peers sent two
 * messages and closed, 20 having noticed (a send failed: the kernel purged its queue and
 * it is unconnected now); a seqpacket pair 24/25 whose 25 sent two messages and shut its
 * sending side. After `go` it checks flags, types and buffer sizes,
 * every byte and message queued, end of file where a side was shut, that each pair is still
 * connected both ways, then writes PASS. The same checks hold after a --leave-running dump. */
#include "sock-wl.h"

static const int D1[] = { 1, 0, 300, 4096, 17 }, D2[] = { 60000, 5 }, Q1[] = { 10, 2000, 33 }, Q2[] = { 7 };
#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	pair_at(SOCK_STREAM, 10, 11);
	fcntl(11, F_SETFL, O_NONBLOCK);
	int sz = 65536;
	setsockopt(10, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	dup2(10, 30);
	put(10, 1, 0, 5000);
	put(11, 2, 0, 70000);

	pair_at(SOCK_DGRAM, 12, 7);
	sz = 50000;
	setsockopt(7, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	for (int i = 0; i < N(D1); i++)
		send_dgram(12, 1, i, D1[i]);
	for (int i = 0; i < N(D2); i++)
		send_dgram(7, 2, i, D2[i]);

	pair_at(SOCK_SEQPACKET, 3, 14);
	for (int i = 0; i < N(Q1); i++)
		send_dgram(3, 3, i, Q1[i]);
	for (int i = 0; i < N(Q2); i++)
		send_dgram(14, 4, i, Q2[i]);

	pair_at(SOCK_STREAM, 15, 16);
	put(15, 5, 0, 300);
	shutdown(15, SHUT_WR);
	put(16, 6, 0, 50);

	pair_at(SOCK_STREAM, 17, 18);
	put(18, 7, 0, 200);
	close(18);

	move_to(socket(AF_UNIX, SOCK_DGRAM, 0), 19);

	pair_at(SOCK_DGRAM, 20, 21);
	pair_at(SOCK_DGRAM, 22, 23);
	for (int i = 0; i < 2; i++) {
		send_dgram(21, 8, i, 40 + i);
		send_dgram(23, 9, i, 50 + i);
	}
	close(21);
	close(23);
	pair_at(SOCK_SEQPACKET, 24, 25);
	send_dgram(25, 10, 0, 5);
	send_dgram(25, 10, 1, 6);
	shutdown(25, SHUT_WR);
	if (send(20, "x", 1, MSG_DONTWAIT) != -1 || errno != ECONNREFUSED)
		wl_fail("a send to a closed datagram peer did not fail with ECONNREFUSED");
	int fds[] = { 3, 7, 10, 11, 12, 14, 15, 16, 17, 19, 20, 22, 24, 25, 30 };
	for (int i = 0; i < N(fds); i++)
		srecord(fds[i]);
	if (wl_failed)
		return wl_finish(NULL);
	wl_ready();
	wl_wait_go();

	check_srecords();
	if (!same_file(10, 30))
		wl_fail("fds 10 and 30 are no longer one open file");
	expect(11, 1, 0, 5000, "stream 10->11");
	expect_empty(11, "stream 10->11");
	expect(30, 2, 0, 70000, "stream 11->10 (read on the dup 30)");
	expect_empty(10, "stream 11->10");
	check_connected(30, 11, 0, "stream pair 30/11");

	for (int i = 0; i < N(D1); i++)
		expect_dgram(7, 1, i, D1[i], "datagrams 12->7");
	expect_empty(7, "datagrams 12->7");
	for (int i = 0; i < N(D2); i++)
		expect_dgram(12, 2, i, D2[i], "datagrams 7->12");
	expect_empty(12, "datagrams 7->12");
	check_connected(7, 12, 1, "datagram pair 7/12");

	for (int i = 0; i < N(Q1); i++)
		expect_dgram(14, 3, i, Q1[i], "seqpackets 3->14");
	expect_empty(14, "seqpackets 3->14");
	for (int i = 0; i < N(Q2); i++)
		expect_dgram(3, 4, i, Q2[i], "seqpackets 14->3");
	expect_empty(3, "seqpackets 14->3");
	check_connected(3, 14, 1, "seqpacket pair 3/14");

	expect(16, 5, 0, 300, "stream 15->16 before its shutdown");
	expect_eof(16, "stream 15->16 after SHUT_WR");
	if (send(15, "z", 1, MSG_NOSIGNAL) != -1 || errno != EPIPE)
		wl_fail("fd 15 can still send after SHUT_WR");
	expect(15, 6, 0, 50, "stream 16->15");
	expect_empty(15, "stream 16->15");
	char w = 0;
	if (send(16, "w", 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1 || recv(15, &w, 1, MSG_DONTWAIT) != 1 || w != 'w')
		wl_fail("a byte sent on fd 16 does not arrive on fd 15: %s", strerror(errno));

	expect(17, 7, 0, 200, "stream from a closed peer");
	expect_eof(17, "stream from a closed peer");

	if (sockopt(19, SO_TYPE) != SOCK_DGRAM)
		wl_fail("fd 19 is no datagram socket");
	struct sockaddr_un peer;
	socklen_t pl = sizeof(peer);
	if (getpeername(19, (struct sockaddr *)&peer, &pl) != -1 || errno != ENOTCONN)
		wl_fail("fd 19 is connected");

	for (int i = 0; i < 2; i++)
		expect_dgram(22, 9, i, 50 + i, "datagrams from a closed peer");
	expect_empty(20, "datagrams from a closed peer, noticed");
	expect_empty(22, "datagrams from a closed peer");
	pl = sizeof(peer);
	if (getpeername(20, (struct sockaddr *)&peer, &pl) != -1 || errno != ENOTCONN)
		wl_fail("fd 20 is still connected");
	if (send(20, "x", 1, MSG_DONTWAIT) != -1 || errno != ENOTCONN)
		wl_fail("a send on fd 20 did not fail with ENOTCONN: %s", strerror(errno));
	if (send(22, "x", 1, MSG_DONTWAIT) != -1 || errno != ECONNREFUSED)
		wl_fail("a send on fd 22 did not fail with ECONNREFUSED: %s", strerror(errno));

	expect_dgram(24, 10, 0, 5, "seqpackets before a shutdown");
	expect_dgram(24, 10, 1, 6, "seqpackets before a shutdown");
	expect_eof(24, "seqpackets after a shutdown");
	if (send(25, "x", 1, MSG_NOSIGNAL) != -1 || errno != EPIPE)
		wl_fail("fd 25 can still send after SHUT_WR");
	if (send(24, "y", 1, MSG_DONTWAIT) != 1 || recv(25, &w, 1, MSG_DONTWAIT) != 1 || w != 'y')
		wl_fail("a message sent on fd 24 does not arrive on fd 25: %s", strerror(errno));
	return wl_finish(NULL);
}
