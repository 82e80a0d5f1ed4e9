/* verify_with_jwks: the choice of key and the refusals that need no cryptography. */
#include <string.h>

#include <glib.h>

#include "unit.h"
#include "mlauth/verify.h"

static char *
token(const char *header)
{
	char *h = unit_b64url(header), *p = unit_b64url("{\"iss\":\"i\",\"exp\":2000}");
	char *t = g_strdup_printf("%s.%s.c2ln", h, p);

	g_free(h);
	g_free(p);
	return t;
}

static const struct jwt_expect expect = { .issuer = "i", .now = 1000, .leeway = 60 };

static int
check(const char *header, const char *jwks, struct ml_err *err)
{
	struct jwt_header h;
	char *t = token(header);
	int rc = verify_with_jwks(t, jwks, strlen(jwks), &expect, &h, err);

	g_free(t);
	return rc;
}

#define RSA_KEY(kid) "{\"kty\":\"RSA\",\"kid\":\"" kid "\",\"use\":\"sig\",\"n\":\"AQAB\",\"e\":\"AQAB\"}"

static void
algorithms_refused(void **state)
{
	static const char *const hdr[] = {
		"{\"alg\":\"none\"}", "{\"alg\":\"HS256\",\"kid\":\"k\"}", "{\"alg\":\"PS256\"}",
	};
	struct ml_err err;

	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(check(hdr[i], "{\"keys\":[" RSA_KEY("k") "]}", &err), ML_EFAIL);
		msg_has(err.msg, "is not one mlauth accepts");
	}
}

static void
key_choice(void **state)
{
	struct ml_err err;

	assert_int_equal(check("{\"alg\":\"RS256\",\"kid\":\"gone\"}",
	    "{\"keys\":[" RSA_KEY("k1") "," RSA_KEY("k2") "]}", &err), ML_EFAIL);
	msg_has(err.msg, "has its key id gone");
	assert_int_equal(check("{\"alg\":\"RS256\"}",
	    "{\"keys\":[" RSA_KEY("k1") "," RSA_KEY("k2") "]}", &err), ML_EFAIL);
	msg_has(err.msg, "names no key (kid) and the provider has several");
	/* An encryption key, or one for another algorithm or type, never signs. */
	assert_int_equal(check("{\"alg\":\"RS256\",\"kid\":\"k\"}",
	    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
	    "{\"kty\":\"RSA\",\"kid\":\"k\",\"alg\":\"RS512\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
	    "{\"kty\":\"EC\",\"kid\":\"k\"}]}", &err), ML_EFAIL);
	msg_has(err.msg, "has its key id k");
	assert_int_equal(check("{\"alg\":\"ES256\"}", "{\"keys\":[" RSA_KEY("k") "]}", &err),
	    ML_EFAIL);
	msg_has(err.msg, "none of the provider's signing keys is for ES256");
}

static void
bad_key_sets(void **state)
{
	static const char *const sets[] = { "", "[]", "{\"keys\":{}}", "<html>", "{\"keys\":[" };
	struct ml_err err;

	for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
		assert_int_equal(check("{\"alg\":\"RS256\"}", sets[i], &err), ML_EFAIL);
		msg_has(err.msg, "key set (JWKS)");
	}
}

/* libjwt 1.10 reads only typ JWT; a token it cannot check says so, before any key is used. */
static void
other_types_named(void **state)
{
	struct ml_err err;

	assert_int_equal(check("{\"alg\":\"RS256\",\"typ\":\"at+jwt\"}",
	    "{\"keys\":[" RSA_KEY("k") "]}", &err), ML_EFAIL);
	msg_has(err.msg, "of type at+jwt, which libjwt 1.10 cannot check");
}

/* The unit test binary has no mlauth-jwt.so beside it: a broken install, said so. */
static void
missing_module_named(void **state)
{
	struct ml_err err;

	assert_int_equal(check("{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
	    "{\"keys\":[" RSA_KEY("k") "]}", &err), ML_EFAIL);
	msg_has(err.msg, "cannot load the token signature module");
	msg_has(err.msg, "mlauth-jwt.so");
	msg_has(err.msg, "(reinstall mlauth)");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(algorithms_refused),
		cmocka_unit_test(key_choice),
		cmocka_unit_test(bad_key_sets),
		cmocka_unit_test(other_types_named),
		cmocka_unit_test(missing_module_named),
	};

	return cmocka_run_group_tests_name("verify", tests, NULL, NULL);
}
