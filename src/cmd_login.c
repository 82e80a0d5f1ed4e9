/* cmd_login.c: `mlauth login`: the OAuth device flow, tokens into the store. */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mlauth/cmd.h"
#include "mlauth/http.h"
#include "mlauth/jwt.h"
#include "mlauth/lock.h"
#include "mlauth/oidc.h"
#include "mlauth/sanitize.h"
#include "mlauth/session.h"
#include "mlauth/store.h"
#include "mlauth/term.h"
#include "mlauth/token.h"
#include "mlauth/util.h"
#include "mlauth/verify.h"

extern char **environ;

enum { OPT_NO_BROWSER = 256, OPT_QR };

/* How often the status line is redrawn while waiting: four times a second. */
#define FRAME_MS 250
/* The longest pause between polls while the provider cannot be reached, in seconds. */
#define LOGIN_BACKOFF_MAX 60

static const struct option options[] = {
	{ "no-browser", no_argument, NULL, OPT_NO_BROWSER },
	{ "qr", no_argument, NULL, OPT_QR },
	{ "force", no_argument, NULL, 'f' },
	{ NULL, 0, NULL, 0 }
};

/* Open url in the desktop's browser, without a shell and without waiting for it. */
static void
open_browser(const char *url)
{
	posix_spawn_file_actions_t fa;
	char *argv[] = { "xdg-open", (char *)url, NULL };
	pid_t pid;

	if (posix_spawn_file_actions_init(&fa) != 0)
		return;
	/* The browser's chatter must not mix with our prompt, nor its stdout with ours. */
	(void)posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	(void)posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	(void)posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	(void)posix_spawnp(&pid, "xdg-open", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
}

static bool
have_display(void)
{
	const char *d = getenv("DISPLAY"), *w = getenv("WAYLAND_DISPLAY");

	return (d != NULL && *d != '\0') || (w != NULL && *w != '\0');
}

/*
 * While waiting on a terminal: one status line with a spinner and the time
 * left, redrawn in place and erased before anything else is printed.
 */
struct waiting {
	bool live;		/* stderr is a terminal and not -q */
	bool shown;		/* the status line is on the screen */
	unsigned long tick;
	int64_t deadline;	/* the device code's expiry, util_now() clock */
};

static int64_t
monotonic_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
waiting_draw(struct waiting *w)
{
	/* Shorter forms for narrow terminals: the countdown is the part to keep. */
	static const char *const forms[] = { " Waiting for approval; the code expires in ",
		" Waiting; expires in ", " " };
	char left[24], line[128];
	int n = -1, cols = term_columns(STDERR_FILENO);
	const char *spin = term_spinner(w->tick++);

	(void)term_countdown((long)(w->deadline - util_now()), left, sizeof left);
	for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		n = snprintf(line, sizeof line, "%s%s%s", spin, forms[i], left);
		if (n < 0)
			return;
		if ((size_t)n >= sizeof line)
			n = (int)sizeof line - 1;
		if (cols <= 1 || n < cols)
			break;
	}
	/* A line that wrapped could not be redrawn in place. */
	if (cols > 1 && n >= cols)
		n = cols - 1;
	fprintf(stderr, "\r%.*s" TERM_ERASE_EOL, n, line);
	w->shown = true;
}

static void
waiting_clear(struct waiting *w)
{
	if (w->shown)
		fputs(TERM_CLEAR_LINE, stderr);
	w->shown = false;
}

/* Sleep ms (ML_EINTR on Ctrl-C), redrawing the status line meanwhile when it is live. */
static int
waiting_sleep(struct waiting *w, long ms)
{
	int64_t end = monotonic_ms() + ms, left;
	int rc;

	if (!w->live)
		return cmd_sleep_ms(ms);
	while ((left = end - monotonic_ms()) > 0) {
		waiting_draw(w);
		if ((rc = cmd_sleep_ms(left < FRAME_MS ? (long)left : FRAME_MS)) != ML_OK)
			return rc;
	}
	return ML_OK;
}

/* Poll until approved, denied, expired or interrupted; the status line is gone after. */
static int
poll_until_done(struct cmd_ctx *ctx, const struct http_opts *ho,
    const struct oidc_provider *p, const struct oidc_device *d, struct waiting *w,
    struct oidc_tokens *t, struct ml_err *err)
{
	long interval = d->interval, backoff = 0;
	int rc;

