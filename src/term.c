/* term.c: rendering for terminals: QR codes in half blocks, the spinner, countdowns. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <qrencode.h>

#include "mlauth/term.h"

#define QR_QUIET 4		/* light modules around the symbol: ISO/IEC 18004's minimum */
/*
 * Light modules white (231), dark ones black (16), from the 256-colour cube,
 * which themes leave alone: a code that reads on light and dark themes alike.
 */
#define QR_COLORS "\033[38;5;231;48;5;16m"

bool
term_live(int fd)
{
	const char *t = getenv("TERM");

	return isatty(fd) == 1 && (t == NULL || strcmp(t, "dumb") != 0);
}

int
term_columns(int fd)
{
	struct winsize ws;

	if (ioctl(fd, TIOCGWINSZ, &ws) != 0)
		return 0;
	return ws.ws_col;
}

/* Module (x, y) of the symbol is light; the quiet zone is light, beyond it is not. */
static bool
qr_light(const QRcode *q, int x, int y)
{
	int w = q->width;

	if (x < -QR_QUIET || y < -QR_QUIET || x >= w + QR_QUIET || y >= w + QR_QUIET)
		return false;
	if (x < 0 || y < 0 || x >= w || y >= w)
		return true;
	return (q->data[y * w + x] & 1) == 0;
}

int
term_qr(const char *text, bool color, char **out, struct ml_err *err)
{
	/* Indexed by (top light) << 1 | (bottom light). */
	static const char *const cell[4] = { " ", "\u2584", "\u2580", "\u2588" };
	QRcode *q;
	char *buf, *p;
	int side, lines;
	size_t size;

	*out = NULL;
	errno = 0;
	if ((q = QRcode_encodeString(text, 0, QR_ECLEVEL_L, QR_MODE_8, 1)) == NULL)
		return err_set(err, ML_EFAIL, "cannot make a QR code of the link: %s",
		    errno == ERANGE ? "it is too long" : errno != 0 ? strerror(errno) :
		    "libqrencode failed");
	side = q->width + 2 * QR_QUIET;
	lines = (side + 1) / 2;
	/* Each cell is at most 3 bytes of UTF-8; the colours, a newline per line, the NUL. */
	size = (size_t)lines * ((size_t)side * 3 + sizeof QR_COLORS + sizeof TERM_RESET) + 1;
	if ((buf = malloc(size)) == NULL) {
		QRcode_free(q);
		return err_set(err, ML_EFAIL, "out of memory");
	}
	p = buf;
	for (int y = -QR_QUIET; y < q->width + QR_QUIET; y += 2) {
		if (color)
			p = stpcpy(p, QR_COLORS);
		for (int x = -QR_QUIET; x < q->width + QR_QUIET; x++) {
			const char *c = cell[qr_light(q, x, y) << 1 | qr_light(q, x, y + 1)];
			size_t n = strlen(c);

			memcpy(p, c, n);
			p += n;
		}
		/* Reset before the newline: a background colour must not fill the next line. */
		if (color)
			p = stpcpy(p, TERM_RESET);
		*p++ = '\n';
	}
	*p = '\0';
	QRcode_free(q);
	*out = buf;
	return ML_OK;
}

const char *
term_spinner(unsigned long tick)
{
	static const char *const frames[] = { "|", "/", "-", "\\" };

	return frames[tick % (sizeof frames / sizeof frames[0])];
}

bool
term_countdown(long secs, char *buf, size_t len)
{
	int n;

	if (secs < 0)
		secs = 0;
	if (secs >= 3600)
		n = snprintf(buf, len, "%ld:%02ld:%02ld", secs / 3600, secs / 60 % 60,
		    secs % 60);
	else
		n = snprintf(buf, len, "%ld:%02ld", secs / 60, secs % 60);
	return n >= 0 && (size_t)n < len;
}
