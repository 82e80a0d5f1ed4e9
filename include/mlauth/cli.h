/* cli.h: the global options, parsed the same way by both binaries (mlauth and its helper). */
#ifndef MLAUTH_CLI_H
#define MLAUTH_CLI_H

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
};

/*
 * Parse the global options in front of the command.  Errors are ML_EUSAGE
 * with a one-line message that may suggest the option meant; *g is zeroed first.
 */
int cli_parse_globals(int argc, char **argv, struct cli_globals *g, struct ml_err *err);

/*
 * Whether a command's arguments (argv[0] is the command) ask for its help:
 * -h or --help before the first operand or "--" (`exec CMD --help` is CMD's).
 */
bool cli_wants_help(int argc, char **argv);

/* A command's help, in the one layout both binaries print (to fp, for --help). */
void cli_print_help(FILE *fp, const char *name, const char *summary, const char *usage,
    const char *help);

#endif
