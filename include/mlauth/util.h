/* util.h: small helpers shared by commands and modules. */
#ifndef MLAUTH_UTIL_H
#define MLAUTH_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "mlauth/err.h"

struct json_t;

/* The closest of candidates to word (NULL-terminated list), or NULL when none is close. */
const char *util_suggest(const char *word, const char *const *candidates);
/* Seconds as "1h 54m", "3m 10s", "2d 4h", "12s" into buf. */
void util_format_duration(int64_t secs, char *buf, size_t len);
/* A time as local "YYYY-MM-DD HH:MM" into buf. */
void util_format_time(int64_t t, char *buf, size_t len);
/* Wall-clock seconds since the epoch. */
int64_t util_now(void);
/*
 * Parse a server's JSON answer (any value) into *root, with jansson's flags.
 * Failures are one line naming what ("the token answer"), with status code:
 * empty, over max bytes, an HTML page (a proxy or captive portal), nested too
 * deeply, truncated, invalid UTF-8, a member named twice, not JSON; out of
 * memory is ML_EFAIL.
 */
int util_json_load(const char *buf, size_t len, size_t max, size_t flags, int code,
    const char *what, struct json_t **root, struct ml_err *err);

#endif
