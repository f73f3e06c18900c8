/* A pty pair inside the tree, as a session's controlling terminal. The workload makes its
 * own session, opens the master at fd 10, the slave at fd 11 (its controlling terminal) and
 * /dev/tty at fd 12; sets the slave's termios (canonical, no echo, '#' to erase, 9600 baud),
 * a 33x77 window, exclusive mode, locks the pty; writes "line one\npartial" into the master
 * (the slave's input) and "out\n" into the slave (the master's input, "out\r\n" after
 * ONLCR). With argument "ext" a child holds the slave, the master stays in this process (the
 * child alone is dumped: its terminal's master is outside its tree); the child's pid goes to
 * `child`. After go every setting reads back, the slave reads "line one\n" and then nothing
 * until the line is ended, the master reads "out\r\n", /dev/tty leads to this pty. */
#include "wl.h"
#include <errno.h>
#include <signal.h>
#include <termios.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int ext = argc > 2 && !strcmp(argv[2], "ext");
	if (setsid() < 0)
		return 3;
	int m = open("/dev/ptmx", O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) || unlockpt(m) || dup2(m, 10) != 10)
		return 3;
	close(m);
	int index = -1;
	ioctl(10, TIOCGPTN, &index);
	if (ext) {
		pid_t c = fork();
		if (c == 0) {
			setsid();
			int s = open(ptsname(10), O_RDWR);
			close(10);
			if (s < 0 || dup2(s, 11) != 11)
				_exit(1);
			wl_wait_go();
			_exit(0);
		}
		char pid[16];
		snprintf(pid, sizeof(pid), "%d", c);
		wl_write("child", pid);
		wl_sleep_ms(50);
		wl_ready();
		wl_wait_go();
		waitpid(c, NULL, 0);
		return wl_finish(NULL);
	}
	int s = open(ptsname(10), O_RDWR); /* no O_NOCTTY: it becomes the controlling terminal */
	if (s < 0 || dup2(s, 11) != 11)
		return 4;
	close(s);
	int t = open("/dev/tty", O_RDWR);
	if (t < 0 || dup2(t, 12) != 12)
		return 4;
	close(t);
	struct termios tio;
	tcgetattr(11, &tio);
	tio.c_lflag |= ICANON;
	tio.c_lflag &= ~ECHO;
	tio.c_cc[VERASE] = '#';
	cfsetispeed(&tio, B9600);
	cfsetospeed(&tio, B9600);
	struct winsize ws = { .ws_row = 33, .ws_col = 77 };
	int lock = 1;
	if (tcsetattr(11, TCSANOW, &tio) || ioctl(11, TIOCSWINSZ, &ws) || ioctl(11, TIOCEXCL) || tcsetpgrp(11, getpgrp()))
		return 5;
	if (write(10, "line one\npartial", 16) != 16 || write(11, "out\n", 4) != 4 || ioctl(10, TIOCSPTLCK, &lock))
		return 6;
	struct termios before;
	tcgetattr(11, &before);
	wl_sleep_ms(20); /* the pty's flip buffers reach the line disciplines */
	wl_ready();
	wl_wait_go();

	/* Field by field: glibc's tcgetattr() leaves struct termios's padding (after c_cc) as the
	 * stack had it, so a memcmp() of two of them compares garbage. */
	struct termios after;
	if (tcgetattr(11, &after))
		wl_fail("tcgetattr on the slave failed; ");
	else if (before.c_iflag != after.c_iflag || before.c_oflag != after.c_oflag || before.c_cflag != after.c_cflag ||
		 before.c_lflag != after.c_lflag || before.c_line != after.c_line || memcmp(before.c_cc, after.c_cc, sizeof(after.c_cc)) ||
		 cfgetispeed(&before) != cfgetispeed(&after) || cfgetospeed(&before) != cfgetospeed(&after))
		wl_fail("the slave's termios changed (iflag %o -> %o, oflag %o -> %o, cflag %o -> %o, lflag %o -> %o, line %d -> %d, "
			"erase %d -> %d, ispeed %d -> %d, ospeed %d -> %d); ", before.c_iflag, after.c_iflag, before.c_oflag, after.c_oflag,
			before.c_cflag, after.c_cflag, before.c_lflag, after.c_lflag, before.c_line, after.c_line, before.c_cc[VERASE],
			after.c_cc[VERASE], (int)cfgetispeed(&before), (int)cfgetispeed(&after), (int)cfgetospeed(&before),
			(int)cfgetospeed(&after));
	struct winsize now;
	if (ioctl(11, TIOCGWINSZ, &now) || now.ws_row != 33 || now.ws_col != 77)
		wl_fail("the window is %dx%d, not 33x77; ", now.ws_row, now.ws_col);
	int idx = -1, locked = 0, excl = 0;
	ioctl(10, TIOCGPTN, &idx);
	ioctl(10, TIOCGPTLCK, &locked);
	ioctl(11, TIOCGEXCL, &excl);
	if (idx != index || !locked || !excl)
		wl_fail("pty %d locked %d exclusive %d (pty %d, locked and exclusive expected); ", idx, locked, excl, index);
	if (tcgetsid(11) != getsid(0) || tcgetpgrp(11) != getpgrp())
		wl_fail("the pty is not this session's controlling terminal with this group in the foreground; ");
	char buf[64] = { 0 };
	ssize_t n = read(11, buf, sizeof(buf));
	if (n != 9 || memcmp(buf, "line one\n", 9))
		wl_fail("the slave read %zd bytes \"%.*s\", not the line \"line one\\n\"; ", n, (int)(n > 0 ? n : 0), buf);
	fcntl(11, F_SETFL, O_NONBLOCK);
	if (read(11, buf, sizeof(buf)) != -1 || errno != EAGAIN)
		wl_fail("the partial line was readable before its end; ");
	fcntl(11, F_SETFL, 0);
	if (write(10, "end\n", 4) != 4 || (n = read(11, buf, sizeof(buf))) != 11 || memcmp(buf, "partialend\n", 11))
		wl_fail("the ended line read \"%.*s\"; ", (int)(n > 0 ? n : 0), buf);
	if ((n = read(10, buf, sizeof(buf))) != 5 || memcmp(buf, "out\r\n", 5))
		wl_fail("the master read \"%.*s\", not \"out\\r\\n\"; ", (int)(n > 0 ? n : 0), buf);
	if (write(12, "x", 1) != 1 || read(10, buf, 1) != 1 || buf[0] != 'x')
		wl_fail("/dev/tty does not lead to this pty; ");
	return wl_finish(NULL);
}
