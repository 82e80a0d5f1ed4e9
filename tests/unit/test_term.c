/* Terminal rendering: countdowns, the spinner, QR codes, and the terminal tests. */
#define _XOPEN_SOURCE 700	/* posix_openpt, grantpt, unlockpt, ptsname */

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "unit.h"
#include "mlauth/term.h"

/* ---- term_countdown ---- */

static void
countdown_format(void **state)
{
	static const struct {
		long secs;
		const char *want;
	} cases[] = {
		{ 0, "0:00" }, { 1, "0:01" }, { 9, "0:09" }, { 59, "0:59" }, { 60, "1:00" },
		{ 61, "1:01" }, { 545, "9:05" }, { 600, "10:00" }, { 3599, "59:59" },
		/* From an hour up: hours, then two-digit minutes and seconds. */
		{ 3600, "1:00:00" }, { 3661, "1:01:01" }, { 7199, "1:59:59" },
		{ 36000, "10:00:00" }, { 86399, "23:59:59" },
		/* No days: a long countdown just has more hours. */
		{ 90061, "25:01:01" },
		/* Expired: never a negative time. */
		{ -1, "0:00" }, { -3600, "0:00" }, { LONG_MIN, "0:00" },
	};
	char buf[32];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		memset(buf, 'x', sizeof buf);
		if (!term_countdown(cases[i].secs, buf, sizeof buf))
			fail_msg("term_countdown(%ld) reported a short buffer", cases[i].secs);
		if (strcmp(buf, cases[i].want) != 0)
			fail_msg("term_countdown(%ld) = \"%s\", want \"%s\"", cases[i].secs, buf,
			    cases[i].want);
	}
}

static void
countdown_largest(void **state)
{
	char buf[32];

	/* LONG_MAX seconds: 2562047788015215 hours, 30 minutes, 7 seconds. */
	assert_true(term_countdown(LONG_MAX, buf, sizeof buf));
	assert_string_equal(buf, "2562047788015215:30:07");
}

static void
countdown_buffer_size(void **state)
{
	char buf[16];

	/* Exactly big enough: the text and its NUL. */
	assert_true(term_countdown(545, buf, 5));
	assert_string_equal(buf, "9:05");
	assert_true(term_countdown(3600, buf, 8));
	assert_string_equal(buf, "1:00:00");

	/* One byte short: false, and a truncated but terminated string. */
	memset(buf, 'x', sizeof buf);
	assert_false(term_countdown(545, buf, 4));
	assert_string_equal(buf, "9:0");
	memset(buf, 'x', sizeof buf);
	assert_false(term_countdown(3600, buf, 7));
	assert_string_equal(buf, "1:00:0");
	memset(buf, 'x', sizeof buf);
	assert_false(term_countdown(0, buf, 1));
	assert_string_equal(buf, "");

	/* No room at all: false, and nothing written. */
	memset(buf, 'x', sizeof buf);
	assert_false(term_countdown(59, buf, 0));
	assert_int_equal(buf[0], 'x');
}

/* ---- term_spinner ---- */

static void
spinner_frames(void **state)
{
	static const char *const want[] = { "|", "/", "-", "\\" };

	for (unsigned long t = 0; t < 4; t++)
		assert_string_equal(term_spinner(t), want[t]);
	/* Every frame one printable ASCII character: it is drawn on a status line. */
	for (unsigned long t = 0; t < 4; t++) {
		const char *f = term_spinner(t);

		assert_int_equal(strlen(f), 1);
		assert_true(f[0] > ' ' && f[0] < 0x7f);
	}
}

