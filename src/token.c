/*
 * token.c: when to refresh, and making sure only one process does.
 *
 * The fast path is a store read and a comparison.  When the token is close to
 * expiry, the profile's lock is taken and the record read again: a hundred
 * tools asking at once cause one refresh, which also keeps a provider that
 * revokes reused refresh tokens (Keycloak's "Revoke Refresh Token",
 * oidc-provider's rotation) from logging the user out.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "mlauth/cache.h"
#include "mlauth/jwt.h"
#include "mlauth/lock.h"
#include "mlauth/secret.h"
#include "mlauth/session.h"
#include "mlauth/token.h"
#include "mlauth/util.h"

void
token_http_opts(const struct config *cfg, int verbose, struct http_opts *o)
{
	memset(o, 0, sizeof *o);
	o->timeout = cfg->timeout;
	o->ca_file = cfg->ca_file;
	o->verbose = verbose;
}

int64_t
token_effective_min_valid(const struct record *r, long min_valid)
{
	return session_min_valid(r->expires_at, r->obtained_at, min_valid);
}

bool
token_is_fresh(const struct record *r, long min_valid, int64_t now)
{
	return session_fresh(r, min_valid, now);
}

int
token_load(const struct config *cfg, struct store *st, struct record *r,
    struct ml_err *err)
{
	char *json = NULL;
	int rc;

	memset(r, 0, sizeof *r);
	if ((rc = store_load(st, cfg->profile, &json, err)) != ML_OK)
		return rc;
	if (json == NULL && st->fell_back)
		/* The session may well be in the keyring that did not answer. */
		return err_set(err, ML_ELOGIN, "not logged in (profile %s): no keyring (Secret "
		    "Service) answered (%s), and the %s holds no session; if yours is in a "
		    "keyring, start or unlock it and retry, else run mlauth login to keep one "
		    "in that file", cfg->profile, st->reason, store_describe(st));
	if (json == NULL)
		return err_set(err, ML_ELOGIN, "not logged in (profile %s): run mlauth login",
		    cfg->profile);
	rc = record_from_json(json, strlen(json), r, err);
	secret_free(json);
	if (rc != ML_OK) {
		err_prefix(err, "%s", store_describe(st));
		return err_set(err, rc, "%s; run mlauth login to replace it", err->msg);
	}
	if (strcmp(r->issuer, cfg->issuer) != 0 || strcmp(r->client_id, cfg->client_id) != 0)
		return err_set(err, ML_ELOGIN, "the stored session of profile %s is for %s "
		    "(client %s), not %s: run mlauth login", cfg->profile, r->issuer,
		    r->client_id, cfg->issuer);
	return ML_OK;
}

void
token_cache(const struct config *cfg, const struct record *r)
{
	/* Best effort: without a kernel keyring the store serves every call. */
	(void)cache_put(cfg->profile, cfg->issuer, cfg->client_id, r->access_token,
	    r->expires_at, r->obtained_at, session_cache_until(r));
}

bool
token_scope_has(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; p != NULL && *p != '\0'; p += strcspn(p, " ")) {
		p += strspn(p, " ");
		if (strncmp(p, word, n) == 0 && (p[n] == ' ' || p[n] == '\0'))
			return true;
	}
	return false;
}

enum record_session
token_session_of(const struct oidc_tokens *t, const struct record *prev)
{
	struct jwt_claims rt;
	enum record_session s = RECORD_SESSION_UNKNOWN;

	if (t->refresh_token == NULL)
		return prev != NULL && prev->refresh_token != NULL ? prev->session : s;
	/* Keycloak's refresh tokens are JWTs that say which kind they are. */
	if (jwt_claims_parse(t->refresh_token, &rt, NULL) == ML_OK && rt.typ != NULL) {
		if (strcmp(rt.typ, "Offline") == 0)
			s = RECORD_SESSION_OFFLINE;
		else if (strcmp(rt.typ, "Refresh") == 0)
			s = RECORD_SESSION_ONLINE;
	}
	jwt_claims_free(&rt);
	/* Others: the granted scope (RFC 6749 5.1), offline_access or not. */
	if (s == RECORD_SESSION_UNKNOWN && t->scope != NULL)
		s = token_scope_has(t->scope, "offline_access") ? RECORD_SESSION_OFFLINE :
		    RECORD_SESSION_ONLINE;
	if (s == RECORD_SESSION_UNKNOWN && prev != NULL)
		s = prev->session;
	return s;
}

int
token_answer_record(const struct config *cfg, const struct oidc_tokens *t,
    const struct record *prev, const char *token_endpoint, struct record *out,
    struct ml_err *err)
{
	struct jwt_claims claims;
	int64_t now = util_now();
	int rc;

