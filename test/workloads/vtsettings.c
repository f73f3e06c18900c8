/* A virtual terminal (argv[2], e.g. /dev/tty1) held open on fd 7, its settings made its own:
 * ECHO and ICANON off, VMIN 3, a 33x77 window. After `go` it checks that its fd still sees
 * them: the device's settings, which the test changes while the task is dumped. */
#include "wl.h"
#include <termios.h>
#include <sys/ioctl.h>

int main(int argc, char **argv)
{
	if (argc < 3 || chdir(argv[1]))
		return 2;
	int fd = open(argv[2], O_RDWR | O_NOCTTY);
	if (fd < 0 || dup2(fd, 7) != 7)
		return 4;
	close(fd);
	struct termios t;
	if (tcgetattr(7, &t))
		return 5;
	t.c_lflag &= ~(ECHO | ICANON);
	t.c_cc[VMIN] = 3;
	if (tcsetattr(7, TCSANOW, &t))
		return 6;
	struct winsize ws = { .ws_row = 33, .ws_col = 77 };
	if (ioctl(7, TIOCSWINSZ, &ws))
		return 7;
	wl_ready();
	wl_wait_go();
	struct termios now;
	struct winsize wnow;
	if (tcgetattr(7, &now) || ioctl(7, TIOCGWINSZ, &wnow))
		wl_fail("cannot read the terminal's settings back");
	if (now.c_lflag & (ECHO | ICANON))
		wl_fail("ECHO or ICANON is on again (lflag %#x)", now.c_lflag);
	if (now.c_cc[VMIN] != 3)
		wl_fail("VMIN is %d, not 3", now.c_cc[VMIN]);
	if (wnow.ws_row != 33 || wnow.ws_col != 77)
		wl_fail("the window is %dx%d, not 33x77", wnow.ws_row, wnow.ws_col);
	return wl_finish(NULL);
}
