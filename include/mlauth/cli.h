/* cli.h: the global options, parsed the same way by both binaries (mlauth and its helper). */
#ifndef MLAUTH_CLI_H
#define MLAUTH_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "mlauth/config.h"
#include "mlauth/err.h"

#define CLI_MAX_OVERRIDES 32

struct cli_globals {
	const char *profile;		/* -p, or NULL */
	const char *file;		/* -c, or NULL */
	struct config_override ov[CLI_MAX_OVERRIDES];	/* -o KEY=VALUE; argv untouched */
	int nov;
	int verbose;
	bool quiet, no_color;
	bool version, help;		/* -V / -h seen: nothing after them was parsed */
	int first;			/* argv index of the command (argc when none) */
	int argc;			/* the command and its arguments, globals taken out */
	char **argv;			/* (NULL, 0 when there is none); cli_globals_free */
};

/*
 * Parse the global options, before the command and after it among its own
 * options (up to its first operand or "--"), as gh and az take flags where
 * people type them.  options_of(name) gives the command's own long options
 * (short letters in .val), so their values are never taken for globals: the
 * front passes token's alone, the helper every command's.  argv stays as it
 * is (the front hands it to the helper); g->argv is the command's view.
 * Errors are ML_EUSAGE with a one-line message that may suggest the option
 * meant; *g is zeroed first, and needs cli_globals_free only on success.
 */
int cli_parse_globals(int argc, char **argv, const struct option *(*options_of)(const char *),
    struct cli_globals *g, struct ml_err *err);
void cli_globals_free(struct cli_globals *g);

/*
 * Whether a command's arguments (argv[0] is the command) ask for its help:
 * -h or --help before the first operand or "--" (`exec CMD --help` is CMD's).
 */
bool cli_wants_help(int argc, char **argv);

/* A command's help, in the one layout both binaries print (to fp, for --help). */
void cli_print_help(FILE *fp, const char *name, const char *summary, const char *usage,
    const char *help);

#endif
