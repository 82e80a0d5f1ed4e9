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

#ifdef __G_LIB_H__
/* s in base64url without padding (JWT segments); g_free it.  For files that use GLib. */
static inline char *
unit_b64url(const char *s)
{
	char *b = g_base64_encode((const guchar *)s, strlen(s)), *p;

	for (p = b; *p != '\0' && *p != '='; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	*p = '\0';
	return b;
}
#endif

#endif
