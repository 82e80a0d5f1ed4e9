/*
 * messages.c: the Anthropic Messages API as data: the request body, the
 * reply, the error answers (the gateway's FastAPI shape and Anthropic's
 * own), the retry policy and the events of a streamed answer.  No I/O:
 * cmd_send.c moves the bytes through http.c and prints.  Every answer is
 * treated as hostile: parsed with jansson, every member type-checked, and
 * whatever the server says reduced to one line of printable ASCII before it
 * reaches a message (a terminal must not obey escape sequences a server
 * chose, and a token the server echoes must not be shown).
 */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlauth/http.h"
#include "mlauth/messages.h"
#include "mlauth/sanitize.h"
#include "mlauth/util.h"

#define MSG_MAX_BODY		HTTP_MAX_BODY
#define MSG_WHAT_MAX		400	/* the server's words in an error line, before the hint */
#define MSG_EXCERPT_MAX		200	/* a body in none of the known shapes */
#define MSG_ITEM_MAX		72	/* one item of a 422 list: five fit in MSG_WHAT_MAX */
#define MSG_ITEMS_MAX		5
#define MSG_META_MAX		256	/* id, model, stop_reason */
#define MSG_MORE		"; \xe2\x80\xa6"	/* "; …" after the fifth item */
#define MSG_BACKOFF_BASE_MS	500L
#define MSG_BACKOFF_MAX_MS	30000L
#define MSG_RETRY_AFTER_MAX_S	60L

/* ---- one line of text from the server's words ---- */

/* Error text and -v details: one line of printable ASCII, credentials redacted. */
#define MSG_SAN		(SAN_ONELINE | SAN_ASCII | SAN_REDACT)

/* A JSON string member's full bytes (NULs included, jansson allows them here). */
static void
msg_text_json(struct sanitize *t, json_t *v)
{
	sanitize_put(t, json_string_value(v), json_string_length(v));
}

/* ---- JSON ---- */

static bool
msg_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Parse buf into *root (a new reference), any JSON value.  ALLOW_NUL: a
 * "\u0000" in a model's text is odd, not a reason to lose the answer.
 */
static int
msg_json_load(const char *buf, size_t len, const char *what, json_t **root,
    struct ml_err *err)
{
	return util_json_load(buf, len, MSG_MAX_BODY, JSON_DECODE_ANY | JSON_ALLOW_NUL, ML_EAPI,
	    what, root, err);
}

/* A non-negative integer member as a long, or -1 when absent or of another type. */
static long
msg_count(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	json_int_t n;

	if (!json_is_integer(v) || (n = json_integer_value(v)) < 0)
		return -1;
	return n > LONG_MAX ? LONG_MAX : (long)n;
}

/*
 * A short string member (id, model, stop_reason) as printable ASCII into
 * *out, replacing what was there: these are shown under -v, so they get the
 * same care as error text.  Absent or not a string leaves *out alone.
 */
static int
msg_meta(json_t *obj, const char *key, char **out, struct ml_err *err)
{
	json_t *v = json_object_get(obj, key);
	char buf[MSG_META_MAX + 1];
	struct sanitize t;
	char *copy;

	if (!json_is_string(v))
		return ML_OK;
	sanitize_init(&t, buf, sizeof buf, MSG_SAN);
	msg_text_json(&t, v);
	(void)sanitize_done(&t);
	if ((copy = strdup(buf)) == NULL)
		return err_set(err, ML_EFAIL, "out of memory");
	free(*out);
	*out = copy;
	return ML_OK;
}

static void
msg_usage(json_t *obj, struct messages_reply *r)
{
	json_t *usage = json_object_get(obj, "usage");
	long n;

	if (!json_is_object(usage))
		return;
	if ((n = msg_count(usage, "input_tokens")) >= 0)
		r->input_tokens = n;
	if ((n = msg_count(usage, "output_tokens")) >= 0)
		r->output_tokens = n;
}

