/* module.c: opening the program's own modules from the directory it runs from. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mlauth/module.h"

int
module_open(const char *file, const char *what, const char *symbol, int abi,
    const void **table, struct ml_err *err)
{
	char exe[PATH_MAX], path[PATH_MAX];
	const char *slash;
	const int *t;
	void *h;
	ssize_t n;

	if ((n = readlink("/proc/self/exe", exe, sizeof exe - 1)) <= 0)
		return err_set(err, ML_EFAIL, "cannot find %s: /proc/self/exe: %s", what,
		    n < 0 ? strerror(errno) : "empty");
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (snprintf(path, sizeof path, "%.*s/%s", slash != NULL ? (int)(slash - exe) : 1,
	    slash != NULL ? exe : ".", file) >= (int)sizeof path)
		return err_set(err, ML_EFAIL, "cannot find %s: path too long", what);
	if ((h = dlopen(path, RTLD_LAZY | RTLD_LOCAL)) == NULL)
		return err_set(err, ML_EFAIL, "cannot load %s: %s (reinstall mlauth)", what,
		    dlerror());
	t = dlsym(h, symbol);
	if (t == NULL || *t != abi) {
		(void)dlclose(h);
		return err_set(err, ML_EFAIL, "%s is not this mlauth's %s (reinstall mlauth)",
		    path, what + (strncmp(what, "the ", 4) == 0 ? 4 : 0));
	}
	*table = t;
	return ML_OK;
}
