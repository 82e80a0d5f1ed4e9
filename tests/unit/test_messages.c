/* The messages module: request bodies, replies, error lines, retry policy and streamed answers. */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "mlauth/messages.h"
#include "mlauth/sse.h"

/* One line, printable ASCII, except our own "…" after a long 422 list. */
static void
msg_one_line(const struct ml_err *err)
{
	for (const char *s = err->msg; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (strncmp(s, "\xe2\x80\xa6", 3) == 0) {
			s += 2;
			continue;
		}
		if (c < 0x20 || c > 0x7e)
			fail_msg("'%s' holds byte 0x%02x", err->msg, c);
	}
}

/* ---- request bodies ---- */

static json_t *
body_of(const struct messages_request *req)
{
	struct ml_err err;
	json_error_t je;
	char *body = NULL;
	json_t *root;

	assert_int_equal(messages_build_body(req, &body, &err), ML_OK);
	assert_non_null(body);
	root = json_loads(body, 0, &je);
	if (root == NULL)
		fail_msg("not JSON: %s (%s)", body, je.text);
	free(body);
	return root;
}

static void
body_minimal(void **state)
{
	struct messages_request req = { .model = "claude-opus-4-6", .max_tokens = 1024,
	    .text = "Hello, world" };
	json_t *root = body_of(&req), *msgs, *m;

	assert_int_equal(json_object_size(root), 3);
	assert_string_equal(json_string_value(json_object_get(root, "model")), "claude-opus-4-6");
	assert_int_equal(json_integer_value(json_object_get(root, "max_tokens")), 1024);
	msgs = json_object_get(root, "messages");
	assert_true(json_is_array(msgs));
	assert_int_equal(json_array_size(msgs), 1);
	m = json_array_get(msgs, 0);
	assert_int_equal(json_object_size(m), 2);
	assert_string_equal(json_string_value(json_object_get(m, "role")), "user");
	assert_string_equal(json_string_value(json_object_get(m, "content")), "Hello, world");
	assert_null(json_object_get(root, "system"));
	assert_null(json_object_get(root, "temperature"));
	assert_null(json_object_get(root, "stream"));
	json_decref(root);
}

static void
body_all_options(void **state)
{
	struct messages_request req = { .model = "m", .max_tokens = 1, .text = "t",
	    .system = "Be brief.", .has_temperature = true, .temperature = 0.25, .stream = true };
	json_t *root = body_of(&req);

	assert_int_equal(json_object_size(root), 6);
	assert_string_equal(json_string_value(json_object_get(root, "system")), "Be brief.");
	assert_true(json_is_real(json_object_get(root, "temperature")));
	assert_true(fabs(json_real_value(json_object_get(root, "temperature")) - 0.25) < 1e-9);
	assert_true(json_is_true(json_object_get(root, "stream")));
	json_decref(root);

	/* A temperature of 0 is a choice, not "unset". */
	req.temperature = 0.0;
	req.stream = false;
	req.system = NULL;
	root = body_of(&req);
	assert_non_null(json_object_get(root, "temperature"));
	assert_true(json_real_value(json_object_get(root, "temperature")) == 0.0);
	assert_null(json_object_get(root, "stream"));
	assert_null(json_object_get(root, "system"));
	json_decref(root);
}

static void
body_text_round_trips(void **state)
{
	static const char text[] = "She said \"hi\"\\ \n\tthen left.\r\n"
	    "Gr\xc3\xbc\xc3\x9f" "e, \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x8e\x89 \x01 </script>";
	struct messages_request req = { .model = "m", .max_tokens = 5, .text = text,
	    .system = text };
	json_t *root = body_of(&req);
	json_t *content = json_object_get(json_array_get(json_object_get(root, "messages"), 0),
	    "content");

	assert_string_equal(json_string_value(content), text);
	assert_string_equal(json_string_value(json_object_get(root, "system")), text);
	json_decref(root);

	req.text = "";
	root = body_of(&req);
	json_decref(root);
}

static void
body_refused(void **state)
{
	struct messages_request req = { .model = "m", .max_tokens = 5, .text = "t" };
	struct ml_err err;
	char *body = (char *)"x";

	req.text = "caf\xe9";
	assert_int_equal(messages_build_body(&req, &body, &err), ML_EUSAGE);
	assert_null(body);
	msg_has(err.msg, "message is not valid UTF-8");
	req.text = "\xed\xa0\x80 surrogate";
	assert_int_equal(messages_build_body(&req, &body, &err), ML_EUSAGE);
	req.text = "\xc0\xaf overlong";
	assert_int_equal(messages_build_body(&req, &body, &err), ML_EUSAGE);
	req.text = "cut \xe4\xb8";
	assert_int_equal(messages_build_body(&req, &body, &err), ML_EUSAGE);
	req.text = "t";
	req.system = "\xff";
	assert_int_equal(messages_build_body(&req, &body, &err), ML_EUSAGE);
	msg_has(err.msg, "system prompt");
	req.system = NULL;
	req.text = NULL;
	assert_int_equal(messages_build_body(&req, &body, &err), ML_EUSAGE);
	req.text = "t";
	req.model = "";
	assert_int_equal(messages_build_body(&req, &body, &err), ML_EUSAGE);
	req.model = NULL;
	assert_int_equal(messages_build_body(&req, &body, &err), ML_EUSAGE);
	req.model = "m";
	req.max_tokens = 0;
	assert_int_equal(messages_build_body(&req, &body, &err), ML_EUSAGE);
	msg_has(err.msg, "max_tokens");
	req.max_tokens = 5;
	req.has_temperature = true;
	req.temperature = NAN;
	assert_int_equal(messages_build_body(&req, &body, &err), ML_EUSAGE);
	req.temperature = INFINITY;
	assert_int_equal(messages_build_body(&req, &body, &err), ML_EUSAGE);
	assert_int_equal(messages_build_body(NULL, &body, &err), ML_EUSAGE);
	assert_null(body);
}

