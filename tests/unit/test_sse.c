/* The event-stream parser: line ends, fields, dispatch, limits and the BOM, in every chunking. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "mlauth/sse.h"

/* Every event as "<name>data|", so one string comparison checks a whole stream. */
struct rec {
	char log[8192];
	size_t n;
	int events;
	int stop_at;		/* return 42 from this event (1-based); 0: never */
	size_t last_len;
};

static int
rec_event(const char *event, const char *data, size_t len, void *arg)
{
	struct rec *r = arg;
	size_t el = strlen(event);

	assert_int_equal(data[len], '\0');
	r->events++;
	r->last_len = len;
	if (r->n + el + len + 3 < sizeof r->log) {
		r->log[r->n++] = '<';
		memcpy(r->log + r->n, event, el);
		r->n += el;
		r->log[r->n++] = '>';
		memcpy(r->log + r->n, data, len);
		r->n += len;
		r->log[r->n++] = '|';
		r->log[r->n] = '\0';
	}
	return r->events == r->stop_at ? 42 : 0;
}

/* Feed s in chunks of chunk bytes (0: whole), with one cut at split (0: none). */
static void
feed(const char *s, size_t len, size_t split, size_t chunk, struct rec *r)
{
	struct sse_parser *p = sse_new(rec_event, r);
	struct ml_err err;
	size_t i = 0;

	assert_non_null(p);
	memset(r, 0, sizeof *r);
	while (i < len) {
		size_t n = chunk > 0 ? chunk : len - i;

		if (split > i && split < i + n)
			n = split - i;
		if (n > len - i)
			n = len - i;
		assert_int_equal(sse_feed(p, s + i, n, &err), ML_OK);
		i += n;
	}
	assert_int_equal(sse_finish(p, &err), ML_OK);
	sse_free(p);
}

/* The same log for the whole stream, every two-piece split and one byte at a time. */
static void
expect_all_ways(const char *s, size_t len, const char *want)
{
	struct rec r;

	feed(s, len, 0, 0, &r);
	assert_string_equal(r.log, want);
	for (size_t split = 1; split < len; split++) {
		feed(s, len, split, 0, &r);
		if (strcmp(r.log, want) != 0)
			fail_msg("split at %zu: got '%s', want '%s'", split, r.log, want);
	}
	feed(s, len, 0, 1, &r);
	assert_string_equal(r.log, want);
}

static void
expect(const char *s, const char *want)
{
	expect_all_ways(s, strlen(s), want);
}

static void
line_ends(void **state)
{
	static const char want[] = "<message>a|<e>b\nc|";

	expect("data: a\n\nevent: e\ndata: b\ndata: c\n\n", want);
	expect("data: a\r\n\r\nevent: e\r\ndata: b\r\ndata: c\r\n\r\n", want);
	expect("data: a\r\revent: e\rdata: b\rdata: c\r\r", want);
	expect("data: a\r\n\nevent: e\rdata: b\r\ndata: c\n\r", want);
}

static void
crlf_split_is_one_line_end(void **state)
{
	struct sse_parser *p;
	struct rec r;
	struct ml_err err;

	memset(&r, 0, sizeof r);
	assert_non_null(p = sse_new(rec_event, &r));
	/* A CR at the end of a piece, its LF at the start of the next: no blank line between. */
	assert_int_equal(sse_feed(p, "data: a\r", 8, &err), ML_OK);
	assert_int_equal(sse_feed(p, "", 0, &err), ML_OK);
	assert_int_equal(sse_feed(p, "\ndata: b\r", 9, &err), ML_OK);
	assert_int_equal(r.events, 0);
	/* The LF is skipped, the CR alone is the blank line. */
	assert_int_equal(sse_feed(p, "\n\r", 2, &err), ML_OK);
	assert_int_equal(r.events, 1);
	/* And this LF belongs to that CR: no second blank line, nothing more dispatched. */
	assert_int_equal(sse_feed(p, "\n", 1, &err), ML_OK);
	assert_int_equal(sse_feed(p, "data: c\r", 9, &err), ML_OK);
	assert_int_equal(sse_feed(p, "\n\r\n", 3, &err), ML_OK);
	assert_int_equal(r.events, 2);
	assert_string_equal(r.log, "<message>a\nb|<message>c|");
	assert_int_equal(sse_finish(p, &err), ML_OK);
	sse_free(p);
}

