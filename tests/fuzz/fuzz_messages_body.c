/*
 * fuzz_messages_body: messages_build_body (messages.h) on the user's text,
 * which may be any file piped to `mlauth send`.  Its UTF-8 check is written
 * by hand, so it is held against GLib's: the body is built exactly when the
 * text is valid UTF-8, and then carries the text unchanged.
 *
 * The input up to its first NUL is the message; what follows, up to the next
 * NUL, the system prompt (none when there is no NUL); an odd size asks for a
 * stream and a temperature.
 */
#include <glib.h>
#include <jansson.h>

#include "fuzz.h"
#include "mlauth/messages.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = fuzz_cstr(data, size);	/* one more NUL at the end */
	size_t tl = strlen(in);
	const char *sys = tl < size ? in + tl + 1 : NULL;
	struct messages_request req = {
		.model = "claude-opus-4-6",
		.max_tokens = 1024,
		.system = sys,
		.text = in,
		.has_temperature = size % 2 == 1,
		.temperature = 0.5,
		.stream = size % 2 == 1,
	};
	struct ml_err err = { 0 };
	char *body = NULL;
	bool valid = g_utf8_validate(in, -1, NULL) && (sys == NULL || g_utf8_validate(sys, -1, NULL));
	int rc;

	rc = messages_build_body(&req, &body, &err);
	FUZZ_CHECK((rc == ML_OK) == valid, "rc %d (%s) for %s UTF-8", rc, err.msg,
	    valid ? "valid" : "invalid");
	if (rc == ML_OK) {
		json_t *root = json_loads(body, 0, NULL);
		json_t *content = json_object_get(json_array_get(json_object_get(root, "messages"), 0),
		    "content");
		json_t *system = json_object_get(root, "system");

		FUZZ_CHECK(json_is_string(content) && strcmp(json_string_value(content), in) == 0,
		    "the message changed on its way into the body");
		FUZZ_CHECK(sys == NULL ? system == NULL :
		    json_is_string(system) && strcmp(json_string_value(system), sys) == 0,
		    "the system prompt changed on its way into the body");
		json_decref(root);
	} else {
		FUZZ_CHECK(rc == ML_EUSAGE && body == NULL, "rc %d", rc);
	}
	free(body);
	free(in);
	return 0;
}
