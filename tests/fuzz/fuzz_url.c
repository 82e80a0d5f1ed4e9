/*
 * fuzz_url: the URL checks that endpoints from a discovery document and a
 * device answer go through: config_url_allowed (config.h) and
 * http_url_origin (http.h), which turns a URL into what a message may show.
 */
#include "fuzz.h"
#include "mlauth/config.h"
#include "mlauth/http.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *url = fuzz_cstr(data, size);
	char out[256], tiny[8];
	bool ok = config_url_allowed(url);

	if (ok)
		FUZZ_CHECK(strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0,
		    "allowed a URL of another scheme");
	http_url_origin(url, out, sizeof out);
	FUZZ_CHECK(memchr(out, '\0', sizeof out) != NULL && fuzz_ascii(out, 0x20),
	    "origin not printable");
	/* "User info, path, query and fragment are dropped" */
	if (ok && fuzz_ascii(url, 0x21))
		FUZZ_CHECK(strchr(out, '@') == NULL && strchr(out + 8, '/') == NULL &&
		    strchr(out, '?') == NULL && strchr(out, '#') == NULL,
		    "origin keeps more than scheme://host[:port]: %s", out);
	http_url_origin(url, tiny, sizeof tiny);
	FUZZ_CHECK(memchr(tiny, '\0', sizeof tiny) != NULL, "small buffer not terminated");
	free(url);
	return 0;
}
