/* cmd.h: the command table and what main.c hands every command. */
#ifndef MLAUTH_CMD_H
#define MLAUTH_CMD_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "mlauth/config.h"
#include "mlauth/err.h"

struct cmd_ctx {
	struct config cfg;		/* loaded by main before exec */
	int verbose;			/* -v count */
	bool quiet;			/* -q: results and errors only */
	bool color;			/* stderr is a TTY, no NO_COLOR, no --no-color */
	const struct cmd_entry *entry;	/* the command being run */
};

struct cmd_entry {
	const char *name;
	const char *summary;		/* one line for `mlauth --help` */
	const char *usage;		/* arguments after the name */
	const char *help;		/* option lines for `mlauth CMD --help` */
	const struct option *options;	/* long options; .val is the short letter */
	int (*exec)(struct cmd_ctx *ctx, int argc, char **argv);
};

extern const struct cmd_entry cmd_config_entry;
extern const struct cmd_entry cmd_doctor_entry;
extern const struct cmd_entry cmd_env_entry;
extern const struct cmd_entry cmd_exec_entry;
extern const struct cmd_entry cmd_login_entry;
extern const struct cmd_entry cmd_logout_entry;
extern const struct cmd_entry cmd_proxy_entry;
extern const struct cmd_entry cmd_send_entry;
extern const struct cmd_entry cmd_status_entry;
extern const struct cmd_entry cmd_token_entry;

/* Returned by cmd_getopt once --help was shown or a usage error reported. */
#define CMD_OPT_DONE (-2)

/*
 * getopt_long over a command's own arguments, with short options taken from
 * the entry's table.  Handles -h/--help (prints usage, *status = 0) and
 * unknown or incomplete options (prints the error with a suggestion and the
 * usage line, *status = ML_EUSAGE): both return CMD_OPT_DONE.
 */
int cmd_getopt(struct cmd_ctx *ctx, int argc, char **argv, int *status);
/* Print "mlauth CMD: why" and the usage line; returns ML_EUSAGE. */
int cmd_usage_error(const struct cmd_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cmd_print_help(const struct cmd_entry *e, FILE *fp);

/* Messages to stderr: errors always, warnings always, info unless -q. */
void cmd_error(const struct cmd_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cmd_warn(const struct cmd_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cmd_info(const struct cmd_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Sleep ms milliseconds; ML_EINTR as soon as Ctrl-C (or SIGTERM) arrives. */
int cmd_sleep_ms(long ms);
struct token_opts;
struct token_result;
/*
 * A token per o, with the warnings a user should see (store fallback,
 * provider unreachable) printed and any failure reported: the status to exit
 * with.  token_result_free *res either way.
 */
int cmd_fresh_token(const struct cmd_ctx *ctx, const struct token_opts *o,
    struct token_result *res);
struct http_opts;
/*
 * The settings' HTTP options, and on a terminal (not -q) a line saying what
 * a request waits for once it has waited a second, erased when it ends.
 */
void cmd_http_opts(const struct cmd_ctx *ctx, struct http_opts *o);
struct store;
/* The warning for store=auto that fell back to the file: why, where, how to choose it. */
void cmd_warn_fallback(const struct cmd_ctx *ctx, const struct store *st);
/* A shell for export lines: POSIX sh (bash, zsh, dash) or fish. */
enum cmd_shell { CMD_SHELL_SH, CMD_SHELL_FISH };
/* fish when $SHELL ends in /fish, else sh. */
enum cmd_shell cmd_shell_default(void);
/* "sh" or "fish" into *sh; -1 for anything else. */
int cmd_shell_parse(const char *name, enum cmd_shell *sh);
/* One line that sets and exports name to value (quoted so the shell runs nothing). */
void cmd_put_export(enum cmd_shell sh, const char *name, const char *value);
/* An api_say_fn (api.h) for ctx (a const struct cmd_ctx *): warnings, or info unless -q. */
void cmd_say(void *ctx, bool warning, const char *msg);
struct proxy;
struct proxy_opts;
/*
 * Start a proxy (proxy.h) for ctx's profile with po filled in (po must
 * outlive it), failures reported: the status to exit with.
 */
int cmd_proxy_start(struct cmd_ctx *ctx, long min_valid, unsigned port,
    struct proxy_opts *po, struct proxy **p);
/* Report a module's error and return its code (the exit status). */
int cmd_fail(const struct cmd_ctx *ctx, const struct ml_err *err);

#endif
