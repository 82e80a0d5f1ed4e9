/*
 * fuzz_cache: cache_payload_parse (cache.h) on a kernel-keyring payload, which
 * any process of the same user can write.  What parses must be a token the
 * front may print and put in a header: token characters only, no newline.
 */
#include "fuzz.h"
#include "mlauth/cache.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cache_entry e;
	char *buf = fuzz_copy(data, size);

	if (cache_payload_parse(buf, size, &e) == 0) {
		size_t n = strlen(e.token);

		FUZZ_CHECK(n > 0 && n <= CACHE_MAX_TOKEN, "token length %zu", n);
		FUZZ_CHECK(strspn(e.token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789-_.~+/=") == n, "a non-token character");
		FUZZ_CHECK(e.home != NULL && e.home[0] != '\0' && strchr(e.home, '\n') == NULL,
		    "bad home");
		FUZZ_CHECK(e.expires_at >= 0 && e.obtained_at >= 0, "negative time");
	} else {
		FUZZ_CHECK(e.token == NULL && e.home == NULL, "a failed parse kept memory");
	}
	cache_entry_free(&e);
	free(buf);
	return 0;
}