/* Whether s is well-formed UTF-8 (RFC 3629: no overlongs, surrogates or > U+10FFFF). */
static bool
msg_utf8_valid(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (*s != '\0') {
		unsigned char c = *s;
		size_t need;
		uint32_t cp;

		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		for (size_t k = 1; k <= need; k++) {
			if ((s[k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		s += need + 1;
	}
	return true;
}

/* ---- the request ---- */

/* A string member; invalid UTF-8 is the user's input, so a usage error naming it. */
static int
msg_put_string(json_t *obj, const char *key, const char *value, const char *what,
    struct ml_err *err)
{
	if (!msg_utf8_valid(value))
		return err_set(err, ML_EUSAGE, "%s is not valid UTF-8", what);
	if (json_object_set_new(obj, key, json_string(value)) != 0)
		return err_set(err, ML_EFAIL, "out of memory");
	return ML_OK;
}

int
messages_build_body(const struct messages_request *req, char **body, struct ml_err *err)
{
	json_t *root = NULL, *list, *msg;
	int rc;

	*body = NULL;
	if (req == NULL || req->text == NULL) {
		rc = err_set(err, ML_EUSAGE, "no message to send");
		goto out;
	}
	if (req->model == NULL || req->model[0] == '\0') {
		rc = err_set(err, ML_EUSAGE, "no model set");
		goto out;
	}
	if (req->max_tokens < 1) {
		rc = err_set(err, ML_EUSAGE, "max_tokens must be at least 1 (got %ld)",
		    req->max_tokens);
		goto out;
	}
	/* jansson refuses NaN and infinities; say so rather than "out of memory". */
	if (req->has_temperature && !isfinite(req->temperature)) {
		rc = err_set(err, ML_EUSAGE, "temperature must be a number");
		goto out;
	}
	if ((root = json_object()) == NULL || (list = json_array()) == NULL ||
	    json_object_set_new(root, "model", json_string("")) != 0 ||
	    json_object_set_new(root, "max_tokens", json_integer(req->max_tokens)) != 0 ||
	    json_object_set_new(root, "messages", list) != 0 ||
	    (msg = json_object()) == NULL || json_array_append_new(list, msg) != 0 ||
	    json_object_set_new(msg, "role", json_string("user")) != 0) {
		rc = err_set(err, ML_EFAIL, "out of memory");
		goto out;
	}
	/* The placeholder kept "model" first, where people reading traces look for it. */
	if ((rc = msg_put_string(root, "model", req->model, "the model name", err)) != ML_OK ||
	    (rc = msg_put_string(msg, "content", req->text, "the message", err)) != ML_OK)
		goto out;
	if (req->system != NULL &&
	    (rc = msg_put_string(root, "system", req->system, "the system prompt", err)) != ML_OK)
		goto out;
	if (req->has_temperature &&
	    json_object_set_new(root, "temperature", json_real(req->temperature)) != 0) {
		rc = err_set(err, ML_EFAIL, "out of memory");
		goto out;
	}
	/* Only when asked: an explicit false would be noise to every proxy log. */
	if (req->stream && json_object_set_new(root, "stream", json_true()) != 0) {
		rc = err_set(err, ML_EFAIL, "out of memory");
		goto out;
	}
	if ((*body = json_dumps(root, JSON_COMPACT)) == NULL) {
		rc = err_set(err, ML_EFAIL, "out of memory");
		goto out;
	}
	rc = ML_OK;
out:
	json_decref(root);
	return rc;
}

/* ---- error answers ---- */

static const char *
msg_hint(long status)
{
	switch (status) {
	case 400:
		return "bad request";
	case 401:
		return "not authenticated: run mlauth login";
	case 403:
		return "not authorized for this route: ask for access";
	case 404:
		return "not found: check api_base";
	case 410:
		return "this endpoint is no longer available";
	case 413:
		return "request too large";
	case 422:
		return "the request was invalid";
	case 429:
		return "rate limited: retry later";
	case 529:
		return "overloaded: retry later";
	default:
		break;
	}
	if (status >= 500 && status <= 599)
		return "the service or its upstream failed: retry later";
	/* Redirects are never followed: a login portal or a wrong base URL. */
	if (status >= 300 && status <= 399)
		return "unexpected redirect: check api_base";
	return NULL;
}

/* Anthropic's error types (docs "Errors") as the status they come with, for the hint. */
static long
msg_type_status(const char *type)
{
	static const struct {
		const char *type;
		long status;
	} map[] = {
		{ "invalid_request_error", 400 },
		{ "authentication_error", 401 },
		{ "permission_error", 403 },
		{ "not_found_error", 404 },
		{ "request_too_large", 413 },
		{ "rate_limit_error", 429 },
		{ "api_error", 500 },
		{ "overloaded_error", 529 },
	};

	for (size_t i = 0; type != NULL && i < sizeof map / sizeof map[0]; i++)
		if (strcmp(type, map[i].type) == 0)
			return map[i].status;
	return 0;
}

/* {"type": "...", "message": "..."} as "type: message", either part optional. */
static void
msg_render_anthropic(json_t *error, struct sanitize *t)
{
	json_t *type = json_object_get(error, "type");
	json_t *message = json_object_get(error, "message");

	if (json_is_string(type))
		msg_text_json(t, type);
	if (json_is_string(type) && json_is_string(message))
		sanitize_raw(t, ": ");
	if (json_is_string(message))
		msg_text_json(t, message);
}

/* One pydantic error item: "loc.joined.by.dots: msg". */
static void
msg_render_item(json_t *item, struct sanitize *t)
{
	json_t *loc = json_object_get(item, "loc");
	json_t *msg = json_object_get(item, "msg");
	json_t *part;
	size_t i;
	bool any = false;

	if (json_is_string(item)) {
		msg_text_json(t, item);
		return;
	}
	json_array_foreach(loc, i, part) {
		char num[32];

		if (any)
			sanitize_raw(t, ".");
		if (json_is_string(part)) {
			msg_text_json(t, part);
		} else if (json_is_integer(part)) {
			(void)snprintf(num, sizeof num, "%lld", (long long)json_integer_value(part));
			sanitize_raw(t, num);
		} else {
			sanitize_raw(t, "?");
		}
		any = true;
	}
	if (any)
		sanitize_raw(t, ": ");
	if (json_is_string(msg))
		msg_text_json(t, msg);
	else if (json_is_string(json_object_get(item, "type")))
		msg_text_json(t, json_object_get(item, "type"));
	else
		sanitize_raw(t, "invalid");
}

/* FastAPI's validation list: at most MSG_ITEMS_MAX items, each cut on its own. */
static void
msg_render_list(json_t *list, struct sanitize *t)
{
	size_t shown = 0, i;
	json_t *item;

	json_array_foreach(list, i, item) {
		char buf[MSG_ITEM_MAX + 1];
		struct sanitize it;

		if (!json_is_object(item) && !json_is_string(item))
			continue;
		if (shown == MSG_ITEMS_MAX) {
			sanitize_raw(t, MSG_MORE);
			return;
		}
		sanitize_init(&it, buf, sizeof buf, MSG_SAN);
		msg_render_item(item, &it);
		(void)sanitize_done(&it);
		if (shown > 0)
			sanitize_raw(t, "; ");
		sanitize_raw(t, buf);
		shown++;
	}
}

/* Any other JSON value, compactly, as an excerpt. */
static void
msg_render_dump(json_t *v, struct sanitize *t)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	char buf[MSG_EXCERPT_MAX + 1];
	struct sanitize ex;

	if (s == NULL) {
		sanitize_raw(t, "unreadable details");
		return;
	}
	sanitize_init(&ex, buf, sizeof buf, MSG_SAN);
	sanitize_put(&ex, s, strlen(s));
	(void)sanitize_done(&ex);
	sanitize_raw(t, buf);
	free(s);
}

/* The known error shapes of root; false when it has none of them. */
static bool
msg_render_json(json_t *root, struct sanitize *t)
{
	json_t *detail = json_object_get(root, "detail");
	json_t *error = json_object_get(root, "error");
	json_t *message = json_object_get(root, "message");

	if (json_is_string(detail))
		msg_text_json(t, detail);
	else if (json_is_array(detail))
		msg_render_list(detail, t);
	else if (detail != NULL && !json_is_null(detail))
		msg_render_dump(detail, t);
	else if (json_is_object(error))
		msg_render_anthropic(error, t);
	else if (json_is_string(error))
		msg_text_json(t, error);
	else if (json_is_string(message))
		msg_text_json(t, message);
	else
		return false;
	return true;
}

static char
msg_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* The first place in buf[0, len) where needle (lower case) starts, ignoring case; or len. */
static size_t
msg_find(const char *buf, size_t len, const char *needle)
{
	size_t nl = strlen(needle);

	for (size_t i = 0; i + nl <= len; i++) {
		size_t k = 0;

		while (k < nl && msg_lower(buf[i + k]) == needle[k])
			k++;
		if (k == nl)
			return i;
	}
	return len;
}

/*
 * A body that is no known shape: for an HTML page its <title> ("502 Bad
 * Gateway") or else its text without tags; anything else as it is.
 */
static void
msg_excerpt(const char *buf, size_t len, struct sanitize *t)
{
	size_t i = 0, start, end;
	bool in_tag = false;

	while (i < len && msg_space(buf[i]))
		i++;
	if (i == len || buf[i] != '<') {
		sanitize_put(t, buf + i, len - i);
		return;
	}
	start = i + msg_find(buf + i, len - i, "<title");
	while (start < len && buf[start] != '>')
		start++;
	if (start < len) {
		end = ++start;
		while (end < len && buf[end] != '<')
			end++;
		/* Leading spaces are never kept, so anything kept is a real title. */
		sanitize_put(t, buf + start, end - start);
		if (t->n > 0)
			return;
	}
	/*
	 * Each tag becomes spaces; the text between tags goes in as one piece, so
	 * a token in it is still one run and redacted (byte by byte it never was).
	 */
	while (i < len && !t->cut) {
		if (in_tag || buf[i] == '<') {
			in_tag = buf[i] != '>';
			sanitize_put(t, " ", 1);
			i++;
			continue;
		}
		for (end = i; end < len && buf[end] != '<'; end++)
			;
		sanitize_put(t, buf + i, end - i);
		i = end;
	}
}

static bool
msg_blank(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!msg_space(buf[i]))
			return false;
	return true;
}

int
messages_parse_error(long status, const char *buf, size_t len, struct ml_err *err)
{
	char what[MSG_WHAT_MAX + 1];
	const char *hint = msg_hint(status);
	struct sanitize t;
	json_t *root = NULL;

	if (buf == NULL) {
		buf = "";
		len = 0;
	}
	sanitize_init(&t, what, sizeof what, MSG_SAN);
	if (len > 0 && len <= MSG_MAX_BODY)
		root = json_loadb(buf, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (!json_is_object(root) || !msg_render_json(root, &t)) {
		sanitize_init(&t, what, MSG_EXCERPT_MAX + 1, MSG_SAN);
		msg_excerpt(buf, len, &t);
	}
	(void)sanitize_done(&t);
	json_decref(root);
	if (what[0] == '\0')
		(void)snprintf(what, sizeof what, "%s", msg_blank(buf, len) ? "empty answer" :
		    "no details");
	if (hint != NULL)
		return err_set(err, ML_EAPI, "HTTP %ld: %s (%s)", status, what, hint);
	return err_set(err, ML_EAPI, "HTTP %ld: %s", status, what);
}

/* ---- the reply ---- */

static void
msg_reply_init(struct messages_reply *r)
{
	memset(r, 0, sizeof *r);
	r->input_tokens = -1;
	r->output_tokens = -1;
}

void
messages_reply_free(struct messages_reply *r)
{
	if (r == NULL)
		return;
	free(r->id);
	free(r->model);
	free(r->stop_reason);
	free(r->text);
	msg_reply_init(r);
}

/* A content block's text member; NULL when the block is not text (tool_use, thinking, ...). */
static json_t *
msg_block_text(json_t *block, bool *bad)
{
	json_t *type = json_object_get(block, "type");
	json_t *text;

	if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0)
		return NULL;
	text = json_object_get(block, "text");
	if (!json_is_string(text)) {
		*bad = true;
		return NULL;
	}
	return text;
}

/*
 * Every text block of content joined, into *out (allocated).  NUL bytes are
 * dropped: the reply carries a C string.
 */
static int
msg_join_text(json_t *content, char **out, struct ml_err *err)
{
	size_t total = 0, n = 0, i;
	json_t *block, *text;
	bool bad = false;
	char *buf;

	json_array_foreach(content, i, block) {
		if ((text = msg_block_text(block, &bad)) == NULL) {
			if (bad)
				return err_set(err, ML_EAPI, "the reply's text block %zu has no "
				    "text", i);
			continue;
		}
		if (json_string_length(text) > SIZE_MAX - 1 - total)
			return err_set(err, ML_EAPI, "the reply is too large");
		total += json_string_length(text);
	}
	if ((buf = malloc(total + 1)) == NULL)
		return err_set(err, ML_EFAIL, "out of memory");
	json_array_foreach(content, i, block) {
		const char *s;
		size_t len;

		if ((text = msg_block_text(block, &bad)) == NULL)
			continue;
		s = json_string_value(text);
		len = json_string_length(text);
		for (size_t k = 0; k < len; k++)
			if (s[k] != '\0')
				buf[n++] = s[k];
	}
	buf[n] = '\0';
	*out = buf;
	return ML_OK;
}

int
messages_parse_reply(const char *buf, size_t len, struct messages_reply *r,
    struct ml_err *err)
{
	char what[MSG_WHAT_MAX + 1];
	struct sanitize t;
	json_t *root = NULL, *content;
	int rc;

	msg_reply_init(r);
	if ((rc = msg_json_load(buf, len, "the reply", &root, err)) != ML_OK)
		goto out;
	if (!json_is_object(root)) {
		rc = err_set(err, ML_EAPI, "the reply is not a JSON object");
		goto out;
	}
	/* Some proxies answer 200 with an error object: show it, not "no content". */
	if (json_is_object(json_object_get(root, "error"))) {
		sanitize_init(&t, what, sizeof what, MSG_SAN);
		msg_render_anthropic(json_object_get(root, "error"), &t);
		(void)sanitize_done(&t);
		rc = err_set(err, ML_EAPI, "the reply is an error: %s",
		    what[0] != '\0' ? what : "no details");
		goto out;
	}
	content = json_object_get(root, "content");
	if (!json_is_array(content)) {
		rc = err_set(err, ML_EAPI, "the reply has no content list");
		goto out;
	}
	if ((rc = msg_join_text(content, &r->text, err)) != ML_OK ||
	    (rc = msg_meta(root, "id", &r->id, err)) != ML_OK ||
	    (rc = msg_meta(root, "model", &r->model, err)) != ML_OK ||
	    (rc = msg_meta(root, "stop_reason", &r->stop_reason, err)) != ML_OK)
		goto out;
	msg_usage(root, r);
	rc = ML_OK;
out:
	json_decref(root);
	if (rc != ML_OK)
		messages_reply_free(r);
	return rc;
}

/* ---- retries ---- */

bool
messages_retryable(long status)
{
	return status == 429 || status == 502 || status == 503 || status == 504 ||
	    status == 529;
}

long
messages_backoff_ms(int attempt, long retry_after, unsigned rnd)
{
	long cap = MSG_BACKOFF_BASE_MS;

	if (retry_after >= 0)
		return (retry_after > MSG_RETRY_AFTER_MAX_S ? MSG_RETRY_AFTER_MAX_S :
		    retry_after) * 1000;
	for (int i = 1; i < attempt && cap < MSG_BACKOFF_MAX_MS; i++)
		cap *= 2;
	if (cap > MSG_BACKOFF_MAX_MS)
		cap = MSG_BACKOFF_MAX_MS;
	/* Full jitter: many clients that failed together do not retry together. */
	return (long)(rnd % (unsigned long)(cap + 1));
}

/* ---- the streamed answer ---- */

enum msg_event {
	MSG_EV_UNKNOWN,
	MSG_EV_PING,
	MSG_EV_MESSAGE_START,
	MSG_EV_BLOCK_START,
	MSG_EV_BLOCK_DELTA,
	MSG_EV_BLOCK_STOP,
	MSG_EV_MESSAGE_DELTA,
	MSG_EV_MESSAGE_STOP,
	MSG_EV_ERROR
};

static const struct {
	const char *name;
	enum msg_event ev;
} msg_events[] = {
	{ "ping", MSG_EV_PING },
	{ "message_start", MSG_EV_MESSAGE_START },
	{ "content_block_start", MSG_EV_BLOCK_START },
	{ "content_block_delta", MSG_EV_BLOCK_DELTA },
	{ "content_block_stop", MSG_EV_BLOCK_STOP },
	{ "message_delta", MSG_EV_MESSAGE_DELTA },
	{ "message_stop", MSG_EV_MESSAGE_STOP },
	{ "error", MSG_EV_ERROR },
};

static enum msg_event
msg_event_kind(const char *name)
{
	for (size_t i = 0; name != NULL && i < sizeof msg_events / sizeof msg_events[0]; i++)
		if (strcmp(name, msg_events[i].name) == 0)
			return msg_events[i].ev;
	return MSG_EV_UNKNOWN;
}

void
messages_stream_init(struct messages_stream *s, messages_text_fn on_text, void *arg)
{
	memset(s, 0, sizeof *s);
	s->on_text = on_text;
	s->arg = arg;
	msg_reply_init(&s->reply);
}

void
messages_stream_free(struct messages_stream *s)
{
	if (s == NULL)
		return;
	messages_reply_free(&s->reply);
	s->stopped = false;
}

/*
 * Hand text to the caller.  The callback has no error of its own to fill in,
 * so its failure (a closed stdout, say) is described here; its code is kept.
 */
static int
msg_stream_text(struct messages_stream *s, json_t *text, struct ml_err *err)
{
	int rc;

	if (s->on_text == NULL || json_string_length(text) == 0)
		return ML_OK;
	rc = s->on_text(json_string_value(text), json_string_length(text), s->arg);
	if (rc != 0)
		return err_set(err, rc, "writing the answer failed");
	return ML_OK;
}

/* An `error` event, in the same one-line form as an error answer. */
static int
msg_stream_error(json_t *root, struct ml_err *err)
{
	json_t *error = json_object_get(root, "error");
	char what[MSG_WHAT_MAX + 1];
	const char *hint = NULL;
	struct sanitize t;

	sanitize_init(&t, what, sizeof what, MSG_SAN);
	if (json_is_object(error)) {
		msg_render_anthropic(error, &t);
		if (json_is_string(json_object_get(error, "type")))
			hint = msg_hint(msg_type_status(json_string_value(json_object_get(error,
			    "type"))));
	} else if (json_is_string(error)) {
		msg_text_json(&t, error);
	}
	(void)sanitize_done(&t);
	if (what[0] == '\0')
		(void)snprintf(what, sizeof what, "no details");
	if (hint != NULL)
		return err_set(err, ML_EAPI, "stream error: %s (%s)", what, hint);
	return err_set(err, ML_EAPI, "stream error: %s", what);
}

static int
msg_stream_malformed(const char *name, const char *why, struct ml_err *err)
{
	return err_set(err, ML_EAPI, "malformed stream event (%s): %s", name, why);
}

int
messages_stream_event(struct messages_stream *s, const char *event, const char *data,
    size_t len, struct ml_err *err)
{
	enum msg_event ev = msg_event_kind(event);
	json_t *root = NULL, *obj, *v;
	struct ml_err why;
	const char *name;
	int rc;

	/* Unknown names are future event kinds: ignoring them is the documented contract. */
	if (ev == MSG_EV_UNKNOWN && event != NULL && event[0] != '\0' &&
	    strcmp(event, "message") != 0)
		return ML_OK;
	rc = msg_json_load(data, len, "its data", &root, &why);
	if (rc == ML_OK && !json_is_object(root))
		rc = err_set(&why, ML_EAPI, "its data is not a JSON object");
	if (rc != ML_OK) {
		if (ev == MSG_EV_UNKNOWN)
			rc = ML_OK;
		else if (rc == ML_EFAIL)
			rc = err_set(err, ML_EFAIL, "%s", why.msg);
		else
			rc = msg_stream_malformed(event, why.msg, err);
		goto out;
	}
	/* A stream without event names: the data's own type says what it is. */
	if (ev == MSG_EV_UNKNOWN) {
		v = json_object_get(root, "type");
		ev = json_is_string(v) ? msg_event_kind(json_string_value(v)) : MSG_EV_UNKNOWN;
	}
	name = "unknown";
	for (size_t i = 0; i < sizeof msg_events / sizeof msg_events[0]; i++)
		if (msg_events[i].ev == ev)
			name = msg_events[i].name;
	rc = ML_OK;
	switch (ev) {
	case MSG_EV_MESSAGE_START:
		if (!json_is_object(obj = json_object_get(root, "message"))) {
			rc = msg_stream_malformed(name, "no message object", err);
			break;
		}
		if ((rc = msg_meta(obj, "id", &s->reply.id, err)) != ML_OK ||
		    (rc = msg_meta(obj, "model", &s->reply.model, err)) != ML_OK)
			break;
		msg_usage(obj, &s->reply);
		break;
	case MSG_EV_BLOCK_START:
		obj = json_object_get(root, "content_block");
		v = json_object_get(obj, "type");
		if (json_is_string(v) && strcmp(json_string_value(v), "text") == 0 &&
		    json_is_string(json_object_get(obj, "text")))
			rc = msg_stream_text(s, json_object_get(obj, "text"), err);
		break;
	case MSG_EV_BLOCK_DELTA:
		if (!json_is_object(obj = json_object_get(root, "delta"))) {
			rc = msg_stream_malformed(name, "no delta object", err);
			break;
		}
		v = json_object_get(obj, "type");
		/* Other deltas (input_json_delta, thinking_delta, ...) are not text to print. */
		if (!json_is_string(v) || strcmp(json_string_value(v), "text_delta") != 0)
			break;
		if (!json_is_string(v = json_object_get(obj, "text"))) {
			rc = msg_stream_malformed(name, "a text_delta without text", err);
			break;
		}
		rc = msg_stream_text(s, v, err);
		break;
	case MSG_EV_MESSAGE_DELTA:
		if (json_is_object(obj = json_object_get(root, "delta")))
			rc = msg_meta(obj, "stop_reason", &s->reply.stop_reason, err);
		msg_usage(root, &s->reply);
		break;
	case MSG_EV_MESSAGE_STOP:
		s->stopped = true;
		break;
	case MSG_EV_ERROR:
		rc = msg_stream_error(root, err);
		break;
	case MSG_EV_PING:
	case MSG_EV_BLOCK_STOP:
	case MSG_EV_UNKNOWN:
		break;
	}
out:
	json_decref(root);
	return rc;
}

int
messages_stream_finish(struct messages_stream *s, struct ml_err *err)
{
	if (!s->stopped)
		return err_set(err, ML_EAPI, "the answer stream ended early (no message_stop): "
		    "the answer is incomplete");
	return ML_OK;
}
