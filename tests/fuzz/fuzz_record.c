/*
 * fuzz_record: record_from_json (record.h) on a stored session, as a store
 * backend hands it over (the file or the keyring may have been tampered
 * with).  A record that parses must survive record_to_json and parse back
 * to the same values.
 */
#include "fuzz.h"
#include "mlauth/record.h"
#include "mlauth/secret.h"

static bool
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct record r, back;
	struct ml_err err = { 0 };
	char *buf = fuzz_copy(data, size), *json = NULL;
	int rc;

	rc = record_from_json(buf, size, &r, &err);
	if (rc != ML_OK) {
		FUZZ_CHECK(rc == ML_ESTORE && err.code == rc, "rc %d", rc);
		FUZZ_CHECK(FUZZ_MSG_TERMINATED(&err), "unterminated message");
		record_free(&r);
		free(buf);
		return 0;
	}
	FUZZ_CHECK(r.issuer != NULL && r.client_id != NULL && r.access_token != NULL,
	    "a required member is missing");
	FUZZ_CHECK(r.expires_at >= 0 && r.refresh_expires_at >= 0 && r.obtained_at >= 0,
	    "negative time");
	FUZZ_CHECK(record_to_json(&r, &json, &err) == ML_OK, "record_to_json: %s", err.msg);
	FUZZ_CHECK(record_from_json(json, strlen(json), &back, &err) == ML_OK,
	    "the record's own JSON does not parse: %s", err.msg);
	FUZZ_CHECK(same(r.issuer, back.issuer) && same(r.client_id, back.client_id) &&
	    same(r.access_token, back.access_token) &&
	    same(r.refresh_token, back.refresh_token) && same(r.id_token, back.id_token) &&
	    same(r.scope, back.scope) && same(r.token_type, back.token_type) &&
	    r.expires_at == back.expires_at && r.refresh_expires_at == back.refresh_expires_at &&
	    r.obtained_at == back.obtained_at, "the record changed on a round trip");
	record_free(&back);
	secret_free(json);
	record_free(&r);
	free(buf);
	return 0;
}
