/* The kernel-keyring token cache: payload, a real round trip, the stash of unsaved sessions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <keyutils.h>

#include "unit.h"
#include "mlauth/cache.h"
#include "mlauth/util.h"

static void
payload_good(void **state)
{
	const char p[] = "mlauth-cache 2\n1900000000\n1899992800\n/h/state/mlauth/default.json\n"
	    "aaa.bbb.ccc";
	struct cache_entry e;

	assert_int_equal(cache_payload_parse(p, sizeof p - 1, &e), 0);
	assert_int_equal(e.expires_at, 1900000000);
	assert_int_equal(e.obtained_at, 1899992800);
	assert_string_equal(e.home, "/h/state/mlauth/default.json");
	assert_string_equal(e.token, "aaa.bbb.ccc");
	cache_entry_free(&e);
	assert_null(e.token);
	assert_null(e.home);
}

static void
payload_bad(void **state)
{
	static const char *const bad[] = {
		"", "mlauth-cache 1\n1\n1\nh\nt", "mlauth-cache 2\n\n1\nh\nt",
		"mlauth-cache 2\n1\n1\nh\n", "mlauth-cache 2\n1\n1\nt",
		"mlauth-cache 2\n1\n1\n\nt", "mlauth-cache 2\n-5\n1\nh\nt",
		"mlauth-cache 2\n1x\n1\nh\nt",
		"mlauth-cache 2\n99999999999999999999999\n1\nh\nt",
		"mlauth-cache 2\n1\n1\nh\ntok en", "mlauth-cache 2\n1\n1\nh\ntok\nen",
		"mlauth-cache 2\n1\n1\nh\n\033[31m",
	};
	struct cache_entry e;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (cache_payload_parse(bad[i], strlen(bad[i]), &e) == 0)
			fail_msg("accepted payload %zu", i);
		assert_null(e.token);
		assert_null(e.home);
	}
	/* A NUL inside the token or the home, and no terminating NUL after it. */
	assert_int_equal(cache_payload_parse("mlauth-cache 2\n1\n1\nh\nab\0cd", 24, &e), -1);
	assert_int_equal(cache_payload_parse("mlauth-cache 2\n1\n1\nh\0i\nab", 24, &e), -1);
	assert_int_equal(cache_payload_parse("mlauth-cache 2\n1\n1\nh\nabcdX", 24, &e), 0);
	assert_string_equal(e.token, "abc");
	cache_entry_free(&e);
}

/* Some containers forbid keyctl: then there is nothing to test, and it is no pass. */
static int
kernel_keyring_usable(void)
{
	return keyctl_get_keyring_ID(KEY_SPEC_USER_KEYRING, 0) >= 0;
}

static void
kernel_round_trip(void **state)
{
	char issuer[64];
	struct cache_entry e;
	int64_t now = util_now();

	/* A unique issuer, so a parallel run never meets this key. */
	(void)snprintf(issuer, sizeof issuer, "http://127.0.0.1:1/realms/unit-%d", (int)getpid());
	if (!kernel_keyring_usable())
		skip();
	assert_int_equal(cache_put("unit", issuer, "client", "x.y.z", now + 60, now, 0), 0);
	assert_int_equal(cache_get("unit", issuer, "client", &e), 0);
	assert_string_equal(e.token, "x.y.z");
	assert_int_equal(e.expires_at, now + 60);
	cache_entry_free(&e);
	/* The same profile in another home (XDG_STATE_HOME) is not served either. */
	{
		const char *old = getenv("XDG_STATE_HOME");
		char *saved = old ? strdup(old) : NULL;

		setenv("XDG_STATE_HOME", "/tmp/mlauth-unit-other-home", 1);
		assert_int_equal(cache_get("unit", issuer, "client", &e), -1);
		if (saved != NULL) {
			setenv("XDG_STATE_HOME", saved, 1);
			free(saved);
		} else {
			unsetenv("XDG_STATE_HOME");
		}
	}
	/* Another client, profile or issuer is not served. */
	assert_int_equal(cache_get("unit", issuer, "other", &e), -1);
	assert_int_equal(cache_get("other", issuer, "client", &e), -1);
	assert_int_equal(cache_get("unit", "http://127.0.0.1:2/realms/x", "client", &e), -1);
	/* An update replaces the payload in place. */
	assert_int_equal(cache_put("unit", issuer, "client", "new.tok.en", now + 90, now, 0), 0);
	assert_int_equal(cache_get("unit", issuer, "client", &e), 0);
	assert_string_equal(e.token, "new.tok.en");
	cache_entry_free(&e);
	cache_remove("unit", issuer, "client");
	assert_int_equal(cache_get("unit", issuer, "client", &e), -1);
	/* An expired token is never cached. */
	assert_int_equal(cache_put("unit", issuer, "client", "old.tok.en", now - 1, now - 60, 0), -1);
}

