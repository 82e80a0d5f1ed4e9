/* unit.h: what every cmocka test file includes, in the order cmocka wants. */
#ifndef MLAUTH_UNIT_H
#define MLAUTH_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

/* An error message mentions needle; or, for msg_lacks, does not (a leak check). */
static inline void
msg_has(const char *msg, const char *needle)
{
	if (strstr(msg, needle) == NULL)
		fail_msg("'%s' lacks '%s'", msg, needle);
}

static inline void
msg_lacks(const char *msg, const char *needle)
{
	if (strstr(msg, needle) != NULL)
		fail_msg("'%s' shows '%s'", msg, needle);
}

#endif
