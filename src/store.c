/*
 * store.c: which store holds a profile's record, and dispatch to it.
 * The policy lives here; the backends (store_secret.c, store_file.c) only
 * know how to talk to theirs.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mlauth/config.h"
#include "mlauth/err.h"
#include "mlauth/module.h"
#include "mlauth/secret.h"
#include "mlauth/store.h"

#define STORE_SECRET_MODULE	"mlauth-secret.so"

/*
 * The Secret Service module, opened on first use.  A module that cannot be
 * opened is a broken installation, and says so: falling back to the file
 * would write tokens to disk on a machine that has a keyring.
 */
static int
secret_module(const struct store_secret_ops **ops, struct ml_err *err)
{
	static const struct store_secret_ops *mod;
	const void *m;
	int rc;

	if (mod == NULL) {
		if ((rc = module_open(STORE_SECRET_MODULE, "the Secret Service module",
		    "store_secret_module", STORE_SECRET_ABI, &m, err)) != ML_OK)
			return rc;
		mod = m;
	}
	*ops = mod;
	return ML_OK;
}

/*
 * Is a session bus there to connect to?  Checked by hand, before anything is
 * loaded, because GDBus, finding neither variable, would run `dbus-launch
 * --autolaunch`, which can start a bus for nothing or wait on an X server;
 * and over SSH without a bus the module need not be loaded at all.
 */
static int
secret_bus_check(struct ml_err *err)
{
	const char *addr = getenv("DBUS_SESSION_BUS_ADDRESS");
	const char *rt = getenv("XDG_RUNTIME_DIR");
	char path[PATH_MAX];
	struct stat sb;

	if (addr != NULL && addr[0] != '\0') {
		if (strstr(addr, "autolaunch:") != NULL)
			return err_set(err, ML_ESTORE, "no session bus (DBUS_SESSION_BUS_ADDRESS "
			    "asks for autolaunch, which mlauth does not do)");
		return ML_OK;
	}
	/* GDBus's own next choice, as systemd user sessions provide it. */
	if (rt != NULL && rt[0] == '/' &&
	    snprintf(path, sizeof path, "%s/bus", rt) < (int)sizeof path &&
	    stat(path, &sb) == 0 && S_ISSOCK(sb.st_mode))
		return ML_OK;
	return err_set(err, ML_ESTORE, "no session bus (DBUS_SESSION_BUS_ADDRESS is not set)");
}

/* A bus to talk to and the module to talk with. */
static int
secret_ready(const struct store_secret_ops **ops, struct ml_err *err)
{
	int rc;

	if ((rc = secret_bus_check(err)) != ML_OK)
		return rc;
	return secret_module(ops, err);
}

/* The module is handed only profile names that cannot name another item. */
static int
secret_profile_check(const char *profile, struct ml_err *err)
{
	if (profile == NULL || !config_profile_valid(profile))
		return err_set(err, ML_EUSAGE, "invalid profile name '%s'",
		    profile != NULL ? profile : "(null)");
	return ML_OK;
}

int
store_secret_available(struct ml_err *err)
{
	const struct store_secret_ops *ops;
	int rc;

	if ((rc = secret_ready(&ops, err)) != ML_OK)
		return rc;
	return ops->probe(err);
}

static int
open_file(const struct config *cfg, struct store *st, struct ml_err *err)
{
	size_t n;
	int rc;

	st->backend = STORE_FILE;
	if ((rc = store_file_path(cfg->profile, &st->path, err)) != ML_OK)
		return rc;
	n = sizeof "file " + strlen(st->path);
	if ((st->describe = malloc(n)) == NULL)
		return err_set(err, ML_ESTORE, "out of memory");
	(void)snprintf(st->describe, n, "file %s", st->path);
	return ML_OK;
}

