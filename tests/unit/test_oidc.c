/* The OIDC answers: discovery, device authorization and token answers, good and hostile (no network). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "mlauth/http.h"
#include "mlauth/oidc.h"

#define ISS	"https://kc.example.test/realms/Virtuos"
#define LOOP	"http://127.0.0.1:8080/realms/test"

/* ---- discovery ---- */

static const char good_discovery[] =
	"{\"issuer\":\"" ISS "\","
	"\"device_authorization_endpoint\":\"" ISS "/protocol/openid-connect/auth/device\","
	"\"token_endpoint\":\"" ISS "/protocol/openid-connect/token\","
	"\"revocation_endpoint\":\"" ISS "/protocol/openid-connect/revoke\","
	"\"jwks_uri\":\"" ISS "/protocol/openid-connect/certs\","
	"\"grant_types_supported\":[\"refresh_token\"]}";

static void
discovery_good(void **state)
{
	struct oidc_provider p;
	struct ml_err err;

	assert_int_equal(oidc_discovery_parse(good_discovery, strlen(good_discovery), ISS, &p,
	    &err), ML_OK);
	assert_string_equal(p.issuer, ISS);
	assert_string_equal(p.token_endpoint, ISS "/protocol/openid-connect/token");
	assert_string_equal(p.device_authorization_endpoint,
	    ISS "/protocol/openid-connect/auth/device");
	assert_string_equal(p.revocation_endpoint, ISS "/protocol/openid-connect/revoke");
	assert_string_equal(p.jwks_uri, ISS "/protocol/openid-connect/certs");
	oidc_provider_free(&p);
	assert_null(p.issuer);
}

static void
discovery_loopback_without_revocation(void **state)
{
	static const char doc[] =
		"{\"issuer\":\"" LOOP "\","
		"\"device_authorization_endpoint\":\"" LOOP "/device\","
		"\"token_endpoint\":\"http://localhost:8080/token\"}";
	struct oidc_provider p;
	struct ml_err err;

	assert_int_equal(oidc_discovery_parse(doc, strlen(doc), LOOP, &p, &err), ML_OK);
	assert_null(p.revocation_endpoint);
	assert_null(p.jwks_uri);
	assert_string_equal(p.token_endpoint, "http://localhost:8080/token");
	oidc_provider_free(&p);
}

static void
discovery_bad(const char *doc, size_t len, const char *issuer, const char *needle)
{
	struct oidc_provider p;
	struct ml_err err;

	err.msg[0] = '\0';
	assert_int_equal(oidc_discovery_parse(doc, len, issuer, &p, &err), ML_EFAIL);
	msg_has(err.msg, needle);
	/* Nothing half-filled is left behind on failure. */
	assert_null(p.issuer);
	assert_null(p.token_endpoint);
	oidc_provider_free(&p);
}

static void
discovery_issuer_mismatch(void **state)
{
	discovery_bad(good_discovery, strlen(good_discovery),
	    "https://kc.example.test/realms/Other",
	    "names issuer " ISS ", expected https://kc.example.test/realms/Other");
	/* Exact comparison: a trailing slash is a different issuer (OIDC Discovery 4.3). */
	discovery_bad(good_discovery, strlen(good_discovery), ISS "/", "names issuer");
	discovery_bad("{\"token_endpoint\":\"" ISS "/t\"}", 0, ISS, "is empty");
	discovery_bad("{\"token_endpoint\":\"" ISS "/t\"}",
	    strlen("{\"token_endpoint\":\"" ISS "/t\"}"), ISS, "names no issuer");
	discovery_bad("{\"issuer\":42}", 13, ISS, "issuer is not a string");
}

static void
discovery_http_endpoint_refused(void **state)
{
	static const char doc[] =
		"{\"issuer\":\"" ISS "\","
		"\"device_authorization_endpoint\":\"" ISS "/device\","
		"\"token_endpoint\":\"http://kc.example.test/realms/Virtuos/token\"}";
	static const char js[] =
		"{\"issuer\":\"" ISS "\","
		"\"device_authorization_endpoint\":\"javascript:alert(1)\","
		"\"token_endpoint\":\"" ISS "/token\"}";
	static const char jwks[] =
		"{\"issuer\":\"" ISS "\","
		"\"device_authorization_endpoint\":\"" ISS "/device\","
		"\"token_endpoint\":\"" ISS "/token\","
		"\"jwks_uri\":\"http://evil.example.test/certs\"}";

	discovery_bad(doc, strlen(doc), ISS, "token_endpoint http://kc.example.test");
	discovery_bad(js, strlen(js), ISS, "device_authorization_endpoint javascript:");
	discovery_bad(jwks, strlen(jwks), ISS, "jwks_uri");
}

