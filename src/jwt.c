/*
 * jwt.c: read the claims of a JWT without checking its signature.
 *
 * mlauth is the client, not the resource server: it reads `exp` and who the
 * token names, and the API checks signatures.  libjwt 1.10 (Debian 12) refuses
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

int
jwt_claims_parse(const char *token, struct jwt_claims *out, struct ml_err *err)
{
	const char *dot1, *dot2;
	char *payload = NULL;
	size_t len, plen = 0;
	json_t *obj = NULL;
	json_error_t jerr;
	int rc = ML_OK;

	memset(out, 0, sizeof *out);
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
	{
		size_t hlen;
		char *head = segment_decode(token, (size_t)(dot1 - token), &hlen);
		json_t *h = head != NULL ? json_loadb(head, hlen, 0, &jerr) : NULL;
		bool ok = json_is_object(h);

		json_decref(h);
		g_free(head);
		if (!ok)
			return err_set(err, ML_EFAIL, "not a JWT: malformed header");
	}
	payload = segment_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &plen);
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
	out->iss = claim_string(obj, "iss");
	out->sub = claim_string(obj, "sub");
	out->azp = claim_string(obj, "azp");
	out->typ = claim_string(obj, "typ");
	out->scope = claim_string(obj, "scope");
	out->preferred_username = claim_string(obj, "preferred_username");
	out->email = claim_string(obj, "email");
	out->name = claim_string(obj, "name");
out:
	json_decref(obj);
	if (payload != NULL) {
		secret_wipe(payload, plen);
		g_free(payload);
	}
	return rc;
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
	memset(c, 0, sizeof *c);
}
