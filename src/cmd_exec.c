/*
 * cmd_exec.c: `mlauth exec`: run a command with ANTHROPIC_BASE_URL and a
 * fresh ANTHROPIC_AUTH_TOKEN in its environment, and pass its exit status back.
 *
 * The token goes into the child's environment only: never into an argv (any
 * user can read /proc/PID/cmdline), never into mlauth's own environment.  Our
 * copy is wiped as soon as the child has started.
 */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mlauth/cmd.h"
#include "mlauth/http.h"
#include "mlauth/proxy.h"
#include "mlauth/secret.h"
#include "mlauth/token.h"
#include "mlauth/tokenfmt.h"

extern char **environ;

#define ENV_BASE	"ANTHROPIC_BASE_URL"
#define ENV_TOKEN	"ANTHROPIC_AUTH_TOKEN"
#define ENV_KEY		"ANTHROPIC_API_KEY"

/* Open requests of CMD's children may finish this long after CMD has exited. */
#define EXEC_PROXY_GRACE_MS	1000L

enum { OPT_PROXY = 256 };

/* Shell conventions for a command that cannot be run. */
#define EXIT_NOT_FOUND	127
#define EXIT_NOT_EXEC	126

static const struct option options[] = {
	{ "min-valid", required_argument, NULL, 'm' },
	{ "proxy", no_argument, NULL, OPT_PROXY },
	{ NULL, 0, NULL, 0 }
};

/* The signals passed on to the child while we wait for it. */
static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP };
#define NFORWARDED	(sizeof forwarded / sizeof forwarded[0])

/*
 * For the signal handler, which may run on any thread (libsecret's GDBus
 * threads take signals too): the child's pid, 0 before it started (signals
 * are then noted in pending_sigs) and -1 once it has exited.
 */
static atomic_int child_pid;
static atomic_uint pending_sigs;	/* bit N: signal N arrived before the child started */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "signal handlers need lock-free atomics");

/*
 * The child's environment: ours without the names we set, then them with
 * our values.  Without the proxy: the API base and a token.  With it: its
 * address, and its key as both ANTHROPIC_API_KEY and ANTHROPIC_AUTH_TOKEN,
 * so that a tool reading either finds it and no leftover token or key of
 * ours travels beside it.
 */
struct child_env {
	char **envp;		/* borrowed entries of environ, plus ours */
	char *base;		/* "ANTHROPIC_BASE_URL=..." */
	char *token;		/* "ANTHROPIC_AUTH_TOKEN=...", a secret */
	char *key;		/* "ANTHROPIC_API_KEY=..." (the proxy's), a secret, or NULL */
};

