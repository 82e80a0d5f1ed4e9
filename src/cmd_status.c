/* cmd_status.c: `mlauth status`: who is logged in, until when, where it is kept; no secrets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mlauth/cmd.h"
#include "mlauth/http.h"
#include "mlauth/jwt.h"
#include "mlauth/sanitize.h"
#include "mlauth/session.h"
#include "mlauth/store.h"
#include "mlauth/token.h"
#include "mlauth/util.h"
#include "mlauth/verify.h"

enum { OPT_VERIFY = 256 };

static const struct option options[] = {
	{ "json", no_argument, NULL, 'j' },
	{ "verify", no_argument, NULL, OPT_VERIFY },
	{ NULL, 0, NULL, 0 }
};

struct view {
	const char *user, *email, *name, *scope;
	const char *who;	/* session_who's name: the one login greeted */
	int64_t now;
	bool session_ok;	/* a token or a refresh still works */
	bool would_refresh;
	bool verify;		/* --verify: the rest is its outcome */
	int verify_rc;		/* ML_OK: verified */
	struct jwt_header head;
	struct ml_err verify_err;
};

/*
 * --verify: the access token checked against the provider's keys, fetched
 * now (the only network use of status).  The outcome is kept in v.
 */
static void
verify_now(struct cmd_ctx *ctx, const struct record *r, struct view *v)
{
	struct oidc_provider p;
	struct http_opts ho;
	int64_t discovered_at;

	memset(&p, 0, sizeof p);
	err_clear(&v->verify_err);
	v->verify = true;
	token_http_opts(&ctx->cfg, ctx->verbose, &ho);
	if ((v->verify_rc = http_global_init(&v->verify_err)) == ML_OK &&
	    (v->verify_rc = oidc_discover(&ho, r->issuer, &p, &v->verify_err)) == ML_OK) {
		discovered_at = util_now();
		v->verify_rc = verify_access_token(&ho, &p, r->client_id, r->access_token,
		    discovered_at, &v->head, &v->verify_err);
	}
	oidc_provider_free(&p);
}

static void
describe(const struct record *r, const struct jwt_claims *at, const struct jwt_claims *id,
    long min_valid, struct view *v)
{
	struct session_who w;

	memset(v, 0, sizeof *v);
	v->now = util_now();
	session_who(at, id, &w);
	v->user = w.user;
	v->email = w.email;
	v->name = id->name ? id->name : at->name;
	v->who = w.name;	/* as login greeted them */
	v->scope = r->scope ? r->scope : at->scope;
	v->would_refresh = !session_refused(r) && !session_fresh(r, min_valid, v->now);
	v->session_ok = session_usable(r, v->now);
}

static int
print_json(const struct config *cfg, const struct store *st, const struct record *r,
    const struct view *v)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:s?,s:s?,s:I,s:I,s:o,s:o,s:b,s:s?,s:b,s:b,s:s}",
	    "profile", cfg->profile, "issuer", r->issuer, "client_id", r->client_id,
	    "user", v->user, "email", v->email, "name", v->name, "scope", v->scope,
	    "expires_at", (json_int_t)r->expires_at,
	    "expires_in", (json_int_t)(r->expires_at - v->now),
	    "refresh_expires_at", r->refresh_expires_at ?
	    json_integer(r->refresh_expires_at) : json_null(),
	    "refused_at", r->refused_at ? json_integer(r->refused_at) : json_null(),
	    "has_refresh_token", r->refresh_token != NULL,
	    "session", record_session_name(r->session),
	    "would_refresh", v->would_refresh, "logged_in", v->session_ok,
	    "store", store_describe(st));

	if (o != NULL && v->verify &&
	    (json_object_set_new(o, "verified", json_boolean(v->verify_rc == ML_OK)) != 0 ||
	    json_object_set_new(o, "verify_error", v->verify_rc == ML_OK ? json_null() :
	    json_string(v->verify_err.msg)) != 0)) {
		json_decref(o);
		return ML_EFAIL;
	}
	if (o == NULL || json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
		json_decref(o);
		return ML_EFAIL;
	}
	putchar('\n');
	json_decref(o);
	return ML_OK;
}

