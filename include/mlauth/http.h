/* http.h: the one libcurl wrapper (timeouts, size cap, CA, User-Agent, redacted tracing). */
#ifndef MLAUTH_HTTP_H
#define MLAUTH_HTTP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "mlauth/err.h"

#define HTTP_MAX_BODY	(4 * 1024 * 1024)
/* A streamed (on_chunk) 2xx body: never held in memory, but not endless either. */
#define HTTP_MAX_STREAM	(64 * 1024 * 1024)

struct http_opts {
	long timeout;		/* total seconds (0: 30); connect timeout is min(10, timeout) */
	/*
	 * NULL or "": $CURL_CA_BUNDLE, else $SSL_CERT_FILE / $SSL_CERT_DIR, else
	 * libcurl's default (libcurl reads none of these itself; the curl tool does).
	 */
	const char *ca_file;
	int verbose;		/* >= 2: trace to stderr, secrets redacted */
	bool no_advice;		/* errors without what to check (doctor says it itself) */
	/*
	 * A request still without an answer after HTTP_SLOW_MS calls on_slow
	 * once with done false (peer: the request's, or NULL; origin), and once
	 * more with done true when it ends, however it ends: for a person on a
	 * terminal, who should hear what is being waited for.
	 */
	void (*on_slow)(void *arg, const char *peer, const char *origin, bool done);
	void *slow_arg;
	struct http_share *share;	/* NULL, or connections kept between requests */
};

#define HTTP_SLOW_MS	1000

/*
 * Connections, DNS answers and TLS sessions that requests of any thread
 * reuse (the proxy: no new TLS handshake per request).  Free it after the
 * last request using it has returned.
 */
struct http_share;
int http_share_new(struct http_share **share, struct ml_err *err);
void http_share_free(struct http_share *share);

/*
 * Called with each chunk of a streamed 2xx body.  Return 0 to go on; any other
 * value aborts the transfer and becomes http_perform's result (so a reader can
 * return ML_EAPI and keep its own message in arg to replace http_perform's).
 */
typedef int (*http_chunk_fn)(const char *buf, size_t len, void *arg);

/*
 * Called with each header line of the answer, name and value trimmed (not
 * NUL-terminated), before any of its body; name == NULL (value: the status
 * line) starts a new answer, after a 1xx: forget the earlier lines.  Return 0
 * to go on; anything else aborts the transfer like an on_chunk refusal.
 */
typedef int (*http_header_fn)(const char *name, size_t nlen, const char *value,
    size_t vlen, void *arg);

struct http_request {
	/*
	 * "GET", "HEAD" (no body sent), "POST" or any other upper-case method
	 * (sent with body, which may be empty).
	 */
	const char *method;
	const char *url;
	const char *content_type;	/* POST body type */
	const char *body;		/* borrowed, not copied: keep it until http_perform returns */
	size_t body_len;
	const char *bearer;		/* sent as Authorization: Bearer, redacted in traces */
	const char *const *headers;	/* extra "Name: value" lines, NULL-terminated, or NULL */
	/*
	 * Stream the body instead of collecting it, but only when the status is
	 * 2xx: any other answer is collected into resp->body as usual (size cap
	 * included), so its error can be parsed.  Check resp->body == NULL to
	 * tell which happened.  A stream longer than HTTP_MAX_STREAM fails like
	 * a collected body over HTTP_MAX_BODY.  The total timeout still applies: pass a larger
	 * one for long streams (the low-speed limit catches a stalled server).
	 */
	http_chunk_fn on_chunk;
	void *chunk_arg;
	/*
	 * With on_chunk: stream only a 2xx answer of this media type (say
	 * "text/event-stream"; parameters and case ignored), and collect any
	 * other like an error, so a server that ignores the request to stream
	 * can still be read.  NULL: stream every 2xx answer.
	 */
	const char *stream_type;
	http_header_fn on_header;	/* every response header, or NULL */
	void *header_arg;
	/*
	 * When the origin cannot be reached, the error names who answers there
	 * ("the identity provider") and what to check ("the issuer setting");
	 * NULL: the origin and curl's reason alone.
	 */
	const char *peer, *peer_check;
};

struct http_response {
	long status;
	char *body;		/* NUL-terminated; allocated (NULL when streamed) */
	size_t len;		/* bytes in body, or bytes handed to on_chunk when streamed */
	char *content_type;	/* allocated or NULL */
	char *request_id;	/* request-id / x-request-id header, or NULL */
	long retry_after;	/* seconds from Retry-After (capped at a day), -1 when absent */
	time_t date;		/* Date header, 0 when absent */
	bool too_large;		/* refused for its size: asking again would not help */
};

/* Once per process, before any thread starts. */
int http_global_init(struct ml_err *err);
void http_global_cleanup(void);

/*
 * Perform req.  Any HTTP status is ML_OK (look at resp->status), 3xx included:
 * redirects are never followed.  Transport failures, timeouts and bodies over
 * HTTP_MAX_BODY are ML_ENET with a message naming scheme://host[:port] only,
 * never the path, the query or a token; http_interrupted is ML_EINTR.  The
 * body is wiped when freed (token answers).  Free resp with
 * http_response_free, even after a failure.
 */
int http_perform(const struct http_opts *o, const struct http_request *req,
    struct http_response *resp, struct ml_err *err);
void http_response_free(struct http_response *resp);

/* Append "key=value" (both URL-encoded) to a form body *form (allocated, secret_free it). */
int http_form_add(char **form, const char *key, const char *value, struct ml_err *err);

/*
 * "scheme://host[:port]" of url into out (always NUL-terminated): the part
 * of a URL that error messages may show.  User info, path, query and
 * fragment are dropped, unprintable bytes become '?'.
 */
void http_url_origin(const char *url, char *out, size_t outlen);

/* Set by a signal handler: an interrupted transfer fails with ML_EINTR. */
extern volatile sig_atomic_t http_interrupted;

#endif