/* ---- replies ---- */

static void
reply_good(void **state)
{
	static const char doc[] =
	    "{\"id\":\"msg_01ABC\",\"type\":\"message\",\"role\":\"assistant\","
	    "\"model\":\"claude-opus-4-6\",\"content\":["
	    "{\"type\":\"text\",\"text\":\"Hello\",\"citations\":null},"
	    "{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"x\",\"input\":{}},"
	    "{\"type\":\"thinking\",\"thinking\":\"hmm\"},"
	    "{\"type\":\"text\",\"text\":\", w\\u00f6rld\\n\"},"
	    "{\"type\":\"text\",\"text\":\"!\"}],"
	    "\"stop_reason\":\"end_turn\",\"stop_sequence\":null,"
	    "\"usage\":{\"input_tokens\":10,\"output_tokens\":42,"
	    "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,"
	    "\"cache_creation\":{\"ephemeral_1h_input_tokens\":0},"
	    "\"server_tool_use\":null,\"service_tier\":\"standard\"}}";
	struct messages_reply r;
	struct ml_err err;

	assert_int_equal(messages_parse_reply(doc, strlen(doc), &r, &err), ML_OK);
	assert_string_equal(r.text, "Hello, w\xc3\xb6rld\n!");
	assert_string_equal(r.id, "msg_01ABC");
	assert_string_equal(r.model, "claude-opus-4-6");
	assert_string_equal(r.stop_reason, "end_turn");
	assert_int_equal(r.input_tokens, 10);
	assert_int_equal(r.output_tokens, 42);
	messages_reply_free(&r);
	assert_null(r.text);
	messages_reply_free(&r);
}

static void
reply_sparse_and_odd(void **state)
{
	static const char none[] = "{\"content\":[]}";
	static const char odd[] =
	    "{\"id\":5,\"model\":\"evil\\u001b[31m\\nmodel\",\"stop_reason\":null,"
	    "\"content\":[7,\"x\",{\"type\":\"text\",\"text\":\"a\\u0000b\"},{\"text\":\"no type\"}],"
	    "\"usage\":{\"input_tokens\":-3,\"output_tokens\":\"7\"}}";
	struct messages_reply r;
	struct ml_err err;

	assert_int_equal(messages_parse_reply(none, strlen(none), &r, &err), ML_OK);
	assert_non_null(r.text);
	assert_string_equal(r.text, "");
	assert_null(r.id);
	assert_null(r.model);
	assert_int_equal(r.input_tokens, -1);
	assert_int_equal(r.output_tokens, -1);
	messages_reply_free(&r);

	assert_int_equal(messages_parse_reply(odd, strlen(odd), &r, &err), ML_OK);
	assert_string_equal(r.text, "ab");
	assert_null(r.id);
	assert_null(r.stop_reason);
	/* Shown under -v: no escape sequence, no line break. */
	assert_string_equal(r.model, "evil?[31m model");	/* ESC shown, not obeyed */
	assert_int_equal(r.input_tokens, -1);
	assert_int_equal(r.output_tokens, -1);
	messages_reply_free(&r);
}

static void
reply_bad(const char *doc, const char *needle)
{
	size_t len = doc != NULL ? strlen(doc) : 0;
	struct messages_reply r;
	struct ml_err err;

	err.msg[0] = '\0';
	assert_int_equal(messages_parse_reply(doc, len, &r, &err), ML_EAPI);
	assert_int_equal(err.code, ML_EAPI);
	msg_has(err.msg, needle);
	msg_one_line(&err);
	assert_null(r.text);
	assert_null(r.id);
	messages_reply_free(&r);
}

static void
reply_malformed(void **state)
{
	static const char deep_head[] = "{\"content\":";
	size_t depth = 100000, n = sizeof deep_head - 1;
	char *deep = malloc(n + depth + 1);

	reply_bad("Hello", "not valid JSON");
	reply_bad("[{\"content\":[]}]", "not a JSON object");
	reply_bad("\"content\"", "not a JSON object");
	reply_bad("{}", "no content list");
	reply_bad("{\"content\":\"text\"}", "no content list");
	reply_bad("{\"content\":null}", "no content list");
	reply_bad("{\"content\":[{\"type\":\"text\",\"text\":5}]}", "has no text");
	reply_bad("<html><body>502</body></html>", "HTML");
	reply_bad("", "empty");
	reply_bad(NULL, "empty");
	reply_bad(" \r\n", "empty");
	reply_bad("{\"content\":[", "truncated");
	reply_bad("{\"content\":[{\"type\":\"text\",\"text\":\"caf\xe9\"}]}", "UTF-8");
	reply_bad("{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
	    "\"message\":\"Overloaded\"}}", "the reply is an error: overloaded_error: Overloaded");

	assert_non_null(deep);
	memcpy(deep, deep_head, n);
	memset(deep + n, '[', depth);
	deep[n + depth] = '\0';
	reply_bad(deep, "nested too deeply");
	free(deep);
}