static void
print_text(const struct config *cfg, const struct store *st, const struct record *r,
    const struct view *v)
{
	char at[32], in[32], who[256], user[256], email[256], scope[512];

	printf("Profile:      %s\n", cfg->profile);
	printf("Issuer:       %s\n", r->issuer);
	printf("Client:       %s\n", r->client_id);
	/* The person as login named them; the user name apart when it differs. */
	if (v->who != NULL || v->email != NULL)
		printf("User:         %s%s%s%s\n",
		    sanitize_str(v->who, SAN_ONELINE, who, sizeof who),
		    v->email && v->who ? " (" : "",
		    sanitize_str(v->email, SAN_ONELINE, email, sizeof email),
		    v->email && v->who ? ")" : "");
	if (v->user != NULL && v->who != NULL && strcmp(v->user, v->who) != 0)
		printf("Username:     %s\n", sanitize_str(v->user, SAN_ONELINE, user, sizeof user));
	if (v->scope != NULL)	/* claims are the provider's words: no escapes from them */
		printf("Scopes:       %s\n", sanitize_str(v->scope, SAN_ONELINE, scope, sizeof scope));
	util_format_time(r->expires_at, at, sizeof at);
	util_format_duration(r->expires_at > v->now ? r->expires_at - v->now :
	    v->now - r->expires_at, in, sizeof in);
	if (r->expires_at > v->now)
		printf("Access token: valid until %s (in %s)\n", at, in);
	else
		printf("Access token: expired at %s (%s ago)\n", at, in);
	if (r->refresh_token == NULL && !session_refused(r)) {
		printf("Session:      no refresh token: run mlauth login when the token expires\n");
	} else {
		char end[320];

		session_describe_end(r, v->now, false, end, sizeof end);
		printf("Session:      %s%s\n", end, v->session_ok ? "" : ": run mlauth login");
	}
	printf("Store:        %s\n", store_describe(st));
	printf("Refresh:      %s\n", !v->session_ok ? "impossible: run mlauth login" :
	    v->would_refresh ? "due now (mlauth token will refresh)" : "not needed yet");
	if (!v->verify)
		return;
	if (v->verify_rc == ML_OK)
		printf("Verified:     yes: signed with the provider's key (%s%s%s), issuer and "
		    "expiry check out\n", v->head.alg, v->head.kid[0] ? ", key id " : "",
		    v->head.kid);
	else
		printf("Verified:     NO: %s\n", v->verify_err.msg);
}

static int
exec_status(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct jwt_claims at, id;
	struct record r;
	struct store st;
	struct ml_err err;
	struct view v;
	bool json = false, verify = false;
	int c, status;

	while ((c = cmd_getopt(ctx, argc, argv, &status)) != -1) {
		if (c == CMD_OPT_DONE)
			return status;
		if (c == 'j')
			json = true;
		if (c == OPT_VERIFY)
			verify = true;
	}
	if (optind < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);

	err_clear(&err);
	memset(&at, 0, sizeof at);
	memset(&id, 0, sizeof id);
	if (store_open(&ctx->cfg, &st, &err) != ML_OK)
		return cmd_fail(ctx, &err);
	if ((status = token_load(&ctx->cfg, &st, &r, &err)) != ML_OK) {
		if (json && status == ML_ELOGIN)
			printf("{\"profile\": \"%s\", \"logged_in\": false}\n", ctx->cfg.profile);
		status = cmd_fail(ctx, &err);
		goto out;
	}
	/* Claims only label the output: an undecodable token still has an expiry. */
	(void)jwt_claims_parse(r.access_token, &at, NULL);
	if (r.id_token != NULL)
		(void)jwt_claims_parse(r.id_token, &id, NULL);
	describe(&r, &at, &id, ctx->cfg.min_valid, &v);
	if (verify)
		verify_now(ctx, &r, &v);
	if (json)
		status = print_json(&ctx->cfg, &st, &r, &v);
	else
		print_text(&ctx->cfg, &st, &r, &v);
	if (status == ML_OK && v.verify && v.verify_rc != ML_OK) {
		err_prefix(&v.verify_err, v.verify_rc == ML_EFAIL ? "the access token failed "
		    "verification" : "cannot verify the access token");
		status = cmd_fail(ctx, &v.verify_err);
	} else if (status == ML_OK && !v.session_ok)
		status = ML_ELOGIN;
out:
	jwt_claims_free(&at);
	jwt_claims_free(&id);
	record_free(&r);
	store_close(&st);
	return status;
}

const struct cmd_entry cmd_status_entry = {
	.name = "status",
	.summary = "who is logged in, until when, where the tokens are kept",
	.usage = "[--json] [--verify]",
	.help =
	    "Options:\n"
	    "  -j, --json   print the same as JSON\n"
	    "      --verify check the access token's signature, issuer and expiry against\n"
	    "               the provider's published keys (asks the provider)\n"
	    "\nNever prints a token.  Exit status 0 when the session is usable, 3 when\n"
	    "not logged in or the session has expired; with --verify, 1 when the token\n"
	    "fails the check and 4 when the provider cannot be reached.\n",
	.options = options,
	.exec = exec_status,
};
