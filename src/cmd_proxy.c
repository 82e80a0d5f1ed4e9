/*
 * cmd_proxy.c: `mlauth proxy`: a local gateway that keeps every tool
 * authenticated for as long as it runs, and `mlauth proxy --env`, the export
 * lines that point a shell at a running one.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mlauth/cmd.h"
#include "mlauth/http.h"
#include "mlauth/proxy.h"
#include "mlauth/secret.h"
#include "mlauth/tokenfmt.h"

#define PROXY_GRACE_MS	3000L	/* open requests may finish this long after Ctrl-C */

enum { OPT_PORT = 256, OPT_ENV, OPT_SHELL };

static const struct option options[] = {
	{ "port", required_argument, NULL, OPT_PORT },
	{ "env", no_argument, NULL, OPT_ENV },
	{ "shell", required_argument, NULL, OPT_SHELL },
	{ "min-valid", required_argument, NULL, 'm' },
	{ NULL, 0, NULL, 0 }
};

static volatile sig_atomic_t stop_signal;

static void
on_stop(int sig)
{
	stop_signal = sig;
}

/*
 * SIGINT, SIGTERM and SIGHUP end the proxy, gently: not through
 * http_interrupted, which would cut every open stream at once.
 */
static void
catch_stop_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa, old;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN &&
		    sigs[i] == SIGHUP)
			continue;	/* nohup */
		(void)sigaction(sigs[i], &sa, NULL);
	}
	/* A client that hangs up must not end the proxy. */
	(void)signal(SIGPIPE, SIG_IGN);
}

int
cmd_proxy_start(struct cmd_ctx *ctx, long min_valid, unsigned port, struct proxy_opts *po,
    struct proxy **p)
{
	struct ml_err err;
	int rc;

	memset(po, 0, sizeof *po);
	po->cfg = &ctx->cfg;
	po->verbose = ctx->verbose;
	po->min_valid = min_valid;
	po->port = port;
	po->say = cmd_say;
	po->say_arg = ctx;
	err_clear(&err);
	if ((rc = proxy_start(po, p, &err)) != ML_OK)
		return cmd_fail(ctx, &err);
	return ML_OK;
}

static int
print_env(struct cmd_ctx *ctx, enum cmd_shell sh)
{
	struct ml_err err;
	char *url = NULL, *key = NULL;

	err_clear(&err);
	if (proxy_lookup(ctx->cfg.profile, &url, &key, &err) != ML_OK)
		return cmd_fail(ctx, &err);
	cmd_put_export(sh, "ANTHROPIC_BASE_URL", url);
	cmd_put_export(sh, "ANTHROPIC_API_KEY", key);
	/* Some tools read only this one; the proxy takes its key either way. */
	cmd_put_export(sh, "ANTHROPIC_AUTH_TOKEN", key);
	free(url);
	secret_free(key);
	return ML_OK;
}

static int
serve(struct cmd_ctx *ctx, long min_valid, unsigned port)
{
	struct timespec tick = { 0, 100 * 1000000L };
	struct proxy_opts po;
	struct proxy *p = NULL;
	struct ml_err err;
	int fd = -1, status;

	catch_stop_signals();
	if ((status = cmd_proxy_start(ctx, min_valid, port, &po, &p)) != ML_OK)
		return status;
	err_clear(&err);
	if (proxy_publish(p, ctx->cfg.profile, &fd, &err) != ML_OK) {
		proxy_stop(p, 0);
		return cmd_fail(ctx, &err);
	}
	cmd_info(ctx, "mlauth: proxy for profile %s listening on %s (Ctrl-C stops it); "
	    "point a shell at it with: eval \"$(mlauth proxy --env)\"", ctx->cfg.profile,
	    proxy_url(p));
	while (stop_signal == 0)
		(void)nanosleep(&tick, NULL);
	if (ctx->verbose)
		cmd_info(ctx, "mlauth: stopping the proxy (%lu requests served, %lu tokens "
		    "replaced after a 401)", proxy_requests(p), proxy_refreshes(p));
	proxy_unpublish(fd);
	proxy_stop(p, PROXY_GRACE_MS);
	return ML_OK;
}

static int
exec_proxy(struct cmd_ctx *ctx, int argc, char **argv)
{
	long min_valid = ctx->cfg.min_valid, port = 0;
	enum cmd_shell sh = cmd_shell_default();
	bool env = false, shell_given = false;
	char *end;
	int c, status;

	while ((c = cmd_getopt(ctx, argc, argv, &status)) != -1) {
		switch (c) {
		case CMD_OPT_DONE:
			return status;
		case OPT_PORT:
			port = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || port < 1 || port > 65535)
				return cmd_usage_error(ctx, "--port needs a port number from 1 to "
				    "65535, not '%s'", optarg);
			break;
		case OPT_ENV:
			env = true;
			break;
		case OPT_SHELL:
			if (cmd_shell_parse(optarg, &sh) != 0)
				return cmd_usage_error(ctx, "--shell must be sh or fish, not '%s'",
				    optarg);
			shell_given = true;
			break;
		case 'm':
			if ((min_valid = tokenfmt_seconds(optarg)) < 0)
				return cmd_usage_error(ctx, "--min-valid needs whole seconds, not '%s'",
				    optarg);
			break;
		}
	}
	if (optind < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	if (shell_given && !env)
		return cmd_usage_error(ctx, "--shell goes with --env");
	if (env)
		return print_env(ctx, sh);
	return serve(ctx, min_valid, (unsigned)port);
}

const struct cmd_entry cmd_proxy_entry = {
	.name = "proxy",
	.summary = "serve the messages API on 127.0.0.1, always with a fresh token",
	.usage = "[--port N] [--min-valid SECS] | --env [--shell sh|fish]",
	.help =
	    "Options:\n"
	    "      --port N          listen on 127.0.0.1:N (default: a free port)\n"
	    "  -m, --min-valid SECS  a forwarded token must stay valid this long (default:\n"
	    "                        setting min_valid, 300; capped at half its lifetime)\n"
	    "      --env             print export lines for the proxy running for this\n"
	    "                        profile (ANTHROPIC_BASE_URL; its key as ANTHROPIC_API_KEY\n"
	    "                        and ANTHROPIC_AUTH_TOKEN), and exit\n"
	    "      --shell SHELL     with --env: sh (default) or fish\n"
	    "\nForwards every request to api_base with a fresh Authorization: Bearer token,\n"
	    "refreshed once per token lifetime, and streams each answer back as it comes.\n"
	    "It listens on 127.0.0.1 only and serves only requests that carry its key,\n"
	    "made anew for every run, as x-api-key or Authorization: Bearer (which is how\n"
	    "SDKs send ANTHROPIC_API_KEY); others get 401.  A 401 from the API gets one\n"
	    "refresh and the request again.  With -v, one line per request on stderr.\n"
	    "Ctrl-C or SIGTERM stop it; open requests get 3 seconds to finish.\n"
	    "\nExamples:\n"
	    "  mlauth proxy &  eval \"$(mlauth proxy --env)\"  python3 batch_job.py\n"
	    "  mlauth exec --proxy -- python3 batch_job.py   (a proxy for one command)\n",
	.options = options,
	.exec = exec_proxy,
};