static void
reply_huge_text(void **state)
{
	static const char head[] = "{\"content\":[{\"type\":\"text\",\"text\":\"";
	static const char tail[] = "\"}]}";
	size_t big = 3u * 1024 * 1024, len = sizeof head - 1 + big + sizeof tail - 1;
	char *doc = malloc(len + 1);
	struct messages_reply r;
	struct ml_err err;

	assert_non_null(doc);
	memcpy(doc, head, sizeof head - 1);
	memset(doc + sizeof head - 1, 'z', big);
	memcpy(doc + sizeof head - 1 + big, tail, sizeof tail);
	assert_int_equal(messages_parse_reply(doc, len, &r, &err), ML_OK);
	assert_int_equal(strlen(r.text), big);
	messages_reply_free(&r);
	free(doc);
}

/* ---- error answers ---- */

static void
error_is(long status, const char *body, const char *want)
{
	struct ml_err err;

	err.code = 0;
	assert_int_equal(messages_parse_error(status, body, body != NULL ? strlen(body) : 0,
	    &err), ML_EAPI);
	assert_int_equal(err.code, ML_EAPI);
	assert_string_equal(err.msg, want);
	msg_one_line(&err);
}

static void
error_examples(void **state)
{
	error_is(422, "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\",\"messages\",0,"
	    "\"content\"],\"msg\":\"Field required\",\"input\":{\"role\":\"user\"}}]}",
	    "HTTP 422: body.messages.0.content: Field required (the request was invalid)");
	error_is(403, "{\"detail\":\"Not allowed\"}",
	    "HTTP 403: Not allowed (not authorized for this route: ask for access)");
	error_is(529, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
	    "\"message\":\"Overloaded\"}}",
	    "HTTP 529: overloaded_error: Overloaded (overloaded: retry later)");
}

static void
error_hints(void **state)
{
	static const struct {
		long status;
		const char *hint;
	} t[] = {
		{ 400, "bad request" },
		{ 401, "not authenticated: run mlauth login" },
		{ 403, "not authorized for this route: ask for access" },
		{ 404, "not found: check api_base" },
		{ 410, "this endpoint is no longer available" },
		{ 413, "request too large" },
		{ 422, "the request was invalid" },
		{ 429, "rate limited: retry later" },
		{ 500, "the service or its upstream failed: retry later" },
		{ 502, "the service or its upstream failed: retry later" },
		{ 503, "the service or its upstream failed: retry later" },
		{ 504, "the service or its upstream failed: retry later" },
		{ 599, "the service or its upstream failed: retry later" },
		{ 529, "overloaded: retry later" },
		{ 302, "unexpected redirect: check api_base" },
	};
	char want[256];

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		(void)snprintf(want, sizeof want, "HTTP %ld: x (%s)", t[i].status, t[i].hint);
		error_is(t[i].status, "{\"detail\":\"x\"}", want);
	}
	error_is(418, "{\"detail\":\"I'm a teapot\"}", "HTTP 418: I'm a teapot");
	error_is(409, "conflict", "HTTP 409: conflict");
}

static void
error_validation_list(void **state)
{
	error_is(422, "{\"detail\":[{\"loc\":[\"body\",\"model\"],\"msg\":\"Field required\"},"
	    "{\"loc\":[\"body\",\"max_tokens\"],\"msg\":\"Input should be a valid integer\"}]}",
	    "HTTP 422: body.model: Field required; body.max_tokens: Input should be a valid "
	    "integer (the request was invalid)");
	/* The server's own 422 for an unparsable body: loc ["body", 0]. */
	error_is(422, "{\"detail\":[{\"type\":\"json_invalid\",\"loc\":[\"body\",0],"
	    "\"msg\":\"JSON decode error\",\"input\":{},\"ctx\":{\"error\":\"x\"}}]}",
	    "HTTP 422: body.0: JSON decode error (the request was invalid)");
	/* No loc, no msg, odd items. */
	error_is(422, "{\"detail\":[{\"msg\":\"bare\"},{\"loc\":[\"body\",true,2.5],"
	    "\"type\":\"t\"},42,\"plain\",{}]}",
	    "HTTP 422: bare; body.?.?: t; plain; invalid (the request was invalid)");
	error_is(422, "{\"detail\":[]}", "HTTP 422: no details (the request was invalid)");
}

