/*
 * sanitize.h: text from the network made safe for a terminal or a log line.
 *
 * Every string a server chose (error descriptions, token claims, a reply's
 * text, a trace) reaches a person through here.  C0 controls, DEL, C1
 * controls (raw 0x80-0x9f bytes and U+0080-U+009F), bidirectional overrides
 * and invalid UTF-8 become '?': visible, never interpreted.  Bytes stay exact
 * only where the user asked for them (--json, send into a pipe or file);
 * those paths do not call this.
 */
#ifndef MLAUTH_SANITIZE_H
#define MLAUTH_SANITIZE_H

#include <stdbool.h>
#include <stddef.h>

enum {
	SAN_ONELINE = 1 << 0,	/* line breaks and tabs become one space (messages) */
	SAN_ASCII = 1 << 1,	/* each non-ASCII character becomes '?' */
	SAN_REDACT = 1 << 2,	/* token-like runs and JWTs become "[redacted]" */
};
#define SAN_TOKENISH_RUN	40	/* a longer [A-Za-z0-9_+=-] run looks like a token */
#define SAN_JWT_RUN		20	/* so does a shorter one that starts like a JWT ("eyJ") */

/*
 * A bounded line being built from several pieces.  What does not fit is cut
 * (a multi-byte character never in two), and sanitize_done then ends the line
 * in "...", so a hostile server cannot push the rest of a message out.
 */
struct sanitize {
	char *buf;
	size_t cap;		/* bytes in buf, the NUL included */
	size_t n;
	unsigned flags;
	bool cut;
};

void sanitize_init(struct sanitize *s, char *buf, size_t cap, unsigned flags);
/* Untrusted text, len bytes (NULs included: they become '?'). */
void sanitize_put(struct sanitize *s, const char *in, size_t len);
/* Our own words, whole or not at all. */
void sanitize_raw(struct sanitize *s, const char *ours);
/* The line, with "..." at its end when something was cut. */
const char *sanitize_done(struct sanitize *s);
/* The whole string in into out (outlen bytes) per flags: sanitize_init, _put, _done. */
const char *sanitize_str(const char *in, unsigned flags, char *out, size_t outlen);

/*
 * A stream of text for a terminal (send's reply): line breaks and tabs kept,
 * the rest as above.  A UTF-8 character split between two chunks is held
 * back until the next.  out needs len + SANITIZE_HELD bytes; returns how many
 * were written.  sanitize_stream_end flushes a character left unfinished.
 */
#define SANITIZE_HELD	4
struct sanitize_stream {
	unsigned char held[SANITIZE_HELD];
	size_t nheld;
};
size_t sanitize_stream(struct sanitize_stream *st, const char *in, size_t len, char *out);
size_t sanitize_stream_end(struct sanitize_stream *st, char *out);

#endif
