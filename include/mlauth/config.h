/* config.h: settings and profiles (command line > environment > config file > defaults). */
#ifndef MLAUTH_CONFIG_H
#define MLAUTH_CONFIG_H

#include <stdbool.h>

#include "mlauth/err.h"

#define CONFIG_DEFAULT_ISSUER	"https://kcpro.virtuosgames.com/realms/Virtuos"
#define CONFIG_DEFAULT_CLIENT	"MLAAS-CLI-API"
#define CONFIG_DEFAULT_API	"https://mlaas.virtuosgames.com/proxy/anthropic"

enum config_key {
	CONFIG_ISSUER,
	CONFIG_CLIENT_ID,
	CONFIG_SCOPE,
	CONFIG_API_BASE,
	CONFIG_APPLICATION_NAME,
	CONFIG_MODEL,
	CONFIG_MAX_TOKENS,
	CONFIG_MIN_VALID,
	CONFIG_STORE,
	CONFIG_CA_FILE,
	CONFIG_TIMEOUT,
	CONFIG_RETRIES,
	CONFIG_NKEYS
};

enum config_store { CONFIG_STORE_AUTO, CONFIG_STORE_SECRET, CONFIG_STORE_FILE };

struct config_value {
	char *value;		/* never NULL after config_load; "" for unset */
	char *source;		/* "default", "env MLAUTH_ISSUER", "FILE [group]", "command line" */
};

struct config {
	char *profile;
	char *profile_source;
	char *file;		/* the config file consulted (may not exist) */
	bool file_exists;
	char *file_refused;	/* config_load_lenient: why the file was not read, or NULL */
	struct config_value v[CONFIG_NKEYS];

	/* Typed copies of the values above, checked by config_load. */
	const char *issuer, *client_id, *scope, *api_base, *application_name;
	const char *model, *ca_file;
	long max_tokens, min_valid, timeout, retries;
	enum config_store store;
};

/* One override from the command line (-p, -c, -o key=value, or a command's own option). */
struct config_override {
	const char *key;
	const char *value;
};

/*
 * Fill cfg from, in rising precedence, the compiled defaults, the config file
 * (`file` or $MLAUTH_CONFIG or $XDG_CONFIG_HOME/mlauth/config), the MLAUTH_*
 * environment and the overrides.  `profile` and `file` are the -p and -c
 * values or NULL.  Invalid values fail with ML_EUSAGE naming key and source.
 * Free with config_free, even after a failure.
 */
int config_load(struct config *cfg, const char *profile, const char *file,
    const struct config_override *ov, int nov, struct ml_err *err);
/*
 * The config file, like ssh's, is refused (ML_EUSAGE, the fix in the message)
 * when it or a directory above it is owned by another user or writable by
 * others.  config_load_lenient (for doctor) skips such a file instead and
 * says why in cfg->file_refused.
 */
int config_load_lenient(struct config *cfg, const char *profile, const char *file,
    const struct config_override *ov, int nov, struct ml_err *err);
void config_free(struct config *cfg);

/* Key name ("issuer") of a key, and the key of a name (-1 when unknown). */
const char *config_key_name(enum config_key k);
int config_key_from_name(const char *name);
/* The MLAUTH_* environment variable of a key ("MLAUTH_ISSUER"). */
const char *config_key_env(enum config_key k);
/* Whether a profile name is usable in paths and keyring attributes. */
bool config_profile_valid(const char *name);
/* Whether url is https://, or http:// to a loopback host. */
bool config_url_allowed(const char *url);
/* The names of the profiles (groups) in the config file; NULL-terminated, g_strfreev. */
char **config_profiles(const struct config *cfg);
/* "auto", "secret-service" or "file". */
const char *config_store_name(enum config_store s);

#endif