	memset(out, 0, sizeof *out);
	/* The service's tokens are JWTs; anything else is a broken or foreign provider. */
	if ((rc = jwt_claims_parse(t->access_token, &claims, err)) != ML_OK) {
		jwt_claims_free(&claims);
		return err_set(err, ML_EFAIL, "the provider's access token is unusable (%s)",
		    err->msg);
	}
	/* exp and iat are the provider's word too: bounded as expires_in is (oidc.c). */
	if (t->expires_in > 0)
		out->expires_at = now + t->expires_in;
	else if (claims.exp > 0 && claims.iat > 0 && claims.exp > claims.iat)
		out->expires_at = claims.exp - claims.iat <= OIDC_MAX_LIFETIME ?
		    now + (claims.exp - claims.iat) : -1;	/* skew-proof */
	else if (claims.exp > now)
		out->expires_at = claims.exp - now <= OIDC_MAX_LIFETIME ? claims.exp : -1;
	jwt_claims_free(&claims);
	if (out->expires_at == 0)
		return err_set(err, ML_EFAIL, "the provider's token answer says nothing about "
		    "when the token expires");
	if (out->expires_at < 0)
		return err_set(err, ML_EFAIL, "the provider's access token claims a lifetime of "
		    "more than a year (exp - iat)");

	out->obtained_at = now;
	out->refresh_expires_at = t->refresh_expires_in > 0 ? now + t->refresh_expires_in : 0;
	out->issuer = strdup(cfg->issuer);
	out->client_id = strdup(cfg->client_id);
	out->access_token = secret_dup(t->access_token);
	out->token_type = strdup(t->token_type != NULL ? t->token_type : "Bearer");
	if (t->refresh_token != NULL) {
		out->refresh_token = secret_dup(t->refresh_token);
	} else if (prev != NULL && prev->refresh_token != NULL) {
		/* No rotation: the old refresh token and its expiry still hold. */
		out->refresh_token = secret_dup(prev->refresh_token);
		out->refresh_expires_at = prev->refresh_expires_at;
	}
	out->session = token_session_of(t, prev);
	if (t->id_token != NULL)
		out->id_token = secret_dup(t->id_token);
	else if (prev != NULL && prev->id_token != NULL)
		out->id_token = secret_dup(prev->id_token);
	if (token_endpoint == NULL && prev != NULL)
		token_endpoint = prev->token_endpoint;
	if (token_endpoint != NULL && (out->token_endpoint = strdup(token_endpoint)) == NULL)
		return err_set(err, ML_EFAIL, "out of memory");
	if (t->scope != NULL)
		out->scope = strdup(t->scope);
	else if (prev != NULL && prev->scope != NULL)
		out->scope = strdup(prev->scope);
	if (out->issuer == NULL || out->client_id == NULL || out->access_token == NULL ||
	    out->token_type == NULL ||
	    (out->refresh_token == NULL && (t->refresh_token != NULL ||
	    (prev != NULL && prev->refresh_token != NULL))))
		return err_set(err, ML_EFAIL, "out of memory");
	return ML_OK;
}

int
token_save(const struct config *cfg, struct store *st, const struct record *r,
    struct ml_err *err)
{
	char *json = NULL;
	int rc;

	if ((rc = record_to_json(r, &json, err)) != ML_OK)
		return rc;
	rc = store_save(st, cfg->profile, cfg->issuer, cfg->client_id, json, err);
	secret_free(json);
	if (rc == ML_OK)
		token_cache(cfg, r);
	return rc;
}

int
token_store_answer(const struct config *cfg, struct store *st,
    const struct oidc_tokens *t, const struct record *prev, const char *token_endpoint,
    struct record *out, struct ml_err *err)
{
	int rc;

	if ((rc = token_answer_record(cfg, t, prev, token_endpoint, out, err)) != ML_OK)
		return rc;
	return token_save(cfg, st, out, err);
}

/* Fresh enough, and not the token the API just refused. */
static bool
usable(const struct record *r, const struct token_opts *o, int64_t now)
{
	if (o->rejected != NULL && strcmp(o->rejected, r->access_token) == 0)
		return false;
	return session_fresh(r, o->min_valid, now);
}

/* ML_ELOGIN for a session the provider refused: no request, no lock. */
static int
refused(const struct record *r, struct ml_err *err)
{
	char when[32];

	util_format_time(r->refused_at, when, sizeof when);
	return err_set(err, ML_ELOGIN, "session expired or revoked (the provider refused it "
	    "at %s): run mlauth login", when);
}

