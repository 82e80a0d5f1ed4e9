/* cmd_token.c: `mlauth token`: print an access token valid for the next few minutes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mlauth/cmd.h"
#include "mlauth/store.h"
#include "mlauth/token.h"
#include "mlauth/util.h"

enum { OPT_NO_REFRESH = 256, OPT_FORMAT };

static const struct option options[] = {
	{ "header", no_argument, NULL, 'H' },
	{ "json", no_argument, NULL, 'j' },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "min-valid", required_argument, NULL, 'm' },
	{ "no-refresh", no_argument, NULL, OPT_NO_REFRESH },
	{ NULL, 0, NULL, 0 }
};

enum format { FMT_PLAIN, FMT_HEADER, FMT_JSON };

static int
print_token(const struct record *r, enum format fmt)
{
	json_t *o;
	char *s;

	switch (fmt) {
	case FMT_PLAIN:
		printf("%s\n", r->access_token);
		return ML_OK;
	case FMT_HEADER:
		printf("Authorization: Bearer %s\n", r->access_token);
		return ML_OK;
	case FMT_JSON:
		break;
	}
	o = json_pack("{s:s,s:I,s:I,s:s}", "access_token", r->access_token,
	    "expires_at", (json_int_t)r->expires_at,
	    "expires_in", (json_int_t)(r->expires_at - util_now()),
	    "token_type", r->token_type != NULL ? r->token_type : "Bearer");
	s = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (s == NULL)
		return ML_EFAIL;
	printf("%s\n", s);
	free(s);
	return ML_OK;
}

/* A number of seconds from the command line, or -1. */
static long
parse_seconds(const char *s)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	return errno != 0 || *end != '\0' || v > 86400L * 365 ? -1 : v;
}

static int
exec_token(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct token_opts o = { .min_valid = ctx->cfg.min_valid };
	struct token_result res;
	struct store st;
	struct ml_err err;
	enum format fmt = FMT_PLAIN;
	int c, status;

	while ((c = cmd_getopt(ctx, argc, argv, &status)) != -1) {
		switch (c) {
		case CMD_OPT_DONE:
			return status;
		case 'H':
			fmt = FMT_HEADER;
			break;
		case 'j':
			fmt = FMT_JSON;
			break;
		case OPT_FORMAT:
			if (strcmp(optarg, "plain") == 0)
				fmt = FMT_PLAIN;
			else if (strcmp(optarg, "header") == 0)
				fmt = FMT_HEADER;
			else if (strcmp(optarg, "json") == 0)
				fmt = FMT_JSON;
			else
				return cmd_usage_error(ctx, "--format must be plain, header or json");
			break;
		case 'm':
			if ((o.min_valid = parse_seconds(optarg)) < 0)
				return cmd_usage_error(ctx, "--min-valid needs whole seconds, not '%s'",
				    optarg);
			break;
		case OPT_NO_REFRESH:
			o.no_refresh = true;
			break;
		}
	}
	if (optind < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);

	err_clear(&err);
	if (store_open(&ctx->cfg, &st, &err) != ML_OK)
		return cmd_fail(ctx, &err);
	status = token_get_fresh(&ctx->cfg, ctx->verbose, &st, &o, &res, &err);
	if (status == ML_OK) {
		if (res.refreshed && st.fell_back)
			cmd_warn(ctx, "%s; session kept in %s", st.reason, store_describe(&st));
		if (res.warning[0] != '\0')
			cmd_warn(ctx, "%s", res.warning);
		status = print_token(&res.rec, fmt);
	} else {
		status = cmd_fail(ctx, &err);
	}
	token_result_free(&res);
	store_close(&st);
	return status;
}

const struct cmd_entry cmd_token_entry = {
	.name = "token",
	.summary = "print a valid access token (refreshed when close to expiry)",
	.usage = "[--header | --json] [--min-valid SECS] [--no-refresh]",
	.help =
	    "Options:\n"
	    "  -H, --header          print 'Authorization: Bearer TOKEN'\n"
	    "  -j, --json            print {\"access_token\",\"expires_at\",\"expires_in\",\"token_type\"}\n"
	    "      --format FMT      plain (default), header or json\n"
	    "  -m, --min-valid SECS  the token must stay valid this long (default: setting\n"
	    "                        min_valid, 300); capped at half the token's lifetime\n"
	    "      --no-refresh      never use the network; exit 3 when the token is stale\n"
	    "\nStdout carries the token and one newline, nothing else.  Example:\n"
	    "  curl -H \"$(mlauth token --header)\" https://...\n",
	.options = options,
	.exec = exec_token,
};