static void
error_validation_list_long(void **state)
{
	static const char words[] = "Input should be a valid string, a valid list of content "
	    "blocks, or a valid dictionary that names a type and holds what that type needs";
	char body[4096], *p = body;
	struct ml_err err;

	p += sprintf(p, "{\"detail\":[");
	for (int i = 0; i < 7; i++)
		p += sprintf(p, "%s{\"loc\":[\"body\",\"f%d\"],\"msg\":\"m%d\"}", i ? "," : "", i, i);
	(void)sprintf(p, "]}");
	error_is(422, body, "HTTP 422: body.f0: m0; body.f1: m1; body.f2: m2; body.f3: m3; "
	    "body.f4: m4; \xe2\x80\xa6 (the request was invalid)");

	/* Exactly five: no ellipsis. */
	p = body;
	p += sprintf(p, "{\"detail\":[");
	for (int i = 0; i < 5; i++)
		p += sprintf(p, "%s{\"loc\":[\"body\",\"f%d\"],\"msg\":\"m%d\"}", i ? "," : "", i, i);
	(void)sprintf(p, "]}");
	error_is(422, body, "HTTP 422: body.f0: m0; body.f1: m1; body.f2: m2; body.f3: m3; "
	    "body.f4: m4 (the request was invalid)");

	/* Long messages: each item is cut on its own, and the hint survives. */
	p = body;
	p += sprintf(p, "{\"detail\":[");
	for (int i = 0; i < 9; i++)
		p += sprintf(p, "%s{\"loc\":[\"body\",\"messages\",%d,\"content\"],\"msg\":\"%d %s\"}",
		    i ? "," : "", i, i, words);
	(void)sprintf(p, "]}");
	assert_int_equal(messages_parse_error(422, body, strlen(body), &err), ML_EAPI);
	msg_has(err.msg, "body.messages.4.content: 4 Input should");
	msg_lacks(err.msg, "body.messages.5");
	msg_has(err.msg, "...; body.messages.1.content: ");
	msg_has(err.msg, "; \xe2\x80\xa6 (the request was invalid)");
	msg_one_line(&err);
}

static void
error_anthropic_shapes(void **state)
{
	error_is(400, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
	    "\"message\":\"max_tokens: 0 < 1\"},\"request_id\":\"req_1\"}",
	    "HTTP 400: invalid_request_error: max_tokens: 0 < 1 (bad request)");
	error_is(500, "{\"error\":{\"message\":\"Internal server error\"}}",
	    "HTTP 500: Internal server error (the service or its upstream failed: retry later)");
	error_is(429, "{\"error\":{\"type\":\"rate_limit_error\"}}",
	    "HTTP 429: rate_limit_error (rate limited: retry later)");
	error_is(502, "{\"error\":\"bad gateway\"}",
	    "HTTP 502: bad gateway (the service or its upstream failed: retry later)");
	error_is(503, "{\"message\":\"no healthy upstream\"}",
	    "HTTP 503: no healthy upstream (the service or its upstream failed: retry later)");
	error_is(429, "{\"detail\":{\"reason\":\"quota\",\"n\":3}}",
	    "HTTP 429: {\"reason\":\"quota\",\"n\":3} (rate limited: retry later)");
	error_is(400, "{\"unknown\":1}", "HTTP 400: {\"unknown\":1} (bad request)");
	error_is(400, "{\"detail\":null}", "HTTP 400: {\"detail\":null} (bad request)");
	error_is(400, "[1,2]", "HTTP 400: [1,2] (bad request)");
}

static void
error_html_and_empty(void **state)
{
	error_is(502, "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
	    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
	    "</body>\r\n</html>\r\n",
	    "HTTP 502: 502 Bad Gateway (the service or its upstream failed: retry later)");
	error_is(503, "<!DOCTYPE html><html><body><h1>Service\nUnavailable</h1>"
	    "<p>Try   later</p></body></html>",
	    "HTTP 503: Service Unavailable Try later (the service or its upstream failed: "
	    "retry later)");
	error_is(404, "<html><TITLE>\n  Not Found \n</TITLE></html>",
	    "HTTP 404: Not Found (not found: check api_base)");
	error_is(404, "<html><title></title><p>gone</p></html>",
	    "HTTP 404: gone (not found: check api_base)");
	error_is(504, "", "HTTP 504: empty answer (the service or its upstream failed: "
	    "retry later)");
	error_is(504, NULL, "HTTP 504: empty answer (the service or its upstream failed: "
	    "retry later)");
	error_is(401, " \r\n ", "HTTP 401: empty answer (not authenticated: run mlauth login)");
	error_is(401, "{\"detail\":\"\"}", "HTTP 401: no details (not authenticated: run "
	    "mlauth login)");
}

static void
error_one_line(void **state)
{
	error_is(400, "{\"detail\":\"line one\\nline two\\r\\n\\tline three\\u0000!\"}",
	    "HTTP 400: line one line two line three?! (bad request)");
	error_is(503, "upstream connect error\nor disconnect/reset before headers\r\n",
	    "HTTP 503: upstream connect error or disconnect/reset before headers (the service "
	    "or its upstream failed: retry later)");
	error_is(400, "{\"detail\":\"\\u001b[2J\\u001b]0;pwned\\u0007 caf\\u00e9 \\u4e16\\u754c\"}",
	    "HTTP 400: ?[2J?]0;pwned? caf? ?? (bad request)");
}

