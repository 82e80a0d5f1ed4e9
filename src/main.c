/*
 * main.c: global options, the command table, dispatch, and the exit status.
 *
 * Each command lives in its own cmd_*.c as a `struct cmd_entry`; this file
 * only finds it, loads the settings it will need, and checks that what the
 * command printed really reached stdout (a token written into a full pipe
 * must not look like success).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mlauth/cli.h"
#include "mlauth/cmd.h"
#include "mlauth/http.h"
#include "mlauth/secret.h"
#include "mlauth/session.h"
#include "mlauth/util.h"

#define HELP_SUMMARY	"show a command's usage and options"
#define VERSION_SUMMARY	"print the version"

static const struct cmd_entry *const commands[] = {
	&cmd_login_entry,
	&cmd_token_entry,
	&cmd_status_entry,
	&cmd_logout_entry,
	&cmd_send_entry,
	&cmd_env_entry,
	&cmd_exec_entry,
	&cmd_proxy_entry,
	&cmd_config_entry,
	&cmd_doctor_entry,
	NULL
};

static void
usage(FILE *fp)
{
	fputs("usage: mlauth [-p PROFILE] [-c FILE] [-o KEY=VALUE] [-v] [-q] [--no-color] "
	    "COMMAND [ARGS]\n\nCommands:\n", fp);
	for (const struct cmd_entry *const *c = commands; *c != NULL; c++)
		fprintf(fp, "  %-9s %s\n", (*c)->name, (*c)->summary);
	fprintf(fp, "  %-9s %s\n", "help", HELP_SUMMARY);
	fprintf(fp, "  %-9s %s\n", "version", VERSION_SUMMARY);
	fputs("\nGlobal options:\n"
	    "  -p, --profile NAME   use the settings and session of profile NAME (default: default)\n"
	    "  -c, --config FILE    read settings from FILE (default: ~/.config/mlauth/config)\n"
	    "  -o, --option K=V     set one setting for this run (e.g. -o issuer=https://...)\n"
	    "  -v, --verbose        say more; -vv traces HTTP with secrets redacted\n"
	    "  -q, --quiet          print only results and errors\n"
	    "      --no-color       no colour (also NO_COLOR=1)\n"
	    "  -V, --version        print the version\n"
	    "  -h, --help           this help; mlauth help COMMAND for a command's\n"
	    "\nExit status: 0 ok, 1 failure, 2 usage, 3 login required, 4 network,\n"
	    "5 messages API error, 6 keyring/store failure, 130 interrupted.\n", fp);
}

static const struct cmd_entry *
find_command(const char *name)
{
	for (const struct cmd_entry *const *c = commands; *c != NULL; c++)
		if (strcmp((*c)->name, name) == 0)
			return *c;
	return NULL;
}

static const struct option *
options_of(const char *name)
{
	const struct cmd_entry *e = find_command(name);

	return e != NULL ? e->options : NULL;
}

static int
unknown_command(const char *name)
{
	const char *names[17];
	const char *best;
	size_t n = 0;

	for (const struct cmd_entry *const *c = commands; *c != NULL && n < 14; c++)
		names[n++] = (*c)->name;
	names[n++] = "help";
	names[n++] = "version";
	names[n] = NULL;
	fprintf(stderr, "mlauth: unknown command '%s'", name);
	if ((best = util_suggest(name, names)) != NULL)
		fprintf(stderr, " (did you mean '%s'?)", best);
	fputs("\nRun 'mlauth --help' for the list of commands.\n", stderr);
	return ML_EUSAGE;
}

static int
help_command(int argc, char **argv)
{
	const struct cmd_entry *e;

	if (argc < 2) {
		usage(stdout);
		return ML_OK;
	}
	/* The two that are not in the table are commands all the same. */
	if (strcmp(argv[1], "help") == 0) {
		cli_print_help(stdout, "help", HELP_SUMMARY, "[COMMAND]", "With a COMMAND, "
		    "its usage and options (as mlauth COMMAND --help); without, the list of\n"
		    "commands and the global options (as mlauth --help).\n");
		return ML_OK;
	}
	if (strcmp(argv[1], "version") == 0) {
		cli_print_help(stdout, "version", VERSION_SUMMARY, "", "The same as "
		    "mlauth --version: \"mlauth X.Y.Z\" on standard output.\n");
		return ML_OK;
	}
	if ((e = find_command(argv[1])) == NULL)
		return unknown_command(argv[1]);
	cmd_print_help(e, stdout);
	return ML_OK;
}

