/*
 * fuzz_sanitize: sanitize_put/sanitize_done (a bounded line) and
 * sanitize_stream (a terminal stream) on any bytes.
 *
 * Input: a flags byte (its low 3 bits: SAN_ONELINE, SAN_ASCII, SAN_REDACT),
 * a capacity byte (the line's buffer, 1..256), then the text.  Checked: what
 * sanitize.h promises.  The line is NUL-terminated inside its buffer, valid
 * UTF-8 without C0 (but, outside SAN_ONELINE, \n and \t), DEL, C1 or bidi
 * controls, ASCII only with SAN_ASCII, one line without edge spaces with
 * SAN_ONELINE, no credential-length run with SAN_REDACT.  The stream gives
 * the same bytes however the text is cut into chunks (the cuts come from the
 * text itself), and obeys the same rules.
 */
#include <glib.h>

#include "fuzz.h"
#include "mlauth/sanitize.h"

static void
check_shown(const char *s, size_t n, bool oneline, bool ascii)
{
	const char *end;

	FUZZ_CHECK(g_utf8_validate(s, (gssize)n, &end), "invalid UTF-8 at %zu", (size_t)(end - s));
	for (const char *p = s; p < s + n; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);

		FUZZ_CHECK(c != 0 && c != 0x7f && !(c >= 0x80 && c <= 0x9f) &&
		    !(c >= 0x202a && c <= 0x202e) && !(c >= 0x2066 && c <= 0x2069),
		    "control U+%04X shown", (unsigned)c);
		FUZZ_CHECK(c >= 0x20 || (!oneline && (c == '\n' || c == '\t')),
		    "C0 control 0x%02x shown", (unsigned)c);
		FUZZ_CHECK(!ascii || c < 0x80, "non-ASCII U+%04X with SAN_ASCII", (unsigned)c);
	}
}

static void
fuzz_line(const uint8_t *text, size_t len, unsigned flags, size_t cap)
{
	char *buf = malloc(cap);
	struct sanitize s;
	const char *out;
	size_t n, run = 0;

	if (buf == NULL)
		abort();
	sanitize_init(&s, buf, cap, flags);
	/* In two puts, as messages.c builds its lines from several pieces. */
	sanitize_put(&s, (const char *)text, len / 2);
	sanitize_raw(&s, ": ");
	sanitize_put(&s, (const char *)text + len / 2, len - len / 2);
	out = sanitize_done(&s);
	n = strlen(out);
	FUZZ_CHECK(out == buf && n < cap, "line of %zu bytes in %zu", n, cap);
	check_shown(out, n, flags & SAN_ONELINE, flags & SAN_ASCII);
	if ((flags & SAN_ONELINE) && n > 0)
		FUZZ_CHECK(out[0] != ' ' && out[n - 1] != ' ', "a space at an end: '%s'", out);
	for (size_t i = 0; (flags & SAN_REDACT) && i < n; i++) {
		run = fuzz_tokenish((unsigned char)out[i]) ? run + 1 : 0;
		FUZZ_CHECK(run < SAN_TOKENISH_RUN, "a token-like run shown: '%s'", out);
	}
	free(buf);
}

/* The whole text in cuts taken from its own bytes; returns the bytes shown (malloc'd). */
static char *
fuzz_stream(const uint8_t *text, size_t len, bool cut, size_t *outlen)
{
	struct sanitize_stream st = { { 0 }, 0 };
	char *out = malloc(len + 2 * SANITIZE_HELD + 1);
	size_t n = 0, i = 0, piece;

	if (out == NULL)
		abort();
	while (i < len) {
		piece = cut ? (size_t)(text[i] % 7) + 1 : len - i;
		if (piece > len - i)
			piece = len - i;
		n += sanitize_stream(&st, (const char *)text + i, piece, out + n);
		i += piece;
	}
	n += sanitize_stream_end(&st, out + n);
	FUZZ_CHECK(n <= len + SANITIZE_HELD, "stream grew: %zu from %zu", n, len);
	*outlen = n;
	return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *whole, *cut;
	size_t wn, cn;

	if (size < 2)
		return 0;
	fuzz_line(data + 2, size - 2, data[0] & 7u, (size_t)data[1] + 1);
	whole = fuzz_stream(data + 2, size - 2, false, &wn);
	cut = fuzz_stream(data + 2, size - 2, true, &cn);
	FUZZ_CHECK(wn == cn && memcmp(whole, cut, wn) == 0, "chunking changed the stream");
	check_shown(whole, wn, false, false);
	free(whole);
	free(cut);
	return 0;
}