static void
error_hostile(void **state)
{
	static const char jwt[] = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkw"
	    "IiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.c2lnbmF0dXJlc2lnbmF0dXJlc2ln";
	char body[512], raw[256], *big, *exc;
	struct ml_err err;
	size_t n = 100000;

	/* A gateway echoing the bearer token: never shown. */
	(void)snprintf(body, sizeof body, "{\"detail\":\"Invalid token %s\"}", jwt);
	assert_int_equal(messages_parse_error(401, body, strlen(body), &err), ML_EAPI);
	msg_has(err.msg, "Invalid token [redacted]");
	msg_lacks(err.msg, "eyJhbGci");
	msg_lacks(err.msg, "c2lnbmF0");

	/* Every byte value, as a body that is not JSON. */
	for (int i = 0; i < 255; i++)
		raw[i] = (char)(i + 1);
	assert_int_equal(messages_parse_error(500, raw, 255, &err), ML_EAPI);
	msg_one_line(&err);
	msg_has(err.msg, "(the service or its upstream failed: retry later)");

	/* Invalid UTF-8 in JSON: jansson refuses it, so it is shown as an excerpt. */
	error_is(400, "{\"detail\":\"caf\xe9\"}", "HTTP 400: {\"detail\":\"caf?\"} (bad request)");

	/* Huge bodies: the excerpt stops at 200 characters and the hint stays. */
	assert_non_null(big = malloc(n + 64));
	for (size_t i = 0; i < n; i++)
		big[i] = i % 2 ? ' ' : 'x';
	assert_int_equal(messages_parse_error(500, big, n, &err), ML_EAPI);
	msg_one_line(&err);
	assert_true(strncmp(err.msg, "HTTP 500: x x", 13) == 0);
	assert_non_null(exc = strstr(err.msg, " (the service"));
	assert_true((size_t)(exc - err.msg) - strlen("HTTP 500: ") <= 200);
	assert_true(strncmp(exc - 3, "...", 3) == 0);

	/* A huge detail string. */
	memcpy(big, "{\"detail\":\"", 11);
	memset(big + 11, 'y', n);
	for (size_t i = 11; i < n; i += 30)
		big[i] = ' ';
	memcpy(big + 11 + n, "\"}", 3);
	assert_int_equal(messages_parse_error(429, big, strlen(big), &err), ML_EAPI);
	assert_true(strlen(err.msg) < sizeof err.msg - 1);
	msg_has(err.msg, "... (rate limited: retry later)");

	/* Deep nesting: no crash, an excerpt. */
	memset(big, '[', n);
	assert_int_equal(messages_parse_error(400, big, n, &err), ML_EAPI);
	msg_has(err.msg, "HTTP 400: [[[[");
	msg_has(err.msg, "... (bad request)");
	memcpy(big, "{\"detail\":", 10);
	assert_int_equal(messages_parse_error(400, big, n, &err), ML_EAPI);
	msg_has(err.msg, "(bad request)");
	free(big);

	/* A NULL err is allowed and still says what happened. */
	assert_int_equal(messages_parse_error(500, "x", 1, NULL), ML_EAPI);
}

/* ---- retry policy ---- */

static void
retryable(void **state)
{
	static const long yes[] = { 429, 502, 503, 504, 529 };
	static const long no[] = { 200, 400, 401, 403, 404, 410, 413, 422, 500, 501, 505, 599 };

	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
		assert_true(messages_retryable(yes[i]));
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
		assert_false(messages_retryable(no[i]));
}

static void
backoff(void **state)
{
	long prev_cap = 0;

	/* Retry-After wins, capped at a minute, jitter or not. */
	assert_int_equal(messages_backoff_ms(1, 5, 12345), 5000);
	assert_int_equal(messages_backoff_ms(3, 0, 99), 0);
	assert_int_equal(messages_backoff_ms(1, 60, 0), 60000);
	assert_int_equal(messages_backoff_ms(1, 61, 0), 60000);
	assert_int_equal(messages_backoff_ms(2, 86400, 7), 60000);
	assert_int_equal(messages_backoff_ms(2, LONG_MAX, 7), 60000);

	/* The largest wait of attempt n is 500 ms doubled n-1 times, up to 30 s (the man
	 * page's bound: a Retry-After may ask for up to 60 s, the backoff never). */
	for (int a = 1; a <= 40; a++) {
		long cap = messages_backoff_ms(a, -1, 0);
		long hi = 0;

		assert_int_equal(cap, 0);
		for (unsigned r = 0; r < 70000; r += 7) {
			long ms = messages_backoff_ms(a, -1, r);

			assert_true(ms >= 0);
			if (ms > hi)
				hi = ms;
		}
		assert_true(hi >= prev_cap);
		assert_true(hi <= 30000);
		if (a <= 4)
			assert_int_equal(messages_backoff_ms(a, -1, 500u << (a - 1)), 500L << (a - 1));
		prev_cap = hi;
	}
	assert_true(prev_cap >= 29000);
	assert_int_equal(messages_backoff_ms(40, -1, 30000), 30000);
	assert_int_equal(messages_backoff_ms(40, -1, 30001), 0);
	assert_true(messages_backoff_ms(1000000, -1, UINT_MAX) <= 30000);
	assert_true(messages_backoff_ms(0, -1, UINT_MAX) <= 500);
	assert_true(messages_backoff_ms(-5, -1, UINT_MAX) <= 500);

	/* Full jitter: the whole range is used, not one value. */
	{
		int low = 0, high = 0;

		for (unsigned r = 0; r < 4000; r++) {
			long ms = messages_backoff_ms(3, -1, r * 2654435761u);

			assert_true(ms >= 0 && ms <= 2000);
			low += ms < 500;
			high += ms > 1500;
		}
		assert_true(low > 500 && high > 500);
	}
}

