/* oidc.h: the OpenID Connect protocol: discovery, device flow, refresh, revocation. */
#ifndef MLAUTH_OIDC_H
#define MLAUTH_OIDC_H

#include <stdint.h>
#include <time.h>

#include "mlauth/err.h"
#include "mlauth/http.h"

#define OIDC_MAX_LIFETIME	(365L * 24 * 3600)	/* a year: anything longer is nonsense */

/*
 * Every function below that fills a struct zeroes it first; free it with its
 * *_free function (which wipes the secrets), even after a failure.  Error
 * messages never hold a token; the provider's own `error` and
 * `error_description` appear sanitised (printable ASCII, truncated, long
 * token-like runs redacted).
 *
 * Status mapping of discovery, device and token requests: a transport
 * failure, a 3xx (redirects are not followed: a wrong URL, or a captive
 * portal), a 429, a 5xx or a temporarily_unavailable error is ML_ENET, so a
 * caller holding a still-valid token can keep serving it.  Ctrl-C
 * (http_interrupted) is ML_EINTR.  Revocation differs: see oidc_revoke.
 */

struct oidc_provider {
	char *issuer;
	char *device_authorization_endpoint;
	char *token_endpoint;
	char *revocation_endpoint;	/* NULL when not offered */
	char *jwks_uri;			/* NULL when not offered */
	time_t date;			/* the provider's Date header, 0 when absent */
};

struct oidc_device {
	char *device_code;		/* secret */
	char *user_code;		/* printable ASCII, no spaces at the ends */
	char *verification_uri;		/* passed config_url_allowed */
	char *verification_uri_complete; /* NULL when not offered; passed config_url_allowed */
	long expires_in;		/* 600 when the provider leaves it out */
	long interval;			/* 5 when left out (RFC 8628), clamped to [1, 60] */
};

struct oidc_tokens {
	char *access_token, *refresh_token, *id_token;	/* secrets; refresh and id may be NULL */
	char *scope;			/* NULL when absent */
	char *token_type;		/* always "Bearer" after a successful parse */
	long expires_in;		/* seconds in [1, 1 year], -1 when absent */
	long refresh_expires_in;	/* seconds, -1 when absent or malformed, 0 for offline tokens */
	long status;			/* the answer's HTTP status, set on failure too; 0: none */
	char error[64];			/* a refusal's OAuth error code ("not_allowed"); "" else */
};

/* Results of oidc_device_poll besides ML_OK and the ML_E* failures. */
enum { OIDC_PENDING = 1000, OIDC_SLOW_DOWN = 1001 };

/*
 * Fetch <issuer>/.well-known/openid-configuration (one trailing '/' of issuer
 * is dropped to build the URL); the issuer it names must equal `issuer`
 * exactly, and every endpoint must pass config_url_allowed.  An issuer that
 * does not pass config_url_allowed itself is ML_EUSAGE.
 */
int oidc_discover(const struct http_opts *o, const char *issuer,
    struct oidc_provider *p, struct ml_err *err);
/* The body of a 200 discovery answer (no network): same checks as above. */
int oidc_discovery_parse(const char *buf, size_t len, const char *issuer,
    struct oidc_provider *p, struct ml_err *err);
void oidc_provider_free(struct oidc_provider *p);
/*
 * The provider's JWKS (its jwks_uri), the raw 200 answer in *body (allocated,
 * free it); ML_EFAIL when it offers none or refuses, ML_ENET when unreachable.
 */
int oidc_jwks(const struct http_opts *o, const struct oidc_provider *p, char **body,
    size_t *len, struct ml_err *err);

/*
 * Device authorization request (scope NULL or "" leaves it out); an
 * invalid_scope answer is ML_EUSAGE with "invalid_scope" in the message, any
 * other refusal ML_EFAIL with the provider's error.
 */
int oidc_device_start(const struct http_opts *o, const struct oidc_provider *p,
    const char *client_id, const char *scope, struct oidc_device *d, struct ml_err *err);
/* The body of a 200 device authorization answer (RFC 8628 3.2). */
int oidc_device_parse(const char *buf, size_t len, struct oidc_device *d, struct ml_err *err);
/* A device authorization answer of any status, mapped as oidc_device_start does. */
int oidc_device_answer(long status, const char *buf, size_t len, struct oidc_device *d,
    struct ml_err *err);
void oidc_device_free(struct oidc_device *d);

/*
 * One token request for the device code: ML_OK with *t filled, OIDC_PENDING,
 * OIDC_SLOW_DOWN, ML_EFAIL for access_denied / expired_token / a rejected
 * device code (clear message), ML_ENET when unreachable.
 */
int oidc_device_poll(const struct http_opts *o, const struct oidc_provider *p,
    const char *client_id, const struct oidc_device *d, struct oidc_tokens *t,
    struct ml_err *err);

/*
 * Refresh grant; invalid_grant, not_allowed and invalid_scope are ML_ELOGIN
 * ("... run mlauth login").  t->refresh_token is NULL when the provider did
 * not rotate it: keep the old one then.  A 200 answer refused for anything
 * else still leaves its refresh token in t (the provider has spent the old
 * one): the caller must keep it.
 */
int oidc_refresh(const struct http_opts *o, const struct oidc_provider *p,
    const char *client_id, const char *refresh_token, struct oidc_tokens *t,
    struct ml_err *err);

/*
 * Parse a token endpoint answer of any status (status is the HTTP status):
 * ML_OK with *t for 200; authorization_pending → OIDC_PENDING, slow_down →
 * OIDC_SLOW_DOWN, access_denied / expired_token → ML_EFAIL, invalid_grant →
 * ML_ELOGIN, 429 / 5xx → ML_ENET, another `error` → ML_EFAIL naming it, a
 * non-2xx without one → ML_EFAIL "token endpoint answered HTTP N".  An
 * `error` member is honoured even in a 200 (some providers answer so).
 */
int oidc_token_parse(long status, const char *buf, size_t len, struct oidc_tokens *t,
    struct ml_err *err);
void oidc_tokens_free(struct oidc_tokens *t);

/*
 * RFC 7009 revocation of a refresh token: 200 is ML_OK, any other status
 * ML_EFAIL naming it; ML_EFAIL when there is no endpoint, ML_ENET when the
 * provider cannot be reached.
 */
int oidc_revoke(const struct http_opts *o, const struct oidc_provider *p,
    const char *client_id, const char *refresh_token, struct ml_err *err);

#endif
