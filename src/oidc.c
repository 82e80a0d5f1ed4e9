/*
 * oidc.c: the OpenID Connect protocol, nothing more: discovery (OIDC
 * Discovery 1.0), the device flow (RFC 8628), refresh (RFC 6749 6) and
 * revocation (RFC 7009).  Policy (when to refresh, where tokens live) is
 * token.c's.  Every answer is treated as hostile: size-capped, parsed with
 * jansson, every member type-checked, strings copied out before the JSON is
 * released, and whatever the provider says sanitised before it reaches a
 * message.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mlauth/config.h"
#include "mlauth/http.h"
#include "mlauth/oidc.h"
#include "mlauth/sanitize.h"
#include "mlauth/secret.h"
#include "mlauth/util.h"

#define OIDC_WELL_KNOWN		"/.well-known/openid-configuration"
#define OIDC_FORM		"application/x-www-form-urlencoded"
#define OIDC_DEVICE_EXPIRES	600L
#define OIDC_INTERVAL		5L
#define OIDC_INTERVAL_MIN	1L
#define OIDC_INTERVAL_MAX	60L
#define OIDC_USER_CODE_MAX	64
#define OIDC_URL_MAX		2048
/* How errors name the provider, and what to check when it cannot be reached. */
#define OIDC_PEER		"the identity provider"
#define OIDC_PEER_CHECK		"the issuer setting"
#define OIDC_SHOW_MAX		160	/* provider text quoted in a message */
#define OIDC_ORIGIN_MAX		256

static const char *const oidc_accept_json[] = { "Accept: application/json", NULL };

/* The provider's own error answer (RFC 6749 5.2), sanitised for a message. */
struct oidc_error {
	bool present;
	char code[64];
	char desc[OIDC_SHOW_MAX];
};

/*
 * s as one line of printable ASCII into out, truncated with "...".  With
 * redact, token-like runs and JWTs (a provider echoing what it was sent)
 * become "[redacted]": prose and URLs never have such runs.
 */
static void
oidc_show(const char *s, bool redact, char *out, size_t outlen)
{
	(void)sanitize_str(s, SAN_ONELINE | SAN_ASCII | (redact ? SAN_REDACT : 0), out, outlen);
}

/* Whether every byte of s is in [lo, 0x7e]: 0x21 for tokens and URLs, 0x20 for text. */
static bool
oidc_ascii(const char *s, unsigned char lo)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < lo || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/* A URL we may fetch or show the user: one visible-ASCII word, https or loopback http. */
static bool
oidc_url_ok(const char *url)
{
	return strlen(url) <= OIDC_URL_MAX && oidc_ascii(url, 0x21) && config_url_allowed(url);
}

/* Replace every copy of secret in the message: some providers echo what they were sent. */
static void
oidc_scrub(struct ml_err *err, const char *secret)
{
	char out[sizeof err->msg];
	const char *s;
	size_t n = 0, sl;

	if (err == NULL || secret == NULL || (sl = strlen(secret)) < 4 ||
	    strstr(err->msg, secret) == NULL)
		return;
	for (s = err->msg; *s != '\0' && n + 1 < sizeof out;) {
		if (strncmp(s, secret, sl) == 0) {
			for (const char *r = "[redacted]"; *r != '\0' && n + 1 < sizeof out; r++)
				out[n++] = *r;
			s += sl;
		} else {
			out[n++] = *s++;
		}
	}
	out[n] = '\0';
	secret_wipe(err->msg, sizeof err->msg);
	memcpy(err->msg, out, n + 1);
}

/*
 * Parse buf as one JSON object into *root (a new reference).  The error says
 * what was wrong without quoting the input: jansson's own text quotes it, and
 * the input may be a token answer.
 */
static int
oidc_json_load(const char *buf, size_t len, const char *what, json_t **root,
    struct ml_err *err)
{
	int rc;

	/* DECODE_ANY: a bare scalar is then "not a JSON object", not a syntax error. */
	if ((rc = util_json_load(buf, len, HTTP_MAX_BODY, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
	    ML_EFAIL, what, root, err)) != ML_OK)
		return rc;
	if (!json_is_object(*root)) {
		json_decref(*root);
		*root = NULL;
		return err_set(err, ML_EFAIL, "%s is not a JSON object", what);
	}
	return ML_OK;
}

/*
 * Copy string member key of obj into *out (allocated, secret_free it);
 * *out stays NULL when the member is absent or null.
 */
