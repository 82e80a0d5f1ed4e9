/*
 * session_refresh.c: the refresh of a session, made so that it cannot be lost.
 *
 * With refresh-token rotation and reuse detection (Keycloak's "Revoke Refresh
 * Token", oidc-provider always), the provider spends the old refresh token the
 * moment it answers; a new one that dies with its process, or that is thrown
 * away because something after the answer failed, ends the session at the next
 * refresh.  So:
 *
 * - the request is sent by a detached process (setsid: its own session and
 *   process group, no terminal; SIGINT, SIGTERM, SIGHUP, SIGPIPE ignored) that
 *   shares the profile's lock with its caller, saves the answer and only then
 *   exits, which lets the lock go.  Killing the caller, its process group or
 *   its terminal cannot stop a refresh once it is on the wire.  The child is
 *   the helper itself, executed afresh (fork alone would inherit GLib's
 *   threads mid-state), told its settings on its command line (no secrets)
 *   and its lock and result pipe as descriptors 3 and 4;
 * - a refresh token in an answer is saved even when the rest of the answer is
 *   refused, and when the store cannot take it (disk full, keyring locked) it
 *   is kept in the kernel keyring, memory only and this user's only, until a
 *   later run saves it (session_recover);
 * - a refresh token the provider refused is marked so (refused_at), and never
 *   presented again.
 */
#define _GNU_SOURCE	/* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mlauth/cache.h"
#include "mlauth/cli.h"
#include "mlauth/http.h"
#include "mlauth/lock.h"
#include "mlauth/oidc.h"
#include "mlauth/secret.h"
#include "mlauth/session.h"
#include "mlauth/store.h"
#include "mlauth/token.h"
#include "mlauth/util.h"

/* The descriptors the child finds its lock and its result pipe on. */
#define CHILD_LOCK_FD	3
#define CHILD_PIPE_FD	4
#define CHILD_MAX_ARGS	(8 + 2 * CONFIG_NKEYS + 4)


int
session_lock(const struct config *cfg, long timeout_ms, int *fd, struct ml_err *err)
{
	return lock_acquire_timeout(cfg->profile, timeout_ms, fd, err);
}

static void set_warning(char *, size_t, const char *, ...) __attribute__((format(printf, 3, 4)));

static void
set_warning(char *warn, size_t warnlen, const char *fmt, ...)
{
	va_list ap;

	if (warn == NULL || warnlen == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(warn, warnlen, fmt, ap);
	va_end(ap);
}

/* A deep copy of r, through its JSON (the one place that knows every field). */
static int
record_copy(const struct record *r, struct record *out, struct ml_err *err)
{
	char *json = NULL;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = record_to_json(r, &json, err)) != ML_OK)
		return rc;
	rc = record_from_json(json, strlen(json), out, err);
	secret_free(json);
	return rc;
}

/* Save r; when the store cannot take it, keep it in the kernel keyring instead. */
static int
save_or_stash(const struct config *cfg, struct store *st, const struct record *r,
    char *warn, size_t warnlen, struct ml_err *err)
{
	char *json = NULL;
	int rc;

	if ((rc = token_save(cfg, st, r, err)) == ML_OK)
		return ML_OK;
	if (record_to_json(r, &json, NULL) != ML_OK)
		return rc;
	if (cache_stash_put(cfg->profile, cfg->issuer, cfg->client_id, json) == 0) {
		set_warning(warn, warnlen, "the refreshed session could not be saved (%.300s); "
		    "it is kept in the kernel keyring (memory only) and the next mlauth run "
		    "saves it", err->msg);
		token_cache(cfg, r);
		rc = ML_OK;
	}
	secret_free(json);
	return rc;
}

/* The answer was refused, but the refresh token it carries is the session now: keep it. */
static void
salvage(const struct config *cfg, struct store *st, const struct oidc_tokens *t,
    const struct record *prev)
{
	struct record keep;
	struct ml_err ignored;

	memset(&keep, 0, sizeof keep);
	if (t->refresh_token == NULL || prev == NULL ||
	    record_copy(prev, &keep, &ignored) != ML_OK)
		goto out;
	secret_free(keep.refresh_token);
	if ((keep.refresh_token = secret_dup(t->refresh_token)) == NULL)
		goto out;
	keep.refresh_expires_at = t->refresh_expires_in > 0 ? util_now() + t->refresh_expires_in : 0;
	(void)save_or_stash(cfg, st, &keep, NULL, 0, &ignored);
out:
	record_free(&keep);
}

int
session_save_answer(const struct config *cfg, struct store *st,
    const struct oidc_tokens *t, const struct record *prev, const char *token_endpoint,
    struct record *out, char *warn, size_t warnlen, struct ml_err *err)
{
	int rc;

