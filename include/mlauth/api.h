/*
 * api.h: the authorized request to the messages API, shared by send, doctor
 * and the proxy: the URL under api_base, the headers the gateway expects, a
 * fresh token, and one refresh and retry when the API refuses the token.
 */
#ifndef MLAUTH_API_H
#define MLAUTH_API_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "mlauth/config.h"
#include "mlauth/err.h"
#include "mlauth/http.h"
#include "mlauth/store.h"
#include "mlauth/token.h"

#define API_VERSION	"2023-06-01"	/* anthropic-version, unless the caller sends one */

/* A one-line warning or note for the user (store fallback, provider unreachable, retry). */
typedef void (*api_say_fn)(void *arg, bool warning, const char *msg);

/*
 * One user's access to the API: the token in use, shared by every request of
 * the process (the proxy's threads included: the fields below lock are only
 * touched under it), refreshed through token.c when it is no longer fresh
 * for to.min_valid, so a process makes one refresh per token lifetime.
 */
struct api_session {
	const struct config *cfg;
	int verbose;
	struct token_opts to;		/* min_valid, no_refresh; rejected is unused */
	struct http_opts ho;		/* from cfg; callers may raise the timeout */
	api_say_fn say;
	void *say_arg;
	pthread_mutex_t lock;
	struct store st;		/* opened when the kernel cache cannot answer */
	bool st_open;
	char *token;			/* a secret */
	int64_t expires_at, obtained_at;
	unsigned long refreshes;	/* tokens replaced after the API refused one */
};

struct api_call {
	const char *method;		/* NULL: POST */
	const char *path;		/* after api_base, query included; NULL: /v1/messages */
	const char *content_type;	/* NULL: none (or among headers) */
	const char *body;		/* borrowed until api_perform returns */
	size_t body_len;
	/*
	 * The caller's own header lines, NULL-terminated, or NULL.  anthropic-version
	 * and x-application-name are added unless among them; Authorization and
	 * X-Api-Key are dropped: the session's token is the only credential sent.
	 */
	const char *const *headers;
	bool once;			/* the body cannot be sent twice: a 401 is the answer */
	http_chunk_fn on_chunk;		/* as in struct http_request */
	void *chunk_arg;
	const char *stream_type;
	http_header_fn on_header;
	void *header_arg;
	bool token_failed;		/* set by api_perform: no token to send (not a transport error) */
};

void api_session_init(struct api_session *s, const struct config *cfg, int verbose,
    const struct token_opts *to);
/* Start with this token (copied) instead of asking token.c for one. */
int api_session_use(struct api_session *s, const char *token, int64_t expires_at,
    int64_t obtained_at, struct ml_err *err);
void api_session_free(struct api_session *s);

/*
 * A copy of the session's token, refreshed first unless it is fresh (or, with
 * rejected, unless another request already replaced that refused token).
 * secret_free *token.  Errors are token_get's: ML_ELOGIN, ML_ENET, ...
 */
int api_token(struct api_session *s, const char *rejected, char **token,
    struct ml_err *err);

/*
 * Perform c with the session's token.  A 401 gets one refresh and one retry
 * (not with c->once), so resp is the second answer then.  Any status is
 * ML_OK (see http_perform); a token that cannot be had is token_get's error.
 * http_response_free resp either way.
 */
int api_perform(struct api_session *s, struct api_call *c,
    struct http_response *resp, struct ml_err *err);

/* <api_base><path> (path NULL: /v1/messages) in *url, allocated (free it). */
int api_url(const struct config *cfg, const char *path, char **url, struct ml_err *err);

#endif