/* Whether the environment entry sets name. */
static bool
env_is(const char *entry, const char *name)
{
	size_t n = strlen(name);

	return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* "name=value" in a new allocation (free it; secret_free when value is a secret), or NULL. */
static char *
env_entry(const char *name, const char *value)
{
	size_t n = strlen(name), v = strlen(value);
	char *s;

	if (v > SIZE_MAX - n - 2 || (s = malloc(n + v + 2)) == NULL)
		return NULL;
	memcpy(s, name, n);
	s[n] = '=';
	memcpy(s + n + 1, value, v + 1);
	return s;
}

/* Wipes the secret entries and frees everything; safe on a zeroed or half-built ce. */
static void
child_env_free(struct child_env *ce)
{
	free(ce->envp);
	free(ce->base);
	secret_free(ce->token);
	secret_free(ce->key);
	memset(ce, 0, sizeof *ce);
}

/* proxy_key NULL: token is an access token; else token is ignored and the key goes in. */
static int
child_env_build(struct child_env *ce, const char *base, const char *token,
    const char *proxy_key, struct ml_err *err)
{
	size_t n = 0, k = 0;

	memset(ce, 0, sizeof *ce);
	for (char **e = environ; e != NULL && *e != NULL; e++)
		n++;
	if (n > SIZE_MAX / sizeof *ce->envp - 4 ||
	    (ce->envp = calloc(n + 4, sizeof *ce->envp)) == NULL ||
	    (ce->base = env_entry(ENV_BASE, base)) == NULL ||
	    (ce->token = env_entry(ENV_TOKEN, proxy_key != NULL ? proxy_key : token)) == NULL ||
	    (proxy_key != NULL && (ce->key = env_entry(ENV_KEY, proxy_key)) == NULL)) {
		child_env_free(ce);
		return err_set(err, ML_EFAIL, "out of memory");
	}
	for (char **e = environ; e != NULL && *e != NULL; e++)
		if (!env_is(*e, ENV_BASE) && !env_is(*e, ENV_TOKEN) &&
		    !(proxy_key != NULL && env_is(*e, ENV_KEY)))
			ce->envp[k++] = *e;
	ce->envp[k++] = ce->base;
	ce->envp[k++] = ce->token;
	if (ce->key != NULL)
		ce->envp[k++] = ce->key;
	ce->envp[k] = NULL;
	return ML_OK;
}

/* A fresh token and the child's environment holding it; the record is wiped here. */
static int
prepare_env(struct cmd_ctx *ctx, long min_valid, struct child_env *ce)
{
	struct token_opts o = { .min_valid = min_valid };
	struct token_result res;
	struct ml_err err;
	int status;

	memset(ce, 0, sizeof *ce);
	err_clear(&err);
	if ((status = cmd_fresh_token(ctx, &o, &res)) == ML_OK &&
	    (status = child_env_build(ce, ctx->cfg.api_base, res.rec.access_token, NULL,
	    &err)) != ML_OK)
		status = cmd_fail(ctx, &err);
	token_result_free(&res);
	return status;
}

/*
 * Pass a signal sent to us on to the child.  Not one from the terminal
 * (Ctrl-C, hangup: the kernel, si_code > 0): the terminal sent it to the
 * child's process group as well, and a second Ctrl-C means "quit now" to
 * many programs.  Not one from the child itself either.  Before the child
 * exists, any of them is noted for run_child.
 *
 * pending_sigs is set before child_pid is read, and run_child sets child_pid
 * before it takes pending_sigs: whichever clears the bit sends the signal, so
 * none is lost and none is sent twice.
 */
static void
forward_signal(int sig, siginfo_t *info, void *uctx)
{
	int saved = errno, pid;
	unsigned bit = 1u << sig;
	bool noted = false;

	(void)uctx;
	if (atomic_load(&child_pid) == 0) {
		atomic_fetch_or(&pending_sigs, bit);
		noted = true;
	}
	/* pid 0: run_child sends what was noted; -1: the child is gone. */
	pid = atomic_load(&child_pid);
	if (pid > 0 && noted) {
		if ((atomic_fetch_and(&pending_sigs, ~bit) & bit) != 0)
			(void)kill(pid, sig);
	} else if (pid > 0 && info != NULL && info->si_code <= 0 && info->si_pid != pid) {
		(void)kill(pid, sig);
	}
	errno = saved;
}

/* What a shell reports for a command that cannot be run; returns the exit status. */
static int
spawn_failed(const struct cmd_ctx *ctx, const char *cmd, int rc)
{
	if ((rc == ENOENT || rc == ENOTDIR) && strchr(cmd, '/') == NULL) {
		fprintf(stderr, "mlauth %s: %s: command not found\n", ctx->entry->name, cmd);
		return EXIT_NOT_FOUND;
	}
	fprintf(stderr, "mlauth %s: %s: %s\n", ctx->entry->name, cmd, strerror(rc));
	if (rc == ENOENT || rc == ENOTDIR)
		return EXIT_NOT_FOUND;
	/* Out of processes or memory: our failure, not the command's. */
	return rc == EAGAIN || rc == ENOMEM ? ML_EFAIL : EXIT_NOT_EXEC;
}

/*
 * Start argv[0] (searched in PATH) with ce's environment, wipe ce, wait for
 * the child while passing signals on, and return its exit status (128 + N
 * when signal N killed it) or ours when it could not be run.
 *
 * The handlers go in before the child starts: a signal that came while
 * posix_spawnp ran would otherwise reach one of libsecret's threads and
 * main's handler, and be lost.  The child still starts with default
 * dispositions (POSIX_SPAWN_SETSIGDEF).
 */
static int
run_child(const struct cmd_ctx *ctx, char **argv, struct child_env *ce)
{
	struct sigaction sa, old_act[NFORWARDED], old_chld, dfl;
	posix_spawnattr_t attr;
	sigset_t to_default;
	bool handle[NFORWARDED];
	siginfo_t si;
	unsigned early;
	pid_t pid;
	int rc, ws, status;

	/* SIGCHLD must not be ignored, or the kernel would reap the child unseen. */
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	if (sigaction(SIGCHLD, &dfl, &old_chld) != 0) {
		child_env_free(ce);
		fprintf(stderr, "mlauth %s: sigaction: %s\n", ctx->entry->name, strerror(errno));
		return ML_EFAIL;
	}
	/* GIO ignores SIGPIPE for its sockets: the child must die of it as usual. */
	sigemptyset(&to_default);
	sigaddset(&to_default, SIGCHLD);
	sigaddset(&to_default, SIGPIPE);
	atomic_store(&child_pid, 0);
	atomic_store(&pending_sigs, 0u);
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = forward_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < NFORWARDED; i++) {
		/* nohup's SIGHUP stays ignored, for us and for the child. */
		handle[i] = sigaction(forwarded[i], NULL, &old_act[i]) == 0 &&
		    old_act[i].sa_handler != SIG_IGN &&
		    sigaction(forwarded[i], &sa, NULL) == 0;
		if (handle[i])
			sigaddset(&to_default, forwarded[i]);
	}

	/* Ctrl-C while the token was fetched, or since: the command never starts. */
	if (http_interrupted || atomic_load(&pending_sigs) != 0) {
		child_env_free(ce);
		cmd_error(ctx, "interrupted");
		status = ML_EINTR;
		goto restore;
	}
	if ((rc = posix_spawnattr_init(&attr)) != 0) {
		child_env_free(ce);
		fprintf(stderr, "mlauth %s: %s\n", ctx->entry->name, strerror(rc));
		status = ML_EFAIL;
		goto restore;
	}
	if ((rc = posix_spawnattr_setsigdefault(&attr, &to_default)) != 0 ||
	    (rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF)) != 0) {
		posix_spawnattr_destroy(&attr);
		child_env_free(ce);
		fprintf(stderr, "mlauth %s: %s\n", ctx->entry->name, strerror(rc));
		status = ML_EFAIL;
		goto restore;
	}
	rc = posix_spawnp(&pid, argv[0], NULL, &attr, argv, ce->envp);
	posix_spawnattr_destroy(&attr);
	/* The child has its own copy now (or never started): ours goes. */
	child_env_free(ce);
	if (rc != 0) {
		status = spawn_failed(ctx, argv[0], rc);
		goto restore;
	}

	atomic_store(&child_pid, (int)pid);
	early = atomic_exchange(&pending_sigs, 0u);
	for (size_t i = 0; i < NFORWARDED; i++)
		if ((early & (1u << forwarded[i])) != 0)
			(void)kill(pid, forwarded[i]);

	/*
	 * WNOWAIT: the child stays a zombie, so its pid cannot be reused while a
	 * handler may still send it a signal.
	 */
	while ((rc = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT)) != 0 && errno == EINTR)
		;
	atomic_store(&child_pid, -1);
	if (rc != 0) {
		fprintf(stderr, "mlauth %s: waiting for %s: %s\n", ctx->entry->name, argv[0],
		    strerror(errno));
		status = ML_EFAIL;
		goto restore;
	}
	while ((rc = (int)waitpid(pid, &ws, 0)) == -1 && errno == EINTR)
		;
	if (rc == -1) {
		fprintf(stderr, "mlauth %s: waiting for %s: %s\n", ctx->entry->name, argv[0],
		    strerror(errno));
		status = ML_EFAIL;
	} else if (WIFEXITED(ws)) {
		status = WEXITSTATUS(ws);
	} else if (WIFSIGNALED(ws)) {
		status = 128 + WTERMSIG(ws);
	} else {
		status = ML_EFAIL;
	}
