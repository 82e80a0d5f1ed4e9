/*
 * config.c: settings with their precedence and where each came from.
 *
 * Sources, in rising precedence: compiled defaults (the production service,
 * so `mlauth login` needs nothing else), the config file's group for the
 * profile, MLAUTH_* environment variables, the command line.  GKeyFile does
 * the parsing; this file only layers and checks.
 */
#define _DEFAULT_SOURCE	/* realpath, S_ISVTX */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "mlauth/config.h"

struct key_info {
	const char *name;
	const char *env;
	const char *def;
};

static const struct key_info keys[CONFIG_NKEYS] = {
	[CONFIG_ISSUER] = { "issuer", "MLAUTH_ISSUER", CONFIG_DEFAULT_ISSUER },
	[CONFIG_CLIENT_ID] = { "client_id", "MLAUTH_CLIENT_ID", CONFIG_DEFAULT_CLIENT },
	[CONFIG_SCOPE] = { "scope", "MLAUTH_SCOPE", "openid offline_access" },
	[CONFIG_API_BASE] = { "api_base", "MLAUTH_API_BASE", CONFIG_DEFAULT_API },
	[CONFIG_APPLICATION_NAME] = { "application_name", "MLAUTH_APPLICATION_NAME", "mlauth" },
	[CONFIG_MODEL] = { "model", "MLAUTH_MODEL", "claude-opus-4-6" },
	[CONFIG_MAX_TOKENS] = { "max_tokens", "MLAUTH_MAX_TOKENS", "1024" },
	[CONFIG_MIN_VALID] = { "min_valid", "MLAUTH_MIN_VALID", "300" },
	[CONFIG_STORE] = { "store", "MLAUTH_STORE", "auto" },
	[CONFIG_CA_FILE] = { "ca_file", "MLAUTH_CA_FILE", "" },
	[CONFIG_TIMEOUT] = { "timeout", "MLAUTH_TIMEOUT", "30" },
	[CONFIG_RETRIES] = { "retries", "MLAUTH_RETRIES", "2" },
};

static const char *const store_names[] = {
	[CONFIG_STORE_AUTO] = "auto",
	[CONFIG_STORE_SECRET] = "secret-service",
	[CONFIG_STORE_FILE] = "file",
};

const char *
config_key_name(enum config_key k)
{
	return keys[k].name;
}

const char *
config_key_env(enum config_key k)
{
	return keys[k].env;
}

int
config_key_from_name(const char *name)
{
	for (int k = 0; k < CONFIG_NKEYS; k++)
		if (strcmp(keys[k].name, name) == 0)
			return k;
	return -1;
}

const char *
config_store_name(enum config_store s)
{
	return store_names[s];
}

bool
config_profile_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64)
		return false;
	/* "." and ".." would name directories once the profile is a file name. */
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789._-") == n;
}

bool
config_url_allowed(const char *url)
{
	static const char *const loopback[] = { "127.0.0.1", "[::1]", "localhost" };
	const char *host;
	size_t hlen;

	if (url == NULL)
		return false;
	if (strncmp(url, "https://", 8) == 0)
		host = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		host = url + 7;
	else
		return false;
	hlen = strcspn(host, "/?#");
	if (hlen == 0 || memchr(host, '@', hlen) != NULL)
		return false;	/* no host, or credentials that disguise the host */
	if (memchr(host, ' ', hlen) != NULL || host[hlen] == '?' || host[hlen] == '#')
		return false;
	if (url[4] == 's')
		return true;
	/* Plain http only to this machine: the tests' peers, never the network. */
	for (size_t i = 0; i < sizeof loopback / sizeof loopback[0]; i++) {
		size_t l = strlen(loopback[i]);

		if (hlen >= l && strncmp(host, loopback[i], l) == 0 &&
		    (hlen == l || host[l] == ':'))
			return true;
	}
	return false;
}

static int
set_value(struct config_value *cv, const char *value, const char *source)
{
	char *v = g_strdup(value), *s = g_strdup(source);

	g_free(cv->value);
	g_free(cv->source);
	cv->value = v;
	cv->source = s;
	return 0;
}

