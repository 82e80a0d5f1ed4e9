/* cli.c: the global options of both binaries, so the front and the helper never disagree. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "mlauth/cli.h"
#include "mlauth/util.h"

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
		return err_set(err, ML_EUSAGE, "unknown setting '%s'%s%s%s", key,
		    best ? " (did you mean '" : "", best ? best : "", best ? "'?)" : "");
	}
	if (g->nov >= CLI_MAX_OVERRIDES)
		return err_set(err, ML_EUSAGE, "too many -o options");
	g->ov[g->nov].key = config_key_name((enum config_key)k);
	g->ov[g->nov].value = eq + 1;
	g->nov++;
	return ML_OK;
}

int
cli_parse_globals(int argc, char **argv, struct cli_globals *g, struct ml_err *err)
{
	static const char *const names[] = { "--profile", "--config", "--option", "--verbose",
		"--quiet", "--no-color", "--version", "--help", NULL };
	const char *arg, *best;
	char word[64];
	int c, rc;

	memset(g, 0, sizeof *g);
	opterr = 0;
	optind = 0;	/* glibc: 0 also resets getopt's internal state */
	while ((c = getopt_long(argc, argv, "+:p:c:o:vqVh", global_options, NULL)) != -1) {
		switch (c) {
		case 'p':
			g->profile = optarg;
			break;
		case 'c':
			g->file = optarg;
			break;
		case 'o':
			if ((rc = add_override(g, optarg, err)) != ML_OK)
				return rc;
			break;
		case 'v':
			g->verbose++;
			break;
		case 'q':
			g->quiet = true;
			break;
		case 'C':
			g->no_color = true;
			break;
		case 'V':
			g->version = true;
			g->first = optind;
			return ML_OK;
		case 'h':
			g->help = true;
			g->first = optind;
			return ML_OK;
		case ':':
			return err_set(err, ML_EUSAGE, "option '%s' needs a value", argv[optind - 1]);
		default:
			if (optopt != 0)
				return err_set(err, ML_EUSAGE, "unknown option '-%c' (see mlauth --help)",
				    optopt);
			arg = argv[optind - 1];
			(void)snprintf(word, sizeof word, "%.*s", (int)strcspn(arg, "="), arg);
			best = util_suggest(word, names);
			return err_set(err, ML_EUSAGE, "unknown option '%s' (%s%s%s)", word,
			    best ? "did you mean " : "see mlauth --help", best ? best : "",
			    best ? "?" : "");
		}
	}
	g->first = optind;
	return ML_OK;
}

void
cli_print_help(FILE *fp, const char *name, const char *summary, const char *usage,
    const char *help)
{
	fprintf(fp, "usage: mlauth %s%s%s\n\n%s\n", name, usage[0] ? " " : "", usage, summary);
	if (help != NULL && help[0] != '\0')
		fprintf(fp, "\n%s", help);
	fputs("\nGlobal options (-p PROFILE, -c FILE, -o KEY=VALUE, -v, -q, --no-color) go "
	    "before the command; see mlauth --help and man mlauth.\n", fp);
}

bool
cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc && argv[i][0] == '-' && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}
