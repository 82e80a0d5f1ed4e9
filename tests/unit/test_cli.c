/* The global options, before and after the command: the one parser of both binaries. */
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "mlauth/cli.h"
#include "mlauth/tokenfmt.h"

/* A command with a valued short option (-s TEXT) and a flag (-j), as send has. */
static const struct option other_options[] = {
	{ "system", required_argument, NULL, 's' },
	{ "json", no_argument, NULL, 'j' },
	{ "quote", no_argument, NULL, 256 },
	{ NULL, 0, NULL, 0 }
};

static const struct option *
options_of(const char *name)
{
	if (strcmp(name, "token") == 0)
		return tokenfmt_options;
	return strcmp(name, "other") == 0 ? other_options : NULL;
}

/* Parses the space-separated words of line; *g filled, the status returned. */
static int
parse(const char *line, struct cli_globals *g, struct ml_err *err, char **store)
{
	static char *argv[32];	/* outlives the call: g points into it */
	char *p;
	int argc = 0;

	*store = strdup(line);
	assert_non_null(*store);
	argv[argc++] = "mlauth";
	for (p = strtok(*store, " "); p != NULL && argc < 31; p = strtok(NULL, " "))
		argv[argc++] = p;
	argv[argc] = NULL;
	err_clear(err);
	return cli_parse_globals(argc, argv, options_of, g, err);
}

/* The command's view, joined by spaces. */
static void
assert_view(const struct cli_globals *g, const char *want)
{
	char got[256] = "";

	for (int i = 0; i < g->argc; i++) {
		if (i > 0)
			strcat(got, " ");
		strcat(got, g->argv[i]);
	}
	assert_null(g->argv[g->argc]);
	assert_string_equal(got, want);
}

static void
globals_after_the_command(void **state)
{
	struct cli_globals g;
	struct ml_err err;
	char *s;

	assert_int_equal(parse("token -p work", &g, &err, &s), ML_OK);
	assert_string_equal(g.profile, "work");
	assert_view(&g, "token");
	cli_globals_free(&g);
	free(s);

	assert_int_equal(parse("status -q", &g, &err, &s), ML_OK);
	assert_true(g.quiet);
	assert_view(&g, "status");
	cli_globals_free(&g);
	free(s);

	assert_int_equal(parse("-p a token --header --profile=b -vv -o min_valid=60 --no-color "
	    "-c /f --config /g", &g, &err, &s), ML_OK);
	assert_string_equal(g.profile, "b");
	assert_string_equal(g.file, "/g");
	assert_int_equal(g.verbose, 2);
	assert_true(g.no_color);
	assert_int_equal(g.nov, 1);
	assert_string_equal(g.ov[0].key, "min_valid");
	assert_string_equal(g.ov[0].value, "60");
	assert_view(&g, "token --header");
	cli_globals_free(&g);
	free(s);
}

static void
clusters_and_values_stay_the_commands(void **state)
{
	struct cli_globals g;
	struct ml_err err;
	char *s;

	/* Mixed clusters: the command keeps its letters, in order. */
	assert_int_equal(parse("token -jq -vHpwork", &g, &err, &s), ML_OK);
	assert_true(g.quiet);
	assert_int_equal(g.verbose, 1);
	assert_string_equal(g.profile, "work");
	assert_view(&g, "token -j -H");
	cli_globals_free(&g);
	free(s);

	/* A value of the command's option is never a global, even one that looks like it. */
	assert_int_equal(parse("other -s -q -j --system --quiet -sq", &g, &err, &s), ML_OK);
	assert_false(g.quiet);
	assert_view(&g, "other -s -q -j --system --quiet -sq");
	cli_globals_free(&g);
	free(s);

	assert_int_equal(parse("token -m -p", &g, &err, &s), ML_OK);
	assert_null(g.profile);
	assert_view(&g, "token -m -p");
	cli_globals_free(&g);
	free(s);
}

static void
operands_and_dashes_end_the_options(void **state)
{
	struct cli_globals g;
	struct ml_err err;
	char *s;

	assert_int_equal(parse("exec -q -- env -p x", &g, &err, &s), ML_OK);
	assert_true(g.quiet);
	assert_null(g.profile);
	assert_view(&g, "exec -- env -p x");
	cli_globals_free(&g);
	free(s);

	assert_int_equal(parse("other hello -q", &g, &err, &s), ML_OK);
	assert_false(g.quiet);
	assert_view(&g, "other hello -q");
	cli_globals_free(&g);
	free(s);

	/* -h, -V and what neither table knows are the command's to answer. */
	assert_int_equal(parse("token -qh --bogus -V", &g, &err, &s), ML_OK);
	assert_true(g.quiet);
	assert_false(g.help);
	assert_view(&g, "token -h --bogus -V");
	cli_globals_free(&g);
	free(s);
}

static void
errors_name_the_option(void **state)
{
	struct cli_globals g;
	struct ml_err err;
	char *s;

	assert_int_equal(parse("token -p", &g, &err, &s), ML_EUSAGE);
	msg_has(err.msg, "'-p' needs a value");
	assert_null(g.argv);
	free(s);
	assert_int_equal(parse("token --profile", &g, &err, &s), ML_EUSAGE);
	msg_has(err.msg, "'--profile' needs a value");
	free(s);
	assert_int_equal(parse("token --quiet=yes", &g, &err, &s), ML_EUSAGE);
	msg_has(err.msg, "'--quiet' takes no value");
	free(s);
	assert_int_equal(parse("token -o nosuch=1", &g, &err, &s), ML_EUSAGE);
	msg_has(err.msg, "unknown setting 'nosuch'");
	free(s);
	/* --no could be --no-color or token's --no-refresh. */
	assert_int_equal(parse("token --no", &g, &err, &s), ML_EUSAGE);
	msg_has(err.msg, "'--no' is ambiguous");
	free(s);
	/* An abbreviation that names one option is that option, as getopt_long takes it. */
	assert_int_equal(parse("token --prof w --no-r", &g, &err, &s), ML_OK);
	assert_string_equal(g.profile, "w");
	assert_view(&g, "token --no-r");
	cli_globals_free(&g);
	free(s);
}

static void
before_the_command_as_before(void **state)
{
	struct cli_globals g;
	struct ml_err err;
	char *s;

	assert_int_equal(parse("-q -p w", &g, &err, &s), ML_OK);
	assert_int_equal(g.argc, 0);
	assert_null(g.argv);
	free(s);
	assert_int_equal(parse("-V token -p", &g, &err, &s), ML_OK);
	assert_true(g.version);
	free(s);
	assert_int_equal(parse("--verison", &g, &err, &s), ML_EUSAGE);
	msg_has(err.msg, "did you mean --version?");
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(globals_after_the_command),
		cmocka_unit_test(clusters_and_values_stay_the_commands),
		cmocka_unit_test(operands_and_dashes_end_the_options),
		cmocka_unit_test(errors_name_the_option),
		cmocka_unit_test(before_the_command_as_before),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
