/* store.h: where a profile's record is kept: the Secret Service, or a 0600 file. */
#ifndef MLAUTH_STORE_H
#define MLAUTH_STORE_H

#include <stdbool.h>

#include "mlauth/config.h"
#include "mlauth/err.h"

enum store_backend { STORE_SECRET_SERVICE, STORE_FILE };

struct store_secret;	/* store_secret.c: the session bus connection, kept open */
struct store_secret_ops;

struct store {
	enum store_backend backend;
	const struct store_secret_ops *secret;	/* the module, unless store=file */
	struct store_secret *ss;	/* STORE_SECRET_SERVICE: from the probe to store_close */
	char *path;		/* STORE_FILE: the record's file */
	bool fell_back;		/* store=auto found no Secret Service */
	char reason[256];	/* why it fell back, for the one-line warning */
	char *describe;		/* store_describe's text, st-owned */
};

/*
 * Choose the backend for cfg->store: secret-service (no keyring is ML_ESTORE),
 * file, or auto (Secret Service when one answers within a short time, else the
 * file with fell_back set).  Never blocks waiting for a keyring that is not there.
 */
int store_open(const struct config *cfg, struct store *st, struct ml_err *err);
void store_close(struct store *st);

/* The record JSON of profile in *json (secret_free it), or NULL when none is stored. */
int store_load(struct store *st, const char *profile, char **json, struct ml_err *err);
/* Replace the profile's record; issuer and client_id become keyring attributes. */
int store_save(struct store *st, const char *profile, const char *issuer,
    const char *client_id, const char *json, struct ml_err *err);
/* Delete the record; *found says whether there was one. */
int store_delete(struct store *st, const char *profile, bool *found, struct ml_err *err);
/*
 * Whether a record could be saved now, asked before work that would be lost
 * otherwise (login's device flow): ML_ESTORE with the fix when the keyring is
 * locked or has no default collection, or the state directory is unusable.
 */
int store_writable(struct store *st, struct ml_err *err);
/* "secret-service" or "file PATH", for status (static or st-owned storage). */
const char *store_describe(const struct store *st);

/* The 0700 state directory ($XDG_STATE_HOME/mlauth), created when missing. Allocated. */
int store_state_dir(char **dir, struct ml_err *err);
/*
 * Create dir and its missing parents (mode 0700), then check dir is a real
 * directory (not a symlink) owned by us that group and others cannot enter.
 */
int store_dir_ensure(const char *dir, struct ml_err *err);

/*
 * Whether a Secret Service is on the session bus or can be started, for
 * doctor; keeps nothing open.
 */
int store_secret_available(struct ml_err *err);

/*
 * The Secret Service backend, the module mlauth-secret.so beside the
 * program (store_secret.c), with the same contracts as above.  open connects
 * to the session bus and checks that a Secret Service is on it or can be
 * started, keeping the connection in *ss (NULL after a failure) for the
 * operations until close (NULL is fine); probe does the same check and keeps
 * nothing.  Profiles are checked by store.c before they reach the module.
 */
#define STORE_SECRET_ABI	3
struct store_secret_ops {
	int abi;		/* STORE_SECRET_ABI: a module of another build is refused */
	int (*open)(struct store_secret **ss, struct ml_err *err);
	void (*close)(struct store_secret *ss);
	int (*probe)(struct ml_err *err);
	int (*load)(struct store_secret *ss, const char *profile, char **json,
	    struct ml_err *err);
	int (*save)(struct store_secret *ss, const char *profile, const char *issuer,
	    const char *client_id, const char *json, struct ml_err *err);
	int (*remove)(struct store_secret *ss, const char *profile, bool *found,
	    struct ml_err *err);
	int (*writable)(struct store_secret *ss, struct ml_err *err);
	/*
	 * Frees what load returned: the module keeps its own secret memory
	 * (secret.c, linked in hidden), which the program's secret_free does not
	 * know.  store_load copies the record into the program's before this.
	 */
	void (*free_secret)(char *s);
};
extern const struct store_secret_ops store_secret_module;

/* The file backend (store_file.c). */
/* $XDG_STATE_HOME/mlauth/PROFILE.json (allocated); creates nothing. */
int store_file_path(const char *profile, char **path, struct ml_err *err);
/*
 * Whether store_file_path finds its directory in the environment
 * (XDG_STATE_HOME or HOME); otherwise it asks the password database.
 */
bool store_file_base_from_env(void);
int store_file_load(const char *path, char **json, struct ml_err *err);
int store_file_save(const char *path, const char *json, struct ml_err *err);
int store_file_delete(const char *path, bool *found, struct ml_err *err);

#endif
