/* With argv[2] `closed`, the server closes its listener once it has accepted, leaving the
 * socket file: after `go` it only checks the accepted connection and the names. With
 * `relative`, the listener is bound to the relative name srv.sock (from DIR, its cwd).
 *
 * A listening Unix socket bound to DIR/srv.sock (fd 7, backlog 7) with one connection
 * accepted already: the server's end on 11, the client's (a child) on 10, 3000 bytes queued
 * for the server, 1000 for the client. It records the names each end gives (getsockname,
 * getpeername). After `go` the server reads its 3000 bytes, writes 700 more, forks a new
 * client that connects to the path, accepts it and trades data with it; the first client
 * reads its 1700 bytes. `names` holds the names before and after, for the test to compare. */
#include "sock-wl.h"
#include <sys/wait.h>

static char path[108];

static void name_of(int fd, int peer, char *out, size_t n)
{
	struct sockaddr_un a;
	socklen_t l = sizeof(a);
	memset(&a, 0, sizeof(a));
	int r = peer ? getpeername(fd, (struct sockaddr *)&a, &l) : getsockname(fd, (struct sockaddr *)&a, &l);
	if (r < 0)
		snprintf(out, n, "(%s)", strerror(errno));
	else
		snprintf(out, n, "%s", l > sizeof(sa_family_t) ? a.sun_path : "");
}

static void wait_readable(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	if (poll(&p, 1, 10000) != 1)
		wl_fail("fd %d has nothing to read after 10 s", fd);
}

static int connect_to(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	strcpy(a.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		wl_fail("connect to %s: %s", path, strerror(errno));
		return -1;
	}
	return fd;
}

static void fail_exit(const char *who)
{
	char f[32];
	snprintf(f, sizeof(f), "%s-why", who);
	wl_write(f, wl_why);
	_exit(1);
}

static void client1(void)
{
	close(7);
	move_to(connect_to(), 10);
	put(10, 1, 0, 3000);
	char text[300];
	name_of(10, 0, text, 150);
	strcat(text, "|");
	name_of(10, 1, text + strlen(text), 150);
	wl_write("client-names", text);
	wl_wait_go();
	expect(10, 2, 0, 1000, "queued for the client");
	wait_readable(10);
	expect(10, 2, 1000, 700, "written to the client after restore");
	name_of(10, 0, text, 150);
	strcat(text, "|");
	name_of(10, 1, text + strlen(text), 150);
	wl_write("client-names-after", text);
	if (wl_failed)
		fail_exit("client1");
	_exit(21);
}

static void client2(void)
{
	int fd = connect_to();
	put(fd, 3, 0, 500);
	wait_readable(fd);
	expect(fd, 4, 0, 200, "the answer to the new client");
	if (wl_failed)
		fail_exit("client2");
	_exit(22);
}

static void names(int lfd, int acc, char *out, size_t n)
{
	char a[110], b[110], c[110];
	name_of(lfd, 0, a, sizeof(a));
	name_of(acc, 0, b, sizeof(b));
	name_of(acc, 1, c, sizeof(c));
	snprintf(out, n, "%s|%s|%s", a, b, c);
}

static void check_child(pid_t c, int code, const char *who)
{
	int st = 0;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != code) {
		char why[1024] = "", f[32];
		snprintf(f, sizeof(f), "%s-why", who);
		int fd = open(f, O_RDONLY);
		if (fd >= 0 && read(fd, why, sizeof(why) - 1) < 0)
			why[0] = 0;
		wl_fail("%s ended with %x: %s", who, st, why);
	}
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	if (!getcwd(path, 90))
		exit(6);
	strcat(path, "/srv.sock");
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	strcpy(a.sun_path, argc > 2 && !strcmp(argv[2], "relative") ? "srv.sock" : path);
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 7) < 0)
		exit(7);
	chmod(path, 0640);
	move_to(l, 7);
	pid_t c1 = fork();
	if (c1 == 0)
		client1();
	move_to(accept(7, NULL, NULL), 11);
	int closed = argc > 2 && !strcmp(argv[2], "closed");
	if (closed)
		close(7);
	else
		fcntl(7, F_SETFL, O_NONBLOCK);
	put(11, 2, 0, 1000);
	while (access("client-names", F_OK) != 0)
		wl_sleep_ms(1);
	if (!closed)
		srecord(7);
	srecord(11);
	char before[400], after[400], text[900];
	names(7, 11, before, sizeof(before));
	snprintf(text, sizeof(text), "%d\n", c1);
	wl_write("pids", text);
	wl_ready();
	wl_wait_go();

	check_srecords();
	names(7, 11, after, sizeof(after));
	expect(11, 1, 0, 3000, "queued for the server");
	expect_empty(11, "queued for the server");
	put(11, 2, 1000, 700);
	if (closed) {
		check_child(c1, 21, "client1");
		snprintf(text, sizeof(text), "%s\n%s\n", before, after);
		wl_write("names", text);
		return wl_finish(NULL);
	}
	pid_t c2 = fork();
	if (c2 == 0)
		client2();
	wait_readable(7);
	int n = accept(7, NULL, NULL);
	if (n < 0)
		wl_fail("accept after restore: %s", strerror(errno));
	else {
		expect(n, 3, 0, 500, "from the new client");
		put(n, 4, 0, 200);
	}
	check_child(c1, 21, "client1");
	check_child(c2, 22, "client2");
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode) || (st.st_mode & 0777) != 0640)
		wl_fail("%s is not a socket with mode 0640", path);
	snprintf(text, sizeof(text), "%s\n%s\n", before, after);
	wl_write("names", text);
	return wl_finish(NULL);
}
