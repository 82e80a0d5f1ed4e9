/*
 * api.c: the authorized request to the messages API.
 *
 * send, doctor and the proxy all ask the same gateway the same way: the URL
 * under api_base, anthropic-version and x-application-name, a bearer token
 * fresh for the request, and when the API still refuses it (revoked, a clock
 * off), one refresh and one retry.  The token lives in the session, behind a
 * mutex: the proxy's requests share one token and cause one refresh per
 * lifetime between them, and token.c's lock makes that one across processes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mlauth/api.h"
#include "mlauth/secret.h"
#include "mlauth/util.h"

#define API_DEFAULT_PATH	"/v1/messages"
#define API_MAX_HEADERS		128

void
api_session_init(struct api_session *s, const struct config *cfg, int verbose,
    const struct token_opts *to)
{
	memset(s, 0, sizeof *s);
	s->cfg = cfg;
	s->verbose = verbose;
	if (to != NULL)
		s->to = *to;
	s->to.rejected = NULL;
	token_http_opts(cfg, verbose, &s->ho);
	(void)pthread_mutex_init(&s->lock, NULL);
}

int
api_session_use(struct api_session *s, const char *token, int64_t expires_at,
    int64_t obtained_at, struct ml_err *err)
{
	char *t = secret_dup(token);

	if (t == NULL)
		return err_set(err, ML_EFAIL, "out of memory");
	(void)pthread_mutex_lock(&s->lock);
	secret_free(s->token);
	s->token = t;
	s->expires_at = expires_at;
	s->obtained_at = obtained_at;
	(void)pthread_mutex_unlock(&s->lock);
	return ML_OK;
}

void
api_session_free(struct api_session *s)
{
	if (s == NULL || s->cfg == NULL)
		return;
	if (s->st_open)
		store_close(&s->st);
	secret_free(s->token);
	(void)pthread_mutex_destroy(&s->lock);
	memset(s, 0, sizeof *s);
}

static void
api_say(const struct api_session *s, bool warning, const char *msg)
{
	if (s->say != NULL)
		s->say(s->say_arg, warning, msg);
}

/* Under s->lock: whether the token in hand may be sent as it is. */
static bool
api_token_usable(const struct api_session *s, const char *rejected)
{
	struct record r = { .expires_at = s->expires_at, .obtained_at = s->obtained_at };

	if (s->token == NULL)
		return false;
	if (rejected != NULL)
		return strcmp(rejected, s->token) != 0;
	return token_is_fresh(&r, s->to.min_valid, util_now());
}

/* Under s->lock: a token from token.c (kernel cache, store, or a refresh). */
static int
api_token_renew(struct api_session *s, const char *rejected, struct ml_err *err)
{
	struct token_opts to = s->to;
	struct token_result tr;
	char *t;
	int rc;

	to.rejected = rejected;
	memset(&tr, 0, sizeof tr);
	rc = token_get(s->cfg, s->verbose, &s->st, &s->st_open, &to, &tr, err);
	if (rc == ML_OK && (t = secret_dup(tr.rec.access_token)) == NULL)
		rc = err_set(err, ML_EFAIL, "out of memory");
	if (rc == ML_OK) {
		if (tr.warning[0] != '\0')
			api_say(s, true, tr.warning);
		secret_free(s->token);
		s->token = t;
		s->expires_at = tr.rec.expires_at;
		s->obtained_at = tr.rec.obtained_at;
	}
	token_result_free(&tr);
	return rc;
}

int
api_token(struct api_session *s, const char *rejected, char **token, struct ml_err *err)
{
	int rc = ML_OK;

	*token = NULL;
	(void)pthread_mutex_lock(&s->lock);
	if (!api_token_usable(s, rejected))
		rc = api_token_renew(s, rejected, err);
	if (rc == ML_OK && (*token = secret_dup(s->token)) == NULL)
		rc = err_set(err, ML_EFAIL, "out of memory");
	if (rc == ML_OK && rejected != NULL)
		s->refreshes++;
	(void)pthread_mutex_unlock(&s->lock);
	return rc;
}