int
store_open(const struct config *cfg, struct store *st, struct ml_err *err)
{
	struct ml_err probe;
	size_t n;
	int rc;

	memset(st, 0, sizeof *st);
	switch (cfg->store) {
	case CONFIG_STORE_SECRET:
		/* Asked for by name: writing tokens to disk instead would betray that. */
		if ((rc = secret_ready(&st->secret, err)) != ML_OK ||
		    (rc = st->secret->open(&st->ss, err)) != ML_OK) {
			err_prefix(err, "store=secret-service");
			return rc;
		}
		st->backend = STORE_SECRET_SERVICE;
		return ML_OK;
	case CONFIG_STORE_FILE:
		rc = open_file(cfg, st, err);
		break;
	case CONFIG_STORE_AUTO:
		err_clear(&probe);
		/* Only no bus falls back: a missing module is a broken install. */
		if ((rc = secret_bus_check(&probe)) == ML_OK &&
		    (rc = secret_module(&st->secret, err)) != ML_OK)
			return rc;
		/* The probe's connection serves the operations too. */
		if (rc == ML_OK && st->secret->open(&st->ss, &probe) == ML_OK) {
			st->backend = STORE_SECRET_SERVICE;
			return ML_OK;
		}
		st->fell_back = true;
		/* Cut to fit: the reason is one line for a human. */
		n = strnlen(probe.msg, sizeof st->reason - 1);
		memcpy(st->reason, probe.msg, n);
		st->reason[n] = '\0';
		rc = open_file(cfg, st, err);
		break;
	default:
		return err_set(err, ML_EFAIL, "unknown store setting %d", (int)cfg->store);
	}
	if (rc != ML_OK)
		store_close(st);
	return rc;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	if (st->secret != NULL)
		st->secret->close(st->ss);
	free(st->path);
	free(st->describe);
	memset(st, 0, sizeof *st);
}

/* The file backend asks for the profile's path each time: st->path is the
 * configured profile's, and a caller may name another. */
int
store_load(struct store *st, const char *profile, char **json, struct ml_err *err)
{
	char *path = NULL;
	int rc;

	*json = NULL;
	if (st->backend == STORE_SECRET_SERVICE) {
		char *mod = NULL;

		if ((rc = secret_profile_check(profile, err)) != ML_OK ||
		    (rc = st->secret->load(st->ss, profile, &mod, err)) != ML_OK || mod == NULL)
			return rc;
		if ((*json = secret_dup(mod)) == NULL)
			rc = err_set(err, ML_ESTORE, "out of memory");
		st->secret->free_secret(mod);
		return rc;
	}
	if ((rc = store_file_path(profile, &path, err)) == ML_OK)
		rc = store_file_load(path, json, err);
	free(path);
	return rc;
}

int
store_save(struct store *st, const char *profile, const char *issuer,
    const char *client_id, const char *json, struct ml_err *err)
{
	char *path = NULL;
	int rc;

	if (st->backend == STORE_SECRET_SERVICE)
		return (rc = secret_profile_check(profile, err)) != ML_OK ? rc :
		    st->secret->save(st->ss, profile, issuer, client_id, json, err);
	if ((rc = store_file_path(profile, &path, err)) == ML_OK)
		rc = store_file_save(path, json, err);
	free(path);
	return rc;
}

int
store_delete(struct store *st, const char *profile, bool *found, struct ml_err *err)
{
	char *path = NULL;
	int rc;

	*found = false;
	if (st->backend == STORE_SECRET_SERVICE)
		return (rc = secret_profile_check(profile, err)) != ML_OK ? rc :
		    st->secret->remove(st->ss, profile, found, err);
	if ((rc = store_file_path(profile, &path, err)) == ML_OK)
		rc = store_file_delete(path, found, err);
	free(path);
	return rc;
}

int
store_writable(struct store *st, struct ml_err *err)
{
	char *dir = NULL;
	int rc;

	if (st->backend == STORE_SECRET_SERVICE)
		return st->secret->writable(st->ss, err);
	rc = store_state_dir(&dir, err);
	free(dir);
	return rc;
}

const char *
store_describe(const struct store *st)
{
	if (st->backend == STORE_SECRET_SERVICE)
		return "secret-service";
	return st->describe != NULL ? st->describe : "file";
}
