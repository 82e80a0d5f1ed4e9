/*
 * tokenfmt.h: the options and output of `mlauth token`, shared by the helper's
 * token command and the front binary's fast path, so both accept and print
 * exactly the same.
 */
#ifndef MLAUTH_TOKENFMT_H
#define MLAUTH_TOKENFMT_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum tokenfmt { TOKENFMT_PLAIN, TOKENFMT_HEADER, TOKENFMT_JSON };

enum { TOKENFMT_OPT_NO_REFRESH = 256, TOKENFMT_OPT_FORMAT };

/* The token command's help texts and long options (short letters in .val). */
extern const char tokenfmt_summary[], tokenfmt_usage[], tokenfmt_help[];
extern const struct option tokenfmt_options[];

struct token_args {
	enum tokenfmt fmt;
	long min_valid;		/* -1: the setting */
	bool no_refresh;
};

/* "plain", "header" or "json"; -1 for anything else. */
int tokenfmt_parse(const char *name, enum tokenfmt *out);
/* Whole seconds for --min-valid (up to a year); -1 when invalid. */
long tokenfmt_seconds(const char *s);
/*
 * Apply one option returned by getopt_long over tokenfmt_options (c, optarg);
 * -1 when its value is invalid (the caller says so).
 */
int tokenfmt_option(struct token_args *a, int c, const char *arg);
/*
 * Write token as fmt to fp: the token and one newline, the Authorization
 * header, or one line of JSON.  -1 when writing failed.
 */
int tokenfmt_write(FILE *fp, enum tokenfmt fmt, const char *token, int64_t expires_at,
    int64_t now, const char *token_type);

#endif
