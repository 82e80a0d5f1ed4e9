/*
 * fuzz_oidc_token: oidc_token_parse (oidc.h) on a token endpoint answer,
 * the HTTP status from the input's first bytes (see fuzz_status).
 */
#include "fuzz.h"
#include "mlauth/oidc.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct oidc_tokens t;
	struct ml_err err = { 0 };
	long status = fuzz_status(&data, &size);
	char *buf = fuzz_copy(data, size);
	int rc;

	rc = oidc_token_parse(status, buf, size, &t, &err);
	if (rc == ML_OK) {
		FUZZ_CHECK(status == 200, "ML_OK for HTTP %ld", status);
		FUZZ_CHECK(t.access_token != NULL && t.access_token[0] != '\0' &&
		    fuzz_ascii(t.access_token, 0x21), "access_token");
		FUZZ_CHECK(t.refresh_token == NULL || fuzz_ascii(t.refresh_token, 0x20),
		    "refresh_token");
		FUZZ_CHECK(t.id_token == NULL || fuzz_ascii(t.id_token, 0x21), "id_token");
		FUZZ_CHECK(t.scope == NULL || fuzz_ascii(t.scope, 0x20), "scope");
		FUZZ_CHECK(t.token_type != NULL && strcmp(t.token_type, "Bearer") == 0,
		    "token_type");
		FUZZ_CHECK(t.expires_in == -1 || (t.expires_in >= 1 &&
		    t.expires_in <= 365L * 24 * 3600), "expires_in %ld", t.expires_in);
		FUZZ_CHECK(t.refresh_expires_in >= -1, "refresh_expires_in %ld",
		    t.refresh_expires_in);
	} else {
		FUZZ_CHECK(err.code == rc, "rc %d, err.code %d", rc, err.code);
		FUZZ_CHECK(FUZZ_MSG_TERMINATED(&err), "unterminated message");
		/* "Error messages never hold a token; the provider's words appear sanitised" */
		FUZZ_CHECK(fuzz_ascii(err.msg, 0x20), "unprintable message: %s", err.msg);
		FUZZ_CHECK(fuzz_longest_token_run(err.msg) < 40, "token-like run shown: %s",
		    err.msg);
		/* Only a 200's refresh token outlives a refusal (the old one is spent). */
		FUZZ_CHECK(t.access_token == NULL && t.id_token == NULL && (t.refresh_token == NULL ||
		    (status == 200 && fuzz_ascii(t.refresh_token, 0x20))), "not freed");
	}
	oidc_tokens_free(&t);
	free(buf);
	return 0;
}