/* A whole non-negative decimal number within [min, max]. */
static bool
parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (*s == '\0' || *s == '-' || *s == '+' || *s == ' ')
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static int
bad(struct config *cfg, enum config_key k, struct ml_err *err, const char *why)
{
	return err_set(err, ML_EUSAGE, "invalid %s '%s' (from %s): %s", keys[k].name,
	    cfg->v[k].value, cfg->v[k].source, why);
}

static int
check(struct config *cfg, struct ml_err *err)
{
	const struct { enum config_key k; long min, max; long *dst; } nums[] = {
		{ CONFIG_MAX_TOKENS, 1, 1000000, &cfg->max_tokens },
		{ CONFIG_MIN_VALID, 0, 86400 * 365, &cfg->min_valid },
		{ CONFIG_TIMEOUT, 1, 3600, &cfg->timeout },
		{ CONFIG_RETRIES, 0, 10, &cfg->retries },
	};
	const char *s;
	size_t i;

	for (i = 0; i < sizeof nums / sizeof nums[0]; i++) {
		char why[96];

		if (parse_long(cfg->v[nums[i].k].value, nums[i].min, nums[i].max, nums[i].dst))
			continue;
		(void)snprintf(why, sizeof why, "expected a whole number from %ld to %ld",
		    nums[i].min, nums[i].max);
		return bad(cfg, nums[i].k, err, why);
	}
	s = cfg->v[CONFIG_STORE].value;
	for (i = 0; i < sizeof store_names / sizeof store_names[0]; i++)
		if (strcmp(s, store_names[i]) == 0)
			break;
	if (i == sizeof store_names / sizeof store_names[0])
		return bad(cfg, CONFIG_STORE, err, "expected auto, secret-service or file");
	cfg->store = (enum config_store)i;

	if (!config_url_allowed(cfg->v[CONFIG_ISSUER].value))
		return bad(cfg, CONFIG_ISSUER, err,
		    "expected an https:// URL (http:// only for 127.0.0.1, ::1 or localhost)");
	if (!config_url_allowed(cfg->v[CONFIG_API_BASE].value))
		return bad(cfg, CONFIG_API_BASE, err,
		    "expected an https:// URL (http:// only for 127.0.0.1, ::1 or localhost)");
	if (cfg->v[CONFIG_CLIENT_ID].value[0] == '\0')
		return bad(cfg, CONFIG_CLIENT_ID, err, "must not be empty");
	if (cfg->v[CONFIG_SCOPE].value[0] == '\0')
		return bad(cfg, CONFIG_SCOPE, err, "must not be empty");
	if (cfg->v[CONFIG_MODEL].value[0] == '\0')
		return bad(cfg, CONFIG_MODEL, err, "must not be empty");
	/* Header values: a newline would smuggle a header into requests. */
	for (int k = 0; k < CONFIG_NKEYS; k++)
		if (strpbrk(cfg->v[k].value, "\r\n") != NULL)
			return bad(cfg, (enum config_key)k, err, "must be one line");

	cfg->issuer = cfg->v[CONFIG_ISSUER].value;
	cfg->client_id = cfg->v[CONFIG_CLIENT_ID].value;
	cfg->scope = cfg->v[CONFIG_SCOPE].value;
	cfg->api_base = cfg->v[CONFIG_API_BASE].value;
	cfg->application_name = cfg->v[CONFIG_APPLICATION_NAME].value;
	cfg->model = cfg->v[CONFIG_MODEL].value;
	cfg->ca_file = cfg->v[CONFIG_CA_FILE].value;
	return ML_OK;
}

