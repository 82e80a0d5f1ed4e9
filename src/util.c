#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "mlauth/util.h"

/* Optimal string alignment distance, capped: only small distances matter here. */
static size_t
distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t d[3][65];

	if (la > 64 || lb > 64)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t *cur = d[i % 3], *prev = d[(i - 1) % 3], *prev2 = d[(i + 1) % 3];

		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t v = prev[j] + 1;

			if (cur[j - 1] + 1 < v)
				v = cur[j - 1] + 1;
			if (prev[j - 1] + cost < v)
				v = prev[j - 1] + cost;
			/* A swap of two neighbours is one typo, not two. */
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    prev2[j - 2] + 1 < v)
				v = prev2[j - 2] + 1;
			cur[j] = v;
		}
	}
	return d[la % 3][lb];
}

const char *
util_suggest(const char *word, const char *const *candidates)
{
	const char *best = NULL;
	size_t best_d = 99, wl = strlen(word);

	if (wl == 0)
		return NULL;
	for (const char *const *c = candidates; *c != NULL; c++) {
		size_t dd = distance(word, *c);

		/* A unique prefix ("stat" for "status") is as good as one typo. */
		if (strncmp(*c, word, wl) == 0 && dd > 1)
			dd = 1;
		if (dd < best_d) {
			best_d = dd;
			best = *c;
		}
	}
	/* Allow one typo in short words, two in longer ones. */
	return best_d <= (wl <= 4 ? 1u : 2u) ? best : NULL;
}

void
util_format_duration(int64_t secs, char *buf, size_t len)
{
	const char *sign = secs < 0 ? "-" : "";
	int64_t s = secs < 0 ? -secs : secs;

	if (s >= 86400)
		(void)snprintf(buf, len, "%s%lldd %lldh", sign, (long long)(s / 86400),
		    (long long)(s % 86400 / 3600));
	else if (s >= 3600)
		(void)snprintf(buf, len, "%s%lldh %lldm", sign, (long long)(s / 3600),
		    (long long)(s % 3600 / 60));
	else if (s >= 60)
		(void)snprintf(buf, len, "%s%lldm %llds", sign, (long long)(s / 60),
		    (long long)(s % 60));
	else
		(void)snprintf(buf, len, "%s%llds", sign, (long long)s);
}

void
util_format_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M", &tm) == 0)
		(void)snprintf(buf, len, "%lld", (long long)t);
}

int64_t
util_now(void)
{
	return (int64_t)time(NULL);
}

int
util_json_load(const char *buf, size_t len, size_t max, size_t flags, int code,
    const char *what, json_t **root, struct ml_err *err)
{
	json_error_t je;
	size_t i = 0;

	*root = NULL;
	if (len > max)
		return err_set(err, code, "%s is too large (%zu bytes)", what, len);
	while (buf != NULL && i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' ||
	    buf[i] == '\n'))
		i++;
	if (buf == NULL || i == len)
		return err_set(err, code, "%s is empty", what);
	if (buf[i] == '<')
		return err_set(err, code, "%s is an HTML page, not JSON", what);
	if ((*root = json_loadb(buf, len, flags, &je)) != NULL)
		return ML_OK;
	switch (json_error_code(&je)) {
	case json_error_stack_overflow:
		return err_set(err, code, "%s is nested too deeply", what);
	case json_error_premature_end_of_input:
		return err_set(err, code, "%s is truncated", what);
	case json_error_invalid_utf8:
		return err_set(err, code, "%s is not valid UTF-8", what);
	case json_error_duplicate_key:
		return err_set(err, code, "%s names a member twice", what);
	case json_error_out_of_memory:
		return err_set(err, ML_EFAIL, "out of memory reading %s", what);
	default:
		return err_set(err, code, "%s is not valid JSON (at byte %d)", what, je.position);
	}
}
