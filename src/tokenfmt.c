/* tokenfmt.c: what `mlauth token` accepts and prints (see tokenfmt.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mlauth/tokenfmt.h"

/* Here, not in cmd_token.c, so the front can print them without the helper. */
const char tokenfmt_summary[] = "print a valid access token (refreshed when close to expiry)";
const char tokenfmt_usage[] = "[--header | --json] [--min-valid SECS] [--no-refresh]";
const char tokenfmt_help[] =
    "Options:\n"
    "  -H, --header          print 'Authorization: Bearer TOKEN'\n"
    "  -j, --json            print {\"access_token\",\"expires_at\",\"expires_in\",\"token_type\"}\n"
    "      --format FMT      plain (default), header or json\n"
    "  -m, --min-valid SECS  the token must stay valid this long (default: setting\n"
    "                        min_valid, 300); capped at half the token's lifetime\n"
    "      --no-refresh      never use the network; exit 3 when the token is stale\n"
    "\nStdout carries the token and one newline, nothing else.  Example:\n"
    "  curl -H \"$(mlauth token --header)\" https://...\n";

const struct option tokenfmt_options[] = {
	{ "header", no_argument, NULL, 'H' },
	{ "json", no_argument, NULL, 'j' },
	{ "format", required_argument, NULL, TOKENFMT_OPT_FORMAT },
	{ "min-valid", required_argument, NULL, 'm' },
	{ "no-refresh", no_argument, NULL, TOKENFMT_OPT_NO_REFRESH },
	{ NULL, 0, NULL, 0 }
};

int
tokenfmt_parse(const char *name, enum tokenfmt *out)
{
	static const char *const names[] = { "plain", "header", "json" };

	for (int i = 0; i < 3; i++)
		if (strcmp(name, names[i]) == 0) {
			*out = (enum tokenfmt)i;
			return 0;
		}
	return -1;
}

long
tokenfmt_seconds(const char *s)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	return errno != 0 || *end != '\0' || v > 86400L * 365 ? -1 : v;
}

int
tokenfmt_option(struct token_args *a, int c, const char *arg)
{
	switch (c) {
	case 'H':
		a->fmt = TOKENFMT_HEADER;
		return 0;
	case 'j':
		a->fmt = TOKENFMT_JSON;
		return 0;
	case TOKENFMT_OPT_FORMAT:
		return tokenfmt_parse(arg, &a->fmt);
	case 'm':
		return (a->min_valid = tokenfmt_seconds(arg)) < 0 ? -1 : 0;
	case TOKENFMT_OPT_NO_REFRESH:
		a->no_refresh = true;
		return 0;
	}
	return -1;
}

/* A JSON string; tokens are plain ASCII, but a server chose token_type. */
static void
json_string(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(fp, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(fp, "\\u%04x", ch);
		else
			fputc(ch, fp);
	}
	fputc('"', fp);
}

int
tokenfmt_write(FILE *fp, enum tokenfmt fmt, const char *token, int64_t expires_at,
    int64_t now, const char *token_type)
{
	switch (fmt) {
	case TOKENFMT_PLAIN:
		fprintf(fp, "%s\n", token);
		break;
	case TOKENFMT_HEADER:
		fprintf(fp, "Authorization: Bearer %s\n", token);
		break;
	case TOKENFMT_JSON:
		fputs("{\"access_token\":", fp);
		json_string(fp, token);
		fprintf(fp, ",\"expires_at\":%lld,\"expires_in\":%lld,\"token_type\":",
		    (long long)expires_at, (long long)(expires_at - now));
		json_string(fp, token_type != NULL ? token_type : "Bearer");
		fputs("}\n", fp);
		break;
	}
	return ferror(fp) ? -1 : 0;
}