/* Where the config file is, and who said so; a missing default file is fine. */
static int
locate_file(struct config *cfg, const char *file, const char **source, bool *required)
{
	const char *env = getenv("MLAUTH_CONFIG");
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");

	*required = true;
	if (file != NULL) {
		*source = "command line";
		cfg->file = g_strdup(file);
	} else if (env != NULL && *env != '\0') {
		*source = "env MLAUTH_CONFIG";
		cfg->file = g_strdup(env);
	} else {
		*source = "default";
		*required = false;
		if (xdg != NULL && xdg[0] == '/')
			cfg->file = g_build_filename(xdg, "mlauth", "config", NULL);
		else if (home != NULL && *home != '\0')
			cfg->file = g_build_filename(home, ".config", "mlauth", "config", NULL);
		else
			cfg->file = NULL;
	}
	return 0;
}

/*
 * The config file decides where the bearer token goes (issuer, api_base,
 * ca_file): as ssh does for its own, refuse one that another user could have
 * written.  Each path component must be owned by you or root and not be
 * writable by group or others, except a root-owned sticky directory (/tmp),
 * where others cannot replace what is yours.
 */
static int
config_path_unsafe(const char *path, bool is_file, const char *file, struct ml_err *err)
{
	struct stat st;
	const char *what = is_file ? "config file" : "directory";

	if (stat(path, &st) != 0)
		return ML_OK;	/* a missing file is reported by its reader */
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return err_set(err, ML_EUSAGE, "%s %s%s%s is owned by uid %ld, not by you: it "
		    "could send your token anywhere; use a file of your own (chown, or remove it)",
		    what, path, is_file ? "" : " of config file ", is_file ? "" : file,
		    (long)st.st_uid);
	if ((st.st_mode & 022) != 0 && !(S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX) &&
	    st.st_uid == 0))
		return err_set(err, ML_EUSAGE, "%s %s%s%s is writable by others (mode %04o): it "
		    "could send your token anywhere; run chmod go-w %s", what, path,
		    is_file ? "" : " of config file ", is_file ? "" : file,
		    (unsigned)(st.st_mode & 07777), path);
	return ML_OK;
}

/* path and each directory above it, up to /. */
static int
config_chain_unsafe(const char *path, const char *file, struct ml_err *err)
{
	gchar *p = g_canonicalize_filename(path, NULL), *up;
	int rc = config_path_unsafe(p, true, file, err);

	while (rc == ML_OK && strcmp(p, "/") != 0) {
		up = g_path_get_dirname(p);
		g_free(p);
		p = up;
		rc = config_path_unsafe(p, false, file, err);
	}
	g_free(p);
	return rc;
}

/* Both the path as named and where its symbolic links lead. */
static int
config_file_unsafe(const char *file, struct ml_err *err)
{
	char *real = realpath(file, NULL);
	int rc = config_chain_unsafe(file, file, err);

	if (rc == ML_OK && real != NULL && strcmp(real, file) != 0)
		rc = config_chain_unsafe(real, file, err);
	free(real);
	return rc;
}

static int
load_file(struct config *cfg, const char *file, bool lenient, struct ml_err *err)
{
	GKeyFile *kf = NULL;
	GError *gerr = NULL;
	gchar **names = NULL;
	const char *source;
	bool required;
	int rc = ML_OK;

	locate_file(cfg, file, &source, &required);
	if (cfg->file == NULL)
		return ML_OK;
	if (!required && !g_file_test(cfg->file, G_FILE_TEST_EXISTS))
		return ML_OK;

	if ((rc = config_file_unsafe(cfg->file, err)) != ML_OK) {
		if (!lenient)
			return rc;
		cfg->file_refused = g_strdup(err->msg);
		return ML_OK;	/* doctor: report it, and carry on without it */
	}
	kf = g_key_file_new();
	if (!g_key_file_load_from_file(kf, cfg->file, G_KEY_FILE_NONE, &gerr)) {
		rc = err_set(err, ML_EUSAGE, "cannot read config file %s (from %s): %s",
		    cfg->file, source, gerr->message);
		goto out;
	}
	cfg->file_exists = true;
	if (!g_key_file_has_group(kf, cfg->profile))
		goto out;
	names = g_key_file_get_keys(kf, cfg->profile, NULL, &gerr);
	if (names == NULL) {
		rc = err_set(err, ML_EUSAGE, "config file %s: %s", cfg->file, gerr->message);
		goto out;
	}
	for (gchar **n = names; *n != NULL; n++) {
		int k = config_key_from_name(*n);
		gchar *val, *src;

		if (k < 0) {
			rc = err_set(err, ML_EUSAGE, "unknown setting '%s' in %s [%s]",
			    *n, cfg->file, cfg->profile);
			goto out;
		}
		val = g_key_file_get_string(kf, cfg->profile, *n, &gerr);
		if (val == NULL) {
			rc = err_set(err, ML_EUSAGE, "config file %s [%s] %s: %s",
			    cfg->file, cfg->profile, *n, gerr->message);
			goto out;
		}
		src = g_strdup_printf("%s [%s]", cfg->file, cfg->profile);
		set_value(&cfg->v[k], g_strstrip(val), src);
		g_free(src);
		g_free(val);
	}
out:
	if (gerr != NULL)
		g_error_free(gerr);
	g_strfreev(names);
	g_key_file_free(kf);
	return rc;
}

