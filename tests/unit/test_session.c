/* test_session.c: the session's rules: freshness, keep-alive, usability, names, its end. */
#include <stdint.h>
#include <string.h>

#include "unit.h"

#include "mlauth/jwt.h"
#include "mlauth/session.h"

static void
freshness_rule(void **state)
{
	/* A 2-hour token: the default 300 s margin applies. */
	assert_true(session_token_fresh(10000, 2800, 300, 9699));
	assert_false(session_token_fresh(10000, 2800, 300, 9700));
	/* A 4-second token: min_valid is capped at half its life. */
	assert_int_equal(session_min_valid(104, 100, 300), 2);
	assert_true(session_token_fresh(104, 100, 300, 101));
	assert_false(session_token_fresh(104, 100, 300, 102));
	/* Unknown obtained_at: no cap. */
	assert_int_equal(session_min_valid(104, 0, 300), 300);
}

/* Keycloak's SSO idle of 30 min, shorter than the 2 h access token: refresh to keep it. */
static void
online_keepalive(void **state)
{
	struct record r = { .access_token = "a", .refresh_token = "r",
		.obtained_at = 1000, .expires_at = 1000 + 7200, .refresh_expires_at = 1000 + 1800 };

	assert_int_equal(session_keepalive_at(&r), 1000 + 900);
	assert_true(session_fresh(&r, 300, 1000 + 899));
	assert_false(session_fresh(&r, 300, 1000 + 900));
	/* The token alone is still good: --no-refresh may serve it. */
	assert_true(session_token_fresh(r.expires_at, r.obtained_at, 300, 1000 + 900));
	assert_int_equal(session_cache_until(&r), 1000 + 900);
	/* A session longer than the token: the token's own rule decides. */
	r.refresh_expires_at = 1000 + 36000;
	assert_true(session_fresh(&r, 300, 1000 + 6899));
	assert_false(session_fresh(&r, 300, 1000 + 6900));
	assert_int_equal(session_cache_until(&r), r.expires_at);
	/* An offline session (refresh_expires_in 0): no keep-alive from here. */
	r.refresh_expires_at = 0;
	assert_int_equal(session_keepalive_at(&r), INT64_MAX);
	assert_int_equal(session_cache_until(&r), r.expires_at);
}

static void
refused_and_usable(void **state)
{
	struct record r = { .access_token = "a", .refresh_token = "r",
		.obtained_at = 1000, .expires_at = 4600 };

	assert_true(session_usable(&r, 5000));	/* a refresh still works */
	r.refresh_token = NULL;
	assert_true(session_usable(&r, 4000));
	assert_false(session_usable(&r, 5000));
	r.refused_at = 3000;
	assert_true(session_refused(&r));
	/* Refused is over, even while its access token has time left. */
	assert_false(session_usable(&r, 4000));
	assert_false(session_fresh(&r, 300, 1001));
}

static void
who_prefers_the_id_token(void **state)
{
	struct jwt_claims at = { .preferred_username = "at-user", .email = "at@x",
		.name = "AT Name" };
	struct jwt_claims id = { .preferred_username = "id-user" };
	struct session_who w;

	session_who(&at, &id, &w);
	assert_string_equal(w.user, "id-user");
	assert_string_equal(w.email, "at@x");
	assert_string_equal(w.name, "AT Name");
	memset(&at, 0, sizeof at);
	session_who(&at, &id, &w);
	assert_string_equal(w.name, "id-user");	/* no name: the login name */
	assert_null(w.email);
}

static void
describe_end(void **state)
{
	struct record r = { .access_token = "a", .refresh_token = "r",
		.session = RECORD_SESSION_OFFLINE, .obtained_at = 1000, .expires_at = 8200 };
	char buf[512];

	/* Offline: refresh_expires_in 0, yet Keycloak's Offline Session Idle applies. */
	session_describe_end(&r, 2000, false, buf, sizeof buf);
	msg_has(buf, "offline");
	msg_has(buf, "30 days");
	msg_has(buf, "every refresh renews it");
	msg_lacks(buf, "without a fixed end");
	session_describe_end(&r, 2000, true, buf, sizeof buf);
	msg_has(buf, "offline session, renewed by every refresh");
	r.session = RECORD_SESSION_UNKNOWN;
	session_describe_end(&r, 2000, false, buf, sizeof buf);
	msg_has(buf, "no end announced");
	r.session = RECORD_SESSION_ONLINE;
	r.refresh_expires_at = 2800;
	session_describe_end(&r, 2000, false, buf, sizeof buf);
	msg_has(buf, "online, until ");
	msg_has(buf, "(in 13m 20s) unless refreshed before");
	session_describe_end(&r, 2000, true, buf, sizeof buf);
	msg_has(buf, "online session until ");
	session_describe_end(&r, 3000, true, buf, sizeof buf);
	msg_has(buf, "session expired at ");
	r.refused_at = 2500;
	session_describe_end(&r, 3000, true, buf, sizeof buf);
	msg_has(buf, "session ended by the provider");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(freshness_rule),
		cmocka_unit_test(online_keepalive),
		cmocka_unit_test(refused_and_usable),
		cmocka_unit_test(who_prefers_the_id_token),
		cmocka_unit_test(describe_end),
	};

	return cmocka_run_group_tests_name("session", tests, NULL, NULL);
}