static void
spinner_cycles(void **state)
{
	/* A cycle of four, whatever the tick, and consecutive frames differ. */
	for (unsigned long t = 0; t < 1000; t++) {
		assert_string_equal(term_spinner(t), term_spinner(t + 4));
		assert_string_not_equal(term_spinner(t), term_spinner(t + 1));
		assert_string_not_equal(term_spinner(t), term_spinner(t + 2));
	}
	for (unsigned long t = ULONG_MAX - 8; t < ULONG_MAX - 4; t++)
		assert_string_equal(term_spinner(t), term_spinner(t + 4));
	/* The tick wraps around without a jump: ULONG_MAX + 1 is 0. */
	assert_string_equal(term_spinner(ULONG_MAX), "\\");
	assert_string_equal(term_spinner(ULONG_MAX - 3), "|");
	assert_string_equal(term_spinner(0), "|");
}

/* ---- term_qr ---- */

enum cell { CELL_NONE = -1, CELL_SPACE, CELL_LOWER, CELL_UPPER, CELL_FULL };

/* The cell at *p (' ', U+2584 ▄, U+2580 ▀, U+2588 █), advancing *p; CELL_NONE otherwise. */
static enum cell
next_cell(const char **p)
{
	const unsigned char *s = (const unsigned char *)*p;

	if (s[0] == ' ') {
		*p += 1;
		return CELL_SPACE;
	}
	if (s[0] == 0xe2 && s[1] == 0x96) {
		enum cell c = s[2] == 0x84 ? CELL_LOWER : s[2] == 0x80 ? CELL_UPPER :
		    s[2] == 0x88 ? CELL_FULL : CELL_NONE;

		if (c != CELL_NONE)
			*p += 3;
		return c;
	}
	return CELL_NONE;
}

#define QR_MAX_SIDE 200	/* version 40 is 177 modules, plus the quiet zone */

struct grid {
	int width;			/* cells per line */
	int lines;
	enum cell cell[QR_MAX_SIDE][QR_MAX_SIDE];
};

/* Parse term_qr's output into g, failing the test on anything but cells and newlines. */
static void
parse_qr(const char *qr, struct grid *g)
{
	const char *p = qr;

	memset(g, 0, sizeof *g);
	g->width = -1;
	assert_true(strlen(qr) > 0);
	assert_int_equal(qr[strlen(qr) - 1], '\n');
	while (*p != '\0') {
		int n = 0;

		assert_true(g->lines < QR_MAX_SIDE);
		while (*p != '\n') {
			enum cell c = next_cell(&p);

			if (c == CELL_NONE)
				fail_msg("line %d, cell %d: not a space or a half block: 0x%02x",
				    g->lines, n, (unsigned char)*p);
			assert_true(n < QR_MAX_SIDE);
			g->cell[g->lines][n++] = c;
		}
		p++;
		if (g->width < 0)
			g->width = n;
		else if (n != g->width)
			fail_msg("line %d has %d cells, line 0 has %d", g->lines, n, g->width);
		g->lines++;
	}
}

#define QUIET 4	/* modules of quiet zone */

/* Module (x, y) of the symbol, x and y counted from its top-left corner, quiet zone at -4. */
static bool
light(const struct grid *g, int x, int y)
{
	enum cell c = g->cell[(y + QUIET) / 2][x + QUIET];

	return (y + QUIET) % 2 == 0 ? (c == CELL_UPPER || c == CELL_FULL) :
	    (c == CELL_LOWER || c == CELL_FULL);
}

/* A finder pattern at (x0, y0): a dark 7x7 ring, a light ring, a dark 3x3 core. */
static void
assert_finder(const struct grid *g, int x0, int y0)
{
	for (int y = 0; y < 7; y++)
		for (int x = 0; x < 7; x++) {
			bool ring = x == 0 || y == 0 || x == 6 || y == 6;
			bool core = x >= 2 && x <= 4 && y >= 2 && y <= 4;

			if (light(g, x0 + x, y0 + y) != !(ring || core))
				fail_msg("finder at (%d,%d): module (%d,%d) is %s", x0, y0, x, y,
				    light(g, x0 + x, y0 + y) ? "light" : "dark");
		}
}

