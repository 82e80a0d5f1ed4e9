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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mlauth/cmd.h"
#include "mlauth/http.h"
#include "mlauth/secret.h"
#include "mlauth/store.h"
#include "mlauth/token.h"
#include "mlauth/tokenfmt.h"

extern char **environ;

#define ENV_BASE	"ANTHROPIC_BASE_URL"
#define ENV_TOKEN	"ANTHROPIC_AUTH_TOKEN"

/* Shell conventions for a command that cannot be run. */
#define EXIT_NOT_FOUND	127
#define EXIT_NOT_EXEC	126

static const struct option options[] = {
	{ "min-valid", required_argument, NULL, 'm' },
	{ NULL, 0, NULL, 0 }
};

/* The signals passed on to the child while we wait for it. */
static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP };
#define NFORWARDED	(sizeof forwarded / sizeof forwarded[0])

/* The running child, for the signal handler; 0 when there is none. */
static volatile sig_atomic_t child_pid;

/* The child's environment: ours without the two names, then them with our values. */
struct child_env {
	char **envp;		/* borrowed entries of environ, plus base and token */
	char *base;		/* "ANTHROPIC_BASE_URL=..." */
	char *token;		/* "ANTHROPIC_AUTH_TOKEN=...", a secret */
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

/* Wipes the token entry and frees everything; safe on a zeroed or half-built ce. */
static void
child_env_free(struct child_env *ce)
{
	free(ce->envp);
	free(ce->base);
	secret_free(ce->token);
	memset(ce, 0, sizeof *ce);
}

static int
child_env_build(struct child_env *ce, const char *base, const char *token,
    struct ml_err *err)
{
	size_t n = 0, k = 0;

