/*
 * front.c: the `mlauth` binary.
 *
 * Tools call `mlauth token` before every request, so this binary links
 * nothing heavy (no libcurl, no libsecret/GIO, no libcrypto: each costs
 * milliseconds at every start).  It serves a fresh token from the kernel
 * keyring cache (or, with store=file, from the file) and executes the helper (libexec/mlauth/mlauth-helper, or
 * mlauth-helper beside it in the build tree) for everything else, with the
 * same argv, so the helper parses and reports exactly as if called directly.
 * git keeps libcurl out of `git` for the same reason (git-remote-https).
 */
#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mlauth/cache.h"
#include "mlauth/cli.h"
#include "mlauth/config.h"
#include "mlauth/record.h"
#include "mlauth/secret.h"
#include "mlauth/session.h"
#include "mlauth/store.h"
#include "mlauth/tokenfmt.h"
#include "mlauth/util.h"

#ifndef MLAUTH_LIBEXECDIR
#define MLAUTH_LIBEXECDIR "/usr/local/libexec"
#endif
#define HELPER "mlauth-helper"

/* Try dir/rel; on success it does not return. */
static void
try_exec(const char *dir, const char *rel, char **argv)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof path, "%s/%s", dir, rel);

	if (n > 0 && (size_t)n < sizeof path && access(path, X_OK) == 0)
		(void)execv(path, argv);
}

static _Noreturn void
exec_helper(char **argv)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

	if (n > 0) {
		char *slash;

		self[n] = '\0';
		if ((slash = strrchr(self, '/')) != NULL) {
			*slash = '\0';
			/* The build tree, then an installed tree wherever it was moved. */
			try_exec(self, HELPER, argv);
			try_exec(self, "../libexec/mlauth/" HELPER, argv);
		}
	}
	try_exec(MLAUTH_LIBEXECDIR, "mlauth/" HELPER, argv);
	fprintf(stderr, "mlauth: cannot run %s/mlauth/%s: %s (is mlauth installed "
	    "completely?)\n", MLAUTH_LIBEXECDIR, HELPER, strerror(errno));
	exit(1);
}

/*
 * store=file asks for no D-Bus: read the record here rather than start the
 * helper (the file's 0600/owner/symlink checks come with store_file_load).
 * Fills e on success; anything unusual is the helper's to handle and report.
 */
static int
file_lookup(const struct config *cfg, long min_valid, struct cache_entry *e)
{
	struct record r;
	struct ml_err err;
	char *path = NULL, *json = NULL;
	int rc = -1;

	memset(&r, 0, sizeof r);
	if (store_file_path(cfg->profile, &path, &err) != ML_OK ||
	    store_file_load(path, &json, &err) != ML_OK || json == NULL ||
	    record_from_json(json, strlen(json), &r, &err) != ML_OK)
		goto out;
	if (strcmp(r.issuer, cfg->issuer) != 0 || strcmp(r.client_id, cfg->client_id) != 0 ||
	    !session_fresh(&r, min_valid, util_now()))
		goto out;
	e->token = r.access_token;
	r.access_token = NULL;
	e->expires_at = r.expires_at;
	e->obtained_at = r.obtained_at;
	rc = 0;
out:
	record_free(&r);
	secret_free(json);
	free(path);
	return rc;
}

/*
 * stdout's buffer while it holds a token: a page, so most tokens go out in
 * one write and the wipe afterwards costs little (8 k instructions for BUFSIZ).
 */
static char out_buf[4096];

/*
 * `mlauth token [options]` with a fresh cached token: print it and return 0
 * (1 when stdout failed); -1 when the helper must answer instead.
 */
static int
serve_cached(const struct cli_globals *g, int argc, char **argv)
{
	struct token_args a = { .fmt = TOKENFMT_PLAIN, .min_valid = -1 };
	struct cache_entry e;
	struct config cfg;
	struct ml_err err;
	int64_t now;
	long min_valid;
	int c, rc = -1;

	/* The same options as the helper's token command; anything odd is its to report. */
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, "+:Hjm:", tokenfmt_options, NULL)) != -1)
		if (c == '?' || c == ':' || tokenfmt_option(&a, c, optarg) < 0)
			return -1;
	if (optind < argc)
		return -1;
	/* The store's directory from the environment alone: a static binary asks no NSS. */
	if (!store_file_base_from_env())
		return -1;
	if (config_load(&cfg, g->profile, g->file, g->ov, g->nov, &err) != ML_OK)
		goto out;
	secret_undumpable();
	min_valid = a.min_valid >= 0 ? a.min_valid : cfg.min_valid;
	/* The kernel drops a cached token when its session needs the helper (keep-alive). */
	if (cache_get(cfg.profile, cfg.issuer, cfg.client_id, &e) != 0 &&
	    (cfg.store != CONFIG_STORE_FILE || file_lookup(&cfg, min_valid, &e) != 0))
		goto out;
	now = util_now();
	if (session_token_fresh(e.expires_at, e.obtained_at, min_valid, now)) {
		/*
		 * Our buffer: stdio would fstat and ioctl stdout to size its own, and
		 * this one is wiped at the end.  Once written, even in part, the
		 * helper must not write it again.
		 */
		(void)setvbuf(stdout, out_buf, _IOFBF, sizeof out_buf);
		rc = tokenfmt_write(stdout, a.fmt, e.token, e.expires_at, now, "Bearer") == 0 &&
		    fflush(stdout) == 0 ? 0 : 1;
	}
	cache_entry_free(&e);
out:
	config_free(&cfg);
	return rc;
}

/* `token --help` (an option before any operand) or `help token`: no helper needed. */
static bool
wants_token_help(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[0], "help") == 0 && strcmp(argv[1], "token") == 0)
		return true;
	return argc >= 1 && strcmp(argv[0], "token") == 0 && cli_wants_help(argc, argv);
}

/* The front knows one command's options: token's (the helper parses the others again). */
static const struct option *
options_of(const char *name)
{
	return strcmp(name, "token") == 0 ? tokenfmt_options : NULL;
}

int
main(int argc, char **argv)
{
	struct cli_globals g;
	struct ml_err err;
	int rc = -1;

	if (cli_parse_globals(argc, argv, options_of, &g, &err) != ML_OK || g.help)
		exec_helper(argv);
	if (g.version) {
		printf("mlauth %s\n", MLAUTH_VERSION);
		return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
	}
	if (wants_token_help(g.argc, g.argv)) {
		cli_globals_free(&g);
		cli_print_help(stdout, "token", tokenfmt_summary, tokenfmt_usage, tokenfmt_help);
		return fclose(stdout) == 0 ? 0 : 1;
	}
	if (g.argc > 0 && strcmp(g.argv[0], "token") == 0)
		rc = serve_cached(&g, g.argc, g.argv);
	cli_globals_free(&g);
	switch (rc) {
	case 0:
		rc = fclose(stdout);
		secret_wipe(out_buf, sizeof out_buf);
		if (rc == 0)
			return 0;
		/* FALLTHROUGH */
	case 1:
		secret_wipe(out_buf, sizeof out_buf);
		perror("mlauth: cannot write to standard output");
		return 1;
	}
	/* Nothing written to stdout yet, so the helper starts from a clean slate. */
	exec_helper(argv);
}