	for (;;) {
		if ((rc = waiting_sleep(w, (backoff > 0 ? backoff : interval) * 1000)) != ML_OK) {
			rc = err_set(err, rc, "login interrupted");
			break;
		}
		if (util_now() > w->deadline) {
			rc = err_set(err, ML_EFAIL, "the code expired before it was approved: "
			    "run mlauth login again");
			break;
		}
		if (ctx->verbose >= 2)
			waiting_clear(w);	/* the HTTP trace gets lines of its own */
		rc = oidc_device_poll(ho, p, ctx->cfg.client_id, d, t, err);
		if (rc == ML_ENET) {
			/*
			 * RFC 8628 3.5: a network error or a provider in trouble is no
			 * reason to give up the code; poll less often until it expires.
			 */
			if (backoff == 0) {
				waiting_clear(w);
				cmd_info(ctx, "The identity provider cannot be reached (%s); still "
				    "waiting, trying less often.", err->msg);
			}
			backoff = backoff == 0 ? 2 * interval : 2 * backoff;
			if (backoff > LOGIN_BACKOFF_MAX)
				backoff = LOGIN_BACKOFF_MAX;
			err_clear(err);
			continue;
		}
		if (backoff > 0 && rc != ML_EINTR) {
			backoff = 0;
			if (ctx->verbose) {
				waiting_clear(w);
				cmd_info(ctx, "the identity provider answers again");
			}
		}
		if (rc == OIDC_PENDING)
			continue;
		if (rc == OIDC_SLOW_DOWN) {
			/* RFC 8628 3.5: every slow_down adds five seconds for good. */
			interval += 5;
			if (ctx->verbose) {
				waiting_clear(w);
				cmd_info(ctx, "provider asked to slow down: polling every %lds",
				    interval);
			}
			continue;
		}
		break;
	}
	waiting_clear(w);
	return rc;
}

/* The link as a QR code for a phone's camera; a link too long for one is only a warning. */
static void
print_qr(const struct cmd_ctx *ctx, const char *url)
{
	struct ml_err err;
	char *qr;

	err_clear(&err);
	if (term_qr(url, ctx->color, &qr, &err) != ML_OK) {
		cmd_warn(ctx, "%s", err.msg);
		return;
	}
	fprintf(stderr, "%s\n", qr);
	free(qr);
}

/* A session exists that needs no login: the access token or its refresh works. */
static bool
logged_in(struct cmd_ctx *ctx, struct store *st, struct record *r)
{
	struct ml_err ignored;

	if (token_load(&ctx->cfg, st, r, &ignored) != ML_OK)
		return false;
	return session_usable(r, util_now());
}

static void
print_welcome(struct cmd_ctx *ctx, const struct record *r)
{
	struct jwt_claims at, id;
	struct session_who w;
	char until[32], session[160], shown_who[256], shown_email[256];

	(void)jwt_claims_parse(r->access_token, &at, NULL);
	memset(&id, 0, sizeof id);
	if (r->id_token != NULL)
		(void)jwt_claims_parse(r->id_token, &id, NULL);
	session_who(&at, &id, &w);
	util_format_time(r->expires_at, until, sizeof until);
	session_describe_end(r, util_now(), true, session, sizeof session);
	/*
	 * The provider chose these claims: no terminal escapes from them.  Two
	 * short lines rather than one of 135 characters; the issuer without its
	 * scheme, which status shows in full.
	 */
	printf("Logged in as %s%s%s%s to %s\nToken valid until %s; %s.\n",
	    sanitize_str(w.name ? w.name : "unknown", SAN_ONELINE, shown_who, sizeof shown_who),
	    w.email ? " (" : "",
	    w.email ? sanitize_str(w.email, SAN_ONELINE, shown_email, sizeof shown_email) : "",
	    w.email ? ")" : "", strstr(r->issuer, "://") != NULL ?
	    strstr(r->issuer, "://") + 3 : r->issuer, until + 11, session);
	jwt_claims_free(&at);
	jwt_claims_free(&id);
}

/* One device-flow login: what it needs and the scope it asks for. */
struct login {
	struct cmd_ctx *ctx;
	const struct http_opts *ho;
	const struct oidc_provider *p;
	const char *scope;	/* becomes "openid" when the provider refuses it */
	bool browser, qr;
	bool retried;		/* a second code was asked for already */
};

/*
 * The prompt is for a person: stderr, so stdout stays clean for scripts.
 * Link and code are the point of login, so -q keeps them.
 */
