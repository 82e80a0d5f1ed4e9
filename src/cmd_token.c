/* cmd_token.c: `mlauth token`: print an access token valid for the next few minutes. */
#include <stdio.h>
#include <string.h>

#include "mlauth/cmd.h"
#include "mlauth/token.h"
#include "mlauth/tokenfmt.h"
#include "mlauth/util.h"

static int
exec_token(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct token_args a = { .fmt = TOKENFMT_PLAIN, .min_valid = -1 };
	struct token_opts o;
	struct token_result res;
	int c, status;

	while ((c = cmd_getopt(ctx, argc, argv, &status)) != -1) {
		if (c == CMD_OPT_DONE)
			return status;
		if (tokenfmt_option(&a, c, optarg) < 0)
			return c == 'm' ?
			    cmd_usage_error(ctx, "--min-valid needs whole seconds, not '%s'", optarg) :
			    cmd_usage_error(ctx, "--format must be plain, header or json");
	}
	if (optind < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	memset(&o, 0, sizeof o);
	o.min_valid = a.min_valid >= 0 ? a.min_valid : ctx->cfg.min_valid;
	o.no_refresh = a.no_refresh;

	if ((status = cmd_fresh_token(ctx, &o, &res)) == ML_OK &&
	    tokenfmt_write(stdout, a.fmt, res.rec.access_token, res.rec.expires_at,
	    util_now(), res.rec.token_type) != 0)
		status = ML_EFAIL;	/* main reports the write error */
	token_result_free(&res);
	return status;
}

const struct cmd_entry cmd_token_entry = {
	.name = "token",
	.summary = tokenfmt_summary,
	.usage = tokenfmt_usage,
	.help = tokenfmt_help,
	.options = tokenfmt_options,
	.exec = exec_token,
};
