/* cli.c: the global options of both binaries, so the front and the helper never disagree. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlauth/cli.h"
#include "mlauth/util.h"

/* The first N_AFTER may follow the command too; -V and -h there are the command's (its help). */
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

/*
 * "key=value" from -o into an override.  argv is left as it is: the front
 * binary hands the same argv to the helper.
 */
static int
add_override(struct cli_globals *g, const char *arg, struct ml_err *err)
{
	const char *eq = strchr(arg, '=');
	const char *names[CONFIG_NKEYS + 1];
	const char *best;
	char key[64];
	int k;

	if (eq == NULL || eq == arg)
		return err_set(err, ML_EUSAGE, "-o needs KEY=VALUE, not '%s'", arg);
	(void)snprintf(key, sizeof key, "%.*s", (int)(eq - arg), arg);
	if ((size_t)(eq - arg) >= sizeof key || (k = config_key_from_name(key)) < 0) {
		for (int i = 0; i < CONFIG_NKEYS; i++)
			names[i] = config_key_name((enum config_key)i);
		names[CONFIG_NKEYS] = NULL;
		best = util_suggest(key, names);
		/* No good guess: the list, so the next try need not be one too. */
		if (best == NULL) {
			char list[512];
			size_t n = 0;

			list[0] = '\0';
			for (int i = 0; i < CONFIG_NKEYS && n < sizeof list; i++)
				n += (size_t)snprintf(list + n, sizeof list - n, "%s%s",
				    i > 0 ? ", " : "", names[i]);
			return err_set(err, ML_EUSAGE, "unknown setting '%s' (valid settings: %s)",
			    key, list);
		}
		return err_set(err, ML_EUSAGE, "unknown setting '%s' (did you mean '%s'?)", key,
		    best);
	}
	if (g->nov >= CLI_MAX_OVERRIDES)
		return err_set(err, ML_EUSAGE, "too many -o options");
	g->ov[g->nov].key = config_key_name((enum config_key)k);
	g->ov[g->nov].value = eq + 1;
	g->nov++;
	return ML_OK;
}

#define N_AFTER		6
#define AFTER_SHORT	"pcovq"
#define AFTER_VALUED	"pco"

/* One global option, wherever it stood; later ones win, as getopt's would. */
static int
apply(struct cli_globals *g, int c, const char *arg, struct ml_err *err)
{
	switch (c) {
	case 'p':
		g->profile = arg;
		break;
	case 'c':
		g->file = arg;
		break;
	case 'o':
		return add_override(g, arg, err);
	case 'v':
		g->verbose++;
		break;
	case 'q':
		g->quiet = true;
		break;
	case 'C':
		g->no_color = true;
		break;
	}
	return ML_OK;
}

/* The globals before the command: getopt stops at the command's name. */
static int
parse_leading(int argc, char **argv, struct cli_globals *g, struct ml_err *err)
{
	static const char *const names[] = { "--profile", "--config", "--option", "--verbose",
		"--quiet", "--no-color", "--version", "--help", NULL };
	const char *arg, *best;
	char word[64];
	int c, rc;

	opterr = 0;
	optind = 0;	/* glibc: 0 also resets getopt's internal state */
	while ((c = getopt_long(argc, argv, "+:p:c:o:vqVh", global_options, NULL)) != -1) {
		switch (c) {
		case 'V':
			g->version = true;
			return ML_OK;
		case 'h':
			g->help = true;
			return ML_OK;
		case ':':
			return err_set(err, ML_EUSAGE, "option '%s' needs a value", argv[optind - 1]);
		case '?':
			if (optopt != 0)
				return err_set(err, ML_EUSAGE, "unknown option '-%c' (see mlauth --help)",
				    optopt);
			arg = argv[optind - 1];
			(void)snprintf(word, sizeof word, "%.*s", (int)strcspn(arg, "="), arg);
			best = util_suggest(word, names);
			return err_set(err, ML_EUSAGE, "unknown option '%s' (%s%s%s)", word,
			    best ? "did you mean " : "see mlauth --help", best ? best : "",
			    best ? "?" : "");
		default:
			if ((rc = apply(g, c, optarg, err)) != ML_OK)
				return rc;
		}
	}
	g->first = optind;
	return ML_OK;
}

/*
 * A long option of the globals or the command's own: the exact name, else the
 * one option the name abbreviates, as getopt_long would take it.  -1: none
 * (the command will report it); -2: ambiguous.
 */
static int
match_long(const char *name, size_t len, const struct option *own, const struct option **o)
{
	const struct option *tables[2] = { global_options, own };
	int hits = 0;

	for (int t = 0; t < 2; t++)
		for (const struct option *p = tables[t]; p != NULL && p->name != NULL &&
		    (t == 1 || p < global_options + N_AFTER); p++) {
			if (strncmp(p->name, name, len) != 0)
				continue;
			*o = p;
			if (p->name[len] == '\0')
				return 0;
			hits++;
		}
	return hits == 1 ? 0 : hits == 0 ? -1 : -2;
}

static const struct option *
own_short(const struct option *own, int c)
{
	for (const struct option *p = own; p != NULL && p->name != NULL; p++)
		if (p->val == c)
			return p;
	return NULL;
}

static bool
is_global(const struct option *o)
{
	return o >= global_options && o < global_options + N_AFTER;
}

/* The command's arguments being walked: what is the command's goes on to g->argv. */
struct walk {
	char **argv;
	int argc, i;
	const struct option *own;	/* the command's options, or NULL */
	char *spare;			/* room for clusters left without their global letters */
};

