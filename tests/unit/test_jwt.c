/* JWT claims: good tokens of both header types, and hostile input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "unit.h"
#include "mlauth/jwt.h"

/* A token signed with nothing: the signature part is never looked at. */
static char *
make_token(const char *header, const char *payload)
{
	char *h = unit_b64url(header), *p = unit_b64url(payload);
	char *t = g_strdup_printf("%s.%s.c2lnbmF0dXJl", h, p);

	g_free(h);
	g_free(p);
	return t;
}

static void
keycloak_token(void **state)
{
	char *t = make_token("{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}",
	    "{\"exp\":1900000000,\"iat\":1899992800,\"iss\":\"http://127.0.0.1:1/realms/test\","
	    "\"azp\":\"MLAAS-CLI-API\",\"typ\":\"Bearer\",\"preferred_username\":\"alice\","
	    "\"email\":\"alice@example.test\",\"scope\":\"openid email\",\"aud\":[\"a\",\"b\"],"
	    "\"name\":\"Alice \\u00c9xample\"}");
	struct jwt_claims c;
	struct ml_err err;

	assert_int_equal(jwt_claims_parse(t, &c, &err), ML_OK);
	assert_int_equal(c.exp, 1900000000);
	assert_int_equal(c.iat, 1899992800);
	assert_string_equal(c.azp, "MLAAS-CLI-API");
	assert_string_equal(c.preferred_username, "alice");
	assert_string_equal(c.email, "alice@example.test");
	assert_string_equal(c.name, "Alice \xc3\x89xample");
	assert_string_equal(c.typ, "Bearer");
	jwt_claims_free(&c);
	g_free(t);
}

static void
rfc9068_header_accepted(void **state)
{
	char *t = make_token("{\"alg\":\"RS256\",\"typ\":\"at+jwt\"}", "{\"exp\":42,\"sub\":\"s\"}");
	struct jwt_claims c;
	struct ml_err err;

	assert_int_equal(jwt_claims_parse(t, &c, &err), ML_OK);
	assert_int_equal(c.exp, 42);
	assert_string_equal(c.sub, "s");
	assert_null(c.email);
	jwt_claims_free(&c);
	g_free(t);
}

static void
expect_bad(const char *token, const char *needle)
{
	struct jwt_claims c;
	struct ml_err err;

	assert_int_equal(jwt_claims_parse(token, &c, &err), ML_EFAIL);
	if (strstr(err.msg, needle) == NULL)
		fail_msg("'%s' lacks '%s'", err.msg, needle);
	/* The message never quotes the input. */
	if (token != NULL && strlen(token) > 8)
		assert_null(strstr(err.msg, token));
	jwt_claims_free(&c);
}

static void
malformed_tokens(void **state)
{
	char *good = make_token("{\"alg\":\"RS256\"}", "{\"exp\":1}");
	char *array = make_token("{\"alg\":\"RS256\"}", "[1,2]");
	char *nojson = make_token("{\"alg\":\"RS256\"}", "exp=1");
	char *badhead = make_token("not json", "{\"exp\":1}");
	char *truncated = g_strndup(good, strlen(good) - 20);
	char *huge = g_malloc(JWT_MAX_LEN + 10);

	memset(huge, 'a', JWT_MAX_LEN + 9);
	huge[JWT_MAX_LEN + 9] = '\0';
	expect_bad(NULL, "empty");
	expect_bad("", "empty");
	expect_bad("abc", "three");
	expect_bad("a.b.c.d", "three");
	expect_bad(array, "JSON object");
	expect_bad(nojson, "JSON object");
	expect_bad(badhead, "header");
	expect_bad(huge, "longer than");
	expect_bad("eyJhbGciOiJSUzI1NiJ9.!!!!.sig", "base64url");
	/* Cutting a token short either breaks its structure or its payload. */
	{
		struct jwt_claims c;
		struct ml_err err;

		assert_int_not_equal(jwt_claims_parse(truncated, &c, &err), ML_OK);
		jwt_claims_free(&c);
	}
	g_free(good);
	g_free(array);
	g_free(nojson);
	g_free(badhead);
	g_free(truncated);
	g_free(huge);
}

static void
odd_claim_types_ignored(void **state)
{
	char *t = make_token("{\"alg\":\"none\"}",
	    "{\"exp\":\"soon\",\"email\":7,\"preferred_username\":null,\"iat\":-5}");
	struct jwt_claims c;
	struct ml_err err;

	assert_int_equal(jwt_claims_parse(t, &c, &err), ML_OK);
	assert_int_equal(c.exp, 0);
	assert_int_equal(c.iat, 0);
	assert_null(c.email);
	assert_null(c.preferred_username);
	jwt_claims_free(&c);
	g_free(t);
}

