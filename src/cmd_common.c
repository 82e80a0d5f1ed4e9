/* cmd_common.c: what every command shares: option parsing, usage, messages. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mlauth/cli.h"
#include "mlauth/cmd.h"
#include "mlauth/http.h"
#include "mlauth/store.h"
#include "mlauth/term.h"
#include "mlauth/token.h"
#include "mlauth/util.h"

static void vmessage(const struct cmd_ctx *, const char *, const char *, const char *,
    va_list) __attribute__((format(printf, 4, 0)));

static void
vmessage(const struct cmd_ctx *ctx, const char *label, const char *color,
    const char *fmt, va_list ap)
{
	fputs("mlauth: ", stderr);
	if (label != NULL) {
		if (ctx != NULL && ctx->color)
			fprintf(stderr, "\033[%sm%s\033[0m ", color, label);
		else
			fprintf(stderr, "%s ", label);
	}
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void
cmd_error(const struct cmd_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage(ctx, NULL, NULL, fmt, ap);
	va_end(ap);
}

void
cmd_warn(const struct cmd_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage(ctx, "warning:", "33", fmt, ap);
	va_end(ap);
}

void
cmd_info(const struct cmd_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	if (ctx != NULL && ctx->quiet)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
cmd_fail(const struct cmd_ctx *ctx, const struct ml_err *err)
{
	cmd_error(ctx, "%s", err->msg[0] != '\0' ? err->msg : "failed");
	return err->code != ML_OK ? err->code : ML_EFAIL;
}

void
cmd_print_help(const struct cmd_entry *e, FILE *fp)
{
	cli_print_help(fp, e->name, e->summary, e->usage, e->help);
}

int
cmd_usage_error(const struct cmd_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "mlauth %s: ", ctx->entry->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: mlauth %s %s\n", ctx->entry->name, ctx->entry->usage);
	return ML_EUSAGE;
}

/* "--min-valid" style names of the entry's options, for suggestions. */
static void
suggest_option(const struct cmd_ctx *ctx, const char *word)
{
	const char *names[32];
	char bufs[32][40];
	const char *best;
	size_t n = 0;

	for (const struct option *o = ctx->entry->options; o != NULL && o->name != NULL &&
	    n < 30; o++, n++) {
		(void)snprintf(bufs[n], sizeof bufs[n], "--%s", o->name);
		names[n] = bufs[n];
	}
	names[n++] = "--help";
	names[n] = NULL;
	best = util_suggest(word, names);
	if (best != NULL)
		fprintf(stderr, " (did you mean %s?)", best);
}

int
cmd_getopt(struct cmd_ctx *ctx, int argc, char **argv, int *status)
{
	static const struct option help_only[] = { { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 } };
	struct option lo[40];
	char shortopts[96] = "+:h";
	size_t n = 0, sl = strlen(shortopts);
	int c;

	for (const struct option *o = ctx->entry->options; o != NULL && o->name != NULL &&
	    n < 38; o++) {
		lo[n++] = *o;
		/* Letters are short options too; larger values are long-only. */
		if (o->val > ' ' && o->val < 127 && sl + 3 < sizeof shortopts) {
			shortopts[sl++] = (char)o->val;
			if (o->has_arg == required_argument)
				shortopts[sl++] = ':';
			shortopts[sl] = '\0';
		}
	}
	lo[n++] = help_only[0];
	lo[n] = help_only[1];

	opterr = 0;
	c = getopt_long(argc, argv, shortopts, lo, NULL);
	if (c == 'h') {
		cmd_print_help(ctx->entry, stdout);
		*status = ML_OK;
		return CMD_OPT_DONE;
	}
	if (c == '?' || c == ':') {
		const char *arg = argv[optind - 1];

		fprintf(stderr, "mlauth %s: ", ctx->entry->name);
		if (c == ':')
			fprintf(stderr, "option '%s' needs a value", arg);
		else if (optopt != 0)
			fprintf(stderr, "unknown option '-%c'", optopt);
		else {
			char word[64];

			(void)snprintf(word, sizeof word, "%.*s", (int)strcspn(arg, "="), arg);
			fprintf(stderr, "unknown option '%s'", word);
			suggest_option(ctx, word);
		}
		fprintf(stderr, "\nusage: mlauth %s %s\n", ctx->entry->name, ctx->entry->usage);
		*status = ML_EUSAGE;
		return CMD_OPT_DONE;
	}
	return c;
}

int
cmd_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	/* Other signals (SIGCHLD, SIGWINCH) only shorten the nap; Ctrl-C ends it. */
	while (!http_interrupted && nanosleep(&ts, &ts) != 0)
		;
	return http_interrupted ? ML_EINTR : ML_OK;
}