/* ---- streamed answers ---- */

static const char recorded[] =
	"event: message_start\n"
	"data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\","
	"\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-opus-4-6\","
	"\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,"
	"\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n"
	"\n"
	"event: content_block_start\n"
	"data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
	"\"text\":\"\"}}\n"
	"\n"
	"event: ping\n"
	"data: {\"type\": \"ping\"}\n"
	"\n"
	"event: content_block_delta\n"
	"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
	"\"text\":\"Hello\"}}\n"
	"\n"
	": a comment from a proxy\n"
	"event: content_block_delta\n"
	"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
	"\"text\":\"! \\\"Gr\\u00fc\\u00dfe\\\" \\u2014 \xe4\xb8\x96\xe7\x95\x8c \\ud83c\\udf89\\n\"}}\n"
	"\n"
	"event: some_future_event\n"
	"data: {\"type\":\"some_future_event\",\"whatever\":[1,2,3]}\n"
	"\n"
	"event: content_block_delta\n"
	"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
	"\"text\":\"Second line.\"}}\n"
	"\n"
	"event: content_block_stop\n"
	"data: {\"type\":\"content_block_stop\",\"index\":0}\n"
	"\n"
	"event: content_block_start\n"
	"data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\","
	"\"id\":\"toolu_01\",\"name\":\"get_weather\",\"input\":{}}}\n"
	"\n"
	"event: content_block_delta\n"
	"data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
	"\"partial_json\":\"{\\\"location\\\": \"}}\n"
	"\n"
	"event: content_block_stop\n"
	"data: {\"type\":\"content_block_stop\",\"index\":1}\n"
	"\n"
	"event: message_delta\n"
	"data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
	"\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n"
	"\n"
	"event: message_stop\n"
	"data: {\"type\":\"message_stop\"}\n"
	"\n";

static const char recorded_text[] =
	"Hello! \"Gr\xc3\xbc\xc3\x9f" "e\" \xe2\x80\x94 \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x8e\x89\n"
	"Second line.";

struct run {
	struct messages_stream ms;
	struct ml_err err;
	char text[4096];
	size_t n;
	int fail_text;		/* on_text returns this, when non-zero */
};

static int
run_text(const char *text, size_t len, void *arg)
{
	struct run *r = arg;

	if (r->fail_text != 0)
		return r->fail_text;
	assert_true(r->n + len < sizeof r->text);
	memcpy(r->text + r->n, text, len);
	r->n += len;
	r->text[r->n] = '\0';
	return 0;
}

static int
run_event(const char *event, const char *data, size_t len, void *arg)
{
	struct run *r = arg;

	return messages_stream_event(&r->ms, event, data, len, &r->err);
}

/*
 * s through the SSE parser and the stream handler, cut once at split (0:
 * not) or into chunk-byte pieces (0: whole); the result of the first
 * failing step, or of messages_stream_finish.  Free r->ms afterwards.
 */
static int
run_stream(const char *s, size_t len, size_t split, size_t chunk, struct run *r)
{
	struct sse_parser *p;
	size_t i = 0;
	int rc = ML_OK;

	memset(r, 0, sizeof *r);
	messages_stream_init(&r->ms, run_text, r);
	assert_non_null(p = sse_new(run_event, r));
	while (rc == ML_OK && i < len) {
		size_t n = chunk > 0 ? chunk : len - i;

		if (split > i && split < i + n)
			n = split - i;
		if (n > len - i)
			n = len - i;
		rc = sse_feed(p, s + i, n, &r->err);
		i += n;
	}
	if (rc == ML_OK)
		rc = sse_finish(p, &r->err);
	if (rc == ML_OK)
		rc = messages_stream_finish(&r->ms, &r->err);
	sse_free(p);
	return rc;
}

static void
expect_recorded(const char *s, size_t len, size_t split, size_t chunk)
{
	struct run r;

	if (run_stream(s, len, split, chunk, &r) != ML_OK)
		fail_msg("split %zu chunk %zu: %s", split, chunk, r.err.msg);
	if (strcmp(r.text, recorded_text) != 0)
		fail_msg("split %zu chunk %zu: text '%s'", split, chunk, r.text);
	assert_true(r.ms.stopped);
	assert_string_equal(r.ms.reply.id, "msg_01XFDUDYJgAACzvnptvVoYEL");
	assert_string_equal(r.ms.reply.model, "claude-opus-4-6");
	assert_string_equal(r.ms.reply.stop_reason, "end_turn");
	assert_int_equal(r.ms.reply.input_tokens, 25);
	assert_int_equal(r.ms.reply.output_tokens, 15);
	assert_null(r.ms.reply.text);
	messages_stream_free(&r.ms);
}