restore:
	atomic_store(&child_pid, -1);
	for (size_t i = 0; i < NFORWARDED; i++)
		if (handle[i])
			(void)sigaction(forwarded[i], &old_act[i], NULL);
	(void)sigaction(SIGCHLD, &old_chld, NULL);
	return status;
}

/*
 * CMD with a proxy of its own: ANTHROPIC_BASE_URL points at it and
 * ANTHROPIC_API_KEY (and ANTHROPIC_AUTH_TOKEN) is its key, so a job of any
 * length never holds a token that can expire.  The proxy stops when CMD has
 * exited.
 */
static int
run_with_proxy(struct cmd_ctx *ctx, long min_valid, char **argv)
{
	struct proxy_opts po;
	struct proxy *p = NULL;
	struct child_env ce;
	struct ml_err err;
	int status;

	/* A client that hangs up must not end us (GIO's sockets aside, nothing else would). */
	(void)signal(SIGPIPE, SIG_IGN);
	if ((status = cmd_proxy_start(ctx, min_valid, 0, &po, &p)) != ML_OK)
		return status;
	err_clear(&err);
	if ((status = child_env_build(&ce, proxy_url(p), NULL, proxy_key(p), &err)) != ML_OK) {
		proxy_stop(p, 0);
		return cmd_fail(ctx, &err);
	}
	status = run_child(ctx, argv, &ce);
	if (ctx->verbose)
		cmd_info(ctx, "mlauth: the proxy served %lu requests (%lu tokens replaced "
		    "after a 401)", proxy_requests(p), proxy_refreshes(p));
	proxy_stop(p, EXEC_PROXY_GRACE_MS);
	return status;
}