	memset(ce, 0, sizeof *ce);
	for (char **e = environ; e != NULL && *e != NULL; e++)
		n++;
	if (n > SIZE_MAX / sizeof *ce->envp - 3 ||
	    (ce->envp = calloc(n + 3, sizeof *ce->envp)) == NULL ||
	    (ce->base = env_entry(ENV_BASE, base)) == NULL ||
	    (ce->token = env_entry(ENV_TOKEN, token)) == NULL) {
		child_env_free(ce);
		return err_set(err, ML_EFAIL, "out of memory");
	}
	for (char **e = environ; e != NULL && *e != NULL; e++)
		if (!env_is(*e, ENV_BASE) && !env_is(*e, ENV_TOKEN))
			ce->envp[k++] = *e;
	ce->envp[k++] = ce->base;
	ce->envp[k++] = ce->token;
	ce->envp[k] = NULL;
	return ML_OK;
}

/* A fresh token and the child's environment holding it; the record is wiped here. */
static int
prepare_env(struct cmd_ctx *ctx, long min_valid, struct child_env *ce)
{
	struct token_opts o = { .min_valid = min_valid };
	struct token_result res;
	struct store st;
	struct ml_err err;
	int status;

	memset(ce, 0, sizeof *ce);
	err_clear(&err);
	if (store_open(&ctx->cfg, &st, &err) != ML_OK)
		return cmd_fail(ctx, &err);
	status = token_get_fresh(&ctx->cfg, ctx->verbose, &st, &o, &res, &err);
	if (status == ML_OK) {
		if (res.refreshed && st.fell_back)
			cmd_warn(ctx, "%s; session kept in %s", st.reason, store_describe(&st));
		if (res.warning[0] != '\0')
			cmd_warn(ctx, "%s", res.warning);
		status = child_env_build(ce, ctx->cfg.api_base, res.rec.access_token, &err);
	}
	if (status != ML_OK)
		status = cmd_fail(ctx, &err);
	token_result_free(&res);
	store_close(&st);
	return status;
}

/*
 * Pass a signal sent to us on to the child.  Not one from the terminal
 * (Ctrl-C, hangup: the kernel, si_code > 0): the terminal sent it to the
 * child's process group as well, and a second Ctrl-C means "quit now" to
 * many programs.  Not one from the child itself either.
 */
static void
forward_signal(int sig, siginfo_t *info, void *uctx)
{
	int saved = errno;
	pid_t pid = (pid_t)child_pid;

	(void)uctx;
	if (pid > 0 && info != NULL && info->si_code <= 0 && info->si_pid != pid)
		(void)kill(pid, sig);
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
 */
static int
run_child(const struct cmd_ctx *ctx, char **argv, struct child_env *ce)
{
	struct sigaction sa, old_act[NFORWARDED], old_chld, dfl;
	posix_spawnattr_t attr;
	sigset_t block, old_mask, to_default;
	bool handle[NFORWARDED];
	siginfo_t si;
	pid_t pid;
	int rc, ws, status;

	/*
	 * Until our handlers are in place a signal waits here, so none is lost
	 * between the start of the child and the first wait.  SIGCHLD must not be
	 * ignored, or the kernel would reap the child before we see its status.
	 */
	sigemptyset(&block);
	sigemptyset(&to_default);
	for (size_t i = 0; i < NFORWARDED; i++) {
		struct sigaction cur;

		/* nohup's SIGHUP stays ignored, for us and for the child. */
		handle[i] = sigaction(forwarded[i], NULL, &cur) != 0 ||
		    cur.sa_handler != SIG_IGN;
		if (handle[i]) {
			sigaddset(&block, forwarded[i]);
			sigaddset(&to_default, forwarded[i]);
		}
	}
	sigaddset(&block, SIGCHLD);
	sigaddset(&to_default, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &block, &old_mask) != 0) {
		child_env_free(ce);
		perror("mlauth exec: sigprocmask");
		return ML_EFAIL;
	}
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	if (sigaction(SIGCHLD, &dfl, &old_chld) != 0) {
		child_env_free(ce);
		perror("mlauth exec: sigaction");
		(void)sigprocmask(SIG_SETMASK, &old_mask, NULL);
		return ML_EFAIL;
	}

	/* Ctrl-C while the token was fetched: the command never starts. */
	if (http_interrupted) {
		child_env_free(ce);
		cmd_error(ctx, "interrupted");
		status = ML_EINTR;
		goto restore;
	}
	/* The child starts with our signal mask and default handlers. */
	if ((rc = posix_spawnattr_init(&attr)) != 0) {
		child_env_free(ce);
		fprintf(stderr, "mlauth %s: %s\n", ctx->entry->name, strerror(rc));
		status = ML_EFAIL;
		goto restore;
	}
	if ((rc = posix_spawnattr_setsigmask(&attr, &old_mask)) != 0 ||
	    (rc = posix_spawnattr_setsigdefault(&attr, &to_default)) != 0 ||
	    (rc = posix_spawnattr_setflags(&attr,
	    POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) != 0) {
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

	child_pid = (sig_atomic_t)pid;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = forward_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < NFORWARDED; i++)
		if (handle[i] && sigaction(forwarded[i], &sa, &old_act[i]) != 0)
			handle[i] = false;	/* keeps main's handler: no forwarding, still safe */
	(void)sigprocmask(SIG_SETMASK, &old_mask, NULL);

	/*
	 * WNOWAIT: the child stays a zombie, so its pid cannot be reused while a
	 * handler may still send it a signal.
	 */
	while ((rc = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT)) != 0 && errno == EINTR)
		;
	(void)sigprocmask(SIG_BLOCK, &block, NULL);
	child_pid = 0;
	for (size_t i = 0; i < NFORWARDED; i++)
		if (handle[i])
			(void)sigaction(forwarded[i], &old_act[i], NULL);
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
	(void)sigaction(SIGCHLD, &old_chld, NULL);
	(void)sigprocmask(SIG_SETMASK, &old_mask, NULL);
	return status;
}

static int
exec_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct child_env ce;
	long min_valid = ctx->cfg.min_valid;
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
		}
	}
	if (optind >= argc)
		return cmd_usage_error(ctx, "missing the command to run");
	if ((status = prepare_env(ctx, min_valid, &ce)) != ML_OK)
		return status;
	return run_child(ctx, argv + optind, &ce);
}

const struct cmd_entry cmd_exec_entry = {
	.name = "exec",
	.summary = "run a command with ANTHROPIC_BASE_URL and a token in its environment",
	.usage = "[--min-valid SECS] [--] CMD [ARGS...]",
	.help =
	    "Options:\n"
	    "  -m, --min-valid SECS  the token must stay valid this long when CMD starts\n"
	    "                        (default: setting min_valid, 300); capped at half the\n"
	    "                        token's lifetime\n"
	    "\nRuns CMD (searched in PATH) with ANTHROPIC_BASE_URL (setting api_base) and\n"
	    "ANTHROPIC_AUTH_TOKEN added to its environment, never to a command line.  The\n"
	    "token is fixed for CMD's life and is not renewed while it runs: for jobs\n"
	    "longer than a token lasts, have the program call 'mlauth token' when it needs\n"
	    "one (Claude Code: \"apiKeyHelper\": \"mlauth token --min-valid 900\").\n"
	    "\nSIGINT, SIGTERM and SIGHUP sent to mlauth are passed on to CMD (Ctrl-C at a\n"
	    "terminal reaches CMD directly, once).  Write -- before CMD when its\n"
	    "arguments include -h or --help.\n"
	    "\nExit status: CMD's own, 128+N when signal N ended it, 127 when CMD is not\n"
	    "found, 126 when it cannot be executed; before CMD starts, mlauth's usual\n"
	    "statuses (3: not logged in).  Example:\n"
	    "  mlauth exec -- python3 script_using_the_anthropic_sdk.py\n",
	.options = options,
	.exec = exec_exec,
};