static void
kernel_timeout(void **state)
{
	char issuer[64];
	struct cache_entry e;
	int64_t now = util_now(), expires = now + 2;

	(void)snprintf(issuer, sizeof issuer, "http://127.0.0.1:1/realms/timeout-%d", (int)getpid());
	if (!kernel_keyring_usable())
		skip();
	/* Two seconds, so the second ticking over before the put still leaves one. */
	assert_int_equal(cache_put("unit", issuer, "client", "a.b.c", expires, now, 0), 0);
	/* The key's timeout is the time left, rounded up: by expires + 1 it is gone. */
	while (util_now() < expires + 1)
		(void)nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
	/* The kernel dropped the key when the token expired. */
	assert_int_equal(cache_get("unit", issuer, "client", &e), -1);
}

/* A session due for its keep-alive leaves the cache then, before its token expires. */
static void
kernel_drop_at(void **state)
{
	char issuer[64];
	struct cache_entry e;
	int64_t now = util_now();

	(void)snprintf(issuer, sizeof issuer, "http://127.0.0.1:1/realms/drop-%d", (int)getpid());
	if (!kernel_keyring_usable())
		skip();
	assert_int_equal(cache_put("unit", issuer, "client", "a.b.c", now + 3600, now, now + 2), 0);
	assert_int_equal(cache_get("unit", issuer, "client", &e), 0);
	cache_entry_free(&e);
	while (util_now() < now + 3)
		(void)nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
	assert_int_equal(cache_get("unit", issuer, "client", &e), -1);
}

static void
stash_round_trip(void **state)
{
	char issuer[64], *json = NULL;

	(void)snprintf(issuer, sizeof issuer, "http://127.0.0.1:1/realms/stash-%d", (int)getpid());
	if (!kernel_keyring_usable())
		skip();
	assert_int_equal(cache_stash_put("unit", issuer, "client", "{\"a\":1}"), 0);
	assert_int_equal(cache_stash_get("unit", issuer, "client", &json), 0);
	assert_string_equal(json, "{\"a\":1}");
	free(json);
	/* Not the cache's key, and not another client's. */
	{
		struct cache_entry e;

		assert_int_equal(cache_get("unit", issuer, "client", &e), -1);
	}
	assert_int_equal(cache_stash_get("unit", issuer, "other", &json), -1);
	/* Another home's stash is not this one's. */
	{
		const char *old = getenv("XDG_STATE_HOME");
		char *saved = old ? strdup(old) : NULL;

		setenv("XDG_STATE_HOME", "/tmp/mlauth-unit-other-home", 1);
		assert_int_equal(cache_stash_get("unit", issuer, "client", &json), -1);
		if (saved != NULL) {
			setenv("XDG_STATE_HOME", saved, 1);
			free(saved);
		} else {
			unsetenv("XDG_STATE_HOME");
		}
	}
	cache_stash_remove("unit", issuer, "client");
	assert_int_equal(cache_stash_get("unit", issuer, "client", &json), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(payload_good),
		cmocka_unit_test(payload_bad),
		cmocka_unit_test(kernel_round_trip),
		cmocka_unit_test(kernel_drop_at),
		cmocka_unit_test(stash_round_trip),
		cmocka_unit_test(kernel_timeout),
	};

	return cmocka_run_group_tests_name("cache", tests, NULL, NULL);
}