/* Members that are credentials: kept in secret memory (secret.h), the rest on the heap. */
static bool
oidc_secret_key(const char *key)
{
	static const char *const keys[] = { "device_code", "access_token", "refresh_token",
	    "id_token", NULL };

	for (size_t i = 0; keys[i] != NULL; i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

static int
oidc_str(json_t *obj, const char *key, char **out, const char *what, struct ml_err *err)
{
	json_t *v = json_object_get(obj, key);
	const char *s;

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return ML_OK;
	if (!json_is_string(v))
		return err_set(err, ML_EFAIL, "%s: %s is not a string", what, key);
	s = json_string_value(v);
	if (strlen(s) != json_string_length(v))
		return err_set(err, ML_EFAIL, "%s: %s holds a NUL byte", what, key);
	if ((*out = oidc_secret_key(key) ? secret_dup(s) : strdup(s)) == NULL)
		return err_set(err, ML_EFAIL, "out of memory");
	return ML_OK;
}

/* Integer member: 1 with *v set, 0 when absent or null, -1 when of another type. */
static int
oidc_int(json_t *obj, const char *key, json_int_t *v)
{
	json_t *j = json_object_get(obj, key);

	if (j == NULL || json_is_null(j))
		return 0;
	if (!json_is_integer(j))
		return -1;
	*v = json_integer_value(j);
	return 1;
}

/* The error members of an answer, when root is an object that has them. */
static void
oidc_error_get(json_t *root, struct oidc_error *e)
{
	json_t *code = root != NULL ? json_object_get(root, "error") : NULL;
	json_t *desc = root != NULL ? json_object_get(root, "error_description") : NULL;

	memset(e, 0, sizeof *e);
	if (!json_is_string(code) || json_string_value(code)[0] == '\0')
		return;
	e->present = true;
	oidc_show(json_string_value(code), true, e->code, sizeof e->code);
	if (json_is_string(desc))
		oidc_show(json_string_value(desc), true, e->desc, sizeof e->desc);
}

/* "code" or "code (description)" for a message. */
static void
oidc_error_text(const struct oidc_error *e, char *out, size_t outlen)
{
	int n;

	if (e->desc[0] != '\0')
		n = snprintf(out, outlen, "%s (%s)", e->code, e->desc);
	else
		n = snprintf(out, outlen, "%s", e->code);
	if (n < 0 && outlen > 0)
		out[0] = '\0';
	/* Truncation only shortens the provider's prose. */
}

/* The error of a non-2xx answer, when its body is JSON that carries one. */
static void
oidc_error_of_body(const char *buf, size_t len, struct oidc_error *e)
{
	json_t *root = NULL;

	memset(e, 0, sizeof *e);
	if (oidc_json_load(buf, len, "answer", &root, NULL) == ML_OK)
		oidc_error_get(root, e);
	json_decref(root);
}

/* ---- discovery ---- */

void
oidc_provider_free(struct oidc_provider *p)
{
	if (p == NULL)
		return;
	free(p->issuer);
	free(p->device_authorization_endpoint);
	free(p->token_endpoint);
	free(p->revocation_endpoint);
	free(p->jwks_uri);
	memset(p, 0, sizeof *p);
}

int
oidc_discovery_parse(const char *buf, size_t len, const char *issuer,
    struct oidc_provider *p, struct ml_err *err)
{
	const struct {
		const char *key;
		char **field;
		bool required;
	} eps[] = {
		{ "device_authorization_endpoint", &p->device_authorization_endpoint, true },
		{ "token_endpoint", &p->token_endpoint, true },
		{ "revocation_endpoint", &p->revocation_endpoint, false },
		{ "jwks_uri", &p->jwks_uri, false },
	};
	char origin[OIDC_ORIGIN_MAX], what[OIDC_ORIGIN_MAX + 32];
	char got[OIDC_SHOW_MAX], want[OIDC_SHOW_MAX];
	json_t *root = NULL;
	int rc;

	memset(p, 0, sizeof *p);
	http_url_origin(issuer, origin, sizeof origin);
	(void)snprintf(what, sizeof what, "discovery at %s", origin);
	if ((rc = oidc_json_load(buf, len, what, &root, err)) != ML_OK)
		goto out;
	if ((rc = oidc_str(root, "issuer", &p->issuer, what, err)) != ML_OK)
		goto out;
	if (p->issuer == NULL) {
		rc = err_set(err, ML_EFAIL, "%s names no issuer", what);
		goto out;
	}
	/* OIDC Discovery 4.3: identical, so tokens cannot come from a look-alike. */
	if (issuer == NULL || strcmp(p->issuer, issuer) != 0) {
		oidc_show(p->issuer, false, got, sizeof got);
		oidc_show(issuer, false, want, sizeof want);
		rc = err_set(err, ML_EFAIL, "%s names issuer %s, expected %s", what, got, want);
		goto out;
	}
	for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++) {
		if ((rc = oidc_str(root, eps[i].key, eps[i].field, what, err)) != ML_OK)
			goto out;
		if (*eps[i].field == NULL && eps[i].required) {
			if (strcmp(eps[i].key, "device_authorization_endpoint") == 0)
				rc = err_set(err, ML_EFAIL, "the identity provider at %s does not "
				    "offer the device flow (%s names no %s)", origin, what, eps[i].key);
			else
				rc = err_set(err, ML_EFAIL, "%s names no %s", what, eps[i].key);
			goto out;
		}
		if (*eps[i].field != NULL && !oidc_url_ok(*eps[i].field)) {
			oidc_show(*eps[i].field, false, got, sizeof got);
			rc = err_set(err, ML_EFAIL, "%s lists %s %s: not https (or http to a "
			    "loopback host)", what, eps[i].key, got);
			goto out;
		}
		/* Any local user can listen on a loopback port: no downgrade from TLS. */
		if (*eps[i].field != NULL && strncmp(issuer, "https://", 8) == 0 &&
		    strncmp(*eps[i].field, "https://", 8) != 0) {
			oidc_show(*eps[i].field, false, got, sizeof got);
			rc = err_set(err, ML_EFAIL, "%s lists %s %s: plain http, but the issuer "
			    "is https", what, eps[i].key, got);
			goto out;
		}
	}
	rc = ML_OK;
out:
	json_decref(root);
	if (rc != ML_OK)
		oidc_provider_free(p);
	return rc;
}

/* A 3xx is never followed: say where it came from so a captive portal is recognisable. */
static int
oidc_redirect_error(const char *url, long status, struct ml_err *err)
{
	char origin[OIDC_ORIGIN_MAX];

	http_url_origin(url, origin, sizeof origin);
	return err_set(err, ML_ENET, "%s answered with a redirect (HTTP %ld): a wrong issuer "
	    "URL, or a captive portal or login proxy in the way?", origin, status);
}

int
oidc_discover(const struct http_opts *o, const char *issuer, struct oidc_provider *p,
    struct ml_err *err)
{
	struct http_request req = { .peer = OIDC_PEER, .peer_check = OIDC_PEER_CHECK };
	struct http_response resp = { 0 };
	char origin[OIDC_ORIGIN_MAX], shown[OIDC_SHOW_MAX];
	char *url = NULL;
	size_t il;
	int rc;

	memset(p, 0, sizeof *p);
	if (issuer == NULL || !oidc_url_ok(issuer)) {
		oidc_show(issuer, false, shown, sizeof shown);
		rc = err_set(err, ML_EUSAGE, "issuer %s: expected an https:// URL (http:// only "
		    "for 127.0.0.1, ::1 or localhost)", shown);
		goto out;
	}
	http_url_origin(issuer, origin, sizeof origin);
	il = strlen(issuer);
	if (il > 0 && issuer[il - 1] == '/')
		il--;
	if ((url = malloc(il + sizeof OIDC_WELL_KNOWN)) == NULL) {
		rc = err_set(err, ML_EFAIL, "out of memory");
		goto out;
	}
	memcpy(url, issuer, il);
	memcpy(url + il, OIDC_WELL_KNOWN, sizeof OIDC_WELL_KNOWN);

	req.method = "GET";
	req.url = url;
	req.headers = oidc_accept_json;
	if ((rc = http_perform(o, &req, &resp, err)) != ML_OK)
		goto out;
	if (resp.status >= 300 && resp.status < 400) {
		rc = oidc_redirect_error(url, resp.status, err);
	} else if (resp.status == 429 || resp.status >= 500) {
		rc = err_set(err, ML_ENET, "the identity provider at %s is unavailable (HTTP %ld)",
		    origin, resp.status);
	} else if (resp.status == 404) {
		rc = err_set(err, ML_EFAIL, "no OpenID configuration at %s (HTTP 404): check "
		    "the issuer setting", origin);
	} else if (resp.status != 200) {
		rc = err_set(err, ML_EFAIL, "discovery at %s answered HTTP %ld", origin, resp.status);
	} else if ((rc = oidc_discovery_parse(resp.body, resp.len, issuer, p, err)) == ML_OK) {
		p->date = resp.date;
	}
out:
	free(url);
	http_response_free(&resp);
	return rc;
}

int
oidc_jwks(const struct http_opts *o, const struct oidc_provider *p, char **body,
    size_t *len, struct ml_err *err)
{
	struct http_request req = { 0 };
	struct http_response resp = { 0 };
	char origin[OIDC_ORIGIN_MAX];
	int rc;

	*body = NULL;
	*len = 0;
	if (p->jwks_uri == NULL)
		return err_set(err, ML_EFAIL, "the identity provider publishes no signing keys "
		    "(no jwks_uri in its discovery document)");
	http_url_origin(p->jwks_uri, origin, sizeof origin);
	req.method = "GET";
	req.url = p->jwks_uri;
	req.headers = oidc_accept_json;
	if ((rc = http_perform(o, &req, &resp, err)) != ML_OK)
		goto out;
	if (resp.status >= 300 && resp.status < 400)
		rc = oidc_redirect_error(p->jwks_uri, resp.status, err);
	else if (resp.status == 429 || resp.status >= 500)
		rc = err_set(err, ML_ENET, "the identity provider at %s is unavailable (HTTP %ld)",
		    origin, resp.status);
	else if (resp.status != 200)
		rc = err_set(err, ML_EFAIL, "the signing keys at %s answered HTTP %ld", origin,
		    resp.status);
	else {
		*body = resp.body;
		*len = resp.len;
		resp.body = NULL;
	}
out:
	http_response_free(&resp);
	return rc;
}

/* ---- device flow ---- */

void
oidc_device_free(struct oidc_device *d)
{
	if (d == NULL)
		return;
	secret_free(d->device_code);
	free(d->user_code);
	free(d->verification_uri);
	free(d->verification_uri_complete);
	memset(d, 0, sizeof *d);
}

int
oidc_device_parse(const char *buf, size_t len, struct oidc_device *d, struct ml_err *err)
{
	static const char what[] = "the device authorization answer";
	char shown[OIDC_SHOW_MAX];
	json_t *root = NULL;
	json_int_t v;
	int rc, has;

	memset(d, 0, sizeof *d);
	if ((rc = oidc_json_load(buf, len, what, &root, err)) != ML_OK)
		goto out;
	if ((rc = oidc_str(root, "device_code", &d->device_code, what, err)) != ML_OK ||
	    (rc = oidc_str(root, "user_code", &d->user_code, what, err)) != ML_OK ||
	    (rc = oidc_str(root, "verification_uri", &d->verification_uri, what, err)) != ML_OK ||
	    (rc = oidc_str(root, "verification_uri_complete", &d->verification_uri_complete,
	    what, err)) != ML_OK)
		goto out;
	/* Google's early drafts said verification_url. */
	if (d->verification_uri == NULL &&
	    (rc = oidc_str(root, "verification_url", &d->verification_uri, what, err)) != ML_OK)
		goto out;
	if (d->device_code == NULL || d->device_code[0] == '\0' ||
	    !oidc_ascii(d->device_code, 0x20)) {
		rc = err_set(err, ML_EFAIL, "%s has no usable device_code", what);
		goto out;
	}
	/* The user types it and the terminal shows it: no escapes, no surprises. */
	if (d->user_code == NULL || d->user_code[0] == '\0' ||
	    strlen(d->user_code) > OIDC_USER_CODE_MAX || !oidc_ascii(d->user_code, 0x20)) {
		rc = err_set(err, ML_EFAIL, "%s has no usable user_code", what);
		goto out;
	}
	if (d->verification_uri == NULL) {
		rc = err_set(err, ML_EFAIL, "%s has no verification_uri", what);
		goto out;
	}
	/* A browser may be opened on these: https (or loopback http) only. */
	if (!oidc_url_ok(d->verification_uri)) {
		oidc_show(d->verification_uri, false, shown, sizeof shown);
		rc = err_set(err, ML_EFAIL, "%s: verification_uri %s is not https (or http to a "
		    "loopback host)", what, shown);
		goto out;
	}
	if (d->verification_uri_complete != NULL && !oidc_url_ok(d->verification_uri_complete)) {
		oidc_show(d->verification_uri_complete, false, shown, sizeof shown);
		rc = err_set(err, ML_EFAIL, "%s: verification_uri_complete %s is not https (or "
		    "http to a loopback host)", what, shown);
		goto out;
	}

	d->expires_in = OIDC_DEVICE_EXPIRES;
	has = oidc_int(root, "expires_in", &v);
	if (has < 0 || (has > 0 && (v < 1 || v > OIDC_MAX_LIFETIME))) {
		rc = err_set(err, ML_EFAIL, "%s: expires_in is not a number of seconds up to a year",
		    what);
		goto out;
	}
	if (has > 0)
		d->expires_in = (long)v;

	d->interval = OIDC_INTERVAL;
	has = oidc_int(root, "interval", &v);
	if (has < 0) {
		rc = err_set(err, ML_EFAIL, "%s: interval is not a number of seconds", what);
		goto out;
	}
	/* Clamped, not refused: too eager would get us throttled, too lazy lose the code. */
	if (has > 0)
		d->interval = v < OIDC_INTERVAL_MIN ? OIDC_INTERVAL_MIN :
		    v > OIDC_INTERVAL_MAX ? OIDC_INTERVAL_MAX : (long)v;
	rc = ML_OK;
out:
	json_decref(root);
	if (rc != ML_OK)
		oidc_device_free(d);
	return rc;
}

int
oidc_device_answer(long status, const char *buf, size_t len, struct oidc_device *d,
    struct ml_err *err)
{
	struct oidc_error e;
	char text[sizeof e.code + sizeof e.desc + 4];

	memset(d, 0, sizeof *d);
	if (status == 200)
		return oidc_device_parse(buf, len, d, err);
	if (status >= 300 && status < 400)
		return err_set(err, ML_ENET, "the device authorization endpoint answered with a "
		    "redirect (HTTP %ld)", status);
	if (status == 429 || status >= 500)
		return err_set(err, ML_ENET, "the identity provider is unavailable (HTTP %ld)",
		    status);
	oidc_error_of_body(buf, len, &e);
	if (!e.present)
		return err_set(err, ML_EFAIL, "the device authorization endpoint answered HTTP %ld",
		    status);
	oidc_error_text(&e, text, sizeof text);
	/* The caller retries with plain "openid": the realm may not grant offline_access. */
	if (strcmp(e.code, "invalid_scope") == 0)
		return err_set(err, ML_EUSAGE, "the identity provider refused the scope: %s", text);
	return err_set(err, ML_EFAIL, "device login refused by the identity provider: %s", text);
}

/* POST a form to url; a redirect is an error naming its host. */
static int
oidc_post(const struct http_opts *o, const char *url, const char *form,
    struct http_response *resp, struct ml_err *err)
{
	struct http_request req = { .peer = OIDC_PEER, .peer_check = OIDC_PEER_CHECK };
	int rc;

	req.method = "POST";
	req.url = url;
	req.content_type = OIDC_FORM;
	req.body = form;
	req.body_len = strlen(form);
	req.headers = oidc_accept_json;
	if ((rc = http_perform(o, &req, resp, err)) != ML_OK)
		return rc;
	if (resp->status >= 300 && resp->status < 400)
		return oidc_redirect_error(url, resp->status, err);
	return ML_OK;
}

int
oidc_device_start(const struct http_opts *o, const struct oidc_provider *p,
    const char *client_id, const char *scope, struct oidc_device *d, struct ml_err *err)
{
	struct http_response resp = { 0 };
	char shown[OIDC_SHOW_MAX];
	char *form = NULL;
	int rc;

	memset(d, 0, sizeof *d);
	if (p == NULL || p->device_authorization_endpoint == NULL || client_id == NULL) {
		rc = err_set(err, ML_EFAIL, "the identity provider offers no device authorization "
		    "endpoint");
		goto out;
	}
	if ((rc = http_form_add(&form, "client_id", client_id, err)) != ML_OK)
		goto out;
	if (scope != NULL && scope[0] != '\0' &&
	    (rc = http_form_add(&form, "scope", scope, err)) != ML_OK)
		goto out;
	if ((rc = oidc_post(o, p->device_authorization_endpoint, form, &resp, err)) != ML_OK)
		goto out;
	rc = oidc_device_answer(resp.status, resp.body, resp.len, d, err);
	if (rc == ML_EUSAGE) {
		oidc_show(scope, false, shown, sizeof shown);
		err_prefix(err, "scope \"%s\"", shown);
	}
out:
	secret_free(form);
	http_response_free(&resp);
	return rc;
}

/* ---- tokens ---- */

void
oidc_tokens_free(struct oidc_tokens *t)
{
	if (t == NULL)
		return;
	secret_free(t->access_token);
	secret_free(t->refresh_token);
	secret_free(t->id_token);
	free(t->scope);
	free(t->token_type);
	memset(t, 0, sizeof *t);
	t->expires_in = -1;
	t->refresh_expires_in = -1;
}

/* The RFC 6749 / RFC 8628 error codes a token request can meet, as our verdicts. */
static int
oidc_token_error(const struct oidc_error *e, struct ml_err *err)
{
	char text[sizeof e->code + sizeof e->desc + 4];

	if (strcmp(e->code, "authorization_pending") == 0)
		return err_set(err, OIDC_PENDING, "authorization pending");
	if (strcmp(e->code, "slow_down") == 0)
		return err_set(err, OIDC_SLOW_DOWN, "asked to poll more slowly");
	if (strcmp(e->code, "access_denied") == 0)
		return err_set(err, ML_EFAIL, "login denied at the provider%s%s%s: run mlauth "
		    "login to try again", e->desc[0] != '\0' ? " (" : "", e->desc,
		    e->desc[0] != '\0' ? ")" : "");
	if (strcmp(e->code, "expired_token") == 0)
		return err_set(err, ML_EFAIL, "the code expired before it was approved: run "
		    "mlauth login again");
	if (strcmp(e->code, "invalid_grant") == 0)
		return err_set(err, ML_ELOGIN, "session expired or revoked: run mlauth login");
	if (strcmp(e->code, "temporarily_unavailable") == 0)
		return err_set(err, ML_ENET, "the identity provider is unavailable (%s)", e->code);
	oidc_error_text(e, text, sizeof text);
	return err_set(err, ML_EFAIL, "the token endpoint refused: %s", text);
}

/*
 * A token string member: visible ASCII only (lo 0x21 for the access token,
 * which goes into an HTTP header and onto stdout; 0x20 for RFC 6749's
 * VSCHAR), "" treated as absent.
 */
static int
oidc_token_str(json_t *root, const char *key, unsigned char lo, char **out,
    struct ml_err *err)
{
	static const char what[] = "the token answer";
	int rc;

	if ((rc = oidc_str(root, key, out, what, err)) != ML_OK)
		return rc;
	if (*out != NULL && (*out)[0] == '\0') {
		secret_free(*out);
		*out = NULL;
	}
	if (*out != NULL && !oidc_ascii(*out, lo))
		return err_set(err, ML_EFAIL, "%s: %s holds characters a token cannot", what, key);
	return ML_OK;
}

int
oidc_token_parse(long status, const char *buf, size_t len, struct oidc_tokens *t,
    struct ml_err *err)
{
	static const char what[] = "the token answer";
	struct oidc_error e;
	char shown[64];
	json_t *root = NULL, *tt;
	json_int_t v;
	bool keep_rt = false;
	int rc, has;

	memset(&e, 0, sizeof e);
	memset(t, 0, sizeof *t);
	t->expires_in = -1;
	t->refresh_expires_in = -1;
	if (status >= 300 && status < 400) {
		rc = err_set(err, ML_ENET, "the token endpoint answered with a redirect (HTTP %ld)",
		    status);
		goto out;
	}
	/* Retryable, and a still-valid access token may still be served. */
	if (status == 429 || status >= 500) {
		rc = err_set(err, ML_ENET, "the identity provider is unavailable (HTTP %ld)", status);
		goto out;
	}
	if (status != 200) {
		oidc_error_of_body(buf, len, &e);
		if (e.present)
			rc = oidc_token_error(&e, err);
		else
			rc = err_set(err, ML_EFAIL, "token endpoint answered HTTP %ld", status);
		goto out;
	}
	if ((rc = oidc_json_load(buf, len, what, &root, err)) != ML_OK)
		goto out;
	/* GitHub-style providers answer a pending device code with 200 and an error. */
	oidc_error_get(root, &e);
	if (e.present && json_object_get(root, "access_token") == NULL) {
		rc = oidc_token_error(&e, err);
		goto out;
	}
	/* The refresh token first: it is kept even when the rest is refused (below). */
	if ((rc = oidc_token_str(root, "refresh_token", 0x20, &t->refresh_token, err)) != ML_OK)
		goto out;
	keep_rt = true;
	has = oidc_int(root, "refresh_expires_in", &v);
	if (has > 0 && v >= 0 && v <= 10 * OIDC_MAX_LIFETIME)
		t->refresh_expires_in = (long)v;
	if ((rc = oidc_token_str(root, "access_token", 0x21, &t->access_token, err)) != ML_OK ||
	    (rc = oidc_token_str(root, "id_token", 0x21, &t->id_token, err)) != ML_OK)
		goto out;
	if (t->access_token == NULL) {
		rc = err_set(err, ML_EFAIL, "%s has no access_token", what);
		goto out;
	}
	if ((rc = oidc_str(root, "scope", &t->scope, what, err)) != ML_OK)
		goto out;
	if (t->scope != NULL && !oidc_ascii(t->scope, 0x20)) {
		rc = err_set(err, ML_EFAIL, "%s: scope holds unprintable characters", what);
		goto out;
	}
	/* RFC 6749 7.1: the type decides how the token is sent; we only speak Bearer. */
	tt = json_object_get(root, "token_type");
	if (tt != NULL && !json_is_null(tt) &&
	    (!json_is_string(tt) || strcasecmp(json_string_value(tt), "Bearer") != 0)) {
		oidc_show(json_is_string(tt) ? json_string_value(tt) : "(not a string)", true,
		    shown, sizeof shown);
		rc = err_set(err, ML_EFAIL, "%s: token type %s is not supported (expected Bearer)",
		    what, shown);
		goto out;
	}
	if ((t->token_type = strdup("Bearer")) == NULL) {
		rc = err_set(err, ML_EFAIL, "out of memory");
		goto out;
	}
	has = oidc_int(root, "expires_in", &v);
	if (has < 0 || (has > 0 && (v < 1 || v > OIDC_MAX_LIFETIME))) {
		rc = err_set(err, ML_EFAIL, "%s: expires_in is not a number of seconds between 1 "
		    "and a year", what);
		goto out;
	}
	if (has > 0)
		t->expires_in = (long)v;
	rc = ML_OK;
out:
	json_decref(root);
	if (rc != ML_OK && !keep_rt) {
		oidc_tokens_free(t);
	} else if (rc != ML_OK) {
		/*
		 * A 200 has spent the old refresh token at a rotating provider:
		 * its new one is the session now, whatever else is wrong.
		 * (Keycloak's refresh_expires_in, not RFC 6749, is read above;
		 * a malformed one is ignored rather than refusing the answer.)
		 */
		char *rt = t->refresh_token;
		long rexp = t->refresh_expires_in;

		t->refresh_token = NULL;
		oidc_tokens_free(t);
		t->refresh_token = rt;
		t->refresh_expires_in = rt != NULL ? rexp : -1;
	}
	return rc;
}

/* One token request: POST form to the token endpoint and parse the answer. */
static int
oidc_token_request(const struct http_opts *o, const struct oidc_provider *p,
    const char *form, struct oidc_tokens *t, struct ml_err *err)
{
	struct http_response resp = { 0 };
	int rc;

	struct oidc_error e;

	if ((rc = oidc_post(o, p->token_endpoint, form, &resp, err)) == ML_OK)
		rc = oidc_token_parse(resp.status, resp.body, resp.len, t, err);
	t->status = resp.status;	/* after the parse, which clears *t on failure */
	if (rc != ML_OK && resp.body != NULL) {
		oidc_error_of_body(resp.body, resp.len, &e);
		if (e.present)
			(void)snprintf(t->error, sizeof t->error, "%s", e.code);
	}
	http_response_free(&resp);
	return rc;
}

int
oidc_device_poll(const struct http_opts *o, const struct oidc_provider *p,
    const char *client_id, const struct oidc_device *d, struct oidc_tokens *t,
    struct ml_err *err)
{
	char *form = NULL;
	int rc;

	memset(t, 0, sizeof *t);
	t->expires_in = -1;
	t->refresh_expires_in = -1;
	if (p == NULL || p->token_endpoint == NULL || client_id == NULL || d == NULL ||
	    d->device_code == NULL) {
		rc = err_set(err, ML_EFAIL, "no token endpoint or device code to poll");
		goto out;
	}
	if ((rc = http_form_add(&form, "grant_type",
	    "urn:ietf:params:oauth:grant-type:device_code", err)) != ML_OK ||
	    (rc = http_form_add(&form, "device_code", d->device_code, err)) != ML_OK ||
	    (rc = http_form_add(&form, "client_id", client_id, err)) != ML_OK)
		goto out;
	rc = oidc_token_request(o, p, form, t, err);
	/* Here invalid_grant is about the device code, not a session. */
	if (rc == ML_ELOGIN)
		rc = err_set(err, ML_EFAIL, "the identity provider no longer accepts this login "
		    "code (invalid_grant): run mlauth login again");
	oidc_scrub(err, d->device_code);
out:
	secret_free(form);
	return rc;
}

int
oidc_refresh(const struct http_opts *o, const struct oidc_provider *p,
    const char *client_id, const char *refresh_token, struct oidc_tokens *t,
    struct ml_err *err)
{
	char *form = NULL;
	int rc;

	memset(t, 0, sizeof *t);
	t->expires_in = -1;
	t->refresh_expires_in = -1;
	if (refresh_token == NULL || refresh_token[0] == '\0') {
		rc = err_set(err, ML_ELOGIN, "no refresh token: run mlauth login");
		goto out;
	}
	if (p == NULL || p->token_endpoint == NULL || client_id == NULL) {
		rc = err_set(err, ML_EFAIL, "the identity provider offers no token endpoint");
		goto out;
	}
	if ((rc = http_form_add(&form, "grant_type", "refresh_token", err)) != ML_OK ||
	    (rc = http_form_add(&form, "refresh_token", refresh_token, err)) != ML_OK ||
	    (rc = http_form_add(&form, "client_id", client_id, err)) != ML_OK)
		goto out;
	rc = oidc_token_request(o, p, form, t, err);
	/*
	 * Keycloak: not_allowed (offline tokens no longer allowed for the user)
	 * and invalid_scope ("Client no longer has requested consent") end the
	 * session as surely as invalid_grant: only a new login helps.
	 */
	if (rc == ML_EFAIL && (strcmp(t->error, "not_allowed") == 0 ||
	    strcmp(t->error, "invalid_scope") == 0)) {
		char why[sizeof err->msg];

		(void)snprintf(why, sizeof why, "%s", err->msg);
		rc = err_set(err, ML_ELOGIN, "%.400s: run mlauth login", why);
	}
	oidc_scrub(err, refresh_token);
out:
	secret_free(form);
	return rc;
}

int
oidc_revoke(const struct http_opts *o, const struct oidc_provider *p,
    const char *client_id, const char *refresh_token, struct ml_err *err)
{
	struct http_request req = { .peer = OIDC_PEER, .peer_check = OIDC_PEER_CHECK };
	struct http_response resp = { 0 };
	struct oidc_error e;
	char origin[OIDC_ORIGIN_MAX], text[sizeof e.code + sizeof e.desc + 8];
	char *form = NULL;
	int rc;

	if (p == NULL || p->revocation_endpoint == NULL) {
		rc = err_set(err, ML_EFAIL, "the identity provider offers no revocation endpoint");
		goto out;
	}
	if (client_id == NULL || refresh_token == NULL || refresh_token[0] == '\0') {
		rc = err_set(err, ML_EFAIL, "no refresh token to revoke");
		goto out;
	}
	if ((rc = http_form_add(&form, "token", refresh_token, err)) != ML_OK ||
	    (rc = http_form_add(&form, "token_type_hint", "refresh_token", err)) != ML_OK ||
	    (rc = http_form_add(&form, "client_id", client_id, err)) != ML_OK)
		goto out;
	req.method = "POST";
	req.url = p->revocation_endpoint;
	req.content_type = OIDC_FORM;
	req.body = form;
	req.body_len = strlen(form);
	req.headers = oidc_accept_json;
	if ((rc = http_perform(o, &req, &resp, err)) != ML_OK)
		goto out;
	/* RFC 7009 2.2: 200 even for a token already invalid, so anything else is a failure. */
	if (resp.status != 200) {
		http_url_origin(p->revocation_endpoint, origin, sizeof origin);
		oidc_error_of_body(resp.body, resp.len, &e);
		text[0] = '\0';
		if (e.present) {
			(void)snprintf(text, sizeof text, ": ");
			oidc_error_text(&e, text + 2, sizeof text - 2);
		}
		rc = err_set(err, ML_EFAIL, "revocation at %s answered HTTP %ld%s", origin,
		    resp.status, text);
		oidc_scrub(err, refresh_token);
		goto out;
	}
	rc = ML_OK;
out:
	secret_free(form);
	http_response_free(&resp);
	return rc;
}