	memset(out, 0, sizeof *out);
	if (t->access_token == NULL)
		rc = err_set(err, ML_EFAIL, "the token answer has no access_token");
	else if ((rc = token_answer_record(cfg, t, prev, token_endpoint, out, err)) == ML_OK)
		return save_or_stash(cfg, st, out, warn, warnlen, err);
	record_free(out);
	salvage(cfg, st, t, prev);
	return rc;
}

int
session_recover(const struct config *cfg, struct store *st, struct record *r,
    char *warn, size_t warnlen, struct ml_err *err)
{
	struct record s;
	struct ml_err serr;
	char *json = NULL, when[32];

	if (cache_stash_get(cfg->profile, cfg->issuer, cfg->client_id, &json) != 0)
		return ML_OK;
	if (record_from_json(json, strlen(json), &s, &serr) != ML_OK ||
	    strcmp(s.issuer, cfg->issuer) != 0 || strcmp(s.client_id, cfg->client_id) != 0 ||
	    (r->access_token != NULL && r->obtained_at >= s.obtained_at)) {
		/* Damaged, foreign, or older than what is stored (a login since). */
		cache_stash_remove(cfg->profile, cfg->issuer, cfg->client_id);
		goto out;
	}
	util_format_time(s.obtained_at, when, sizeof when);
	if (store_save(st, cfg->profile, cfg->issuer, cfg->client_id, json, &serr) == ML_OK) {
		cache_stash_remove(cfg->profile, cfg->issuer, cfg->client_id);
		set_warning(warn, warnlen, "saved the session refreshed at %s, which could not be "
		    "saved then and was kept in the kernel keyring", when);
	} else {
		set_warning(warn, warnlen, "the session refreshed at %s still cannot be saved "
		    "(%.300s); using it from the kernel keyring", when, serr.msg);
	}
	record_free(r);
	*r = s;
	memset(&s, 0, sizeof s);
out:
	record_free(&s);
	secret_free(json);
	(void)err;
	return ML_OK;
}

/* The provider refused r's refresh token: say so in the record, drop the token. */
static void
mark_refused(const struct config *cfg, struct store *st, const struct record *r)
{
	struct record dead;
	struct ml_err ignored;

	cache_remove(cfg->profile, cfg->issuer, cfg->client_id);
	if (record_copy(r, &dead, &ignored) == ML_OK) {
		secret_free(dead.refresh_token);
		dead.refresh_token = NULL;
		dead.refused_at = util_now();
		(void)token_save(cfg, st, &dead, &ignored);
		cache_remove(cfg->profile, cfg->issuer, cfg->client_id);
	}
	record_free(&dead);
}

/*
 * One refresh of r over the network, the answer saved (session_save_answer).
 * One request, not two: the token endpoint found at login.  Only a definite
 * refusal of that endpoint (it moved: 404, a redirect) is worth a discovery
 * and a second try; after a timeout the provider may have used the refresh
 * token already, and presenting it again would make a rotating provider
 * revoke the session.
 */
static int
refresh_once(const struct config *cfg, int verbose, struct store *st, const struct record *r,
    struct record *out, char *warn, size_t warnlen, struct ml_err *err)
{
	struct oidc_provider p;
	struct oidc_tokens t;
	struct http_opts ho;
	int rc;

	memset(&p, 0, sizeof p);
	memset(&t, 0, sizeof t);
	token_http_opts(cfg, verbose, &ho);
	if ((rc = http_global_init(err)) != ML_OK)
		return rc;
	if (r->token_endpoint != NULL) {
		p.token_endpoint = r->token_endpoint;
		rc = oidc_refresh(&ho, &p, cfg->client_id, r->refresh_token, &t, err);
		p.token_endpoint = NULL;
		if (rc == ML_OK || t.refresh_token != NULL)
			goto store;
		/* Any other answer may have spent the refresh token: never present it twice. */
		if (t.status != 404 && t.status != 410 && (t.status < 300 || t.status >= 400))
			goto out;
		oidc_tokens_free(&t);
		err_clear(err);
	}
	if ((rc = oidc_discover(&ho, cfg->issuer, &p, err)) != ML_OK)
		goto out;
	rc = oidc_refresh(&ho, &p, cfg->client_id, r->refresh_token, &t, err);
	if (rc != ML_OK && t.refresh_token == NULL)
		goto out;
store:
	if (rc == ML_OK)
		rc = session_save_answer(cfg, st, &t, r, p.token_endpoint, out, warn, warnlen,
		    err);
	else
		salvage(cfg, st, &t, r);	/* refused in part: its refresh token is kept */
out:
	if (rc == ML_ELOGIN)
		mark_refused(cfg, st, r);
	oidc_tokens_free(&t);
	oidc_provider_free(&p);
	return rc;
}