static void
keep(struct cli_globals *g, char *arg)
{
	g->argv[g->argc++] = arg;
}

/* argv[i] is "--name" or "--name=value". */
static int
take_long(struct walk *w, struct cli_globals *g, struct ml_err *err)
{
	char *a = w->argv[w->i], *name = a + 2, *eq = strchr(name, '=');
	size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
	const struct option *o = NULL;
	int m = match_long(name, len, w->own, &o);

	if (m == -2)
		return err_set(err, ML_EUSAGE, "option '%.*s' is ambiguous (see mlauth --help)",
		    (int)len + 2, a);
	if (m < 0 || !is_global(o)) {
		keep(g, a);
		/* An own option's value is the command's, even one that looks like an option. */
		if (m == 0 && o->has_arg == required_argument && eq == NULL && w->i + 1 < w->argc)
			keep(g, w->argv[++w->i]);
		return ML_OK;
	}
	if (o->has_arg == no_argument)
		return eq != NULL ? err_set(err, ML_EUSAGE, "option '--%s' takes no value", o->name) :
		    apply(g, o->val, NULL, err);
	if (eq != NULL)
		return apply(g, o->val, eq + 1, err);
	if (w->i + 1 >= w->argc)
		return err_set(err, ML_EUSAGE, "option '--%s' needs a value", o->name);
	return apply(g, o->val, w->argv[++w->i], err);
}

/* argv[i] is "-abc": the global letters are taken out, the command's kept in their order. */
static int
take_short(struct walk *w, struct cli_globals *g, struct ml_err *err)
{
	char *a = w->argv[w->i], *kept = w->spare, *value = NULL;
	bool next_taken = false;
	size_t nk = 1;
	int rc;

	kept[0] = '-';
	for (size_t j = 1; a[j] != '\0'; j++) {
		int c = (unsigned char)a[j];
		const struct option *o = own_short(w->own, c);
		const char *garg = NULL;

		if (o != NULL || c == ':' || strchr(AFTER_SHORT, c) == NULL) {
			if (o != NULL && o->has_arg == no_argument) {
				kept[nk++] = (char)c;
				continue;
			}
			/* A letter with a value, or one the command will report: the rest is its. */
			memcpy(kept + nk, a + j, strlen(a + j));
			nk += strlen(a + j);
			if (o != NULL && a[j + 1] == '\0' && w->i + 1 < w->argc)
				value = w->argv[w->i + 1];
			break;
		}
		if (strchr(AFTER_VALUED, c) != NULL) {
			if (a[j + 1] != '\0')
				garg = a + j + 1;
			else if (w->i + 1 < w->argc && (next_taken = true))
				garg = w->argv[w->i + 1];
			else
				return err_set(err, ML_EUSAGE, "option '-%c' needs a value", c);
		}
		if ((rc = apply(g, c, garg, err)) != ML_OK)
			return rc;
		if (garg != NULL)
			break;
	}
	if (nk > 1) {
		kept[nk] = '\0';
		keep(g, strcmp(kept, a) == 0 ? a : kept);
		w->spare += nk + 1;
	}
	if (value != NULL || next_taken)
		w->i++;
	if (value != NULL)
		keep(g, value);
	return ML_OK;
}

/* After the command, up to its first operand or "--": its own options and globals. */
static int
parse_after(int argc, char **argv, const struct option *own, struct cli_globals *g,
    struct ml_err *err)
{
	struct walk w = { .argv = argv, .argc = argc, .own = own };
	size_t room = 0;
	int rc;

	for (int i = 1; i < argc; i++)
		room += strlen(argv[i]) + 2;
	if ((g->argv = malloc((size_t)(argc + 1) * sizeof *g->argv + room)) == NULL)
		return err_set(err, ML_EFAIL, "out of memory");
	w.spare = (char *)(g->argv + argc + 1);
	keep(g, argv[0]);
	for (w.i = 1; w.i < argc; w.i++) {
		const char *a = argv[w.i];

		if (a[0] != '-' || a[1] == '\0' || strcmp(a, "--") == 0)
			break;
		rc = a[1] == '-' ? take_long(&w, g, err) : take_short(&w, g, err);
		if (rc != ML_OK)
			return rc;
	}
	while (w.i < argc)
		keep(g, argv[w.i++]);
	g->argv[g->argc] = NULL;
	return ML_OK;
}

int
cli_parse_globals(int argc, char **argv, const struct option *(*options_of)(const char *),
    struct cli_globals *g, struct ml_err *err)
{
	int rc;

	memset(g, 0, sizeof *g);
	rc = parse_leading(argc, argv, g, err);
	if (rc != ML_OK || g->version || g->help || g->first >= argc)
		return rc;
	rc = parse_after(argc - g->first, argv + g->first, options_of(argv[g->first]), g, err);
	if (rc != ML_OK)
		cli_globals_free(g);
	return rc;
}

void
cli_globals_free(struct cli_globals *g)
{
	free(g->argv);
	g->argv = NULL;
	g->argc = 0;
}

void
cli_print_help(FILE *fp, const char *name, const char *summary, const char *usage,
    const char *help)
{
	fprintf(fp, "usage: mlauth %s%s%s\n\n%s\n", name, usage[0] ? " " : "", usage, summary);
	if (help != NULL && help[0] != '\0')
		fprintf(fp, "\n%s", help);
	fputs("\nGlobal options (-p PROFILE, -c FILE, -o KEY=VALUE, -v, -q, --no-color) go "
	    "before or after the command; see mlauth --help and man mlauth.\n", fp);
}

bool
cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc && argv[i][0] == '-' && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}
