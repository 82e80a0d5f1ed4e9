/*
 * fuzz_jwt: jwt_claims_parse (jwt.h) on a token from the input.
 *
 * Two shapes of input: one that starts with '{' is a claims object, sent as
 * the payload of a token with a fixed RS256 header (so the fuzzer works on
 * the JSON the claims come from); anything else is the token itself, as a C
 * string (so it works on the dots and the base64url).
 */
#include <glib.h>

#include "fuzz.h"
#include "mlauth/jwt.h"

static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"fuzz\"}";

/* base64url without padding, as JWTs carry it. */
static char *
b64url(const uint8_t *data, size_t size)
{
	gchar *s = g_base64_encode(data, size);
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++)
		if (s[i] == '+')
			s[i] = '-';
		else if (s[i] == '/')
			s[i] = '_';
	while (n > 0 && s[n - 1] == '=')
		s[--n] = '\0';
	return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jwt_claims c;
	struct ml_err err = { 0 };
	char *token;
	int rc;

	if (size > 0 && data[0] == '{') {
		gchar *h = b64url((const uint8_t *)header, sizeof header - 1);
		gchar *p = b64url(data, size);

		token = (char *)g_strdup_printf("%s.%s.c2ln", h, p);
		g_free(h);
		g_free(p);
		rc = jwt_claims_parse(token, &c, &err);
		g_free(token);
		token = NULL;
	} else {
		token = fuzz_cstr(data, size);
		rc = jwt_claims_parse(token, &c, &err);
	}
	if (rc == 0) {
		FUZZ_CHECK(c.exp >= 0 && c.iat >= 0, "negative time %lld/%lld",
		    (long long)c.exp, (long long)c.iat);
	} else {
		FUZZ_CHECK(rc == ML_EFAIL && err.code == ML_EFAIL, "rc %d", rc);
		FUZZ_CHECK(FUZZ_MSG_TERMINATED(&err), "unterminated message");
		/* "a message that does not quote the token" */
		FUZZ_CHECK(token == NULL || strlen(token) < 12 || strstr(err.msg, token) == NULL,
		    "message quotes the token: %s", err.msg);
	}
	jwt_claims_free(&c);
	free(token);
	return 0;
}