static void
qr_url_is_a_square(void **state)
{
	static const char url[] =
	    "https://kcpro.virtuosgames.com/realms/Virtuos/device?user_code=WDJB-MJHT";
	struct ml_err err;
	struct grid *g = malloc(sizeof *g);
	char *qr = (char *)"not touched";
	int side;

	assert_non_null(g);
	err_clear(&err);
	assert_int_equal(term_qr(url, false, &qr, &err), ML_OK);
	assert_non_null(qr);
	parse_qr(qr, g);

	/* Symbol sides are 17 + 4 * version modules; plus four quiet modules each side. */
	side = g->width;
	assert_true(side >= 21 + 2 * QUIET);
	assert_int_equal((side - 2 * QUIET - 17) % 4, 0);
	/* Square: two module rows per line, so (side + 1) / 2 lines of side cells. */
	assert_int_equal(g->lines, (side + 1) / 2);

	/* The quiet zone is light: the first two lines are full blocks, the margins too. */
	for (int l = 0; l < QUIET / 2; l++)
		for (int x = 0; x < side; x++)
			assert_int_equal(g->cell[l][x], CELL_FULL);
	for (int l = 0; l < g->lines - 1; l++)
		for (int x = 0; x < QUIET; x++) {
			assert_int_equal(g->cell[l][x], CELL_FULL);
			assert_int_equal(g->cell[l][side - 1 - x], CELL_FULL);
		}
	/* An odd number of module rows: the last line's lower half is past the code. */
	for (int x = 0; x < side; x++) {
		assert_int_equal(g->cell[g->lines - 1][x], CELL_UPPER);
		assert_int_equal(g->cell[g->lines - 2][x], CELL_FULL);
	}

	/* Dark modules are spaces: the three finder patterns where a reader looks. */
	assert_finder(g, 0, 0);
	assert_finder(g, side - 2 * QUIET - 7, 0);
	assert_finder(g, 0, side - 2 * QUIET - 7);

	free(qr);
	free(g);
}

static void
qr_depends_on_the_text(void **state)
{
	struct ml_err err;
	char *a, *b, *c;

	err_clear(&err);
	assert_int_equal(term_qr("https://example.com/device?user_code=AAAA-AAAA", false, &a, &err), ML_OK);
	assert_int_equal(term_qr("https://example.com/device?user_code=AAAA-AAAA", false, &b, &err), ML_OK);
	assert_int_equal(term_qr("https://example.com/device?user_code=BBBB-BBBB", false, &c, &err), ML_OK);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	free(a);
	free(b);
	free(c);
}

static void
qr_longer_text_larger_code(void **state)
{
	struct ml_err err;
	struct grid *g = malloc(sizeof *g);
	char text[1001], *qr;
	int small;

	assert_non_null(g);
	err_clear(&err);
	assert_int_equal(term_qr("https://a.example/", false, &qr, &err), ML_OK);
	parse_qr(qr, g);
	small = g->width;
	free(qr);

	memset(text, 'a', sizeof text - 1);
	text[sizeof text - 1] = '\0';
	assert_int_equal(term_qr(text, false, &qr, &err), ML_OK);
	parse_qr(qr, g);
	assert_true(g->width > small);
	assert_int_equal(g->lines, (g->width + 1) / 2);
	free(qr);
	free(g);
}

/* With colour, each line is white on black and reset before its newline; the cells the same. */
static void
qr_colors_on_every_line(void **state)
{
	static const char on[] = "\033[38;5;231;48;5;16m", off[] = "\033[0m";
	static const char url[] = "https://example.com/device?user_code=AAAA-AAAA";
	struct ml_err err;
	char *plain, *colored, *strip, *q;
	const char *p;

	err_clear(&err);
	assert_int_equal(term_qr(url, false, &plain, &err), ML_OK);
	assert_int_equal(term_qr(url, true, &colored, &err), ML_OK);
	assert_null(strchr(plain, '\033'));
	assert_non_null(strip = malloc(strlen(colored) + 1));
	q = strip;
	for (p = colored; *p != '\0';) {
		const char *nl = strchr(p, '\n');

		assert_non_null(nl);
		assert_memory_equal(p, on, sizeof on - 1);
		assert_true((size_t)(nl - p) >= sizeof on + sizeof off - 2);
		assert_memory_equal(nl - (sizeof off - 1), off, sizeof off - 1);
		memcpy(q, p + sizeof on - 1, (size_t)(nl - p) - (sizeof on - 1) - (sizeof off - 1));
		q += (size_t)(nl - p) - (sizeof on - 1) - (sizeof off - 1);
		*q++ = '\n';
		p = nl + 1;
	}
	*q = '\0';
	assert_string_equal(strip, plain);
	free(strip);
	free(plain);
	free(colored);
}