static void
discovery_missing_endpoints(void **state)
{
	static const char no_token[] =
		"{\"issuer\":\"" ISS "\","
		"\"device_authorization_endpoint\":\"" ISS "/device\"}";
	static const char no_device[] =
		"{\"issuer\":\"" ISS "\",\"token_endpoint\":\"" ISS "/token\"}";
	static const char token_null[] =
		"{\"issuer\":\"" ISS "\",\"device_authorization_endpoint\":\"" ISS "/device\","
		"\"token_endpoint\":null}";
	static const char token_list[] =
		"{\"issuer\":\"" ISS "\",\"device_authorization_endpoint\":\"" ISS "/device\","
		"\"token_endpoint\":[\"" ISS "/token\"]}";

	discovery_bad(no_token, strlen(no_token), ISS, "names no token_endpoint");
	discovery_bad(no_device, strlen(no_device), ISS, "does not offer the device flow");
	discovery_bad(token_null, strlen(token_null), ISS, "names no token_endpoint");
	discovery_bad(token_list, strlen(token_list), ISS, "token_endpoint is not a string");
}

static void
discovery_not_json(void **state)
{
	static const char html[] = "\n  <!DOCTYPE html><html><body>Gateway</body></html>";
	static const char dup[] =
		"{\"issuer\":\"https://evil.example.test\",\"issuer\":\"" ISS "\"}";
	char *deep, *huge;
	size_t n = 0;

	discovery_bad("hello", 5, ISS, "not valid JSON");
	discovery_bad(html, strlen(html), ISS, "HTML page");
	discovery_bad("[\"" ISS "\"]", strlen("[\"" ISS "\"]"), ISS, "not a JSON object");
	discovery_bad("\"" ISS "\"", strlen("\"" ISS "\""), ISS, "not a JSON object");
	discovery_bad(good_discovery, strlen(good_discovery) / 2, ISS, "truncated");
	/* Two issuers: which one would we have checked?  Refused. */
	discovery_bad(dup, strlen(dup), ISS, "names a member twice");
	/* The message names the host, whatever broke. */
	discovery_bad("{", 1, ISS, "discovery at https://kc.example.test");

	/* Nesting beyond jansson's depth limit: a clear error, no crash. */
	deep = malloc(20010);
	assert_non_null(deep);
	n += (size_t)sprintf(deep, "{\"a\":");
	for (int i = 0; i < 10000; i++)
		deep[n++] = '[';
	for (int i = 0; i < 10000; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	discovery_bad(deep, n, ISS, "nested too deeply");
	free(deep);

	/* Over the cap: refused before parsing. */
	huge = malloc((size_t)HTTP_MAX_BODY + 2);
	assert_non_null(huge);
	memset(huge, ' ', (size_t)HTTP_MAX_BODY + 1);
	huge[0] = '{';
	huge[HTTP_MAX_BODY] = '}';
	huge[HTTP_MAX_BODY + 1] = '\0';
	discovery_bad(huge, (size_t)HTTP_MAX_BODY + 1, ISS, "too large");
	free(huge);
}

/* ---- device authorization ---- */

static void
device_good(void **state)
{
	static const char ans[] =
		"{\"device_code\":\"dev-SECRET-123\",\"user_code\":\"WDJB-MJHT\","
		"\"verification_uri\":\"https://kc.example.test/device\","
		"\"verification_uri_complete\":\"https://kc.example.test/device?user_code=WDJB-MJHT\","
		"\"expires_in\":1800,\"interval\":7}";
	struct oidc_device d;
	struct ml_err err;

	assert_int_equal(oidc_device_parse(ans, strlen(ans), &d, &err), ML_OK);
	assert_string_equal(d.device_code, "dev-SECRET-123");
	assert_string_equal(d.user_code, "WDJB-MJHT");
	assert_string_equal(d.verification_uri, "https://kc.example.test/device");
	assert_string_equal(d.verification_uri_complete,
	    "https://kc.example.test/device?user_code=WDJB-MJHT");
	assert_int_equal(d.expires_in, 1800);
	assert_int_equal(d.interval, 7);
	oidc_device_free(&d);
	assert_null(d.device_code);
}

static void
device_defaults(void **state)
{
	/* What oidc-provider sends: no interval, no verification_uri_complete. */
	static const char ans[] =
		"{\"device_code\":\"d\",\"user_code\":\"ABCD-EFGH\","
		"\"verification_uri\":\"http://127.0.0.1:4000/device\"}";
	static const char fast[] =
		"{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"https://x.test/d\","
		"\"interval\":0}";
	static const char slow[] =
		"{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"https://x.test/d\","
		"\"interval\":100000}";
	struct oidc_device d;
	struct ml_err err;

	assert_int_equal(oidc_device_parse(ans, strlen(ans), &d, &err), ML_OK);
	assert_int_equal(d.interval, 5);
	assert_int_equal(d.expires_in, 600);
	assert_null(d.verification_uri_complete);
	oidc_device_free(&d);

	assert_int_equal(oidc_device_parse(fast, strlen(fast), &d, &err), ML_OK);
	assert_int_equal(d.interval, 1);
	oidc_device_free(&d);
	assert_int_equal(oidc_device_parse(slow, strlen(slow), &d, &err), ML_OK);
	assert_int_equal(d.interval, 60);
	oidc_device_free(&d);
}

static void
device_bad(const char *ans, const char *needle)
{
	struct oidc_device d;
	struct ml_err err;

	err.msg[0] = '\0';
	assert_int_equal(oidc_device_parse(ans, strlen(ans), &d, &err), ML_EFAIL);
	msg_has(err.msg, needle);
	assert_null(d.device_code);
	oidc_device_free(&d);
}

static void
device_hostile(void **state)
{
	device_bad("{\"user_code\":\"U\",\"verification_uri\":\"https://x.test/d\"}", "device_code");
	device_bad("{\"device_code\":\"d\",\"verification_uri\":\"https://x.test/d\"}", "user_code");
	device_bad("{\"device_code\":\"d\",\"user_code\":\"U\"}", "verification_uri");
	/* A terminal escape in the code the user is shown. */
	device_bad("{\"device_code\":\"d\",\"user_code\":\"\\u001b[2J\","
	    "\"verification_uri\":\"https://x.test/d\"}", "user_code");
	device_bad("{\"device_code\":\"d\",\"user_code\":\"U\","
	    "\"verification_uri\":\"http://x.test/d\"}", "verification_uri http://x.test/d");
	device_bad("{\"device_code\":\"d\",\"user_code\":\"U\","
	    "\"verification_uri\":\"file:///etc/passwd\"}", "verification_uri");
	device_bad("{\"device_code\":\"d\",\"user_code\":\"U\","
	    "\"verification_uri\":\"https://x.test/d\","
	    "\"verification_uri_complete\":\"javascript:alert(1)\"}", "verification_uri_complete");
	device_bad("{\"device_code\":\"d\",\"user_code\":\"U\","
	    "\"verification_uri\":\"https://x.test/d\",\"expires_in\":\"600\"}", "expires_in");
	device_bad("{\"device_code\":\"d\",\"user_code\":\"U\","
	    "\"verification_uri\":\"https://x.test/d\",\"expires_in\":-1}", "expires_in");
	device_bad("{\"device_code\":\"d\",\"user_code\":\"U\","
	    "\"verification_uri\":\"https://x.test/d\",\"interval\":\"5\"}", "interval");
	device_bad("[]", "not a JSON object");
}

static void
device_answer_errors(void **state)
{
	static const char scope[] =
		"{\"error\":\"invalid_scope\",\"error_description\":\"Invalid scopes: offline_access\"}";
	static const char client[] =
		"{\"error\":\"unauthorized_client\",\"error_description\":\"Client is not allowed "
		"to initiate OAuth 2.0 Device Authorization Grant.\\u001b[31m\"}";
	struct oidc_device d;
	struct ml_err err;

	assert_int_equal(oidc_device_answer(400, scope, strlen(scope), &d, &err), ML_EUSAGE);
	msg_has(err.msg, "invalid_scope");
	msg_has(err.msg, "Invalid scopes: offline_access");
	oidc_device_free(&d);

	assert_int_equal(oidc_device_answer(401, client, strlen(client), &d, &err), ML_EFAIL);
	msg_has(err.msg, "unauthorized_client (Client is not allowed");
	msg_lacks(err.msg, "\033");	/* sanitised: no escape reaches the terminal */
	oidc_device_free(&d);

	assert_int_equal(oidc_device_answer(400, "oops", 4, &d, &err), ML_EFAIL);
	msg_has(err.msg, "answered HTTP 400");
	assert_int_equal(oidc_device_answer(503, "", 0, &d, &err), ML_ENET);
	msg_has(err.msg, "unavailable (HTTP 503)");
	assert_int_equal(oidc_device_answer(302, "", 0, &d, &err), ML_ENET);
	msg_has(err.msg, "redirect");
}

/* ---- token answers ---- */

#define AT	"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJlLWJ5dGVzLWhlcmUtbG9uZw"
#define RT	"eyJhbGciOiJIUzI1NiJ9.eyJ0eXAiOiJPZmZsaW5lIn0.cmVmcmVzaC1zaWduYXR1cmUtYnl0ZXM"

static void
token_good(void **state)
{
	static const char ans[] =
		"{\"access_token\":\"" AT "\",\"expires_in\":7200,\"refresh_expires_in\":0,"
		"\"refresh_token\":\"" RT "\",\"token_type\":\"bearer\",\"id_token\":\"a.b.c\","
		"\"not-before-policy\":0,\"session_state\":\"s\",\"scope\":\"openid offline_access\"}";
	struct oidc_tokens t;
	struct ml_err err;

	assert_int_equal(oidc_token_parse(200, ans, strlen(ans), &t, &err), ML_OK);
	assert_string_equal(t.access_token, AT);
	assert_string_equal(t.refresh_token, RT);
	assert_string_equal(t.id_token, "a.b.c");
	assert_string_equal(t.scope, "openid offline_access");
	assert_string_equal(t.token_type, "Bearer");
	assert_int_equal(t.expires_in, 7200);
	assert_int_equal(t.refresh_expires_in, 0);
	oidc_tokens_free(&t);
	assert_null(t.access_token);
}

static void
token_minimal(void **state)
{
	static const char ans[] = "{\"access_token\":\"" AT "\"}";
	static const char odd_refresh[] =
		"{\"access_token\":\"" AT "\",\"refresh_expires_in\":\"soon\",\"refresh_token\":\"\"}";
	struct oidc_tokens t;
	struct ml_err err;

	assert_int_equal(oidc_token_parse(200, ans, strlen(ans), &t, &err), ML_OK);
	assert_int_equal(t.expires_in, -1);
	assert_int_equal(t.refresh_expires_in, -1);
	assert_null(t.refresh_token);
	assert_null(t.id_token);
	assert_null(t.scope);
	assert_string_equal(t.token_type, "Bearer");
	oidc_tokens_free(&t);

	/* Keycloak's own member, malformed: ignored, not fatal; "" is no token. */
	assert_int_equal(oidc_token_parse(200, odd_refresh, strlen(odd_refresh), &t, &err), ML_OK);
	assert_int_equal(t.refresh_expires_in, -1);
	assert_null(t.refresh_token);
	oidc_tokens_free(&t);
}

static void
token_bad(long status, const char *ans, int code, const char *needle)
{
	struct oidc_tokens t;
	struct ml_err err;

	err.msg[0] = '\0';
	assert_int_equal(oidc_token_parse(status, ans, strlen(ans), &t, &err), code);
	msg_has(err.msg, needle);
	/* Whatever went wrong, no token in the message and none left in t. */
	msg_lacks(err.msg, "eyJ");
	assert_null(t.access_token);
	assert_null(t.refresh_token);
	oidc_tokens_free(&t);
}

/*
 * A 200 refused for its access token or lifetime: the refresh token it
 * carries is left in t, since a rotating provider has spent the old one.
 */
static void
token_bad_keeps_refresh(const char *ans, const char *needle)
{
	struct oidc_tokens t;
	struct ml_err err;

	err.msg[0] = '\0';
	assert_int_equal(oidc_token_parse(200, ans, strlen(ans), &t, &err), ML_EFAIL);
	msg_has(err.msg, needle);
	msg_lacks(err.msg, "eyJ");
	assert_null(t.access_token);
	assert_null(t.id_token);
	assert_non_null(t.refresh_token);
	assert_string_equal(t.refresh_token, RT);
	assert_int_equal(t.refresh_expires_in, 1800);
	oidc_tokens_free(&t);
	assert_null(t.refresh_token);
}

static void
token_malformed(void **state)
{
	token_bad_keeps_refresh("{\"refresh_token\":\"" RT "\",\"refresh_expires_in\":1800,"
	    "\"expires_in\":300}", "no access_token");
	token_bad_keeps_refresh("{\"access_token\":\"\",\"refresh_token\":\"" RT "\","
	    "\"refresh_expires_in\":1800}", "no access_token");
	token_bad_keeps_refresh("{\"access_token\":\"" AT "\",\"refresh_token\":\"" RT "\","
	    "\"refresh_expires_in\":1800,\"expires_in\":0}", "expires_in");
	token_bad(200, "{\"access_token\":42}", ML_EFAIL, "access_token is not a string");
	/* A line break would smuggle a header into `curl -H "$(mlauth token --header)"`. */
	token_bad(200, "{\"access_token\":\"eyJa\\r\\nX-Evil: 1\"}", ML_EFAIL, "access_token");
	token_bad(200, "{\"access_token\":\"" AT "\",\"expires_in\":-5}", ML_EFAIL, "expires_in");
	token_bad(200, "{\"access_token\":\"" AT "\",\"expires_in\":0}", ML_EFAIL, "expires_in");
	token_bad(200, "{\"access_token\":\"" AT "\",\"expires_in\":99999999999}", ML_EFAIL,
	    "expires_in");
	token_bad(200, "{\"access_token\":\"" AT "\",\"expires_in\":\"3600\"}", ML_EFAIL,
	    "expires_in");
	token_bad(200, "{\"access_token\":\"" AT "\",\"expires_in\":3600.5}", ML_EFAIL,
	    "expires_in");
	token_bad(200, "{\"access_token\":\"" AT "\",\"token_type\":\"mac\"}", ML_EFAIL,
	    "token type mac is not supported");
	token_bad(200, "{\"access_token\":\"" AT "\",\"refresh_token\":7}", ML_EFAIL,
	    "refresh_token is not a string");
	/* Truncated mid-token: jansson's own message would quote the token. */
	token_bad(200, "{\"access_token\":\"" AT, ML_EFAIL, "truncated");
	token_bad(200, "{\"access_token\":\"" AT "\" x}", ML_EFAIL, "not valid JSON");
	token_bad(200, "[\"" AT "\"]", ML_EFAIL, "not a JSON object");
	token_bad(200, "<html><body>Login</body></html>", ML_EFAIL, "HTML page");
}

static void
token_errors(void **state)
{
	token_bad(400, "{\"error\":\"invalid_grant\",\"error_description\":\"Token is not active\"}",
	    ML_ELOGIN, "session expired or revoked: run mlauth login");
	token_bad(400, "{\"error\":\"authorization_pending\"}", OIDC_PENDING, "pending");
	token_bad(400, "{\"error\":\"slow_down\"}", OIDC_SLOW_DOWN, "slowly");
	token_bad(400, "{\"error\":\"access_denied\"}", ML_EFAIL, "login denied at the provider");
	token_bad(400, "{\"error\":\"expired_token\"}", ML_EFAIL,
	    "the code expired before it was approved: run mlauth login again");
	token_bad(401, "{\"error\":\"invalid_client\",\"error_description\":\"Invalid client\"}",
	    ML_EFAIL, "invalid_client (Invalid client)");
	/* GitHub-style: 200 with an error. */
	token_bad(200, "{\"error\":\"authorization_pending\"}", OIDC_PENDING, "pending");
	token_bad(503, "{\"error\":\"temporarily_unavailable\"}", ML_ENET,
	    "the identity provider is unavailable (HTTP 503)");
	token_bad(502, "<html><body>502 Bad Gateway</body></html>", ML_ENET, "(HTTP 502)");
	token_bad(429, "", ML_ENET, "(HTTP 429)");
	token_bad(400, "{\"error\":\"temporarily_unavailable\"}", ML_ENET, "unavailable");
	token_bad(404, "<html><body>Not Found</body></html>", ML_EFAIL,
	    "token endpoint answered HTTP 404");
	token_bad(400, "{\"error_description\":\"no code\"}", ML_EFAIL,
	    "token endpoint answered HTTP 400");
	token_bad(400, "[1,2]", ML_EFAIL, "token endpoint answered HTTP 400");
	token_bad(302, "", ML_ENET, "redirect");
}

static void
token_error_text_sanitised(void **state)
{
	/* A provider echoing the refresh token back, plus control bytes and a long tail. */
	static const char ans[] =
		"{\"error\":\"invalid_request\",\"error_description\":\"bad token "
		"dGhpc2lzYXZlcnlsb25ncmVmcmVzaHRva2VudGhhdHNob3VsZG5vdGxlYWs= \\u0007\\n here "
		"lorem ipsum dolor sit amet, lorem ipsum dolor sit amet, lorem ipsum dolor sit amet, "
		"lorem ipsum dolor sit amet, lorem ipsum dolor sit amet, lorem ipsum dolor sit amet, "
		"lorem ipsum dolor sit amet, lorem ipsum dolor sit amet, lorem ipsum dolor sit amet, "
		" the end\"}";
	struct oidc_tokens t;
	struct ml_err err;

	assert_int_equal(oidc_token_parse(400, ans, strlen(ans), &t, &err), ML_EFAIL);
	/* BEL shown as '?', the line break as one space. */
	msg_has(err.msg, "invalid_request (bad token [redacted] ? here");
	msg_lacks(err.msg, "dGhpc2lz");
	msg_lacks(err.msg, "\n");
	msg_lacks(err.msg, "the end");	/* truncated */
	assert_true(strlen(err.msg) < 300);
	oidc_tokens_free(&t);
}

static void
token_oversized(void **state)
{
	char *huge = malloc((size_t)HTTP_MAX_BODY + 2);
	struct oidc_tokens t;
	struct ml_err err;

	assert_non_null(huge);
	memset(huge, ' ', (size_t)HTTP_MAX_BODY + 1);
	memcpy(huge, "{\"access_token\":\"x\"}", 20);
	huge[HTTP_MAX_BODY + 1] = '\0';
	assert_int_equal(oidc_token_parse(200, huge, (size_t)HTTP_MAX_BODY + 1, &t, &err),
	    ML_EFAIL);
	msg_has(err.msg, "too large");
	assert_null(t.access_token);
	/* One byte less is parsed. */
	assert_int_equal(oidc_token_parse(200, huge, (size_t)HTTP_MAX_BODY, &t, &err), ML_OK);
	assert_string_equal(t.access_token, "x");
	oidc_tokens_free(&t);
	free(huge);
}

/* Network entry points refuse bad input before any connection is made. */
static void
entry_points_refuse_bad_input(void **state)
{
	struct oidc_provider p;
	struct oidc_tokens t;
	struct ml_err err;

	assert_int_equal(oidc_discover(NULL, "http://kc.example.test/realms/x", &p, &err),
	    ML_EUSAGE);
	msg_has(err.msg, "https://");
	assert_null(p.issuer);
	assert_int_equal(oidc_discover(NULL, "ftp://127.0.0.1/x", &p, &err), ML_EUSAGE);

	memset(&p, 0, sizeof p);
	assert_int_equal(oidc_refresh(NULL, &p, "c", NULL, &t, &err), ML_ELOGIN);
	assert_int_equal(oidc_revoke(NULL, &p, "c", "r", &err), ML_EFAIL);
	msg_has(err.msg, "no revocation endpoint");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(discovery_good),
		cmocka_unit_test(discovery_loopback_without_revocation),
		cmocka_unit_test(discovery_issuer_mismatch),
		cmocka_unit_test(discovery_http_endpoint_refused),
		cmocka_unit_test(discovery_missing_endpoints),
		cmocka_unit_test(discovery_not_json),
		cmocka_unit_test(device_good),
		cmocka_unit_test(device_defaults),
		cmocka_unit_test(device_hostile),
		cmocka_unit_test(device_answer_errors),
		cmocka_unit_test(token_good),
		cmocka_unit_test(token_minimal),
		cmocka_unit_test(token_malformed),
		cmocka_unit_test(token_errors),
		cmocka_unit_test(token_error_text_sanitised),
		cmocka_unit_test(token_oversized),
		cmocka_unit_test(entry_points_refuse_bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
