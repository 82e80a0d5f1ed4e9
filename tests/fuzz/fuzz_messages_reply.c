/* fuzz_messages_reply: messages_parse_reply (messages.h) on the body of a 2xx answer. */
#include "fuzz.h"
#include "mlauth/messages.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct messages_reply r;
	struct ml_err err = { 0 };
	char *buf = fuzz_copy(data, size);
	int rc;

	rc = messages_parse_reply(buf, size, &r, &err);
	if (rc == ML_OK) {
		FUZZ_CHECK(r.text != NULL, "no text");
		/* id, model, stop_reason are shown under -v: printable, one line, redacted. */
		FUZZ_CHECK(r.id == NULL || fuzz_one_line(r.id), "id");
		FUZZ_CHECK(r.model == NULL || fuzz_one_line(r.model), "model");
		FUZZ_CHECK(r.stop_reason == NULL || fuzz_one_line(r.stop_reason), "stop_reason");
		FUZZ_CHECK(r.input_tokens >= -1 && r.output_tokens >= -1, "usage");
	} else {
		FUZZ_CHECK(err.code == rc && (rc == ML_EAPI || rc == ML_EFAIL), "rc %d", rc);
		FUZZ_CHECK(FUZZ_MSG_TERMINATED(&err), "unterminated message");
		FUZZ_CHECK(fuzz_one_line(err.msg), "message on more than one line: %s", err.msg);
		FUZZ_CHECK(fuzz_longest_token_run(err.msg) < 40, "token-like run shown: %s",
		    err.msg);
		FUZZ_CHECK(r.text == NULL && r.id == NULL, "not freed on failure");
	}
	messages_reply_free(&r);
	free(buf);
	return 0;
}
