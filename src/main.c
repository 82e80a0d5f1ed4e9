/*
 * main.c: global options, the command table, dispatch, and the exit status.
 *
 * Each command lives in its own cmd_*.c as a `struct cmd_entry`; this file
 * only finds it, loads the settings it will need, and checks that what the
 * command printed really reached stdout (a token written into a full pipe
 * must not look like success).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mlauth/cmd.h"
#include "mlauth/http.h"
#include "mlauth/secret.h"
#include "mlauth/util.h"

static const struct cmd_entry *const commands[] = {
	&cmd_login_entry,
	&cmd_token_entry,
	&cmd_status_entry,
	&cmd_logout_entry,
	&cmd_send_entry,
	&cmd_config_entry,
	NULL
};

static const struct option global_options[] = {
	{ "profile", required_argument, NULL, 'p' },
	{ "config", required_argument, NULL, 'c' },
	{ "option", required_argument, NULL, 'o' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "no-color", no_argument, NULL, 'C' },
	{ "version", no_argument, NULL, 'V' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

static void
usage(FILE *fp)
{
	fputs("usage: mlauth [-p PROFILE] [-c FILE] [-o KEY=VALUE] [-v] [-q] [--no-color] "
	    "COMMAND [ARGS]\n\nCommands:\n", fp);
	for (const struct cmd_entry *const *c = commands; *c != NULL; c++)
		fprintf(fp, "  %-9s %s\n", (*c)->name, (*c)->summary);
	fprintf(fp, "  %-9s %s\n", "help", "show a command's usage and options");
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

static int
unknown_command(const char *name)
{
	const char *names[16];
	const char *best;
	size_t n = 0;

	for (const struct cmd_entry *const *c = commands; *c != NULL && n < 14; c++)
		names[n++] = (*c)->name;
	names[n++] = "help";
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
	if ((e = find_command(argv[1])) == NULL)
		return unknown_command(argv[1]);
	cmd_print_help(e, stdout);
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

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_interrupt;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
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

/* "key=value" from -o into an override; the string is argv's, split in place. */
static int
add_override(struct config_override *ov, int *nov, char *arg)
{
	char *eq = strchr(arg, '=');
	const char *names[CONFIG_NKEYS + 1];
	const char *best;

	if (eq == NULL || eq == arg) {
		fprintf(stderr, "mlauth: -o needs KEY=VALUE, not '%s'\n", arg);
		return ML_EUSAGE;
	}
	*eq = '\0';
	if (config_key_from_name(arg) < 0) {
		for (int k = 0; k < CONFIG_NKEYS; k++)
			names[k] = config_key_name((enum config_key)k);
		names[CONFIG_NKEYS] = NULL;
		fprintf(stderr, "mlauth: unknown setting '%s'", arg);
		if ((best = util_suggest(arg, names)) != NULL)
			fprintf(stderr, " (did you mean '%s'?)", best);
		fputs("\n", stderr);
		return ML_EUSAGE;
	}
	if (*nov >= CMD_MAX_OVERRIDES) {
		fputs("mlauth: too many -o options\n", stderr);
		return ML_EUSAGE;
	}
	ov[*nov].key = arg;
	ov[*nov].value = eq + 1;
	(*nov)++;
	return ML_OK;
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

int
main(int argc, char **argv)
{
	struct config_override ov[CMD_MAX_OVERRIDES];
	struct cmd_ctx ctx;
	struct ml_err err;
	const char *profile = NULL, *file = NULL;
	bool no_color = false;
	int nov = 0, c, status;

	memset(&ctx, 0, sizeof ctx);
	err_clear(&err);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:p:c:o:vqVh", global_options, NULL)) != -1) {
		switch (c) {
		case 'p':
			profile = optarg;
			break;
		case 'c':
			file = optarg;
			break;
		case 'o':
			if ((status = add_override(ov, &nov, optarg)) != ML_OK)
				return status;
			break;
		case 'v':
			ctx.verbose++;
			break;
		case 'q':
			ctx.quiet = true;
			break;
		case 'C':
			no_color = true;
			break;
		case 'V':
			printf("mlauth %s\n", MLAUTH_VERSION);
			return finish_stdout(ML_OK);
		case 'h':
			usage(stdout);
			return finish_stdout(ML_OK);
		case ':':
			fprintf(stderr, "mlauth: option '%s' needs a value\n", argv[optind - 1]);
			usage(stderr);
			return ML_EUSAGE;
		default: {
			const char *names[] = { "--profile", "--config", "--option", "--verbose",
				"--quiet", "--no-color", "--version", "--help", NULL };
			const char *arg = argv[optind - 1], *best;
			char word[64];

			if (optopt != 0) {
				fprintf(stderr, "mlauth: unknown option '-%c'\n", optopt);
			} else {
				(void)snprintf(word, sizeof word, "%.*s", (int)strcspn(arg, "="), arg);
				fprintf(stderr, "mlauth: unknown option '%s'", word);
				if ((best = util_suggest(word, names)) != NULL)
					fprintf(stderr, " (did you mean %s?)", best);
				fputc('\n', stderr);
			}
			fputs("Run 'mlauth --help' for usage.\n", stderr);
			return ML_EUSAGE;
		}
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		usage(stderr);
		return ML_EUSAGE;
	}
	if (strcmp(argv[0], "help") == 0)
		return finish_stdout(help_command(argc, argv));
	if ((ctx.entry = find_command(argv[0])) == NULL)
		return unknown_command(argv[0]);

	ctx.color = want_color(no_color);
	/* --help needs no settings: a broken config file must not hide the usage. */
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			cmd_print_help(ctx.entry, stdout);
			return finish_stdout(ML_OK);
		}
	if (config_load(&ctx.cfg, profile, file, ov, nov, &err) != ML_OK) {
		status = cmd_fail(&ctx, &err);
		config_free(&ctx.cfg);
		return status;
	}
	secret_protect_process();
	catch_interrupts();
	optind = 0;	/* glibc: 0 restarts getopt for the command's own arguments */
	status = ctx.entry->exec(&ctx, argc, argv);
	if (http_interrupted && status != ML_OK)
		status = ML_EINTR;
	config_free(&ctx.cfg);
	return finish_stdout(status);
}