int
api_url(const struct config *cfg, const char *path, char **url, struct ml_err *err)
{
	size_t blen = strlen(cfg->api_base), plen;

	if (path == NULL)
		path = API_DEFAULT_PATH;
	plen = strlen(path);
	while (blen > 0 && cfg->api_base[blen - 1] == '/')
		blen--;
	if ((*url = malloc(blen + plen + 1)) == NULL)
		return err_set(err, ML_EFAIL, "out of memory");
	memcpy(*url, cfg->api_base, blen);
	memcpy(*url + blen, path, plen + 1);
	return ML_OK;
}

/* Whether the header line names the header name (any case). */
static bool
api_header_is(const char *line, const char *name)
{
	size_t n = strlen(name);

	return strncasecmp(line, name, n) == 0 && line[n] == ':';
}

/* The lines sent: the caller's, without credentials, and the gateway's own. */
struct api_headers {
	const char *v[API_MAX_HEADERS + 3];
	char version[64];
	char appname[512];
};

static int
api_build_headers(const struct api_session *s, const struct api_call *c,
    struct api_headers *h, struct ml_err *err)
{
	bool has_version = false, has_app = false;
	size_t n = 0;

	for (size_t i = 0; c->headers != NULL && c->headers[i] != NULL; i++) {
		const char *l = c->headers[i];

		if (api_header_is(l, "authorization") || api_header_is(l, "x-api-key"))
			continue;
		if (n >= API_MAX_HEADERS)
			return err_set(err, ML_EUSAGE, "more than %d request headers",
			    API_MAX_HEADERS);
		has_version = has_version || api_header_is(l, "anthropic-version");
		has_app = has_app || api_header_is(l, "x-application-name");
		h->v[n++] = l;
	}
	if (!has_version) {
		(void)snprintf(h->version, sizeof h->version, "anthropic-version: %s", API_VERSION);
		h->v[n++] = h->version;
	}
	if (!has_app) {
		if (snprintf(h->appname, sizeof h->appname, "x-application-name: %s",
		    s->cfg->application_name) >= (int)sizeof h->appname)
			return err_set(err, ML_EUSAGE, "application_name is too long");
		h->v[n++] = h->appname;
	}
	h->v[n] = NULL;
	return ML_OK;
}

int
api_perform(struct api_session *s, struct api_call *c, struct http_response *resp,
    struct ml_err *err)
{
	struct api_headers h;
	struct http_request req;
	char *url = NULL, *token = NULL, *next;
	int rc;

	memset(resp, 0, sizeof *resp);
	resp->retry_after = -1;
	c->token_failed = false;
	if ((rc = api_build_headers(s, c, &h, err)) != ML_OK ||
	    (rc = api_url(s->cfg, c->path, &url, err)) != ML_OK)
		goto out;
	if ((rc = api_token(s, NULL, &token, err)) != ML_OK) {
		c->token_failed = true;
		goto out;
	}
	memset(&req, 0, sizeof req);
	req.method = c->method != NULL ? c->method : "POST";
	req.peer = "the messages API";
	req.peer_check = "the api_base setting";
	req.url = url;
	req.content_type = c->content_type;
	req.body = c->body;
	req.body_len = c->body_len;
	req.headers = h.v;
	req.on_chunk = c->on_chunk;
	req.chunk_arg = c->chunk_arg;
	req.stream_type = c->stream_type;
	req.on_header = c->on_header;
	req.header_arg = c->header_arg;
	req.bearer = token;
	rc = http_perform(&s->ho, &req, resp, err);
	if (rc != ML_OK || resp->status != 401 || c->once || s->to.no_refresh)
		goto out;
	/* The API refused a token we thought valid (revoked, clock skew): once. */
	if (s->verbose)
		api_say(s, false, "the messages API refused the token (HTTP 401); getting a "
		    "new one");
	if ((rc = api_token(s, token, &next, err)) != ML_OK) {
		/* The refresh's error alone would hide why there was one. */
		err_prefix(err, "the messages API refused the token (HTTP 401), and no new "
		    "one could be had");
		c->token_failed = true;
		goto out;
	}
	secret_free(token);
	req.bearer = token = next;
	if (s->verbose)
		api_say(s, false, "got a new token; trying again");
	http_response_free(resp);
	rc = http_perform(&s->ho, &req, resp, err);
out:
	secret_free(token);
	free(url);
	return rc;
}