static int
config_load_from(struct config *cfg, const char *profile, const char *file,
    const struct config_override *ov, int nov, bool lenient, struct ml_err *err)
{
	const char *env;
	int rc;

	memset(cfg, 0, sizeof *cfg);
	for (int k = 0; k < CONFIG_NKEYS; k++)
		set_value(&cfg->v[k], keys[k].def, "default");

	env = getenv("MLAUTH_PROFILE");
	if (profile != NULL) {
		cfg->profile = g_strdup(profile);
		cfg->profile_source = g_strdup("command line");
	} else if (env != NULL && *env != '\0') {
		cfg->profile = g_strdup(env);
		cfg->profile_source = g_strdup("env MLAUTH_PROFILE");
	} else {
		cfg->profile = g_strdup("default");
		cfg->profile_source = g_strdup("default");
	}
	if (!config_profile_valid(cfg->profile))
		return err_set(err, ML_EUSAGE, "invalid profile name '%s' (from %s): use 1 to 64 "
		    "of A-Z a-z 0-9 . _ -", cfg->profile, cfg->profile_source);

	if ((rc = load_file(cfg, file, lenient, err)) != ML_OK)
		return rc;

	for (int k = 0; k < CONFIG_NKEYS; k++) {
		const char *v = getenv(keys[k].env);
		char *src;

		if (v == NULL)
			continue;
		src = g_strdup_printf("env %s", keys[k].env);
		set_value(&cfg->v[k], v, src);
		g_free(src);
	}
	for (int i = 0; i < nov; i++) {
		int k = config_key_from_name(ov[i].key);

		if (k < 0)
			return err_set(err, ML_EUSAGE, "unknown setting '%s' on the command line",
			    ov[i].key);
		set_value(&cfg->v[k], ov[i].value, "command line");
	}
	return check(cfg, err);
}

int
config_load(struct config *cfg, const char *profile, const char *file,
    const struct config_override *ov, int nov, struct ml_err *err)
{
	return config_load_from(cfg, profile, file, ov, nov, false, err);
}

int
config_load_lenient(struct config *cfg, const char *profile, const char *file,
    const struct config_override *ov, int nov, struct ml_err *err)
{
	return config_load_from(cfg, profile, file, ov, nov, true, err);
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (int k = 0; k < CONFIG_NKEYS; k++) {
		g_free(cfg->v[k].value);
		g_free(cfg->v[k].source);
	}
	g_free(cfg->profile);
	g_free(cfg->profile_source);
	g_free(cfg->file);
	g_free(cfg->file_refused);
	memset(cfg, 0, sizeof *cfg);
}

char **
config_profiles(const struct config *cfg)
{
	GKeyFile *kf;
	gchar **groups = NULL;

	if (cfg->file == NULL || !cfg->file_exists)
		return g_new0(gchar *, 1);
	kf = g_key_file_new();
	if (g_key_file_load_from_file(kf, cfg->file, G_KEY_FILE_NONE, NULL))
		groups = g_key_file_get_groups(kf, NULL);
	g_key_file_free(kf);
	return groups != NULL ? groups : g_new0(gchar *, 1);
}
