/* cmd_logout.c: `mlauth logout`: revoke at the provider, then delete the stored session. */
#include <stdio.h>
#include <string.h>

#include "mlauth/cache.h"
#include "mlauth/cmd.h"
#include "mlauth/lock.h"
#include "mlauth/oidc.h"
#include "mlauth/store.h"
#include "mlauth/token.h"

static const struct option options[] = {
	{ "local", no_argument, NULL, 'l' },
	{ NULL, 0, NULL, 0 }
};

/* Revoke r's refresh token; ML_OK or the reason it could not be done. */
static int
revoke(struct cmd_ctx *ctx, const struct record *r, struct ml_err *err)
{
	struct oidc_provider p;
	struct http_opts ho;
	int rc;

	memset(&p, 0, sizeof p);
	token_http_opts(&ctx->cfg, ctx->verbose, &ho);
	if ((rc = http_global_init(err)) == ML_OK &&
	    (rc = oidc_discover(&ho, ctx->cfg.issuer, &p, err)) == ML_OK)
		rc = oidc_revoke(&ho, &p, ctx->cfg.client_id, r->refresh_token, err);
	oidc_provider_free(&p);
	return rc;
}

static int
exec_logout(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct record r;
	struct store st;
	struct ml_err err, rerr;
	bool local = false, found = false, revoked = false;
	int c, status, lockfd = -1;

	while ((c = cmd_getopt(ctx, argc, argv, &status)) != -1) {
		if (c == CMD_OPT_DONE)
			return status;
		if (c == 'l')
			local = true;
	}
	if (optind < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);

	err_clear(&err);
	err_clear(&rerr);
	if (store_open(&ctx->cfg, &st, &err) != ML_OK)
		return cmd_fail(ctx, &err);
	/*
	 * Under the profile's lock from load to delete: a refresh in flight
	 * would otherwise save the session back after we deleted it.
	 */
	if (lock_acquire(ctx->cfg.profile, &lockfd, &err) != ML_OK) {
		store_close(&st);
		return cmd_fail(ctx, &err);
	}
	if (token_load(&ctx->cfg, &st, &r, &err) == ML_OK && !local &&
	    r.refresh_token != NULL) {
		if (revoke(ctx, &r, &rerr) == ML_OK)
			revoked = true;
		else
			cmd_warn(ctx, "could not revoke the session at the provider (%s); "
			    "deleting it here anyway", rerr.msg);
	}
	record_free(&r);
	err_clear(&err);
	cache_remove(ctx->cfg.profile, ctx->cfg.issuer, ctx->cfg.client_id);
	/* A refreshed session the store could not take dies with the rest. */
	cache_stash_remove(ctx->cfg.profile, ctx->cfg.issuer, ctx->cfg.client_id);
	if ((status = store_delete(&st, ctx->cfg.profile, &found, &err)) != ML_OK) {
		status = cmd_fail(ctx, &err);
	} else if (!found) {
		cmd_info(ctx, "Not logged in (profile %s): nothing to do.", ctx->cfg.profile);
	} else {
		cmd_info(ctx, "Logged out (profile %s)%s.", ctx->cfg.profile,
		    revoked ? "; session revoked at the provider and deleted here" :
		    "; session deleted here only");
	}
	lock_release(lockfd);
	store_close(&st);
	return status;
}

const struct cmd_entry cmd_logout_entry = {
	.name = "logout",
	.summary = "revoke the session at the provider and delete the stored tokens",
	.usage = "[--local]",
	.help =
	    "Options:\n"
	    "  -l, --local   only delete the stored tokens; do not contact the provider\n"
	    "\nA failed revocation still deletes the local session, with a warning.\n",
	.options = options,
	.exec = exec_logout,
};
