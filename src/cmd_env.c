/* cmd_env.c: `mlauth env`: shell commands that export the API base and a fresh token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlauth/cmd.h"
#include "mlauth/token.h"
#include "mlauth/tokenfmt.h"

enum { OPT_SHELL = 256 };

static const struct option options[] = {
	{ "shell", required_argument, NULL, OPT_SHELL },
	{ "min-valid", required_argument, NULL, 'm' },
	{ NULL, 0, NULL, 0 }
};

static int
exec_env(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct token_opts o = { .min_valid = ctx->cfg.min_valid };
	struct token_result res;
	enum cmd_shell sh = cmd_shell_default();
	int c, status;

	while ((c = cmd_getopt(ctx, argc, argv, &status)) != -1) {
		switch (c) {
		case CMD_OPT_DONE:
			return status;
		case OPT_SHELL:
			if (cmd_shell_parse(optarg, &sh) != 0)
				return cmd_usage_error(ctx, "--shell must be sh or fish, not '%s'",
				    optarg);
			break;
		case 'm':
			if ((o.min_valid = tokenfmt_seconds(optarg)) < 0)
				return cmd_usage_error(ctx, "--min-valid needs whole seconds, not '%s'",
				    optarg);
			break;
		}
	}
	if (optind < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);

	if ((status = cmd_fresh_token(ctx, &o, &res)) == ML_OK) {
		cmd_put_export(sh, "ANTHROPIC_BASE_URL", ctx->cfg.api_base);
		cmd_put_export(sh, "ANTHROPIC_AUTH_TOKEN", res.rec.access_token);
	}
	token_result_free(&res);
	return status;
}

const struct cmd_entry cmd_env_entry = {
	.name = "env",
	.summary = "print shell commands that export ANTHROPIC_BASE_URL and a token",
	.usage = "[--shell sh|fish] [--min-valid SECS]",
	.help =
	    "Options:\n"
	    "      --shell SHELL     sh (default; also bash, zsh, dash) or fish (default\n"
	    "                        when $SHELL ends in /fish)\n"
	    "  -m, --min-valid SECS  the token must stay valid this long (default: setting\n"
	    "                        min_valid, 300); capped at half the token's lifetime\n"
	    "\nPrints ANTHROPIC_BASE_URL (setting api_base) and ANTHROPIC_AUTH_TOKEN, each\n"
	    "value single-quoted so the shell runs nothing from it.  The token is not\n"
	    "renewed in the shell afterwards: run it again when it expires, or use\n"
	    "mlauth exec for one command.  Examples:\n"
	    "  eval \"$(mlauth env)\"             (sh, bash, zsh)\n"
	    "  mlauth env --shell fish | source  (fish)\n",
	.options = options,
	.exec = exec_env,
};