static int
exec_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct child_env ce;
	long min_valid = ctx->cfg.min_valid;
	bool proxy = false;
	int c, status;

	while ((c = cmd_getopt(ctx, argc, argv, &status)) != -1) {
		switch (c) {
		case CMD_OPT_DONE:
			return status;
		case 'm':
			if ((min_valid = tokenfmt_seconds(optarg)) < 0)
				return cmd_usage_error(ctx, "--min-valid needs whole seconds, not '%s'",
				    optarg);
			break;
		case OPT_PROXY:
			proxy = true;
			break;
		}
	}
	if (optind >= argc)
		return cmd_usage_error(ctx, "missing the command to run");
	if (proxy)
		return run_with_proxy(ctx, min_valid, argv + optind);
	if ((status = prepare_env(ctx, min_valid, &ce)) != ML_OK)
		return status;
	return run_child(ctx, argv + optind, &ce);
}

const struct cmd_entry cmd_exec_entry = {
	.name = "exec",
	.summary = "run a command with ANTHROPIC_BASE_URL and a token in its environment",
	.usage = "[--proxy] [--min-valid SECS] [--] CMD [ARGS...]",
	.help =
	    "Options:\n"
	    "      --proxy           run CMD behind its own mlauth proxy: ANTHROPIC_BASE_URL\n"
	    "                        is the proxy, ANTHROPIC_API_KEY and ANTHROPIC_AUTH_TOKEN\n"
	    "                        its key, and every request gets a fresh token however\n"
	    "                        long CMD runs\n"
	    "  -m, --min-valid SECS  the token must stay valid this long when CMD starts\n"
	    "                        (with --proxy: when a request is forwarded; default:\n"
	    "                        setting min_valid, 300); capped at half its lifetime\n"
	    "\nRuns CMD (searched in PATH) with ANTHROPIC_BASE_URL (setting api_base) and\n"
	    "ANTHROPIC_AUTH_TOKEN added to its environment, never to a command line.  The\n"
	    "token is fixed for CMD's life and is not renewed while it runs: for jobs\n"
	    "longer than a token lasts, use --proxy.\n"
	    "\nSIGINT, SIGTERM and SIGHUP sent to mlauth are passed on to CMD (Ctrl-C at a\n"
	    "terminal reaches CMD directly, once).  Write -- before CMD when its\n"
	    "arguments include -h or --help.\n"
	    "\nExit status: CMD's own, 128+N when signal N ended it, 127 when CMD is not\n"
	    "found, 126 when it cannot be executed; before CMD starts, mlauth's usual\n"
	    "statuses (3: not logged in).  Example:\n"
	    "  mlauth exec -- python3 script_using_the_anthropic_sdk.py\n"
	    "  mlauth exec --proxy -- python3 batch_job_of_many_hours.py\n",
	.options = options,
	.exec = exec_exec,
};
