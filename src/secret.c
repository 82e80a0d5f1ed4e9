#define _DEFAULT_SOURCE	/* explicit_bzero */
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "mlauth/secret.h"

char *
secret_dup(const char *s)
{
	return s == NULL ? NULL : strdup(s);
}

void
secret_wipe(void *p, size_t n)
{
	if (p != NULL)
		explicit_bzero(p, n);
}

void
secret_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

void
secret_protect_process(void)
{
	struct rlimit core;

	/*
	 * Best effort: a core file or a ptrace by another process of the same
	 * user would expose the tokens.  Failure leaves us no worse off.  Only
	 * the soft limit: children of `mlauth exec` may raise it again.
	 */
	if (getrlimit(RLIMIT_CORE, &core) == 0) {
		core.rlim_cur = 0;
		(void)setrlimit(RLIMIT_CORE, &core);
	}
	secret_undumpable();
}

void
secret_undumpable(void)
{
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}
