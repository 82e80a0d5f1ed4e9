#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mlauth/err.h"

int
err_set(struct ml_err *e, int code, const char *fmt, ...)
{
	char buf[sizeof e->msg];
	va_list ap;

	if (e == NULL)
		return code;
	e->code = code;
	va_start(ap, fmt);
	/*
	 * Into a copy first: callers may pass e->msg itself as an argument
	 * ("...: %s", err->msg), and vsnprintf must not read what it writes.
	 * Truncation of a message is harmless: it is for a human.
	 */
	(void)vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	memcpy(e->msg, buf, sizeof buf);
	return code;
}

void
err_prefix(struct ml_err *e, const char *fmt, ...)
{
	char buf[sizeof e->msg];
	size_t n;
	va_list ap;

	if (e == NULL)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	n = strlen(buf);
	if (n + 2 < sizeof buf) {
		buf[n++] = ':';
		buf[n++] = ' ';
		/* Truncation of a message is harmless: it is for a human. */
		memcpy(buf + n, e->msg, sizeof buf - n - 1);
		buf[sizeof buf - 1] = '\0';
	}
	memcpy(e->msg, buf, sizeof buf);
}

void
err_clear(struct ml_err *e)
{
	if (e == NULL)
		return;
	e->code = ML_OK;
	e->msg[0] = '\0';
}
