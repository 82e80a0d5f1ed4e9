/*
 * fuzz_oidc_device: a device authorization answer (oidc.h), status from the
 * input's first bytes (see fuzz_status): oidc_device_answer for every status,
 * and oidc_device_parse directly for the body of a 200.
 */
#include "fuzz.h"
#include "mlauth/config.h"
#include "mlauth/oidc.h"

static void
check_device(long status, int rc, const struct oidc_device *d, const struct ml_err *err)
{
	if (rc == ML_OK) {
		FUZZ_CHECK(d->device_code != NULL && d->device_code[0] != '\0', "device_code");
		FUZZ_CHECK(d->user_code != NULL && d->user_code[0] != '\0' &&
		    strlen(d->user_code) <= 64 && fuzz_ascii(d->user_code, 0x20), "user_code");
		FUZZ_CHECK(config_url_allowed(d->verification_uri), "verification_uri");
		FUZZ_CHECK(d->verification_uri_complete == NULL ||
		    config_url_allowed(d->verification_uri_complete), "verification_uri_complete");
		FUZZ_CHECK(d->expires_in >= 1, "expires_in %ld", d->expires_in);
		FUZZ_CHECK(d->interval >= 1 && d->interval <= 60, "interval %ld", d->interval);
		return;
	}
	FUZZ_CHECK(err->code == rc, "rc %d, err.code %d", rc, err->code);
	FUZZ_CHECK(FUZZ_MSG_TERMINATED(err), "unterminated message");
	/* "the provider's own error and error_description appear sanitised" */
	FUZZ_CHECK(fuzz_ascii(err->msg, 0x20), "unprintable message: %s", err->msg);
	/*
	 * Redaction is promised for the provider's error words, which only a
	 * refusal carries; a 200 with a bad URL shows the URL (printable, cut) as is.
	 */
	FUZZ_CHECK(status == 200 || fuzz_longest_token_run(err->msg) < 40,
	    "token-like run shown: %s", err->msg);
	FUZZ_CHECK(d->device_code == NULL && d->user_code == NULL, "not freed on failure");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct oidc_device d;
	struct ml_err err = { 0 };
	long status = fuzz_status(&data, &size);
	char *buf = fuzz_copy(data, size);
	int rc;

	rc = oidc_device_answer(status, buf, size, &d, &err);
	check_device(status, rc, &d, &err);
	oidc_device_free(&d);
	if (status == 200) {
		struct ml_err err2 = { 0 };
		int rc2 = oidc_device_parse(buf, size, &d, &err2);

		FUZZ_CHECK(rc2 == rc, "oidc_device_parse %d, oidc_device_answer %d", rc2, rc);
		check_device(status, rc2, &d, &err2);
		oidc_device_free(&d);
	}
	free(buf);
	return 0;
}
