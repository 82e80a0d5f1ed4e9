/* messages.h: the Anthropic Messages API: request bodies, replies, errors, retry policy. */
#ifndef MLAUTH_MESSAGES_H
#define MLAUTH_MESSAGES_H

#include <stdbool.h>
#include <stddef.h>

#include "mlauth/err.h"

struct messages_request {
	const char *model;
	long max_tokens;
	const char *system;		/* NULL: none */
	const char *text;		/* the user message */
	bool has_temperature;
	double temperature;
	bool stream;
};

/* The JSON body for req, built with jansson; *body is allocated (free it). */
int messages_build_body(const struct messages_request *req, char **body, struct ml_err *err);

struct messages_reply {
	char *id, *model, *stop_reason;
	char *text;			/* every text block joined; "" when none */
	long input_tokens, output_tokens;	/* -1 when absent */
};

/*
 * A 2xx answer's message object.  A body that is not JSON, not an object,
 * or has no content list is ML_EAPI with a clear message.  Free with
 * messages_reply_free, even after a failure.
 */
int messages_parse_reply(const char *buf, size_t len, struct messages_reply *r,
    struct ml_err *err);
void messages_reply_free(struct messages_reply *r);

/*
 * An error answer as one line, always ML_EAPI: the status, the gateway's
 * FastAPI `detail` (a string, or a 422 list rendered as
 * "body.messages.0.content: field required; ..."), or Anthropic's
 * {"type":"error","error":{"type","message"}}, or a short excerpt of a body
 * that is neither, followed by what to do ("rate limited: retry later",
 * "not authorized for this route: ask for access", ...).  Never more than
 * one line: control characters are replaced.
 */
int messages_parse_error(long status, const char *buf, size_t len, struct ml_err *err);

/* 429, 502, 503, 504 and 529: worth retrying. */
bool messages_retryable(long status);
/*
 * Milliseconds to wait before retry number attempt (1, 2, ...): Retry-After
 * (seconds, -1 when absent) when given, capped at 60 s; else exponential
 * from 500 ms with full jitter from rnd (any unsigned value).
 */
long messages_backoff_ms(int attempt, long retry_after, unsigned rnd);

/*
 * The streamed (SSE) answer, one event at a time: content_block_delta text
 * goes to on_text as it arrives, ping is ignored, an `error` event becomes
 * ML_EAPI (same one-line form as above), message_delta/message_stop record
 * stop reason and usage.  messages_stream_finish fails (ML_EAPI) when the
 * stream ended without message_stop.
 */
typedef int (*messages_text_fn)(const char *text, size_t len, void *arg);

struct messages_stream {
	messages_text_fn on_text;
	void *arg;
	bool stopped;			/* message_stop seen */
	struct messages_reply reply;	/* id, model, stop_reason, usage as they arrive; text unused */
};

void messages_stream_init(struct messages_stream *s, messages_text_fn on_text, void *arg);
int messages_stream_event(struct messages_stream *s, const char *event, const char *data,
    size_t len, struct ml_err *err);
int messages_stream_finish(struct messages_stream *s, struct ml_err *err);
void messages_stream_free(struct messages_stream *s);

#endif
