/*
 * fuzz_messages_error: messages_parse_error (messages.h) on an error answer,
 * the HTTP status from the input's first bytes (see fuzz_status).  The
 * result is always ML_EAPI with one line of text, and a token the server
 * echoes (a run of 40 or more token characters) never shows.
 */
#include "fuzz.h"
#include "mlauth/messages.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ml_err err = { 0 };
	long status = fuzz_status(&data, &size);
	char *buf = fuzz_copy(data, size);
	int rc;

	rc = messages_parse_error(status, buf, size, &err);
	FUZZ_CHECK(rc == ML_EAPI && err.code == ML_EAPI, "rc %d", rc);
	FUZZ_CHECK(FUZZ_MSG_TERMINATED(&err), "unterminated message");
	FUZZ_CHECK(fuzz_one_line(err.msg), "message on more than one line: %s", err.msg);
	FUZZ_CHECK(fuzz_longest_token_run(err.msg) < 40, "token-like run shown: %s", err.msg);
	free(buf);
	return 0;
}