static void
stream_every_split(void **state)
{
	size_t len = sizeof recorded - 1;

	expect_recorded(recorded, len, 0, 0);
	for (size_t split = 1; split < len; split++)
		expect_recorded(recorded, len, split, 0);
	expect_recorded(recorded, len, 0, 1);
	expect_recorded(recorded, len, 0, 7);
}

static void
stream_crlf(void **state)
{
	size_t len = sizeof recorded - 1, n = 0;
	char *crlf = malloc(2 * len);

	assert_non_null(crlf);
	for (size_t i = 0; i < len; i++) {
		if (recorded[i] == '\n')
			crlf[n++] = '\r';
		crlf[n++] = recorded[i];
	}
	expect_recorded(crlf, n, 0, 0);
	for (size_t split = 1; split < n; split++)
		expect_recorded(crlf, n, split, 0);
	expect_recorded(crlf, n, 0, 1);
	free(crlf);
}

/* The server peer's frames: no event names needed, the data's type says it all. */
static void
stream_unnamed_events(void **state)
{
	static const char s[] =
	    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"model\":\"m\","
	    "\"usage\":{\"input_tokens\":3}}}\n\n"
	    "data: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\","
	    "\"text\":\"hi\"}}\n\n"
	    "data: not json at all\n\n"
	    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},"
	    "\"usage\":{\"output_tokens\":1}}\n\n"
	    "data: {\"type\":\"message_stop\"}\n\n";
	struct run r;

	assert_int_equal(run_stream(s, sizeof s - 1, 0, 0, &r), ML_OK);
	assert_string_equal(r.text, "hi");
	assert_string_equal(r.ms.reply.id, "msg_2");
	assert_string_equal(r.ms.reply.stop_reason, "max_tokens");
	assert_int_equal(r.ms.reply.input_tokens, 3);
	assert_int_equal(r.ms.reply.output_tokens, 1);
	messages_stream_free(&r.ms);
}

static void
stream_error_event(void **state)
{
	static const char s[] =
	    "event: message_start\n"
	    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_3\",\"model\":\"m\"}}\n\n"
	    "event: content_block_delta\n"
	    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
	    "\"text\":\"par\"}}\n\n"
	    "event: error\n"
	    "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
	    "\"message\":\"Overloaded\\nnow\"}}\n\n"
	    "event: content_block_delta\n"
	    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
	    "\"text\":\"tial\"}}\n\n";
	struct run r;

	assert_int_equal(run_stream(s, sizeof s - 1, 0, 0, &r), ML_EAPI);
	assert_int_equal(r.err.code, ML_EAPI);
	assert_string_equal(r.err.msg, "stream error: overloaded_error: Overloaded now "
	    "(overloaded: retry later)");
	/* What came before the error was delivered, nothing after it. */
	assert_string_equal(r.text, "par");
	messages_stream_free(&r.ms);
}

static void
stream_cut_short(void **state)
{
	size_t len = strstr(recorded, "event: message_stop") - recorded;
	struct run r;

	assert_int_equal(run_stream(recorded, len, 0, 0, &r), ML_EAPI);
	msg_has(r.err.msg, "message_stop");
	assert_string_equal(r.text, recorded_text);
	assert_false(r.ms.stopped);
	messages_stream_free(&r.ms);

	/* Cut in the middle of the final event: it was never complete, so never seen. */
	assert_int_equal(run_stream(recorded, sizeof recorded - 2, 0, 0, &r), ML_EAPI);
	msg_has(r.err.msg, "message_stop");
	messages_stream_free(&r.ms);

	assert_int_equal(run_stream("", 0, 0, 0, &r), ML_EAPI);
	messages_stream_free(&r.ms);
}

static void
stream_event_bad(const char *event, const char *data, const char *needle)
{
	struct messages_stream ms;
	struct ml_err err;

	messages_stream_init(&ms, NULL, NULL);
	err.msg[0] = '\0';
	assert_int_equal(messages_stream_event(&ms, event, data, strlen(data), &err), ML_EAPI);
	msg_has(err.msg, needle);
	msg_one_line(&err);
	messages_stream_free(&ms);
}

static void
stream_event_ok(const char *event, const char *data)
{
	struct messages_stream ms;
	struct ml_err err;

	messages_stream_init(&ms, NULL, NULL);
	assert_int_equal(messages_stream_event(&ms, event, data, strlen(data), &err), ML_OK);
	messages_stream_free(&ms);
}