static void
aud_and_header(void **state)
{
	char *one = make_token("{\"alg\":\"RS256\",\"kid\":\"k-1\",\"typ\":\"JWT\"}",
	    "{\"aud\":\"MLAAS-CLI-API\",\"nbf\":5}");
	char *list = make_token("{\"alg\":\"ES256\"}", "{\"aud\":[\"a\",7,\"b\"]}");
	char *bad = make_token("{\"alg\":\"RS\\n256\"}", "{}");
	char *noalg = make_token("{\"kid\":\"k\"}", "{}");
	struct jwt_claims c;
	struct jwt_header h;
	struct ml_err err;

	assert_int_equal(jwt_claims_parse(one, &c, &err), ML_OK);
	assert_non_null(c.aud);
	assert_string_equal(c.aud[0], "MLAAS-CLI-API");
	assert_null(c.aud[1]);
	assert_int_equal(c.nbf, 5);
	jwt_claims_free(&c);
	assert_int_equal(jwt_claims_parse(list, &c, &err), ML_OK);
	assert_string_equal(c.aud[0], "a");
	assert_string_equal(c.aud[1], "b");	/* the number is skipped */
	assert_null(c.aud[2]);
	jwt_claims_free(&c);

	assert_int_equal(jwt_header_parse(one, &h, &err), ML_OK);
	assert_string_equal(h.alg, "RS256");
	assert_string_equal(h.kid, "k-1");
	assert_string_equal(h.typ, "JWT");
	assert_int_equal(jwt_header_parse(list, &h, &err), ML_OK);
	assert_string_equal(h.kid, "");
	assert_int_equal(jwt_header_parse(bad, &h, &err), ML_EFAIL);
	msg_has(err.msg, "unprintable");
	assert_int_equal(jwt_header_parse(noalg, &h, &err), ML_EFAIL);
	msg_has(err.msg, "no usable algorithm");
	assert_int_equal(jwt_header_parse("a.b", &h, &err), ML_EFAIL);
	g_free(one);
	g_free(list);
	g_free(bad);
	g_free(noalg);
}

/* The claims of OIDC Core 3.1.3.7, one failing at a time. */
static void
claims_checked(void **state)
{
	char *aud[] = { "account", "MLAAS-CLI-API", NULL }, *other[] = { "account", NULL };
	struct jwt_claims c = {
		.exp = 2000, .iat = 1000, .iss = "https://kc/realms/V", .azp = "MLAAS-CLI-API",
		.aud = aud,
	};
	struct jwt_expect x = {
		.issuer = "https://kc/realms/V", .audience = "MLAAS-CLI-API",
		.azp = "MLAAS-CLI-API", .now = 1500, .leeway = 60,
	};
	struct ml_err err;

	assert_int_equal(jwt_claims_check(&c, &x, &err), ML_OK);
	x.now = 2059;		/* within the leeway */
	assert_int_equal(jwt_claims_check(&c, &x, &err), ML_OK);
	x.now = 2060;
	assert_int_equal(jwt_claims_check(&c, &x, &err), ML_EFAIL);
	msg_has(err.msg, "it expired 60 s ago (exp)");
	x.now = 939;
	assert_int_equal(jwt_claims_check(&c, &x, &err), ML_EFAIL);
	msg_has(err.msg, "issued 61 s in the future (iat)");
	x.now = 1500;
	c.nbf = 1600;
	assert_int_equal(jwt_claims_check(&c, &x, &err), ML_EFAIL);
	msg_has(err.msg, "(nbf)");
	c.nbf = 0;
	c.aud = other;
	assert_int_equal(jwt_claims_check(&c, &x, &err), ML_EFAIL);
	msg_has(err.msg, "audience (aud) does not include MLAAS-CLI-API");
	c.aud = NULL;
	assert_int_equal(jwt_claims_check(&c, &x, &err), ML_EFAIL);
	x.audience = NULL;	/* an access token: aud is the API's business */
	assert_int_equal(jwt_claims_check(&c, &x, &err), ML_OK);
	c.azp = "BT-CLI-API";
	assert_int_equal(jwt_claims_check(&c, &x, &err), ML_EFAIL);
	msg_has(err.msg, "issued to client BT-CLI-API (azp)");
	c.azp = NULL;		/* azp is checked only when present */
	assert_int_equal(jwt_claims_check(&c, &x, &err), ML_OK);
	c.iss = "https://kc/realms/Other\x1b[2J";
	assert_int_equal(jwt_claims_check(&c, &x, &err), ML_EFAIL);
	msg_has(err.msg, "issued by (unprintable), not https://kc/realms/V");
	c.iss = NULL;
	assert_int_equal(jwt_claims_check(&c, &x, &err), ML_EFAIL);
	c.iss = "https://kc/realms/V";
	c.exp = 0;
	assert_int_equal(jwt_claims_check(&c, &x, &err), ML_EFAIL);
	msg_has(err.msg, "no expiry");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keycloak_token),
		cmocka_unit_test(rfc9068_header_accepted),
		cmocka_unit_test(malformed_tokens),
		cmocka_unit_test(odd_claim_types_ignored),
		cmocka_unit_test(aud_and_header),
		cmocka_unit_test(claims_checked),
	};

	return cmocka_run_group_tests_name("jwt", tests, NULL, NULL);
}
