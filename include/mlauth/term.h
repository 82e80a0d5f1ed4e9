/* term.h: what a command needs for a terminal: QR codes, a spinner, countdowns. */
#ifndef MLAUTH_TERM_H
#define MLAUTH_TERM_H

#include <stdbool.h>
#include <stddef.h>

#include "mlauth/err.h"

/* SGR and line control; print them only where term_live (or ctx->color) allows. */
#define TERM_BOLD	"\033[1m"
#define TERM_RESET	"\033[0m"
#define TERM_ERASE_EOL	"\033[K"	/* erase from the cursor to the end of the line */
#define TERM_CLEAR_LINE	"\r" TERM_ERASE_EOL	/* back to column 0, erase the line */

/*
 * fd is a terminal that understands \r and erase-line (TERM is not "dumb"):
 * the test for drawing a live status line.  Colour has its own test
 * (ctx->color: NO_COLOR and --no-color too).
 */
bool term_live(int fd);

/* Columns of the terminal on fd; 0 when unknown. */
int term_columns(int fd);

/*
 * `text` as a QR code (error correction L, the standard's quiet zone of 4
 * modules) drawn with Unicode half blocks: two module rows per line, light
 * modules as foreground (U+2580 ▀, U+2584 ▄, U+2588 █), dark ones as spaces.
 * With color, every line sets white on black (256-colour cube, which themes
 * leave alone) and resets before its '\n', so the code is dark-on-light on
 * any terminal; without, it reads on the usual light-on-dark terminal only.
 * On success *out is a new string the caller frees; on failure *out is NULL
 * and err says why (text too long for a QR code, out of memory).
 */
int term_qr(const char *text, bool color, char **out, struct ml_err *err);

/* The spinner's frame for `tick` (any number; it wraps): a static ASCII string. */
const char *term_spinner(unsigned long tick);

/*
 * `secs` as a countdown: "9:05", "59:59", "1:00:00"; negative is "0:00".
 * Returns false when buf is too small (it then holds a truncated string).
 */
bool term_countdown(long secs, char *buf, size_t len);

#endif