static void
stream_hostile_events(void **state)
{
	size_t depth = 50000;
	char *deep = malloc(depth + 32);

	stream_event_bad("content_block_delta", "{\"type\":\"content_block_delta\",", "malformed stream event");
	stream_event_bad("message_stop", "nope", "malformed stream event (message_stop)");
	stream_event_bad("ping", "", "malformed stream event (ping)");
	stream_event_bad("message_start", "[1]", "not a JSON object");
	stream_event_bad("message_start", "{\"type\":\"message_start\"}", "no message object");
	stream_event_bad("content_block_delta", "{\"delta\":\"text\"}", "no delta object");
	stream_event_bad("content_block_delta", "{\"delta\":{\"type\":\"text_delta\",\"text\":7}}",
	    "text_delta without text");
	stream_event_bad("content_block_delta",
	    "{\"delta\":{\"type\":\"text_delta\",\"text\":\"caf\xe9\"}}", "not valid UTF-8");
	stream_event_bad("error", "{\"type\":\"error\"}", "stream error: no details");
	stream_event_bad("error", "{\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}",
	    "stream error: api_error: boom (the service or its upstream failed: retry later)");
	stream_event_bad("error", "{\"error\":{\"type\":\"new_error\",\"message\":\"m\"}}",
	    "stream error: new_error: m");
	stream_event_bad("message", "{\"type\":\"error\",\"error\":{\"message\":\"unnamed\"}}",
	    "stream error: unnamed");

	assert_non_null(deep);
	memset(deep, '[', depth);
	deep[depth] = '\0';
	stream_event_bad("message_delta", deep, "nested too deeply");
	free(deep);

	/* Unknown events are ignored whatever they hold; wrong types in optional members too. */
	stream_event_ok("brand_new_event", "\xff\xfe garbage {{{");
	stream_event_ok("message", "not json");
	stream_event_ok("message", "{\"type\":\"brand_new\"}");
	stream_event_ok(NULL, "{\"type\":\"ping\"}");
	stream_event_ok("message_delta", "{\"delta\":5,\"usage\":\"x\"}");
	stream_event_ok("content_block_start", "{\"content_block\":null}");
	stream_event_ok("content_block_delta", "{\"delta\":{\"type\":5}}");
	stream_event_ok("message_start", "{\"message\":{\"id\":[],\"usage\":7}}");
}

static void
stream_text_failure(void **state)
{
	static const char one[] = "{\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}";
	static const char none[] = "{\"delta\":{\"type\":\"text_delta\",\"text\":\"\"}}";
	struct run r;
	int rc;

	memset(&r, 0, sizeof r);
	messages_stream_init(&r.ms, run_text, &r);
	r.fail_text = ML_EFAIL;
	rc = messages_stream_event(&r.ms, "content_block_delta", one, strlen(one), &r.err);
	assert_int_equal(rc, ML_EFAIL);
	assert_int_equal(r.err.code, ML_EFAIL);
	msg_has(r.err.msg, "writing the answer failed");
	/* Empty text is not worth a call. */
	rc = messages_stream_event(&r.ms, "content_block_delta", none, strlen(none), &r.err);
	assert_int_equal(rc, ML_OK);
	messages_stream_free(&r.ms);
	messages_stream_free(&r.ms);
}

/* A NUL in the text reaches the caller with its length, not cut off. */
static void
stream_text_with_nul(void **state)
{
	static const char data[] = "{\"delta\":{\"type\":\"text_delta\",\"text\":\"a\\u0000b\"}}";
	struct run r;

	memset(&r, 0, sizeof r);
	messages_stream_init(&r.ms, run_text, &r);
	assert_int_equal(messages_stream_event(&r.ms, "content_block_delta", data,
	    sizeof data - 1, &r.err), ML_OK);
	assert_int_equal(r.n, 3);
	assert_memory_equal(r.text, "a\0b", 3);
	messages_stream_free(&r.ms);
}

/* Found by fuzz_messages_error: tag stripping fed the redactor one byte at a time. */
static void
error_html_echoing_a_token_is_redacted(void **state)
{
	const char body[] = "<html><body><p>Bad header: Authorization: Bearer "
	    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl</p></body></html>";
	struct ml_err err;

	assert_int_equal(messages_parse_error(400, body, sizeof body - 1, &err), ML_EAPI);
	assert_null(strstr(err.msg, "eyJhbGciOiJSUzI1NiJ9"));
	assert_non_null(strstr(err.msg, "[redacted]"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(body_minimal),
		cmocka_unit_test(body_all_options),
		cmocka_unit_test(body_text_round_trips),
		cmocka_unit_test(body_refused),
		cmocka_unit_test(reply_good),
		cmocka_unit_test(reply_sparse_and_odd),
		cmocka_unit_test(reply_malformed),
		cmocka_unit_test(reply_huge_text),
		cmocka_unit_test(error_examples),
		cmocka_unit_test(error_hints),
		cmocka_unit_test(error_validation_list),
		cmocka_unit_test(error_validation_list_long),
		cmocka_unit_test(error_anthropic_shapes),
		cmocka_unit_test(error_html_and_empty),
		cmocka_unit_test(error_one_line),
		cmocka_unit_test(error_hostile),
		cmocka_unit_test(retryable),
		cmocka_unit_test(backoff),
		cmocka_unit_test(stream_every_split),
		cmocka_unit_test(stream_crlf),
		cmocka_unit_test(stream_unnamed_events),
		cmocka_unit_test(stream_error_event),
		cmocka_unit_test(stream_cut_short),
		cmocka_unit_test(stream_hostile_events),
		cmocka_unit_test(stream_text_failure),
		cmocka_unit_test(stream_text_with_nul),
		cmocka_unit_test(error_html_echoing_a_token_is_redacted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