static void
data_lines(void **state)
{
	/* One space after the colon goes, a second stays; "data" alone is an empty line. */
	expect("data:x\ndata:  y\ndata\ndata: z\n\n", "<message>x\n y\n\nz|");
	expect("data: trailing \ndata:\n\n", "<message>trailing \n|");
	expect("data:\n\n", "<message>|");
	expect("data: {\"a\": \"b: c\"}\n\n", "<message>{\"a\": \"b: c\"}|");
}

static void
comments_and_ignored_fields(void **state)
{
	expect(": keep-alive\n:\nid: 7\nretry: 100\nfoo: bar\nDATA: no\ndata : no\ndata: ok\n\n",
	    "<message>ok|");
	expect(":only a comment\n\n", "");
}

static void
event_names(void **state)
{
	expect("event: first\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n",
	    "<first>1|<message>2|<message>3|");
	/* A name without data dispatches nothing and does not stick to the next event. */
	expect("event: lonely\n\ndata: x\n\n", "<message>x|");
	expect("\n\n\n\r\n", "");
	expect("event: a\nevent: b\ndata: x\n\n", "<b>x|");
}

static void
pending_event_dropped_at_end(void **state)
{
	struct rec r;

	feed("data: x\n", 8, 0, 0, &r);
	assert_int_equal(r.events, 0);
	feed("data: x", 7, 0, 0, &r);
	assert_int_equal(r.events, 0);
	feed("data: x\n\ndata: y\n", 17, 0, 0, &r);
	assert_string_equal(r.log, "<message>x|");
}

static void
nul_bytes_in_data(void **state)
{
	static const char s[] = "event: a\0b\ndata: x\0y\n\n";
	struct rec r;

	feed(s, sizeof s - 1, 0, 0, &r);
	assert_int_equal(r.events, 1);
	assert_int_equal(r.last_len, 3);
	/* The NUL in the name became '?', so it cannot pass for a shorter name. */
	assert_memory_equal(r.log, "<a?b>x\0y|", 9);
}

static void
bom(void **state)
{
	static const char s[] = "\xef\xbb\xbf" "event: e\ndata: d\n\n";

	expect(s, "<e>d|");
	/* Only at the very start: later it is part of a field name (unknown, so ignored). */
	expect("data: 1\n\n\xef\xbb\xbf" "data: 2\n\n", "<message>1|");
	/* Bytes that only began like a BOM are kept: the first field is then unknown. */
	expect("\xef\xbb" "event: e\ndata: d\n\n", "<message>d|");
	expect("\xef" "event: e\ndata: d\n\n", "<message>d|");
	/* Two BOMs: the second is text. */
	expect("\xef\xbb\xbf\xef\xbb\xbf" "event: e\ndata: d\n\n", "<message>d|");
}

static void
oversize_line(void **state)
{
	struct sse_parser *p;
	struct rec r;
	struct ml_err err;
	char *chunk;
	size_t fed = 0;
	int rc = ML_OK;

	memset(&r, 0, sizeof r);
	assert_non_null(chunk = malloc(65536));
	memset(chunk, 'a', 65536);
	assert_non_null(p = sse_new(rec_event, &r));
	assert_int_equal(sse_feed(p, "data: ", 6, &err), ML_OK);
	while (rc == ML_OK && fed < 4u * SSE_MAX_EVENT) {
		rc = sse_feed(p, chunk, 65536, &err);
		fed += 65536;
	}
	assert_int_equal(rc, ML_EAPI);
	assert_true(fed <= SSE_MAX_EVENT + 65536 + 65536);
	assert_non_null(strstr(err.msg, "longer than"));
	/* Broken for good, at the end too. */
	err.msg[0] = '\0';
	assert_int_equal(sse_feed(p, "\n\n", 2, &err), ML_EAPI);
	assert_non_null(strstr(err.msg, "longer than"));
	assert_int_equal(sse_finish(p, &err), ML_EAPI);
	assert_int_equal(r.events, 0);
	sse_free(p);
	free(chunk);
}

