/*
 * fuzz_sse: the event-stream parser (sse.h) feeding messages_stream_event
 * (messages.h), as `mlauth send --stream` wires them.
 *
 * The input is fed twice: whole, and cut into pieces at positions drawn from
 * a generator seeded with the input itself (single bytes, short and long
 * pieces, empty feeds), so every input also tries a chunking of its own.
 * Both runs must see the same events, the same text and the same verdict:
 * a line or a CRLF may be split anywhere (sse.h).
 *
 * Built with FUZZ_SSE_LIMITS (fuzz_sse_limits.c), every input is a pattern
 * instead: its first byte n, then bytes repeated up to 1 MiB - 32 KiB + n * 512
 * in all, so the limits on a line and an event (SSE_MAX_EVENT, 1 MiB) are
 * reached and straddled.  That is slow (about 20 runs a second), hence a
 * target of its own, so this one stays fast.
 */
#include "fuzz.h"
#include "mlauth/messages.h"
#include "mlauth/sse.h"

#define SSE_NAME_MAX	128

struct run {
	struct messages_stream ms;
	struct ml_err err;
	uint64_t events_hash, text_hash;
	size_t events, text_len;
	int rc;
};

static void
mix(uint64_t *h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++) {
		*h ^= s[i];
		*h *= 0x100000001b3ULL;
	}
	*h ^= 0xff;	/* field separator */
	*h *= 0x100000001b3ULL;
}

static int
on_text(const char *text, size_t len, void *arg)
{
	struct run *r = arg;

	FUZZ_CHECK(text != NULL && len > 0, "empty text handed over");
	mix(&r->text_hash, text, len);
	r->text_len += len;
	/* A reader that fails (stdout closed) on some inputs: that path must hold too. */
	return text[0] == '\x01' ? ML_EFAIL : 0;
}

static int
on_event(const char *event, const char *data, size_t len, void *arg)
{
	struct run *r = arg;

	FUZZ_CHECK(event != NULL && strlen(event) <= SSE_NAME_MAX, "event name");
	FUZZ_CHECK(data != NULL && data[len] == '\0', "data not NUL-terminated");
	FUZZ_CHECK(len <= SSE_MAX_EVENT, "event larger than SSE_MAX_EVENT");
	mix(&r->events_hash, event, strlen(event));
	mix(&r->events_hash, data, len);
	r->events++;
	return messages_stream_event(&r->ms, event, data, len, &r->err);
}

/* Feed data whole (seed 0) or in pieces drawn from seed; then finish both layers. */
static void
run(struct run *r, const uint8_t *data, size_t size, uint64_t seed)
{
	struct sse_parser *p;
	size_t i = 0;
	int rc = ML_OK;

	memset(r, 0, sizeof *r);
	messages_stream_init(&r->ms, on_text, r);
	if ((p = sse_new(on_event, r)) == NULL)
		abort();
	while (rc == ML_OK && i < size) {
		size_t n = size - i;

		if (seed != 0) {
			uint64_t x = fuzz_next(&seed);

			switch (x % 5) {
			case 0:
				n = 1;
				break;
			case 1:
				n = 1 + (x >> 8) % 4;
				break;
			case 2:
				n = 1 + (x >> 8) % 64;
				break;
			case 3:
				n = (x >> 8) % 2 == 0 ? 0 : 1 + (x >> 8) % 1024;
				break;
			default:
				break;
			}
			if (n > size - i)
				n = size - i;
		}
		/* An exact-size copy of each piece: reading past it is caught. */
		{
			char *piece = fuzz_copy(data + i, n);

			rc = sse_feed(p, piece, n, &r->err);
			free(piece);
		}
		i += n;
	}
	if (rc == ML_OK)
		rc = sse_finish(p, &r->err);
	if (rc == ML_OK)
		rc = messages_stream_finish(&r->ms, &r->err);
	else
		/* A failed parser keeps failing with the same status. */
		FUZZ_CHECK(sse_feed(p, "x", 1, &r->err) == rc && sse_finish(p, &r->err) == rc,
		    "the parser did not stay failed");
	r->rc = rc;
	if (rc != ML_OK) {
		FUZZ_CHECK(FUZZ_MSG_TERMINATED(&r->err), "unterminated message");
		FUZZ_CHECK(fuzz_one_line(r->err.msg), "message on more than one line: %s",
		    r->err.msg);
		FUZZ_CHECK(fuzz_longest_token_run(r->err.msg) < 40, "token-like run shown: %s",
		    r->err.msg);
	}
	sse_free(p);
}

static bool
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

#ifdef FUZZ_SSE_LIMITS
/* The stream an input stands for (see the top); NULL for too short an input. */
static uint8_t *
expand(const uint8_t *data, size_t size, size_t *outlen)
{
	size_t total, ulen, n = 0;
	uint8_t *buf;

	if (size < 2)
		return NULL;
	total = SSE_MAX_EVENT - 32768 + (size_t)data[0] * 512;
	ulen = size - 1;
	if ((buf = malloc(total)) == NULL)
		abort();
	while (n < total) {
		size_t k = total - n < ulen ? total - n : ulen;

		memcpy(buf + n, data + 1, k);
		n += k;
	}
	*outlen = total;
	return buf;
}
#else
static uint8_t *
expand(const uint8_t *data, size_t size, size_t *outlen)
{
	(void)data;
	(void)size;
	(void)outlen;
	return NULL;
}
#endif

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, cut;
	size_t biglen = 0;
	uint8_t *big = expand(data, size, &biglen);
	uint64_t seed = fuzz_hash(data, size);

	if (big != NULL) {
		data = big;
		size = biglen;
	}
	run(&whole, data, size, 0);
	run(&cut, data, size, seed);
	FUZZ_CHECK(whole.events == cut.events && whole.events_hash == cut.events_hash,
	    "events differ: %zu whole, %zu in pieces", whole.events, cut.events);
	FUZZ_CHECK(whole.text_len == cut.text_len && whole.text_hash == cut.text_hash,
	    "text differs");
	FUZZ_CHECK(whole.rc == cut.rc, "verdict differs: %d whole, %d in pieces", whole.rc,
	    cut.rc);
	FUZZ_CHECK(whole.rc == ML_OK || strcmp(whole.err.msg, cut.err.msg) == 0,
	    "message differs: '%s' whole, '%s' in pieces", whole.err.msg, cut.err.msg);
	FUZZ_CHECK(whole.ms.stopped == cut.ms.stopped &&
	    same(whole.ms.reply.id, cut.ms.reply.id) &&
	    same(whole.ms.reply.model, cut.ms.reply.model) &&
	    same(whole.ms.reply.stop_reason, cut.ms.reply.stop_reason) &&
	    whole.ms.reply.input_tokens == cut.ms.reply.input_tokens &&
	    whole.ms.reply.output_tokens == cut.ms.reply.output_tokens, "reply differs");
	messages_stream_free(&whole.ms);
	messages_stream_free(&cut.ms);
	free(big);
	return 0;
}