int
token_get_fresh(const struct config *cfg, int verbose, struct store *st,
    const struct token_opts *o, struct token_result *res, struct ml_err *err)
{
	struct record r;
	int64_t now = util_now();
	int lockfd = -1, rc;
	char when[64];

	memset(res, 0, sizeof *res);
	memset(&r, 0, sizeof r);
	if ((rc = token_load(cfg, st, &r, err)) != ML_OK)
		goto out;
	if (usable(&r, o, now))
		goto serve;
	if (session_refused(&r)) {
		rc = refused(&r, err);
		goto out;
	}
	if (o->no_refresh) {
		int64_t left = r.expires_at - now;

		/* Only the session's keep-alive is due: the token itself is good. */
		if ((o->rejected == NULL || strcmp(o->rejected, r.access_token) != 0) &&
		    session_token_fresh(r.expires_at, r.obtained_at, o->min_valid, now))
			goto serve;

		util_format_duration(left > 0 ? left : -left, when, sizeof when);
		if (left > 0)
			rc = err_set(err, ML_ELOGIN, "the token expires in %s, sooner than "
			    "wanted, and --no-refresh forbids a refresh", when);
		else
			rc = err_set(err, ML_ELOGIN, "the token expired %s ago and --no-refresh "
			    "forbids a refresh", when);
		goto out;
	}

	if ((rc = session_lock(cfg, LOCK_WAIT_MS, &lockfd, err)) != ML_OK)
		goto out;
	/* Whoever held the lock before us may have refreshed already. */
	record_free(&r);
	if ((rc = token_load(cfg, st, &r, err)) != ML_OK ||
	    (rc = session_recover(cfg, st, &r, res->warning, sizeof res->warning, err)) != ML_OK)
		goto out;
	now = util_now();
	if (usable(&r, o, now))
		goto serve;
	if (session_refused(&r)) {
		rc = refused(&r, err);
		goto out;
	}
	if (r.refresh_token == NULL) {
		rc = err_set(err, ML_ELOGIN, "the session has no refresh token and its access "
		    "token is %s: run mlauth login", r.expires_at > now ? "about to expire" :
		    "expired");
		goto out;
	}
	if (r.refresh_expires_at != 0 && r.refresh_expires_at <= now) {
		util_format_time(r.refresh_expires_at, when, sizeof when);
		rc = err_set(err, ML_ELOGIN, "the session expired at %s: run mlauth login", when);
		goto out;
	}
	rc = session_refresh(cfg, verbose, st, &lockfd, &r, &res->rec, res->warning,
	    sizeof res->warning, err);
	if (rc == ML_OK)
		res->refreshed = true;
	/*
	 * Better a token that still works for a while than no token at all,
	 * whether the provider is unreachable or answers nonsense (an outage
	 * page, a token that is not a JWT).  Not when the session is over, the
	 * store failed or the user interrupted; nor when the API refused it.
	 */
	if ((rc == ML_ENET || rc == ML_EFAIL) && r.expires_at > util_now() &&
	    (o->rejected == NULL || strcmp(o->rejected, r.access_token) != 0)) {
		util_format_duration(r.expires_at - util_now(), when, sizeof when);
		(void)snprintf(res->warning, sizeof res->warning,
		    "could not refresh (%.500s); using the current token, valid for %s", err->msg,
		    when);
		err_clear(err);
		record_free(&res->rec);
		goto serve;
	}
	goto out;
serve:
	/* A store hit means the kernel cache missed: fill it for the next caller. */
	token_cache(cfg, &r);
	res->rec = r;
	memset(&r, 0, sizeof r);
	rc = ML_OK;
out:
	if (lockfd >= 0)
		lock_release(lockfd);
	record_free(&r);
	return rc;
}

bool
token_cached(const struct config *cfg, const struct token_opts *o, struct token_result *res)
{
	struct cache_entry e;
	struct record *r = &res->rec;

	memset(res, 0, sizeof *res);
	if (cache_get(cfg->profile, cfg->issuer, cfg->client_id, &e) != 0)
		return false;
	if ((o->rejected != NULL && strcmp(o->rejected, e.token) == 0) ||
	    !session_token_fresh(e.expires_at, e.obtained_at, o->min_valid, util_now())) {
		cache_entry_free(&e);
		return false;
	}
	r->access_token = e.token;
	e.token = NULL;
	r->expires_at = e.expires_at;
	r->obtained_at = e.obtained_at;
	cache_entry_free(&e);
	r->issuer = strdup(cfg->issuer);
	r->client_id = strdup(cfg->client_id);
	r->token_type = strdup("Bearer");
	if (r->issuer == NULL || r->client_id == NULL || r->token_type == NULL) {
		token_result_free(res);
		return false;
	}
	return true;
}

int
token_get(const struct config *cfg, int verbose, struct store *st, bool *st_open,
    const struct token_opts *o, struct token_result *res, struct ml_err *err)
{
	int rc;

	/* A fresh token in the kernel cache needs no store, and no D-Bus round trip. */
	if (token_cached(cfg, o, res))
		return ML_OK;
	if (!*st_open) {
		if ((rc = store_open(cfg, st, err)) != ML_OK)
			return rc;
		*st_open = true;
	}
	return token_get_fresh(cfg, verbose, st, o, res, err);
}

void
token_result_free(struct token_result *res)
{
	if (res == NULL)
		return;
	record_free(&res->rec);
	memset(res, 0, sizeof *res);
}