static void
prompt(const struct login *l, const struct oidc_device *d)
{
	const struct cmd_ctx *ctx = l->ctx;
	const char *url, *bold = ctx->color ? TERM_BOLD : "", *plain = ctx->color ? TERM_RESET : "";

	url = d->verification_uri_complete ? d->verification_uri_complete : d->verification_uri;
	fprintf(stderr, "To log in, open this link in a browser (on any device):\n\n  %s%s%s\n\n",
	    bold, url, plain);
	if (l->qr)
		print_qr(ctx, url);
	fprintf(stderr, "and check that it shows the code %s%s%s\n", bold, d->user_code, plain);
	if (d->verification_uri_complete != NULL)
		fprintf(stderr, "(or go to %s and type the code).\n", d->verification_uri);
	if (l->browser && have_display()) {
		/* Say so, as gh does: a window popping up unannounced is a surprise. */
		cmd_info(ctx, "Opening the link in your browser (--no-browser: never).");
		open_browser(url);
	}
}

/* Ask for a code (retrying with "openid" on invalid_scope), show it, poll until done. */
static int
device_login(struct login *l, struct oidc_tokens *t, struct ml_err *err)
{
	struct cmd_ctx *ctx = l->ctx;
	struct oidc_device d;
	struct waiting w;
	int status;

	status = oidc_device_start(l->ho, l->p, ctx->cfg.client_id, l->scope, &d, err);
	if (status == ML_EUSAGE && strstr(err->msg, "invalid_scope") != NULL &&
	    strcmp(l->scope, "openid") != 0) {
		cmd_warn(ctx, "the provider refused scope '%s'; logging in with 'openid' "
		    "(the session then ends with the provider's login session)", l->scope);
		l->scope = "openid";
		err_clear(err);
		oidc_device_free(&d);
		status = oidc_device_start(l->ho, l->p, ctx->cfg.client_id, l->scope, &d, err);
	}
	if (status == ML_OK) {
		prompt(l, &d);
		memset(&w, 0, sizeof w);
		w.deadline = util_now() + d.expires_in;
		w.live = !ctx->quiet && term_live(STDERR_FILENO);
		if (!ctx->quiet && !w.live)
			fprintf(stderr, "Waiting for approval...\n");
		status = poll_until_done(ctx, l->ho, l->p, &d, &w, t, err);
	}
	oidc_device_free(&d);
	return status;
}

/*
 * Keycloak (to 26.7 at least) drops offline_access from the request of a
 * client that lacks the scope, without an error: the user should know the
 * session will not last weeks.
 */
static void
warn_online(const struct cmd_ctx *ctx, const struct record *r)
{
	char when[32], in[32];

	if (r->refresh_expires_at <= 0) {
		cmd_warn(ctx, "the provider granted an online session, not the offline one asked "
		    "for (the client may not have the offline_access scope): it ends with your "
		    "login session at the provider");
		return;
	}
	util_format_time(r->refresh_expires_at, when, sizeof when);
	util_format_duration(r->refresh_expires_at - util_now(), in, sizeof in);
	cmd_warn(ctx, "the provider granted an online session, not the offline one asked for "
	    "(the client may not have the offline_access scope): it ends at %s (in %s) unless "
	    "mlauth refreshes it before, and at the latest when your login session at the "
	    "provider does (SSO Session Max); then run mlauth login again", when, in);
}

/*
 * Refusals that come only after the approval, at the token endpoint, with
 * the device code spent: worth one more code (true), after a note.
 * Keycloak refuses offline tokens to a user without the offline_access role
 * (not_allowed): the next login asks for openid alone.  It also checks the
 * user's consent only then, and a poll that arrives while the consent just
 * given is still being saved finds none (invalid_scope, "Client no longer has
 * requested consent from user"): the same login again meets it saved.
 */
static bool
retry_login(struct cmd_ctx *ctx, struct login *l, struct oidc_tokens *t)
{
	bool retry = false;

	if (strcmp(t->error, "not_allowed") == 0 && token_scope_has(l->scope, "offline_access")) {
		cmd_warn(ctx, "the provider does not allow this account an offline session "
		    "(not_allowed); logging in with 'openid' instead: approve the new code "
		    "(the session then ends with the provider's login session)");
		l->scope = "openid";
		retry = true;
	} else if (strcmp(t->error, "invalid_scope") == 0 && !l->retried) {
		cmd_warn(ctx, "the provider refused the approved login (invalid_scope: no consent "
		    "found for it); approve the new code");
		retry = true;
	}
	l->retried |= retry;
	if (retry)
		oidc_tokens_free(t);
	return retry;
}

