/*
 * sanitize.c: one rule for every piece of network text shown to a person.
 *
 * Before this module the rule was written four times (oidc.c, messages.c,
 * cmd_doctor.c, the -vv trace) with four results: only one redacted short
 * JWTs, two let C1 controls through (a raw 0x9b is CSI on many terminals,
 * as is U+009B on UTF-8 ones).
 */
#include <stdint.h>
#include <string.h>

#include "mlauth/sanitize.h"

static bool
san_tokenish(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '_' || c == '-' || c == '+' || c == '=';
}

/*
 * The length of the UTF-8 sequence at s (at most len bytes) and its code
 * point in *cp; 0 when invalid (overlong, surrogate, past U+10FFFF, a stray
 * continuation byte), -1 when valid so far but cut short by len.
 */
static int
san_utf8(const unsigned char *s, size_t len, uint32_t *cp)
{
	static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	int n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
	uint32_t c;

	if (n == 0 || s[0] > 0xf4)
		return 0;
	c = s[0] & (0x7f >> n);
	for (int i = 1; i < n; i++) {
		if ((size_t)i >= len)
			return -1;
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* Code points a terminal interprets or that disguise text: C1 and bidi controls. */
static bool
san_control_cp(uint32_t c)
{
	return (c >= 0x80 && c <= 0x9f) || (c >= 0x202a && c <= 0x202e) ||
	    (c >= 0x2066 && c <= 0x2069) || c == 0x200e || c == 0x200f || c == 0x061c;
}

/*
 * One character of in[0..len): how many bytes it takes (0: held back, cut
 * short at the end of a chunk) and what to show for it in out[0..*olen).
 * Whitespace comes back as ' ' (class 1) so a caller may collapse it.
 */
static size_t
san_char(const unsigned char *in, size_t len, unsigned flags, bool stream,
    unsigned char *out, size_t *olen, bool *ws)
{
	uint32_t cp;
	int n;

	*ws = false;
	*olen = 1;
	if (in[0] < 0x80) {
		out[0] = in[0];
		if (in[0] == '\n' || in[0] == '\t' || in[0] == '\r' || in[0] == '\v' ||
		    in[0] == '\f' || (in[0] == ' ' && (flags & SAN_ONELINE))) {
			if (flags & SAN_ONELINE) {
				out[0] = ' ';
				*ws = true;
			} else if (in[0] != '\n' && in[0] != '\t') {
				out[0] = '?';	/* a bare CR would let text overwrite text */
			}
		} else if (in[0] < 0x20 || in[0] == 0x7f) {
			out[0] = '?';
		}
		return 1;
	}
	n = san_utf8(in, len, &cp);
	if (n < 0 && stream)
		return 0;
	if (n <= 0) {
		out[0] = '?';	/* a raw 0x9b (CSI) lands here too */
		return 1;
	}
	if ((flags & SAN_ASCII) || san_control_cp(cp)) {
		out[0] = '?';
	} else {
		memcpy(out, in, (size_t)n);
		*olen = (size_t)n;
	}
	return (size_t)n;
}

void
sanitize_init(struct sanitize *s, char *buf, size_t cap, unsigned flags)
{
	s->buf = buf;
	s->cap = cap;
	s->n = 0;
	s->flags = flags;
	s->cut = cap == 0;
	if (cap > 0)
		buf[0] = '\0';
}

static void
san_append(struct sanitize *s, const void *p, size_t len)
{
	if (s->cut)
		return;
	if (s->n + len >= s->cap) {
		s->cut = true;
		return;
	}
	memcpy(s->buf + s->n, p, len);
	s->n += len;
	s->buf[s->n] = '\0';
}

void
sanitize_raw(struct sanitize *s, const char *ours)
{
	san_append(s, ours, strlen(ours));
}

/* The length of a credential-looking run at in, or 0. */
static size_t
san_secret_run(const unsigned char *in, size_t len)
{
	size_t run = 0;
	bool jwt;

	while (run < len && san_tokenish(in[run]))
		run++;
	/* A JWT's parts are joined by dots and each may be short: take it whole. */
	jwt = run >= 3 && memcmp(in, "eyJ", 3) == 0;
	if (jwt)
		while (run < len && (san_tokenish(in[run]) || in[run] == '.'))
			run++;
	return run >= SAN_TOKENISH_RUN || (jwt && run >= SAN_JWT_RUN) ? run : 0;
}

void
sanitize_put(struct sanitize *s, const char *in, size_t len)
{
	const unsigned char *p = (const unsigned char *)in;
	unsigned char out[4];
	size_t i = 0, olen, used, run;
	bool ws;

	while (i < len && !s->cut) {
		if ((s->flags & SAN_REDACT) && (i == 0 || !san_tokenish(p[i - 1])) &&
		    (run = san_secret_run(p + i, len - i)) > 0) {
			sanitize_raw(s, "[redacted]");
			i += run;
			continue;
		}
		used = san_char(p + i, len - i, s->flags, false, out, &olen, &ws);
		i += used;
		/* Runs of whitespace are one space, and none starts a line. */
		if (ws && (s->n == 0 || s->buf[s->n - 1] == ' '))
			continue;
		san_append(s, out, olen);
	}
	if (i < len)
		s->cut = true;
}

/* No trailing space, and "..." where something was cut. */
const char *
sanitize_done(struct sanitize *s)
{
	size_t n = s->n;

	if (s->cap == 0)
		return "";
	if (s->cut && s->cap > 4 && n + 4 > s->cap)
		n = s->cap - 4;
	/* Back to a character boundary: never half a UTF-8 sequence before "...". */
	while (s->cut && n > 0 && ((unsigned char)s->buf[n] & 0xc0) == 0x80)
		n--;
	while ((s->flags & SAN_ONELINE) && n > 0 && s->buf[n - 1] == ' ')
		n--;
	if (s->cut && s->cap > 4) {
		memcpy(s->buf + n, "...", 4);
		n += 3;
	}
	s->buf[n] = '\0';
	s->n = n;
	return s->buf;
}

const char *
sanitize_str(const char *in, unsigned flags, char *out, size_t outlen)
{
	struct sanitize s;

	sanitize_init(&s, out, outlen, flags);
	if (in != NULL)
		sanitize_put(&s, in, strlen(in));
	return sanitize_done(&s);
}

size_t
sanitize_stream(struct sanitize_stream *st, const char *in, size_t len, char *out)
{
	unsigned char buf[SANITIZE_HELD * 2], o[4];
	const unsigned char *p = (const unsigned char *)in;
	size_t n = 0, i = 0, olen, used;
	bool ws;

	/* First finish the character held back from the last chunk. */
	while (st->nheld > 0) {
		size_t take = len - i < SANITIZE_HELD ? len - i : SANITIZE_HELD;

		memcpy(buf, st->held, st->nheld);
		memcpy(buf + st->nheld, p + i, take);
		used = san_char(buf, st->nheld + take, 0, true, o, &olen, &ws);
		if (used == 0) {	/* still unfinished: the whole chunk was too short */
			memcpy(st->held + st->nheld, p + i, take);
			st->nheld += take;
			return n;
		}
		memcpy(out + n, o, olen);
		n += olen;
		if (used <= st->nheld) {	/* an invalid byte: the rest is read afresh */
			memmove(st->held, st->held + used, st->nheld - used);
			st->nheld -= used;
		} else {
			i += used - st->nheld;
			st->nheld = 0;
		}
	}
	while (i < len) {
		used = san_char(p + i, len - i, 0, true, o, &olen, &ws);
		if (used == 0) {
			st->nheld = len - i;
			memcpy(st->held, p + i, st->nheld);
			break;
		}
		memcpy(out + n, o, olen);
		n += olen;
		i += used;
	}
	return n;
}

size_t
sanitize_stream_end(struct sanitize_stream *st, char *out)
{
	size_t n = st->nheld > 0;

	if (n)
		out[0] = '?';
	st->nheld = 0;
	return n;
}
