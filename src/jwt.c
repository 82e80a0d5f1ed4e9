/*
 * jwt.c: read the header and claims of a JWT, and check the claims, without
 * checking its signature (verify.c has that done, on demand).
 *
 * mlauth is the client, not the resource server: it reads `exp` and who the
 * token names on every run, and the API checks signatures.  libjwt 1.10 (Debian 12) refuses
 * tokens whose header says `typ: at+jwt` (RFC 9068, what oidc-provider and
 * newer Keycloak issue) and drags libcrypto into every process, so the
 * payload is decoded here with GLib's base64 and jansson instead.
 */
#include <stdbool.h>
#include <string.h>

#include <glib.h>
#include <jansson.h>

#include "mlauth/jwt.h"
#include "mlauth/secret.h"

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Decode one base64url segment into a NUL-terminated buffer; NULL when invalid. */
static char *
segment_decode(const char *s, size_t n, size_t *outlen)
{
	char *std;
	guchar *raw;
	gsize len;
	char *out;

	if (n == 0 || n % 4 == 1 || strspn(s, b64url) < n)
		return NULL;
	std = g_malloc(n + 4);
	for (size_t i = 0; i < n; i++)
		std[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	while (n % 4 != 0)
		std[n++] = '=';
	std[n] = '\0';
	raw = g_base64_decode(std, &len);
	g_free(std);
	if (raw == NULL || len == 0) {
		g_free(raw);
		return NULL;
	}
	out = g_malloc(len + 1);
	memcpy(out, raw, len);
	out[len] = '\0';
	secret_wipe(raw, len);
	g_free(raw);
	*outlen = len;
	return out;
}

static char *
claim_string(json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);

	return json_is_string(v) ? g_strdup(json_string_value(v)) : NULL;
}

static int64_t
claim_time(json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);

	if (json_is_integer(v) && json_integer_value(v) > 0)
		return json_integer_value(v);
	if (json_is_real(v) && json_real_value(v) > 0 && json_real_value(v) < 1e15)
		return (int64_t)json_real_value(v);
	return 0;
}

/* The aud claim, a string or a list of strings (RFC 7519 4.1.3). */
static char **
claim_aud(json_t *obj)
{
	json_t *v = json_object_get(obj, "aud"), *e;
	char **out;
	size_t i, n = 0;

	if (json_is_string(v)) {
		out = g_new0(char *, 2);
		out[0] = g_strdup(json_string_value(v));
		return out;
	}
	if (!json_is_array(v))
		return NULL;
	out = g_new0(char *, json_array_size(v) + 1);
	json_array_foreach(v, i, e)
		if (json_is_string(e))
			out[n++] = g_strdup(json_string_value(e));
	return out;
}

/*
 * Split token into its three parts (the first two non-empty) and decode the
 * header into *head; the payload segment is left in *body, *blen.
 */
static int
jwt_split(const char *token, json_t **head, const char **body, size_t *blen,
    struct ml_err *err)
{
	const char *dot1, *dot2;
	json_error_t jerr;
	char *h;
	size_t len, hlen;