static int
exec_login(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct oidc_provider p;
	struct oidc_tokens t;
	struct http_opts ho;
	struct record r, fresh;
	struct store st;
	struct ml_err err;
	struct login l;
	bool browser = true, force = false, qr = false, store_open_ok = false;
	int64_t discovered_at;
	int c, status, lockfd = -1;

	while ((c = cmd_getopt(ctx, argc, argv, &status)) != -1) {
		switch (c) {
		case CMD_OPT_DONE:
			return status;
		case OPT_NO_BROWSER:
			browser = false;
			break;
		case OPT_QR:
			qr = true;
			break;
		case 'f':
			force = true;
			break;
		}
	}
	if (optind < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);

	memset(&p, 0, sizeof p);
	memset(&t, 0, sizeof t);
	memset(&r, 0, sizeof r);
	memset(&fresh, 0, sizeof fresh);
	err_clear(&err);
	if ((status = store_open(&ctx->cfg, &st, &err)) != ML_OK)
		goto fail;
	store_open_ok = true;
	if (!force && logged_in(ctx, &st, &r)) {
		cmd_info(ctx, "Already logged in to %s (profile %s); mlauth login --force "
		    "logs in again.", r.issuer, ctx->cfg.profile);
		status = ML_OK;
		goto out;
	}
	/* Before any code is shown: a session that cannot be kept is not worth approving. */
	if ((status = store_writable(&st, &err)) != ML_OK)
		goto fail;
	if (st.fell_back)
		cmd_warn_fallback(ctx, &st);

	cmd_http_opts(ctx, &ho);
	if ((status = http_global_init(&err)) != ML_OK ||
	    (status = oidc_discover(&ho, ctx->cfg.issuer, &p, &err)) != ML_OK)
		goto fail;
	discovered_at = util_now();
	l.ctx = ctx;
	l.ho = &ho;
	l.p = &p;
	l.scope = ctx->cfg.scope;
	l.browser = browser;
	l.qr = qr;
	l.retried = false;
	status = device_login(&l, &t, &err);
	if (status != ML_OK && retry_login(ctx, &l, &t)) {
		err_clear(&err);
		status = device_login(&l, &t, &err);
	}
	if (status != ML_OK)
		goto fail;
	/* OIDC Core 3.1.3.7: tokens that come with an invalid ID token are not kept. */
	if (t.id_token != NULL && (status = verify_id_token(&ho, &p, ctx->cfg.client_id,
	    t.id_token, discovered_at, &err)) != ML_OK) {
		err_prefix(&err, status == ML_EFAIL ? "login refused, nothing stored" :
		    "login not finished, nothing stored");
		goto fail;
	}
	/*
	 * Saved under the profile's lock: a refresh in flight would otherwise
	 * write the old session back over the new one.  A refresh that starts
	 * after us reloads the record under the lock and finds ours fresh.
	 */
	if ((status = lock_acquire(ctx->cfg.profile, &lockfd, &err)) != ML_OK)
		goto fail;
	status = token_store_answer(&ctx->cfg, &st, &t, NULL, p.token_endpoint, &fresh, &err);
	lock_release(lockfd);
	if (status != ML_OK)
		goto fail;
	print_welcome(ctx, &fresh);
	if (fresh.session == RECORD_SESSION_ONLINE && token_scope_has(l.scope, "offline_access"))
		warn_online(ctx, &fresh);
	goto out;
fail:
	status = cmd_fail(ctx, &err);
out:
	record_free(&fresh);
	record_free(&r);
	oidc_tokens_free(&t);
	oidc_provider_free(&p);
	if (store_open_ok)
		store_close(&st);
	return status;
}

const struct cmd_entry cmd_login_entry = {
	.name = "login",
	.summary = "log in with the device flow; tokens kept in the keyring",
	.usage = "[--no-browser] [--qr] [--force]",
	.help =
	    "Options:\n"
	    "      --no-browser  never open a browser; just print the link and code\n"
	    "      --qr          also draw the link as a QR code, for a phone's camera\n"
	    "  -f, --force       log in again even when the current session still works\n"
	    "\nShows a link and a code; approve them in any browser (this works over SSH).\n"
	    "The tokens go to the Secret Service (GNOME Keyring, KWallet, KeePassXC), or to\n"
	    "a 0600 file under ~/.local/state/mlauth where no keyring answers.\n",
	.options = options,
	.exec = exec_login,
};
