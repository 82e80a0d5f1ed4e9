/*
 * fuzz_jwt: jwt_claims_parse, jwt_header_parse and jwt_claims_check (jwt.h) on a
 * token from the input.
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
		struct jwt_header h;

		token = fuzz_cstr(data, size);
		if (jwt_header_parse(token, &h, &err) == ML_OK)
			FUZZ_CHECK(h.alg[0] != '\0' && strlen(h.kid) < sizeof h.kid,
			    "header without alg");
		else
			FUZZ_CHECK(FUZZ_MSG_TERMINATED(&err), "unterminated message");
		rc = jwt_claims_parse(token, &c, &err);
	}
	if (rc == 0) {
		static const struct jwt_expect x = {
			.issuer = "https://kc/realms/V", .audience = "MLAAS-CLI-API",
			.azp = "MLAAS-CLI-API", .now = 1800000000, .leeway = 60,
		};
		int crc;

		FUZZ_CHECK(c.exp >= 0 && c.iat >= 0, "negative time %lld/%lld",
		    (long long)c.exp, (long long)c.iat);
		crc = jwt_claims_check(&c, &x, &err);
		FUZZ_CHECK(crc == ML_OK || (crc == ML_EFAIL && FUZZ_MSG_TERMINATED(&err)),
		    "claims check rc %d", crc);
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
