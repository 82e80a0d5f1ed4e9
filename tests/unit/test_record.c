/* The stored record: round trip and refusal of damaged records. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "mlauth/record.h"
#include "mlauth/secret.h"

static void
round_trip(void **state)
{
	struct record r = { 0 }, back;
	struct ml_err err;
	char *json;

	r.issuer = strdup("http://127.0.0.1:9/realms/test");
	r.client_id = strdup("MLAAS-CLI-API");
	r.access_token = strdup("a.b.c");
	r.refresh_token = strdup("refresh\"with\\quotes");
	r.scope = strdup("openid offline_access");
	r.expires_at = 1900000000;
	r.refresh_expires_at = 0;
	r.obtained_at = 1899992800;
	assert_int_equal(record_to_json(&r, &json, &err), ML_OK);
	assert_int_equal(record_from_json(json, strlen(json), &back, &err), ML_OK);
	assert_string_equal(back.issuer, r.issuer);
	assert_string_equal(back.access_token, "a.b.c");
	assert_string_equal(back.refresh_token, r.refresh_token);
	assert_null(back.id_token);
	assert_int_equal(back.expires_at, 1900000000);
	assert_int_equal(back.obtained_at, 1899992800);
	secret_free(json);
	record_free(&back);
	record_free(&r);
	assert_null(r.issuer);
}

static void
expect_bad(const char *json, const char *needle)
{
	struct record r;
	struct ml_err err;

	assert_int_equal(record_from_json(json, strlen(json), &r, &err), ML_ESTORE);
	if (strstr(err.msg, needle) == NULL)
		fail_msg("'%s' lacks '%s'", err.msg, needle);
	record_free(&r);
}

static void
damaged_records(void **state)
{
	expect_bad("", "not a JSON object");
	expect_bad("{\"issuer\":\"x\"", "not a JSON object");
	expect_bad("[]", "not a JSON object");
	expect_bad("{\"client_id\":\"c\",\"access_token\":\"t\",\"expires_at\":1}", "'issuer'");
	expect_bad("{\"issuer\":\"i\",\"client_id\":\"c\",\"access_token\":\"\",\"expires_at\":1}",
	    "'access_token'");
	expect_bad("{\"issuer\":\"i\",\"client_id\":\"c\",\"access_token\":\"t\"}", "'expires_at'");
	expect_bad("{\"issuer\":\"i\",\"client_id\":\"c\",\"access_token\":\"t\",\"expires_at\":\"1\"}",
	    "'expires_at'");
	expect_bad("{\"issuer\":\"i\",\"client_id\":\"c\",\"access_token\":\"t\",\"expires_at\":1,"
	    "\"refresh_token\":5}", "'refresh_token'");
	expect_bad("{\"issuer\":\"i\",\"issuer\":\"j\"}", "not a JSON object");
}

/* The session kind: kept, absent in old records, unknown names of newer versions tolerated. */
static void
session_kind(void **state)
{
	static const char base[] = "{\"issuer\":\"i\",\"client_id\":\"c\","
	    "\"access_token\":\"t\",\"expires_at\":1";
	struct record r = { 0 }, back;
	struct ml_err err;
	char *json, buf[256];

	r.issuer = strdup("i");
	r.client_id = strdup("c");
	r.access_token = strdup("t");
	r.expires_at = 1;
	r.session = RECORD_SESSION_ONLINE;
	assert_int_equal(record_to_json(&r, &json, &err), ML_OK);
	assert_non_null(strstr(json, "\"session\":\"online\""));
	assert_int_equal(record_from_json(json, strlen(json), &back, &err), ML_OK);
	assert_int_equal(back.session, RECORD_SESSION_ONLINE);
	secret_free(json);
	record_free(&back);
	r.session = RECORD_SESSION_UNKNOWN;
	assert_int_equal(record_to_json(&r, &json, &err), ML_OK);
	assert_null(strstr(json, "session"));
	secret_free(json);
	record_free(&r);

	(void)snprintf(buf, sizeof buf, "%s}", base);	/* a record of an older mlauth */
	assert_int_equal(record_from_json(buf, strlen(buf), &back, &err), ML_OK);
	assert_int_equal(back.session, RECORD_SESSION_UNKNOWN);
	record_free(&back);
	(void)snprintf(buf, sizeof buf, "%s,\"session\":\"offline\"}", base);
	assert_int_equal(record_from_json(buf, strlen(buf), &back, &err), ML_OK);
	assert_int_equal(back.session, RECORD_SESSION_OFFLINE);
	record_free(&back);
	(void)snprintf(buf, sizeof buf, "%s,\"session\":\"transient\"}", base);
	assert_int_equal(record_from_json(buf, strlen(buf), &back, &err), ML_OK);
	assert_int_equal(back.session, RECORD_SESSION_UNKNOWN);
	record_free(&back);
	(void)snprintf(buf, sizeof buf, "%s,\"session\":1}", base);
	expect_bad(buf, "'session'");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip),
		cmocka_unit_test(damaged_records),
		cmocka_unit_test(session_kind),
	};

	return cmocka_run_group_tests_name("record", tests, NULL, NULL);
}
