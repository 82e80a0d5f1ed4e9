/* JWT claims: good tokens of both header types, and hostile input. */
#define _GNU_SOURCE	/* strchrnul */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "unit.h"
#include "mlauth/jwt.h"

static char *
b64url(const char *s)
{
	char *b = g_base64_encode((const guchar *)s, strlen(s));

	for (char *p = b; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	*strchrnul(b, '=') = '\0';
	return b;
}

/* A token signed with nothing: the signature part is never looked at. */
static char *
make_token(const char *header, const char *payload)
{
	char *h = b64url(header), *p = b64url(payload);
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keycloak_token),
		cmocka_unit_test(rfc9068_header_accepted),
		cmocka_unit_test(malformed_tokens),
		cmocka_unit_test(odd_claim_types_ignored),
	};

	return cmocka_run_group_tests_name("jwt", tests, NULL, NULL);
}
