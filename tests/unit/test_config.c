/* Settings: precedence, sources and validation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "unit.h"
#include "mlauth/config.h"

static char dir[] = "/tmp/mlauth-test-config-XXXXXX";

static const char *const env_vars[] = { "MLAUTH_PROFILE", "MLAUTH_CONFIG", "MLAUTH_ISSUER",
	"MLAUTH_CLIENT_ID", "MLAUTH_STORE", "MLAUTH_MIN_VALID", "MLAUTH_API_BASE",
	"MLAUTH_TIMEOUT", NULL };

static int
setup(void **state)
{
	for (const char *const *v = env_vars; *v != NULL; v++)
		unsetenv(*v);
	if (mkdtemp(dir) == NULL)
		return -1;
	setenv("XDG_CONFIG_HOME", dir, 1);
	return 0;
}

static int
teardown(void **state)
{
	char *cmd = g_strdup_printf("rm -rf '%s'", dir);
	int rc = system(cmd);

	g_free(cmd);
	strcpy(dir, "/tmp/mlauth-test-config-XXXXXX");
	return rc == 0 ? 0 : -1;
}

static void
write_config(const char *text)
{
	char *d = g_build_filename(dir, "mlauth", NULL);
	char *f = g_build_filename(d, "config", NULL);

	assert_int_equal(g_mkdir_with_parents(d, 0700), 0);
	assert_true(g_file_set_contents(f, text, -1, NULL));
	g_free(f);
	g_free(d);
}

static void
defaults_are_production(void **state)
{
	struct config cfg;
	struct ml_err err;

	assert_int_equal(config_load(&cfg, NULL, NULL, NULL, 0, &err), ML_OK);
	assert_string_equal(cfg.issuer, "https://kcpro.virtuosgames.com/realms/Virtuos");
	assert_string_equal(cfg.client_id, "MLAAS-CLI-API");
	assert_string_equal(cfg.scope, "openid offline_access");
	assert_string_equal(cfg.profile, "default");
	assert_string_equal(cfg.v[CONFIG_ISSUER].source, "default");
	assert_int_equal(cfg.min_valid, 300);
	assert_int_equal(cfg.max_tokens, 1024);
	assert_int_equal(cfg.store, CONFIG_STORE_AUTO);
	assert_false(cfg.file_exists);
	config_free(&cfg);
}

static void
precedence_file_env_command_line(void **state)
{
	struct config cfg;
	struct ml_err err;
	struct config_override ov[] = { { "min_valid", "900" } };

	write_config("[default]\nissuer = https://file.example.test/realms/a\n"
	    "min_valid = 60\nstore = file\n[work]\nclient_id = other\n");
	setenv("MLAUTH_MIN_VALID", "120", 1);
	setenv("MLAUTH_STORE", "secret-service", 1);
	assert_int_equal(config_load(&cfg, NULL, NULL, ov, 1, &err), ML_OK);
	assert_string_equal(cfg.issuer, "https://file.example.test/realms/a");
	assert_non_null(strstr(cfg.v[CONFIG_ISSUER].source, "[default]"));
	assert_int_equal(cfg.min_valid, 900);
	assert_string_equal(cfg.v[CONFIG_MIN_VALID].source, "command line");
	assert_int_equal(cfg.store, CONFIG_STORE_SECRET);
	assert_string_equal(cfg.v[CONFIG_STORE].source, "env MLAUTH_STORE");
	/* The [work] group belongs to another profile. */
	assert_string_equal(cfg.client_id, "MLAAS-CLI-API");
	config_free(&cfg);

	assert_int_equal(config_load(&cfg, "work", NULL, NULL, 0, &err), ML_OK);
	assert_string_equal(cfg.client_id, "other");
	assert_string_equal(cfg.issuer, "https://kcpro.virtuosgames.com/realms/Virtuos");
	assert_string_equal(cfg.profile_source, "command line");
	config_free(&cfg);
	unsetenv("MLAUTH_MIN_VALID");
	unsetenv("MLAUTH_STORE");
}

static void
profile_from_env(void **state)
{
	struct config cfg;
	struct ml_err err;

	setenv("MLAUTH_PROFILE", "ci.bot-1", 1);
	assert_int_equal(config_load(&cfg, NULL, NULL, NULL, 0, &err), ML_OK);
	assert_string_equal(cfg.profile, "ci.bot-1");
	assert_string_equal(cfg.profile_source, "env MLAUTH_PROFILE");
	config_free(&cfg);
	unsetenv("MLAUTH_PROFILE");
}

