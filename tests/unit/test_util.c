/* Suggestions and human-readable durations. */
#include <string.h>

#include "unit.h"
#include "mlauth/util.h"

static void
suggestions(void **state)
{
	const char *const cmds[] = { "login", "token", "status", "logout", "config", "help", NULL };

	assert_string_equal(util_suggest("tokn", cmds), "token");
	assert_string_equal(util_suggest("stauts", cmds), "status");
	assert_string_equal(util_suggest("lgoin", cmds), "login");
	assert_string_equal(util_suggest("conf", cmds), "config");
	assert_null(util_suggest("frobnicate", cmds));
	assert_null(util_suggest("", cmds));
}

static void
durations(void **state)
{
	char b[32];

	util_format_duration(6840, b, sizeof b);
	assert_string_equal(b, "1h 54m");
	util_format_duration(190, b, sizeof b);
	assert_string_equal(b, "3m 10s");
	util_format_duration(9, b, sizeof b);
	assert_string_equal(b, "9s");
	util_format_duration(2 * 86400 + 4 * 3600 + 5, b, sizeof b);
	assert_string_equal(b, "2d 4h");
	util_format_duration(-120, b, sizeof b);
	assert_string_equal(b, "-2m 0s");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(suggestions),
		cmocka_unit_test(durations),
	};

	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
