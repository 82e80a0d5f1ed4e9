/* util.h: small helpers shared by commands and modules. */
#ifndef MLAUTH_UTIL_H
#define MLAUTH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* The closest of candidates to word (NULL-terminated list), or NULL when none is close. */
const char *util_suggest(const char *word, const char *const *candidates);
/* Seconds as "1h 54m", "3m 10s", "2d 4h", "12s" into buf. */
void util_format_duration(int64_t secs, char *buf, size_t len);
/* A time as local "YYYY-MM-DD HH:MM" into buf. */
void util_format_time(int64_t t, char *buf, size_t len);
/* Wall-clock seconds since the epoch. */
int64_t util_now(void);

#endif
