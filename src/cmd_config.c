/* cmd_config.c: `mlauth config`: every effective setting and where it came from. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "mlauth/cmd.h"

static const struct option options[] = {
	{ "json", no_argument, NULL, 'j' },
	{ NULL, 0, NULL, 0 }
};

static int
print_json(const struct config *cfg)
{
	json_t *o = json_object(), *s = json_object();
	int rc = ML_OK;

	if (o == NULL || s == NULL) {
		rc = ML_EFAIL;
		goto out;
	}
	json_object_set_new(o, "profile", json_pack("{s:s,s:s}", "value", cfg->profile,
	    "source", cfg->profile_source));
	json_object_set_new(o, "config_file", json_pack("{s:s?,s:b}", "path", cfg->file,
	    "exists", cfg->file_exists));
	for (int k = 0; k < CONFIG_NKEYS; k++)
		json_object_set_new(s, config_key_name((enum config_key)k),
		    json_pack("{s:s,s:s,s:s}", "value", cfg->v[k].value, "source",
		    cfg->v[k].source, "env", config_key_env((enum config_key)k)));
	json_object_set(o, "settings", s);
	if (json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0)
		rc = ML_EFAIL;
	putchar('\n');
out:
	json_decref(s);
	json_decref(o);
	return rc;
}

static void
print_text(const struct config *cfg)
{
	printf("%-17s %-46s (%s)\n", "profile", cfg->profile, cfg->profile_source);
	printf("%-17s %-46s (%s)\n", "config file", cfg->file != NULL ? cfg->file : "none",
	    cfg->file_exists ? "read" : "not present");
	for (int k = 0; k < CONFIG_NKEYS; k++) {
		const char *v = cfg->v[k].value;

		printf("%-17s %-46s (%s)\n", config_key_name((enum config_key)k),
		    v[0] != '\0' ? v : "-", cfg->v[k].source);
	}
}

static int
exec_config(struct cmd_ctx *ctx, int argc, char **argv)
{
	bool json = false;
	int c, status, k;

	while ((c = cmd_getopt(ctx, argc, argv, &status)) != -1) {
		if (c == CMD_OPT_DONE)
			return status;
		if (c == 'j')
			json = true;
	}
	if (argc - optind > 1)
		return cmd_usage_error(ctx, "too many arguments");
	if (argc - optind == 1) {
		if (json)
			return cmd_usage_error(ctx, "--json shows all settings, not one KEY");
		if ((k = config_key_from_name(argv[optind])) < 0)
			return cmd_usage_error(ctx, "unknown setting '%s'", argv[optind]);
		printf("%s\n", ctx->cfg.v[k].value);
		return ML_OK;
	}
	if (json)
		return print_json(&ctx->cfg);
	print_text(&ctx->cfg);
	return ML_OK;
}

const struct cmd_entry cmd_config_entry = {
	.name = "config",
	.summary = "show the effective settings and where each comes from",
	.usage = "[--json] [KEY]",
	.help =
	    "Options:\n"
	    "  -j, --json   print the settings as JSON (value, source, env var of each)\n"
	    "  KEY          print only that setting's value (e.g. mlauth config issuer)\n"
	    "\nSettings come from, highest first: the command line (-p, -c, -o KEY=VALUE),\n"
	    "MLAUTH_* environment variables, the config file's [PROFILE] group, defaults.\n",
	.options = options,
	.exec = exec_config,
};