	*head = NULL;
	if (token == NULL || *token == '\0')
		return err_set(err, ML_EFAIL, "not a JWT: empty");
	len = strnlen(token, JWT_MAX_LEN + 1);
	if (len > JWT_MAX_LEN)
		return err_set(err, ML_EFAIL, "not a JWT: longer than %d bytes", JWT_MAX_LEN);
	dot1 = memchr(token, '.', len);
	dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
	if (dot1 == NULL || dot2 == NULL ||
	    memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
		return err_set(err, ML_EFAIL, "not a JWT: expected three dot-separated parts");
	/* The header must at least be a JSON object, or this is no JWT at all. */
	h = segment_decode(token, (size_t)(dot1 - token), &hlen);
	*head = h != NULL ? json_loadb(h, hlen, JSON_REJECT_DUPLICATES, &jerr) : NULL;
	g_free(h);
	if (!json_is_object(*head)) {
		json_decref(*head);
		*head = NULL;
		return err_set(err, ML_EFAIL, "not a JWT: malformed header");
	}
	*body = dot1 + 1;
	*blen = (size_t)(dot2 - dot1 - 1);
	return ML_OK;
}

/* Visible ASCII only: header members end up in messages. */
static bool
visible(const char *v)
{
	for (; v != NULL && *v != '\0'; v++)
		if ((unsigned char)*v < 0x21 || (unsigned char)*v > 0x7e)
			return false;
	return true;
}

int
jwt_header_parse(const char *token, struct jwt_header *h, struct ml_err *err)
{
	const char *body, *alg, *kid, *typ;
	size_t blen;
	json_t *head;
	int rc;

	memset(h, 0, sizeof *h);
	if ((rc = jwt_split(token, &head, &body, &blen, err)) != ML_OK)
		return rc;
	alg = json_string_value(json_object_get(head, "alg"));
	kid = json_string_value(json_object_get(head, "kid"));
	typ = json_string_value(json_object_get(head, "typ"));
	if (alg == NULL || alg[0] == '\0' || strlen(alg) >= sizeof h->alg)
		rc = err_set(err, ML_EFAIL, "the JWT header names no usable algorithm");
	else if (!visible(alg) || !visible(kid) || !visible(typ))
		rc = err_set(err, ML_EFAIL, "the JWT header holds unprintable characters");
	else if (kid != NULL && strlen(kid) >= sizeof h->kid)
		rc = err_set(err, ML_EFAIL, "the JWT header's key id is too long");
	else if (typ != NULL && strlen(typ) >= sizeof h->typ)
		rc = err_set(err, ML_EFAIL, "the JWT header's type is too long");
	else {
		(void)g_strlcpy(h->typ, typ != NULL ? typ : "", sizeof h->typ);
		(void)g_strlcpy(h->alg, alg, sizeof h->alg);
		(void)g_strlcpy(h->kid, kid != NULL ? kid : "", sizeof h->kid);
	}
	json_decref(head);
	return rc;
}

int
jwt_claims_parse(const char *token, struct jwt_claims *out, struct ml_err *err)
{
	const char *body;
	char *payload = NULL;
	size_t blen, plen = 0;
	json_t *obj = NULL, *head;
	json_error_t jerr;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = jwt_split(token, &head, &body, &blen, err)) != ML_OK)
		return rc;
	json_decref(head);
	payload = segment_decode(body, blen, &plen);
	if (payload == NULL) {
		rc = err_set(err, ML_EFAIL, "not a JWT: payload is not base64url");
		goto out;
	}
	obj = json_loadb(payload, plen, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(obj)) {
		rc = err_set(err, ML_EFAIL, "not a JWT: payload is not a JSON object");
		goto out;
	}
	out->exp = claim_time(obj, "exp");
	out->iat = claim_time(obj, "iat");
	out->nbf = claim_time(obj, "nbf");
	out->iss = claim_string(obj, "iss");
	out->sub = claim_string(obj, "sub");
	out->azp = claim_string(obj, "azp");
	out->typ = claim_string(obj, "typ");
	out->scope = claim_string(obj, "scope");
	out->preferred_username = claim_string(obj, "preferred_username");
	out->email = claim_string(obj, "email");
	out->name = claim_string(obj, "name");
	out->aud = claim_aud(obj);
out:
	json_decref(obj);
	if (payload != NULL) {
		secret_wipe(payload, plen);
		g_free(payload);
	}
	return rc;
}

/* v as it may appear in a message: short printable ASCII, else a placeholder. */
static const char *
shown(const char *v)
{
	size_t n = 0;

	if (v == NULL)
		return "(none)";
	for (; v[n] != '\0'; n++)
		if (n >= 96 || (unsigned char)v[n] < 0x20 || (unsigned char)v[n] > 0x7e)
			return "(unprintable)";
	return v;
}

static bool
aud_has(char *const *aud, const char *want)
{
	for (; aud != NULL && *aud != NULL; aud++)
		if (strcmp(*aud, want) == 0)
			return true;
	return false;
}

int
jwt_claims_check(const struct jwt_claims *c, const struct jwt_expect *x,
    struct ml_err *err)
{
	if (c->iss == NULL || strcmp(c->iss, x->issuer) != 0)
		return err_set(err, ML_EFAIL, "it was issued by %s, not %s", shown(c->iss),
		    shown(x->issuer));
	if (x->audience != NULL && !aud_has(c->aud, x->audience))
		return err_set(err, ML_EFAIL, "its audience (aud) does not include %s",
		    shown(x->audience));
	if (x->azp != NULL && c->azp != NULL && strcmp(c->azp, x->azp) != 0)
		return err_set(err, ML_EFAIL, "it was issued to client %s (azp), not %s",
		    shown(c->azp), shown(x->azp));
	if (c->exp == 0)
		return err_set(err, ML_EFAIL, "it has no expiry (exp)");
	if (c->exp + x->leeway <= x->now)
		return err_set(err, ML_EFAIL, "it expired %lld s ago (exp)",
		    (long long)(x->now - c->exp));
	if (c->nbf != 0 && c->nbf - x->leeway > x->now)
		return err_set(err, ML_EFAIL, "it is not valid for another %lld s (nbf)",
		    (long long)(c->nbf - x->now));
	if (c->iat != 0 && c->iat - x->leeway > x->now)
		return err_set(err, ML_EFAIL, "it was issued %lld s in the future (iat)",
		    (long long)(c->iat - x->now));
	return ML_OK;
}

void
jwt_claims_free(struct jwt_claims *c)
{
	if (c == NULL)
		return;
	g_free(c->iss);
	g_free(c->sub);
	g_free(c->azp);
	g_free(c->typ);
	g_free(c->scope);
	g_free(c->preferred_username);
	g_free(c->email);
	g_free(c->name);
	g_strfreev(c->aud);
	memset(c, 0, sizeof *c);
}
