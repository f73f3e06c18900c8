/* A pipeline of three processes forked by one program, joined by pipes on their standard
 * fds: producer | filter | consumer. The producer writes a deterministic stream of TOTAL
 * bytes in chunks of varying size; the filter maps every byte (b*5+3, plus its position);
 * the consumer checks each byte against the stream it recomputes and keeps an FNV-1a sum.
 * The consumer stops after HALF bytes until `go`, so at the dump both pipes are full and
 * the producer and filter sit blocked in write(). After restore the stream must finish with
 * the exact bytes and checksum; the parent checks every exit status and the consumer's sum. */
#include "pipe-wl.h"
#include <sys/wait.h>
#include <stdint.h>

#define TOTAL (6L << 20)
#define HALF (2L << 20)

static unsigned char src(long i) { return pat(11, i) ^ (unsigned char)(i / 4099); }
static unsigned char filt(unsigned char b, long i) { return (unsigned char)(b * 5 + 3 + i); }

static void write_all(int fd, const unsigned char *b, long n)
{
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(50);
		b += w;
		n -= w;
	}
}

static void producer(void)
{
	static unsigned char b[70000];
	long off = 0;
	for (int k = 0; off < TOTAL; k++) {
		long n = 1 + (k * 7919L) % 65000;
		if (n > TOTAL - off)
			n = TOTAL - off;
		for (long i = 0; i < n; i++)
			b[i] = src(off + i);
		write_all(1, b, n);
		off += n;
	}
	_exit(31);
}

static void filter(void)
{
	static unsigned char b[30000];
	long off = 0;
	for (;;) {
		ssize_t r = read(0, b, sizeof(b));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			_exit(51);
		if (r == 0)
			break;
		for (long i = 0; i < r; i++)
			b[i] = filt(b[i], off + i);
		write_all(1, b, r);
		off += r;
	}
	_exit(off == TOTAL ? 32 : 52);
}

static void consumer(void)
{
	static unsigned char b[12345];
	uint64_t h = 1469598103934665603ull;
	long off = 0;
	for (;;) {
		if (off >= HALF && !wl_go_seen()) {
			wl_write("half", "1\n");
			wl_wait_go();
		}
		long want = sizeof(b);
		if (off < HALF && HALF - off < want)
			want = HALF - off;
		ssize_t r = read(0, b, want);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			_exit(53);
		if (r == 0)
			break;
		for (long i = 0; i < r; i++) {
			if (b[i] != filt(src(off + i), off + i)) {
				char why[128];
				snprintf(why, sizeof(why), "byte %ld is %u, not %u\n", off + i, b[i], filt(src(off + i), off + i));
				wl_write("consumer-why", why);
				_exit(54);
			}
			h = (h ^ b[i]) * 1099511628211ull;
		}
		off += r;
	}
	char text[64];
	snprintf(text, sizeof(text), "%ld %016llx\n", off, (unsigned long long)h);
	wl_write("consumer-sum", text);
	_exit(off == TOTAL ? 33 : 55);
}

int main(int argc, char **argv)
{
	wl_enter(argc, argv);
	int a[2], z[2];
	if (pipe(a) < 0 || pipe(z) < 0)
		return 4;
	pid_t p = fork();
	if (p == 0) {
		dup2(a[1], 1);
		close(a[0]), close(a[1]), close(z[0]), close(z[1]);
		producer();
	}
	pid_t f = fork();
	if (f == 0) {
		dup2(a[0], 0);
		dup2(z[1], 1);
		close(a[0]), close(a[1]), close(z[0]), close(z[1]);
		filter();
	}
	pid_t c = fork();
	if (c == 0) {
		dup2(z[0], 0);
		close(a[0]), close(a[1]), close(z[0]), close(z[1]);
		consumer();
	}
	close(a[0]), close(a[1]), close(z[0]), close(z[1]);
	while (access("half", F_OK) != 0)
		wl_sleep_ms(1);
	char text[64];
	snprintf(text, sizeof(text), "%d %d %d\n", p, f, c);
	wl_write("pids", text);
	wl_ready();
	wl_wait_go();

	/* The expected sum, from the stream itself. */
	uint64_t h = 1469598103934665603ull;
	for (long i = 0; i < TOTAL; i++)
		h = (h ^ filt(src(i), i)) * 1099511628211ull;
	int st = 0;
	pid_t who[3] = { p, f, c };
	int code[3] = { 31, 32, 33 };
	for (int i = 0; i < 3; i++)
		if (waitpid(who[i], &st, 0) != who[i] || !WIFEXITED(st) || WEXITSTATUS(st) != code[i])
			wl_fail("stage %d ended with status %x, not exit %d", i, st, code[i]);
	char want[64], got[64] = { 0 };
	snprintf(want, sizeof(want), "%ld %016llx\n", TOTAL, (unsigned long long)h);
	int fd = open("consumer-sum", O_RDONLY);
	if (fd < 0 || read(fd, got, sizeof(got) - 1) < 0)
		wl_fail("the consumer wrote no sum");
	else if (strcmp(got, want) != 0)
		wl_fail("the consumer's sum is %s, not %s", got, want);
	return wl_finish(got);
}