static void
oversize_event(void **state)
{
	struct sse_parser *p;
	struct rec r;
	struct ml_err err;
	char line[1030];
	int rc = ML_OK, lines = 0;

	memset(&r, 0, sizeof r);
	memcpy(line, "data: ", 6);
	memset(line + 6, 'b', 1023);
	line[1029] = '\n';
	assert_non_null(p = sse_new(rec_event, &r));
	while (rc == ML_OK && lines < 2048) {
		rc = sse_feed(p, line, sizeof line, &err);
		lines++;
	}
	/* 1024 bytes a line (LF included): the 1025th line passes 1 MiB. */
	assert_int_equal(rc, ML_EAPI);
	assert_int_equal(lines, 1025);
	assert_non_null(strstr(err.msg, "larger than"));
	assert_int_equal(r.events, 0);
	sse_free(p);
}

static void
largest_event_fits(void **state)
{
	size_t len = 6 + SSE_MAX_EVENT + 2;
	char *s = malloc(len);
	struct sse_parser *p;
	struct rec r;
	struct ml_err err;

	assert_non_null(s);
	memcpy(s, "data: ", 6);
	memset(s + 6, 'c', SSE_MAX_EVENT);
	s[len - 2] = '\n';
	s[len - 1] = '\n';
	memset(&r, 0, sizeof r);
	assert_non_null(p = sse_new(rec_event, &r));
	assert_int_equal(sse_feed(p, s, len, &err), ML_OK);
	assert_int_equal(r.events, 1);
	assert_int_equal(r.last_len, SSE_MAX_EVENT);
	/* Two lines that join to one byte more than the cap. */
	assert_int_equal(sse_feed(p, "data: x\n", 8, &err), ML_OK);
	assert_int_equal(sse_feed(p, s, SSE_MAX_EVENT + 6, &err), ML_OK);
	assert_int_equal(sse_feed(p, "\n", 1, &err), ML_EAPI);
	sse_free(p);
	free(s);
}

static void
long_event_name(void **state)
{
	char s[300];
	struct sse_parser *p;
	struct rec r;
	struct ml_err err;

	memset(&r, 0, sizeof r);
	memcpy(s, "event: ", 7);
	memset(s + 7, 'n', 200);
	s[207] = '\n';
	assert_non_null(p = sse_new(rec_event, &r));
	assert_int_equal(sse_feed(p, s, 208, &err), ML_EAPI);
	assert_non_null(strstr(err.msg, "event name"));
	sse_free(p);
}

static void
callback_stops_parser(void **state)
{
	struct sse_parser *p;
	struct rec r;
	struct ml_err err;

	memset(&r, 0, sizeof r);
	r.stop_at = 1;
	assert_non_null(p = sse_new(rec_event, &r));
	(void)snprintf(err.msg, sizeof err.msg, "the callback's own words");
	assert_int_equal(sse_feed(p, "data: 1\n\ndata: 2\n\n", 18, &err), 42);
	assert_int_equal(r.events, 1);
	assert_int_equal(sse_feed(p, "data: 3\n\n", 9, &err), 42);
	assert_int_equal(sse_finish(p, &err), 42);
	assert_int_equal(r.events, 1);
	/* The callback's message is not overwritten. */
	assert_string_equal(err.msg, "the callback's own words");
	sse_free(p);
}

static void
edges(void **state)
{
	struct sse_parser *p;
	struct ml_err err;

	sse_free(NULL);
	assert_int_equal(sse_feed(NULL, "x", 1, &err), ML_EFAIL);
	assert_int_equal(sse_finish(NULL, &err), ML_EFAIL);
	/* No callback: events are parsed and dropped. */
	assert_non_null(p = sse_new(NULL, NULL));
	assert_int_equal(sse_feed(p, NULL, 0, &err), ML_OK);
	assert_int_equal(sse_feed(p, NULL, 1, &err), ML_EFAIL);
	assert_int_equal(sse_feed(p, "data: x\n\n", 9, NULL), ML_OK);
	assert_int_equal(sse_finish(p, NULL), ML_OK);
	sse_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(line_ends),
		cmocka_unit_test(crlf_split_is_one_line_end),
		cmocka_unit_test(data_lines),
		cmocka_unit_test(comments_and_ignored_fields),
		cmocka_unit_test(event_names),
		cmocka_unit_test(pending_event_dropped_at_end),
		cmocka_unit_test(nul_bytes_in_data),
		cmocka_unit_test(bom),
		cmocka_unit_test(oversize_line),
		cmocka_unit_test(oversize_event),
		cmocka_unit_test(largest_event_fits),
		cmocka_unit_test(long_event_name),
		cmocka_unit_test(callback_stops_parser),
		cmocka_unit_test(edges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