static void
qr_too_long(void **state)
{
	struct ml_err err;
	char *text = malloc(4001), *qr = (char *)"not touched";

	/* 4000 bytes: more than the largest QR code holds (2953 bytes at level L). */
	assert_non_null(text);
	memset(text, 'a', 4000);
	text[4000] = '\0';
	err_clear(&err);
	assert_int_not_equal(term_qr(text, false, &qr, &err), ML_OK);
	assert_null(qr);
	assert_int_not_equal(err.code, ML_OK);
	assert_non_null(strstr(err.msg, "too long"));
	free(text);
}

/* ---- term_live and term_columns ---- */

/* A pseudo-terminal's two ends, or skip the test where there is none. */
static void
open_pty(int *master, int *slave)
{
	const char *name;

	if ((*master = posix_openpt(O_RDWR | O_NOCTTY)) < 0)
		skip();
	if (grantpt(*master) != 0 || unlockpt(*master) != 0 ||
	    (name = ptsname(*master)) == NULL ||
	    (*slave = open(name, O_RDWR | O_NOCTTY)) < 0) {
		close(*master);
		skip();
	}
}

static void
live_needs_a_terminal(void **state)
{
	const char *saved = getenv("TERM");
	char *keep = saved != NULL ? strdup(saved) : NULL;
	int fds[2], master, slave;

	assert_int_equal(pipe(fds), 0);
	open_pty(&master, &slave);

	assert_int_equal(setenv("TERM", "xterm-256color", 1), 0);
	assert_true(term_live(slave));
	assert_false(term_live(fds[1]));	/* a pipe is never live */
	assert_false(term_live(-1));
	assert_int_equal(setenv("TERM", "dumb", 1), 0);
	assert_false(term_live(slave));	/* no \r and erase-line on a dumb terminal */
	assert_int_equal(unsetenv("TERM"), 0);
	assert_true(term_live(slave));

	if (keep != NULL)
		(void)setenv("TERM", keep, 1);
	free(keep);
	close(fds[0]);
	close(fds[1]);
	close(slave);
	close(master);
}

static void
columns_of_a_terminal(void **state)
{
	struct winsize ws = { .ws_row = 40, .ws_col = 123 };
	int fds[2], master, slave;

	assert_int_equal(pipe(fds), 0);
	open_pty(&master, &slave);
	assert_int_equal(ioctl(slave, TIOCSWINSZ, &ws), 0);
	assert_int_equal(term_columns(slave), 123);
	/* Unknown width: 0, so the caller does not cut its line. */
	assert_int_equal(term_columns(fds[1]), 0);
	assert_int_equal(term_columns(-1), 0);
	close(fds[0]);
	close(fds[1]);
	close(slave);
	close(master);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(countdown_format),
		cmocka_unit_test(countdown_largest),
		cmocka_unit_test(countdown_buffer_size),
		cmocka_unit_test(spinner_frames),
		cmocka_unit_test(spinner_cycles),
		cmocka_unit_test(qr_url_is_a_square),
		cmocka_unit_test(qr_depends_on_the_text),
		cmocka_unit_test(qr_longer_text_larger_code),
		cmocka_unit_test(qr_colors_on_every_line),
		cmocka_unit_test(qr_too_long),
		cmocka_unit_test(live_needs_a_terminal),
		cmocka_unit_test(columns_of_a_terminal),
	};

	return cmocka_run_group_tests_name("term", tests, NULL, NULL);
}
