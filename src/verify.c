/*
 * verify.c: a provider's JWT checked as OIDC Core 3.1.3.7 asks: signed by one
 * of the provider's keys, issued by it, for us, not expired.
 *
 * The key is chosen here with jansson; the signature is the module's
 * (libjwt and libcrypto, which cost milliseconds to load and which the
 * cached-token path and the helper's start-up never need).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "mlauth/jwtsig.h"
#include "mlauth/module.h"
#include "mlauth/util.h"
#include "mlauth/verify.h"

#define VERIFY_MODULE	"mlauth-jwt.so"
#define JWKS_MAX	(256 * 1024)

int64_t
verify_provider_now(const struct oidc_provider *p, int64_t discovered_at)
{
	int64_t now = util_now();

	return p->date != 0 ? now + ((int64_t)p->date - discovered_at) : now;
}

static int
sig_module(const struct jwt_sig_ops **ops, struct ml_err *err)
{
	static const struct jwt_sig_ops *mod;
	const void *m;
	int rc;

	if (mod == NULL) {
		if ((rc = module_open(VERIFY_MODULE, "the token signature module",
		    "jwt_sig_module", JWT_SIG_ABI, &m, err)) != ML_OK)
			return rc;
		mod = m;
	}
	*ops = mod;
	return ML_OK;
}

/*
 * The key type an accepted algorithm needs, NULL for any other: the token
 * never chooses "none" or HMAC (which, keyed with a public key, anyone can
 * compute).  The module refuses them again, at the crypto boundary.
 */
static const char *
alg_kty(const char *alg)
{
	static const char *const algs[] = { "RS256", "RS384", "RS512", "ES256", "ES384",
	    "ES512" };

	for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
		if (strcmp(alg, algs[i]) == 0)
			return alg[0] == 'R' ? "RSA" : "EC";
	return NULL;
}

static const char *
member(json_t *key, const char *name)
{
	return json_string_value(json_object_get(key, name));
}

/* Whether key may have signed a token of header h (RFC 7517 4.2, 4.4, 4.5). */
static bool
key_fits(json_t *key, const struct jwt_header *h)
{
	const char *use = member(key, "use"), *alg = member(key, "alg");
	const char *kid = member(key, "kid"), *kty = member(key, "kty");
	const char *want = alg_kty(h->alg);

	if (want == NULL || !json_is_object(key) || (use != NULL && strcmp(use, "sig") != 0) ||
	    (alg != NULL && strcmp(alg, h->alg) != 0) || kty == NULL || strcmp(kty, want) != 0)
		return false;
	return h->kid[0] == '\0' || (kid != NULL && strcmp(kid, h->kid) == 0);
}

/* The one key of the set that fits h, or NULL with err set. */
static json_t *
key_select(json_t *jwks, const struct jwt_header *h, struct ml_err *err)
{
	json_t *keys = json_object_get(jwks, "keys"), *k, *found = NULL;
	size_t i, n = 0;

	if (!json_is_array(keys)) {
		err_set(err, ML_EFAIL, "the provider's key set (JWKS) has no keys");
		return NULL;
	}
	json_array_foreach(keys, i, k)
		if (key_fits(k, h)) {
			found = found != NULL ? found : k;
			n++;
		}
	if (n == 0 && h->kid[0] != '\0')
		err_set(err, ML_EFAIL, "none of the provider's %s signing keys has its key id %s "
		    "(keys rotated, or a token from elsewhere)", h->alg, h->kid);
	else if (n == 0)
		err_set(err, ML_EFAIL, "none of the provider's signing keys is for %s", h->alg);
	else if (n > 1 && h->kid[0] == '\0')
		err_set(err, ML_EFAIL, "it names no key (kid) and the provider has several");
	return n == 1 || (n > 1 && h->kid[0] != '\0') ? found : NULL;
}

static int
check_signature(const char *token, const struct jwt_header *h, json_t *key,
    struct ml_err *err)
{
	const struct jwt_sig_ops *ops;
	json_t *x5c = json_object_get(key, "x5c");
	struct jwt_sig_key k = {
		.kty = member(key, "kty"), .n = member(key, "n"), .e = member(key, "e"),
		.x5c = json_string_value(json_array_get(x5c, 0)),
	};
	int rc;

	/* libjwt 1.10 refuses any other type, whatever the signature (RFC 9068's at+jwt). */
	if (h->typ[0] != '\0' && strcasecmp(h->typ, "JWT") != 0)
		return err_set(err, ML_EFAIL, "it is of type %s, which libjwt 1.10 cannot check",
		    h->typ);
	if ((rc = sig_module(&ops, err)) != ML_OK)
		return rc;
	return ops->verify(token, h->alg, &k, err);
}

int
verify_with_jwks(const char *token, const char *jwks, size_t len,
    const struct jwt_expect *x, struct jwt_header *h, struct ml_err *err)
{
	struct jwt_claims c;
	json_t *set = NULL, *key;
	int rc;

	memset(&c, 0, sizeof c);
	if ((rc = jwt_header_parse(token, h, err)) != ML_OK)
		return rc;
	if (alg_kty(h->alg) == NULL)
		return err_set(err, ML_EFAIL, "its algorithm %s is not one mlauth accepts "
		    "(RS256/384/512, ES256/384/512)", h->alg);
	if ((rc = util_json_load(jwks, len, JWKS_MAX, JSON_REJECT_DUPLICATES, ML_EFAIL,
	    "the provider's key set (JWKS)", &set, err)) != ML_OK)
		return rc;
	if ((key = key_select(set, h, err)) == NULL)
		rc = err->code;
	else if ((rc = check_signature(token, h, key, err)) == ML_OK &&
	    (rc = jwt_claims_parse(token, &c, err)) == ML_OK)
		rc = jwt_claims_check(&c, x, err);
	jwt_claims_free(&c);
	json_decref(set);
	return rc;
}

int
verify_token(const struct http_opts *o, const struct oidc_provider *p,
    const char *token, const struct jwt_expect *x, struct jwt_header *h,
    struct ml_err *err)
{
	char *jwks = NULL;
	size_t len = 0;
	int rc;

	memset(h, 0, sizeof *h);
	if ((rc = oidc_jwks(o, p, &jwks, &len, err)) == ML_OK)
		rc = verify_with_jwks(token, jwks, len, x, h, err);
	free(jwks);
	return rc;
}

int
verify_id_token(const struct http_opts *o, const struct oidc_provider *p,
    const char *client_id, const char *id_token, int64_t discovered_at,
    struct ml_err *err)
{
	const struct jwt_expect x = {
		.issuer = p->issuer, .audience = client_id, .azp = client_id,
		.now = verify_provider_now(p, discovered_at), .leeway = VERIFY_LEEWAY,
	};
	struct jwt_header h;
	int rc;

	if ((rc = verify_token(o, p, id_token, &x, &h, err)) != ML_OK)
		err_prefix(err, rc == ML_EFAIL ? "the provider's ID token is not valid" :
		    "cannot check the provider's ID token");
	return rc;
}

int
verify_access_token(const struct http_opts *o, const struct oidc_provider *p,
    const char *client_id, const char *access_token, int64_t discovered_at,
    struct jwt_header *h, struct ml_err *err)
{
	const struct jwt_expect x = {
		.issuer = p->issuer, .azp = client_id,
		.now = verify_provider_now(p, discovered_at), .leeway = VERIFY_LEEWAY,
	};

	return verify_token(o, p, access_token, &x, h, err);
}
