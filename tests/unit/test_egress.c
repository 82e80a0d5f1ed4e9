/* egress: which plain-http requests may go through which proxy. */
#include <stdlib.h>

#include "unit.h"
#include "mlauth/egress.h"

static void
clear_env(void)
{
	static const char *const vars[] = { "http_proxy", "all_proxy", "ALL_PROXY", "HTTP_PROXY",
	    "no_proxy", "NO_PROXY", NULL };

	for (size_t i = 0; vars[i] != NULL; i++)
		(void)unsetenv(vars[i]);
}

static void
loopback_names(void **state)
{
	assert_true(egress_host_loopback("127.0.0.1", 9));
	assert_true(egress_host_loopback("127.1.2.3", 9));
	assert_true(egress_host_loopback("[::1]", 5));
	assert_true(egress_host_loopback("LocalHost", 9));
	assert_false(egress_host_loopback("128.0.0.1", 9));
	assert_false(egress_host_loopback("localhost.evil.example", 22));
	assert_false(egress_host_loopback("127.0.0.1.evil.example", 22));
	assert_false(egress_host_loopback("", 0));
}

static void
proxy_choice(void **state)
{
	const char *var = NULL;

	clear_env();
	assert_null(egress_http_proxy("http://127.0.0.1:8080/x", &var));
	(void)setenv("HTTP_PROXY", "http://p.example:3128", 1);	/* curl ignores it for http */
	assert_null(egress_http_proxy("http://127.0.0.1:8080/x", &var));
	(void)setenv("ALL_PROXY", "socks5h://s.example:1080", 1);
	assert_string_equal(egress_http_proxy("http://127.0.0.1:8080/x", &var), "socks5h://s.example:1080");
	assert_string_equal(var, "ALL_PROXY");
	(void)setenv("http_proxy", "p.example:3128", 1);
	assert_string_equal(egress_http_proxy("http://127.0.0.1:8080/x", &var), "p.example:3128");
	assert_string_equal(var, "http_proxy");
	for (const char *const *np = (const char *const[]){ "*", "127.0.0.1", "x, 127.0.0.1",
	    "127.0.0.0/8", ".0.0.1", NULL }; *np != NULL; np++) {
		(void)setenv("NO_PROXY", *np, 1);
		if (egress_http_proxy("http://127.0.0.1:8080/x", &var) != NULL)
			fail_msg("NO_PROXY=%s did not exclude 127.0.0.1", *np);
	}
	for (const char *const *np = (const char *const[]){ "localhost", "127.0.0.2", "10.0.0.0/8",
	    "27.0.0.1", NULL }; *np != NULL; np++) {
		(void)setenv("NO_PROXY", *np, 1);
		if (egress_http_proxy("http://127.0.0.1:8080/x", &var) == NULL)
			fail_msg("NO_PROXY=%s excluded 127.0.0.1", *np);
	}
	(void)setenv("NO_PROXY", "::1", 1);
	assert_null(egress_http_proxy("http://[::1]:8080/x", &var));
	clear_env();
}

static void
secrets_stay_here(void **state)
{
	struct ml_err err;
	const char *proxy;

	clear_env();
	(void)setenv("http_proxy", "http://user:pw@p.example:3128", 1);
	assert_int_equal(egress_http_check("http://127.0.0.1:1/v1", false, &proxy, &err), ML_OK);
	assert_non_null(proxy);		/* nothing secret: libcurl may proxy it */
	assert_int_equal(egress_http_check("http://127.0.0.1:1/v1", true, &proxy, &err), ML_EUSAGE);
	msg_has(err.msg, "through the proxy p.example (http_proxy)");
	msg_lacks(err.msg, "pw");
	(void)setenv("http_proxy", "http://127.0.0.1:3128", 1);
	assert_int_equal(egress_http_check("http://127.0.0.1:1/v1", true, &proxy, &err), ML_OK);
	assert_string_equal(proxy, "http://127.0.0.1:3128");
	clear_env();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(loopback_names),
		cmocka_unit_test(proxy_choice),
		cmocka_unit_test(secrets_stay_here),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
