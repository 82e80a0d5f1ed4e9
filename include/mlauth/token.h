/* token.h: the session policy: freshness, single-flight refresh, turning answers into records. */
#ifndef MLAUTH_TOKEN_H
#define MLAUTH_TOKEN_H

#include <stdbool.h>
#include <stdint.h>

#include "mlauth/config.h"
#include "mlauth/err.h"
#include "mlauth/http.h"
#include "mlauth/oidc.h"
#include "mlauth/record.h"
#include "mlauth/store.h"

struct token_opts {
	long min_valid;		/* seconds the token must stay valid (capped, see below) */
	bool no_refresh;	/* never touch the network */
	const char *rejected;	/* the API refused this token: refresh unless already replaced */
};

struct token_result {
	struct record rec;	/* the session now stored */
	bool refreshed;		/* this call refreshed it */
	char warning[768];	/* non-empty: served a still-valid token without refreshing */
};

/* HTTP settings of cfg: timeout, CA file, -v level. */
void token_http_opts(const struct config *cfg, int verbose, struct http_opts *o);

/*
 * min_valid capped at half the token's lifetime, so a short-lived token is
 * not refreshed on every call.
 */
int64_t token_effective_min_valid(const struct record *r, long min_valid);
/* Whether r is fresh for min_valid seconds (after the cap) at time now. */
bool token_is_fresh(const struct record *r, long min_valid, int64_t now);

/*
 * The stored session of cfg's profile in *r: ML_ELOGIN when there is none or
 * it belongs to another issuer or client.  record_free it either way.
 */
int token_load(const struct config *cfg, struct store *st, struct record *r,
    struct ml_err *err);

/*
 * A session whose access token stays valid for o->min_valid: the stored one,
 * or one refreshed under the profile's lock (at most one refresh at a time
 * across processes; a process that waited for the lock uses the token the
 * other one got).  invalid_grant is ML_ELOGIN; an unreachable provider with a
 * token still valid is ML_OK with res->warning set, without one ML_ENET.
 * token_result_free it either way.
 */
int token_get_fresh(const struct config *cfg, int verbose, struct store *st,
    const struct token_opts *o, struct token_result *res, struct ml_err *err);
void token_result_free(struct token_result *res);

/*
 * The kernel cache's token when it is fresh for o (and not o->rejected): a
 * minimal record (token, expiry, issuer, client) in res, no store, no D-Bus.
 * False when the caller must use token_get_fresh; token_result_free either way.
 */
bool token_cached(const struct config *cfg, const struct token_opts *o,
    struct token_result *res);

/*
 * token_cached, else token_get_fresh from *st, opening it first unless
 * *st_open (the store then stays open for the caller to reuse and close).
 */
int token_get(const struct config *cfg, int verbose, struct store *st, bool *st_open,
    const struct token_opts *o, struct token_result *res, struct ml_err *err);

/* Put r's access token into the kernel-keyring cache (cache.h), quietly. */
void token_cache(const struct config *cfg, const struct record *r);

/* Whether the space-separated scope list has word. */
bool token_scope_has(const char *list, const char *word);

/*
 * The kind of session a token answer holds: Keycloak's refresh token says it
 * (a JWT of typ "Offline" or "Refresh"); else the granted scope does
 * (offline_access or not); else prev's kind stays.  Unknown without a
 * refresh token.
 */
enum record_session token_session_of(const struct oidc_tokens *t, const struct record *prev);

/*
 * Build the record for a token answer (expiry from expires_in on the local
 * clock, the JWT's own lifetime as fallback) keeping prev's refresh token
 * when the answer has none, and store it with token_endpoint (or prev's), so
 * the next refresh needs no discovery.  prev and token_endpoint may be NULL.
 */
int token_store_answer(const struct config *cfg, struct store *st,
    const struct oidc_tokens *t, const struct record *prev, const char *token_endpoint,
    struct record *out, struct ml_err *err);
/* The record token_store_answer would store, built without storing it. */
int token_answer_record(const struct config *cfg, const struct oidc_tokens *t,
    const struct record *prev, const char *token_endpoint, struct record *out,
    struct ml_err *err);
/* Store r as the profile's session and cache its access token. */
int token_save(const struct config *cfg, struct store *st, const struct record *r,
    struct ml_err *err);

#endif
