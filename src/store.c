/*
 * store.c: which store holds a profile's record, and dispatch to it.
 * The policy lives here; the backends (store_secret.c, store_file.c) only
 * know how to talk to theirs.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlauth/config.h"
#include "mlauth/err.h"
#include "mlauth/store.h"

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
		if ((rc = store_secret_open(&st->ss, err)) != ML_OK) {
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
		/* The probe's connection serves the operations too. */
		if (store_secret_open(&st->ss, &probe) == ML_OK) {
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
	store_secret_close(st->ss);
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
	if (st->backend == STORE_SECRET_SERVICE)
		return store_secret_load(st->ss, profile, json, err);
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
		return store_secret_save(st->ss, profile, issuer, client_id, json, err);
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
		return store_secret_delete(st->ss, profile, found, err);
	if ((rc = store_file_path(profile, &path, err)) == ML_OK)
		rc = store_file_delete(path, found, err);
	free(path);
	return rc;
}

const char *
store_describe(const struct store *st)
{
	if (st->backend == STORE_SECRET_SERVICE)
		return "secret-service";
	return st->describe != NULL ? st->describe : "file";
}