/* ---- the detached child ---- */

/* "CODE\nMESSAGE\nWARNING\n" on fd: the child's verdict. */
static void
verdict_write(int fd, int code, const char *msg, const char *warn)
{
	char buf[sizeof ((struct ml_err *)0)->msg + 1024];
	int n = snprintf(buf, sizeof buf, "%d\n%s\n%s\n", code, msg, warn);
	size_t off = 0, len;

	if (n < 0)
		return;
	len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
	while (off < len) {
		ssize_t w = write(fd, buf + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

/* The child's verdict as read by the parent; ML_EFAIL when it never came. */
static int
verdict_parse(char *buf, char *warn, size_t warnlen, struct ml_err *err)
{
	char *msg, *w, *end;
	long code;

	code = strtol(buf, &end, 10);
	if (end == buf || *end != '\n')
		return err_set(err, ML_EFAIL, "the refresh process ended without an answer "
		    "(see mlauth -v token)");
	msg = end + 1;
	if ((w = strchr(msg, '\n')) == NULL)
		return err_set(err, ML_EFAIL, "the refresh process answered garbage");
	*w++ = '\0';
	w[strcspn(w, "\n")] = '\0';
	if (*w != '\0' && warn != NULL && warnlen > 0)
		(void)snprintf(warn, warnlen, "%s", w);
	if (code == ML_OK)
		return ML_OK;
	return err_set(err, (int)code, "%s", msg);
}

/* The child's command line has globals only. */
static const struct option *
no_command(const char *name)
{
	(void)name;
	return NULL;
}

int
session_refresh_child(int argc, char **argv)
{
	struct cli_globals g;
	struct config cfg;
	struct record r, out;
	struct store st;
	struct ml_err err;
	char warn[768] = "";
	bool st_open = false, g_ok = false;
	int rc;

	memset(&cfg, 0, sizeof cfg);
	memset(&r, 0, sizeof r);
	memset(&out, 0, sizeof out);
	err_clear(&err);
	secret_protect_process();
	/* Our lock is the caller's: the same open file, so this cannot block. */
	if (flock(CHILD_LOCK_FD, LOCK_EX | LOCK_NB) != 0) {
		rc = err_set(&err, ML_EFAIL, "the refresh process does not hold the lock");
		goto out;
	}
	if ((rc = cli_parse_globals(argc, argv, no_command, &g, &err)) != ML_OK)
		goto out;
	g_ok = true;
	if ((rc = config_load(&cfg, g.profile, g.file, g.ov, g.nov, &err)) != ML_OK ||
	    (rc = store_open(&cfg, &st, &err)) != ML_OK)
		goto out;
	st_open = true;
	if ((rc = token_load(&cfg, &st, &r, &err)) != ML_OK ||
	    (rc = session_recover(&cfg, &st, &r, warn, sizeof warn, &err)) != ML_OK)
		goto out;
	if (session_refused(&r) || r.refresh_token == NULL) {
		rc = err_set(&err, ML_ELOGIN, "session expired or revoked: run mlauth login");
		goto out;
	}
	rc = refresh_once(&cfg, g.verbose, &st, &r, &out, warn, sizeof warn, &err);
out:
	verdict_write(CHILD_PIPE_FD, rc, err.msg, warn);
	record_free(&out);
	record_free(&r);
	if (st_open)
		store_close(&st);
	config_free(&cfg);
	if (g_ok)
		cli_globals_free(&g);
	return rc;
}

/* The child's command line: the settings that decide where and how it refreshes. */
static int
child_args(const struct config *cfg, int verbose, const char *self, char **argv,
    char **owned, struct ml_err *err)
{
	int n = 0, o = 0;

	argv[n++] = (char *)self;
	argv[n++] = SESSION_CHILD_ARG;
	argv[n++] = "-p";
	argv[n++] = cfg->profile;
	if (cfg->file_exists) {
		argv[n++] = "-c";
		argv[n++] = cfg->file;
	}
	/* Every value as this run has it, so the child cannot read settings otherwise. */
	for (int k = 0; k < CONFIG_NKEYS; k++) {
		const char *v = cfg->v[k].value;
		size_t len;

		if (v == NULL || v[0] == '\0')
			continue;
		len = strlen(config_key_name(k)) + strlen(v) + 2;
		if ((owned[o] = malloc(len)) == NULL)
			return err_set(err, ML_EFAIL, "out of memory");
		(void)snprintf(owned[o], len, "%s=%s", config_key_name(k), v);
		argv[n++] = "-o";
		argv[n++] = owned[o++];
	}
	for (int i = 0; i < verbose && i < 2; i++)
		argv[n++] = "-v";
	argv[n] = NULL;
	return ML_OK;
}

/* In the forked child, before exec: only async-signal-safe calls. */
static _Noreturn void
child_exec(const char *self, char **argv, int lockfd, int pipefd, bool keep_stderr)
{
	static const int ignored[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT, SIGTSTP };
	struct sigaction sa;
	sigset_t none;
	int devnull;

	(void)setsid();
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
		(void)sigaction(ignored[i], &sa, NULL);
	(void)sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	/* Out of the way of 3 and 4 first, so the dup2s below cannot clobber each other. */
	if ((lockfd = fcntl(lockfd, F_DUPFD_CLOEXEC, 10)) < 0 ||
	    (pipefd = fcntl(pipefd, F_DUPFD_CLOEXEC, 10)) < 0 ||
	    dup2(lockfd, CHILD_LOCK_FD) < 0 || dup2(pipefd, CHILD_PIPE_FD) < 0)
		_exit(127);
	/*
	 * Not the caller's stdout or stderr: whoever reads them (`$(mlauth
	 * token)`, a tool's pipe) must not wait for us.  The verdict goes over
	 * the pipe; stderr stays only for -v traces (a sanitizer's report too,
	 * then; without -v a failing child shows in its exit status, below).
	 */
	if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0) {
		(void)dup2(devnull, STDIN_FILENO);
		(void)dup2(devnull, STDOUT_FILENO);
		if (!keep_stderr)
			(void)dup2(devnull, STDERR_FILENO);
	}
	(void)execv(self, argv);
	_exit(127);
}

/* Read the child's verdict until it closes the pipe; ML_EINTR on Ctrl-C. */
static int
wait_verdict(int fd, char *buf, size_t len)
{
	size_t off = 0;

	for (;;) {
		ssize_t n = read(fd, buf + off, len - 1 - off);

		if (n < 0 && errno == EINTR) {
			if (http_interrupted)
				return ML_EINTR;
			continue;
		}
		if (n <= 0)
			break;
		off += (size_t)n;
		if (off == len - 1)
			break;
	}
	buf[off] = '\0';
	return ML_OK;
}

int
session_refresh(const struct config *cfg, int verbose, struct store *st, int *lockfd,
    const struct record *r, struct record *out, char *warn, size_t warnlen,
    struct ml_err *err)
{
	char *argv[CHILD_MAX_ARGS], *owned[CONFIG_NKEYS] = { NULL };
	char self[PATH_MAX], buf[2048];
	struct ml_err lerr;
	ssize_t n;
	pid_t pid;
	int p[2] = { -1, -1 }, rc, status;

	memset(out, 0, sizeof *out);
	(void)r;
	if ((n = readlink("/proc/self/exe", self, sizeof self - 1)) <= 0)
		return err_set(err, ML_EFAIL, "cannot find my own program: %s", strerror(errno));
	self[n] = '\0';
	if ((rc = child_args(cfg, verbose, self, argv, owned, err)) != ML_OK)
		goto out;
	if (pipe2(p, O_CLOEXEC) != 0) {
		rc = err_set(err, ML_EFAIL, "cannot create a pipe: %s", strerror(errno));
		goto out;
	}
	fflush(NULL);
	if ((pid = fork()) < 0) {
		rc = err_set(err, ML_EFAIL, "cannot start the refresh: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		child_exec(self, argv, *lockfd, p[1], verbose > 0);
	(void)close(p[1]);
	p[1] = -1;
	if (wait_verdict(p[0], buf, sizeof buf) == ML_EINTR) {
		/* The child goes on and saves; our copy of the lock must not unlock it. */
		(void)close(*lockfd);
		*lockfd = -1;
		rc = err_set(err, ML_EINTR, "interrupted; the refresh goes on in the background "
		    "and is saved");
		goto out;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if ((rc = verdict_parse(buf, warn, warnlen, err)) != ML_OK)
		goto out;
	/* A child that said yes and then failed (a sanitizer's report at exit) is no yes. */
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		rc = err_set(err, ML_EFAIL, "the refresh process failed after saving (%s %d)",
		    WIFEXITED(status) ? "exit status" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		goto out;
	}
	/* What the child saved, or kept in the kernel keyring when it could not. */
	if ((rc = token_load(cfg, st, out, err)) != ML_OK)
		record_free(out);	/* the store failed: the kernel keyring may have it */
	if (session_recover(cfg, st, out, NULL, 0, &lerr) == ML_OK && out->access_token != NULL)
		rc = ML_OK;
out:
	if (p[0] >= 0)
		(void)close(p[0]);
	if (p[1] >= 0)
		(void)close(p[1]);
	for (int i = 0; i < CONFIG_NKEYS; i++)
		free(owned[i]);
	return rc;
}
