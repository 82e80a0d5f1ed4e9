/* The authorized-request layer's own rules: its URLs, and one token shared in a process. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "mlauth/api.h"
#include "mlauth/secret.h"
#include "mlauth/util.h"

static void
urls(void **state)
{
	struct config cfg = { .api_base = "https://mlaas.example.test/proxy/anthropic/" };
	struct ml_err err;
	char *url = NULL;

	assert_int_equal(api_url(&cfg, NULL, &url, &err), ML_OK);
	assert_string_equal(url, "https://mlaas.example.test/proxy/anthropic/v1/messages");
	free(url);
	cfg.api_base = "http://127.0.0.1:9//";
	assert_int_equal(api_url(&cfg, "/v1/messages?beta=true", &url, &err), ML_OK);
	assert_string_equal(url, "http://127.0.0.1:9/v1/messages?beta=true");
	free(url);
}

/* A token in hand and fresh is used as it is: no store, no provider. */
static void
fresh_token_reused(void **state)
{
	struct config cfg = { .api_base = "http://127.0.0.1:9", .profile = "unit" };
	struct token_opts to = { .min_valid = 60, .no_refresh = true };
	struct api_session s;
	struct ml_err err;
	char *t = NULL;
	int64_t now = util_now();

	api_session_init(&s, &cfg, 0, &to);
	assert_int_equal(api_session_use(&s, "tok-A", now + 3600, now, &err), ML_OK);
	assert_int_equal(api_token(&s, NULL, &t, &err), ML_OK);
	assert_string_equal(t, "tok-A");
	secret_free(t);
	/* Refused by the API, but already replaced by another request: that one, no refresh. */
	assert_int_equal(api_token(&s, "tok-OLD", &t, &err), ML_OK);
	assert_string_equal(t, "tok-A");
	assert_int_equal(s.refreshes, 1);
	assert_false(s.st_open);
	secret_free(t);
	api_session_free(&s);
}

struct taker {
	struct api_session *s;
	char *got;
	int rc;
};

static void *
take(void *arg)
{
	struct taker *k = arg;
	struct ml_err err;

	k->rc = api_token(k->s, NULL, &k->got, &err);
	return NULL;
}

/* Many threads at once (the proxy's requests): each its own copy of the one token. */
static void
threads_share_one_token(void **state)
{
	struct config cfg = { .api_base = "http://127.0.0.1:9", .profile = "unit" };
	struct token_opts to = { .min_valid = 60, .no_refresh = true };
	struct api_session s;
	struct taker k[16];
	pthread_t th[16];
	struct ml_err err;
	int64_t now = util_now();

	api_session_init(&s, &cfg, 0, &to);
	assert_int_equal(api_session_use(&s, "tok-B", now + 3600, now, &err), ML_OK);
	for (int i = 0; i < 16; i++) {
		k[i] = (struct taker){ .s = &s };
		assert_int_equal(pthread_create(&th[i], NULL, take, &k[i]), 0);
	}
	for (int i = 0; i < 16; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(k[i].rc, ML_OK);
		assert_string_equal(k[i].got, "tok-B");
		assert_ptr_not_equal(k[i].got, s.token);
		secret_free(k[i].got);
	}
	api_session_free(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(urls),
		cmocka_unit_test(fresh_token_reused),
		cmocka_unit_test(threads_share_one_token),
	};

	return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