static int
version_command(int argc, char **argv)
{
	if (cli_wants_help(argc, argv))
		return help_command(2, (char *[]){ "help", "version", NULL });
	if (argc > 1) {
		fprintf(stderr, "mlauth version: unexpected argument '%s'\nusage: mlauth "
		    "version\n", argv[1]);
		return ML_EUSAGE;
	}
	printf("mlauth %s\n", MLAUTH_VERSION);
	return ML_OK;
}

static void
on_interrupt(int sig)
{
	(void)sig;
	http_interrupted = 1;
}

/* Ctrl-C ends a transfer or a wait through http_interrupted, so cleanup still runs. */
static void
catch_interrupts(void)
{
	struct sigaction sa;

	static const int sigs[] = { SIGINT, SIGTERM };
	struct sigaction old;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_interrupt;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		/* A signal ignored by our parent (`cmd &` in a script) stays ignored. */
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			continue;
		(void)sigaction(sigs[i], &sa, NULL);
	}
}

static bool
want_color(bool no_color_flag)
{
	const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");

	if (no_color_flag || (nc != NULL && *nc != '\0'))
		return false;
	if (term != NULL && strcmp(term, "dumb") == 0)
		return false;
	return isatty(STDERR_FILENO) == 1;
}

static int
finish_stdout(int status)
{
	/* fclose reports what fflush may not: a full disk, a closed pipe. */
	if (fflush(stdout) != 0 || ferror(stdout) || fclose(stdout) != 0) {
		if (status == ML_OK) {
			perror("mlauth: cannot write to standard output");
			return ML_EFAIL;
		}
	}
	return status;
}

/* The command of g->argv, with the settings loaded: the exit status. */
static int
run(struct cmd_ctx *ctx, const struct cli_globals *g)
{
	struct ml_err err;
	int argc = g->argc, status;
	char **argv = g->argv;

	err_clear(&err);
	if (strcmp(argv[0], "help") == 0)
		return finish_stdout(help_command(argc, argv));
	if (strcmp(argv[0], "version") == 0)
		return finish_stdout(version_command(argc, argv));
	if ((ctx->entry = find_command(argv[0])) == NULL)
		return unknown_command(argv[0]);

	ctx->color = want_color(g->no_color);
	/* --help needs no settings: a broken config file must not hide the usage. */
	if (cli_wants_help(argc, argv)) {
		cmd_print_help(ctx->entry, stdout);
		return finish_stdout(ML_OK);
	}
	/* doctor runs without a config file it refuses, to say so among its checks. */
	if ((ctx->entry == &cmd_doctor_entry ? config_load_lenient : config_load)(&ctx->cfg,
	    g->profile, g->file, g->ov, g->nov, &err) != ML_OK) {
		status = cmd_fail(ctx, &err);
		config_free(&ctx->cfg);
		return status;
	}
	secret_protect_process();
	catch_interrupts();
	optind = 0;	/* glibc: 0 restarts getopt for the command's own arguments */
	status = ctx->entry->exec(ctx, argc, argv);
	if (http_interrupted && status != ML_OK)
		status = ML_EINTR;
	config_free(&ctx->cfg);
	return finish_stdout(status);
}

int
main(int argc, char **argv)
{
	struct cli_globals g;
	struct cmd_ctx ctx;
	struct ml_err err;
	int status;

	/* The detached half of a refresh (session_refresh.c): never a user's command line. */
	if (argc > 1 && strcmp(argv[1], SESSION_CHILD_ARG) == 0)
		return session_refresh_child(argc - 1, argv + 1);
	memset(&ctx, 0, sizeof ctx);
	err_clear(&err);
	if (cli_parse_globals(argc, argv, options_of, &g, &err) != ML_OK) {
		fprintf(stderr, "mlauth: %s\n", err.msg);
		return ML_EUSAGE;
	}
	if (g.version) {
		printf("mlauth %s\n", MLAUTH_VERSION);
		return finish_stdout(ML_OK);
	}
	if (g.help) {
		usage(stdout);
		return finish_stdout(ML_OK);
	}
	ctx.verbose = g.verbose;
	ctx.quiet = g.quiet;
	if (g.argc == 0) {
		usage(stderr);
		return ML_EUSAGE;
	}
	status = run(&ctx, &g);
	cli_globals_free(&g);
	return status;
}