static void
expect_usage_error(const char *profile, const char *file, const char *key,
    const char *value, const char *needle)
{
	struct config cfg;
	struct ml_err err;
	struct config_override ov[] = { { key, value } };

	assert_int_equal(config_load(&cfg, profile, file, ov, key ? 1 : 0, &err), ML_EUSAGE);
	if (strstr(err.msg, needle) == NULL)
		fail_msg("error '%s' does not mention '%s'", err.msg, needle);
	config_free(&cfg);
}

static void
invalid_values_name_key_and_source(void **state)
{
	expect_usage_error(NULL, NULL, "store", "keychain", "invalid store 'keychain' (from command line)");
	expect_usage_error(NULL, NULL, "issuer", "http://kc.example.test/realms/x", "invalid issuer");
	expect_usage_error(NULL, NULL, "api_base", "ftp://127.0.0.1/", "invalid api_base");
	expect_usage_error(NULL, NULL, "min_valid", "-5", "invalid min_valid '-5'");
	expect_usage_error(NULL, NULL, "timeout", "0", "invalid timeout");
	expect_usage_error(NULL, NULL, "max_tokens", "12abc", "invalid max_tokens");
	expect_usage_error(NULL, NULL, "client_id", "", "invalid client_id");
	expect_usage_error(NULL, NULL, "application_name", "a\r\nX-Evil: 1", "must be one line");
	expect_usage_error(NULL, NULL, "colour", "red", "unknown setting 'colour'");
	expect_usage_error("../etc", NULL, NULL, NULL, "invalid profile name '../etc'");
	expect_usage_error("", NULL, NULL, NULL, "invalid profile name");
	expect_usage_error(NULL, "/nonexistent/mlauth.conf", NULL, NULL,
	    "cannot read config file /nonexistent/mlauth.conf (from command line)");
}

static void
file_errors(void **state)
{
	struct config cfg;
	struct ml_err err;

	write_config("[default]\nisuer = https://x.example.test\n");
	assert_int_equal(config_load(&cfg, NULL, NULL, NULL, 0, &err), ML_EUSAGE);
	assert_non_null(strstr(err.msg, "unknown setting 'isuer'"));
	config_free(&cfg);

	write_config("this is not a key file\n");
	assert_int_equal(config_load(&cfg, NULL, NULL, NULL, 0, &err), ML_EUSAGE);
	assert_non_null(strstr(err.msg, "cannot read config file"));
	config_free(&cfg);

	write_config("[default]\nstore = floppy\n");
	assert_int_equal(config_load(&cfg, NULL, NULL, NULL, 0, &err), ML_EUSAGE);
	assert_non_null(strstr(err.msg, "invalid store 'floppy'"));
	assert_non_null(strstr(err.msg, "[default]"));
	config_free(&cfg);
}

static void
url_policy(void **state)
{
	assert_true(config_url_allowed("https://kc.example.test/realms/x"));
	assert_true(config_url_allowed("http://127.0.0.1:8080/realms/test"));
	assert_true(config_url_allowed("http://[::1]:8080/x"));
	assert_true(config_url_allowed("http://localhost/x"));
	assert_false(config_url_allowed("http://localhost.example.test/x"));
	assert_false(config_url_allowed("http://127.0.0.1@evil.example.test/x"));
	assert_false(config_url_allowed("http://10.0.0.1/x"));
	assert_false(config_url_allowed("https://"));
	assert_false(config_url_allowed("file:///etc/passwd"));
	assert_false(config_url_allowed(NULL));
}

static void
profile_names(void **state)
{
	assert_true(config_profile_valid("default"));
	assert_true(config_profile_valid("a.b_c-1"));
	assert_false(config_profile_valid("a/b"));
	assert_false(config_profile_valid(".."));
	assert_false(config_profile_valid("with space"));
	assert_false(config_profile_valid(
	    "x123456789012345678901234567890123456789012345678901234567890123456"));
}

static void
profiles_listed(void **state)
{
	struct config cfg;
	struct ml_err err;
	char **p;

	write_config("[default]\n[work]\n[home]\n");
	assert_int_equal(config_load(&cfg, NULL, NULL, NULL, 0, &err), ML_OK);
	p = config_profiles(&cfg);
	assert_int_equal(g_strv_length(p), 3);
	assert_string_equal(p[1], "work");
	g_strfreev(p);
	config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(defaults_are_production, setup, teardown),
		cmocka_unit_test_setup_teardown(precedence_file_env_command_line, setup, teardown),
		cmocka_unit_test_setup_teardown(profile_from_env, setup, teardown),
		cmocka_unit_test_setup_teardown(invalid_values_name_key_and_source, setup, teardown),
		cmocka_unit_test_setup_teardown(file_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(profiles_listed, setup, teardown),
		cmocka_unit_test(url_policy),
		cmocka_unit_test(profile_names),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