void
cmd_warn_fallback(const struct cmd_ctx *ctx, const struct store *st)
{
	const char *file = ctx->cfg.file;

	cmd_warn(ctx, "no keyring (Secret Service) answered (%s): the session will be kept "
	    "in %s (mode 0600) instead; to choose that on purpose and drop this warning, set "
	    "store = file (in [%s] of %s, or MLAUTH_STORE=file)", st->reason,
	    store_describe(st), ctx->cfg.profile, file != NULL ? file : "the config file");
}

/* http_opts.on_slow for a person on a terminal: what is being waited for, on one line. */
static void
slow_notice(void *arg, const char *peer, const char *origin, bool done)
{
	const struct cmd_ctx *ctx = arg;
	char line[256];
	int n, cols = term_columns(STDERR_FILENO);

	if (done) {
		fputs(TERM_CLEAR_LINE, stderr);
		return;
	}
	n = snprintf(line, sizeof line, "%s %s%s%s...", ctx->entry != NULL &&
	    strcmp(ctx->entry->name, "doctor") == 0 ? "Checking" : "Contacting",
	    peer != NULL ? peer : "", peer != NULL ? " at " : "", origin);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof line)
		n = (int)sizeof line - 1;
	/* A line that wrapped could not be erased. */
	if (cols > 1 && n >= cols)
		n = cols - 1;
	fprintf(stderr, "\r%.*s" TERM_ERASE_EOL, n, line);
	fflush(stderr);
}

void
cmd_http_opts(const struct cmd_ctx *ctx, struct http_opts *o)
{
	token_http_opts(&ctx->cfg, ctx->verbose, o);
	/* Not under -vv: the trace says it all, line by line. */
	if (!ctx->quiet && ctx->verbose < 2 && term_live(STDERR_FILENO)) {
		o->on_slow = slow_notice;
		o->slow_arg = (void *)ctx;
	}
}

int
cmd_fresh_token(const struct cmd_ctx *ctx, const struct token_opts *o,
    struct token_result *res)
{
	struct store st;
	struct ml_err err;
	bool st_open = false;
	int status;

	err_clear(&err);
	status = token_get(&ctx->cfg, ctx->verbose, &st, &st_open, o, res, &err);
	if (status != ML_OK) {
		status = cmd_fail(ctx, &err);
	} else {
		if (st_open && res->refreshed && st.fell_back)
			cmd_warn_fallback(ctx, &st);
		if (res->warning[0] != '\0')
			cmd_warn(ctx, "%s", res->warning);
	}
	if (st_open)
		store_close(&st);
	return status;
}

/* fish when $SHELL is a fish, else POSIX sh (bash, zsh, dash, ksh all read that). */
enum cmd_shell
cmd_shell_default(void)
{
	const char *sh = getenv("SHELL");
	size_t n = sh != NULL ? strlen(sh) : 0;

	return n >= 5 && strcmp(sh + n - 5, "/fish") == 0 ? CMD_SHELL_FISH : CMD_SHELL_SH;
}

/*
 * value in single quotes, so the shell takes every byte literally.  sh has no
 * escape inside single quotes: a quote closes them, \' adds one, and a new
 * pair opens ('\'').  fish reads \' and \\ inside them, so both are escaped.
 */
static void
put_quoted(enum cmd_shell sh, const char *value)
{
	putchar('\'');
	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '\'' && sh == CMD_SHELL_SH)
			fputs("'\\''", stdout);
		else if ((*p == '\'' || *p == '\\') && sh == CMD_SHELL_FISH) {
			putchar('\\');
			putchar(*p);
		} else
			putchar(*p);
	}
	putchar('\'');
}

/*
 * One assignment per line.  fish's lines end in ';' so that `eval (mlauth env)`,
 * which joins the lines with spaces, still reads separate commands.
 */
void
cmd_put_export(enum cmd_shell sh, const char *name, const char *value)
{
	fputs(sh == CMD_SHELL_FISH ? "set -gx " : "export ", stdout);
	fputs(name, stdout);
	putchar(sh == CMD_SHELL_FISH ? ' ' : '=');
	put_quoted(sh, value);
	fputs(sh == CMD_SHELL_FISH ? ";\n" : "\n", stdout);
}

int
cmd_shell_parse(const char *name, enum cmd_shell *sh)
{
	if (strcmp(name, "sh") == 0)
		*sh = CMD_SHELL_SH;
	else if (strcmp(name, "fish") == 0)
		*sh = CMD_SHELL_FISH;
	else
		return -1;
	return 0;
}

void
cmd_say(void *ctx, bool warning, const char *msg)
{
	if (warning)
		cmd_warn(ctx, "%s", msg);
	else
		cmd_info(ctx, "mlauth: %s", msg);
}
