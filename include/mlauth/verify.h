/*
 * verify.h: validating a JWT from the provider: its signature against the
 * provider's published keys (JWKS) by the module mlauth-jwt.so (libjwt,
 * libcrypto: loaded here, on demand, never at start-up), its claims by jwt.c.
 */
#ifndef MLAUTH_VERIFY_H
#define MLAUTH_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "mlauth/err.h"
#include "mlauth/http.h"
#include "mlauth/jwt.h"
#include "mlauth/oidc.h"

#define VERIFY_LEEWAY	60	/* seconds of clock difference tolerated */

/*
 * The provider's clock now, as its Date header at discovery told it
 * (discovered_at: util_now() just after discovery): a workstation whose clock
 * is off still validates what the provider just issued.  util_now() when
 * the provider sent no Date.
 */
int64_t verify_provider_now(const struct oidc_provider *p, int64_t discovered_at);

/*
 * Validate token against the JWKS in jwks (a JSON document of len bytes):
 * the key is chosen by the header's kid (or is the only signing key that
 * fits alg), the signature checked by the module, then the claims against
 * x.  *h gets the header.  ML_EFAIL with a message saying what failed, never
 * quoting the token.
 */
int verify_with_jwks(const char *token, const char *jwks, size_t len,
    const struct jwt_expect *x, struct jwt_header *h, struct ml_err *err);

/* verify_with_jwks with the provider's JWKS, fetched now (ML_ENET when unreachable). */
int verify_token(const struct http_opts *o, const struct oidc_provider *p,
    const char *token, const struct jwt_expect *x, struct jwt_header *h,
    struct ml_err *err);

/*
 * The ID token of a login (OIDC Core 3.1.3.7): signed by p, iss is p's
 * issuer, aud contains client_id, azp (when present) is client_id, not
 * expired on the provider's clock.  The message says what failed.
 */
int verify_id_token(const struct http_opts *o, const struct oidc_provider *p,
    const char *client_id, const char *id_token, int64_t discovered_at,
    struct ml_err *err);

/*
 * An access token (`status --verify`): signed by p, iss is p's issuer, azp
 * (when present) is client_id, not expired; *h gets its header.  Its aud is
 * the API's business (Keycloak puts there what the realm's mappers say).
 */
int verify_access_token(const struct http_opts *o, const struct oidc_provider *p,
    const char *client_id, const char *access_token, int64_t discovered_at,
    struct jwt_header *h, struct ml_err *err);

#endif
