/*
 * cmd_doctor.c: `mlauth doctor`: check the set-up piece by piece and say what
 * to fix.  Every finding is one check (ok, warn or fail, what was found, the
 * fix); the checks only read, except for a dummy kernel-keyring entry that is
 * removed again and one tiny authenticated request to the messages API.
 *
 * Never a secret in the output: tokens stay inside the record and the
 * request, ANTHROPIC_* keys are named but not shown, and the user info of
 * every URL (proxies included) is masked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "mlauth/api.h"
#include "mlauth/cache.h"
#include "mlauth/cmd.h"
#include "mlauth/http.h"
#include "mlauth/jwt.h"
#include "mlauth/messages.h"
#include "mlauth/oidc.h"
#include "mlauth/proxy.h"
#include "mlauth/record.h"
#include "mlauth/secret.h"
#include "mlauth/sanitize.h"
#include "mlauth/session.h"
#include "mlauth/store.h"
#include "mlauth/term.h"
#include "mlauth/token.h"
#include "mlauth/util.h"

#define DOCTOR_MAX_CHECKS	24
#define DOCTOR_SKEW_MAX		60	/* seconds of clock skew tolerated */
#define DOCTOR_TOKEN_MARGIN	30	/* seconds: a token closer to expiry is not used */
#define DOCTOR_CA_MAX		(8 * 1024 * 1024)	/* larger CA bundles are not read */
#define PEM_CERT		"-----BEGIN CERTIFICATE-----"
/*
 * Seconds a network check may take: a provider that hangs must not keep the
 * report from the person for the whole request timeout (30 s by default).
 * The messages API gets longer: a model answers one token, but it answers.
 */
#define DOCTOR_REACH_TIMEOUT	5
#define DOCTOR_API_TIMEOUT	15
#define DOCTOR_INDENT		22	/* columns before a check's detail */

static const struct option options[] = {
	{ "json", no_argument, NULL, 'j' },
	{ NULL, 0, NULL, 0 }
};

/* skip: could not be checked because an earlier check failed; says which. */
enum verdict { CHECK_OK, CHECK_WARN, CHECK_FAIL, CHECK_SKIP, CHECK_NVERDICTS };

static const char *const verdict_name[] = { "ok", "warn", "fail", "skip" };
static const char *const verdict_color[] = { "32", "33", "31", "2" };

struct check {
	const char *name;
	enum verdict status;
	char detail[1024];
	char fix[512];		/* "" when there is nothing to do */
};

struct doctor {
	struct cmd_ctx *ctx;
	const struct config *cfg;
	struct check checks[DOCTOR_MAX_CHECKS];
	struct check spare;	/* written when the table is full; never shown */
	size_t n;
	struct http_opts ho;
	struct ml_err http_err;	/* why http_global_init failed */
	bool http_ready;
	struct store st;
	bool store_ready;
	struct oidc_provider p;
	bool discovered;
	int64_t discovered_at;	/* local clock when discovery answered */
	struct record rec;
	bool logged_in;
	/* The text report, printed check by check as each ends. */
	bool text, color;
	int width;		/* wrap to this many columns; 0: do not wrap (a pipe) */
	size_t printed;		/* checks already printed */
};

/* ---- collecting findings ---- */

/*
 * In place, by the one rule for shown text (sanitize.h): an environment value
 * or a server's words may hold anything, a line stays one line.
 */
static void
printable(char *s, size_t cap)
{
	char *copy = strdup(s);

	if (copy == NULL) {
		(void)snprintf(s, cap, "(out of memory)");
		return;
	}
	(void)sanitize_str(copy, SAN_ONELINE | SAN_REDACT, s, cap);
	free(copy);
}

static void
vformat(char *buf, size_t len, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void
vformat(char *buf, size_t len, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf, len, fmt, ap);

	if (n < 0)
		(void)snprintf(buf, len, "(cannot format)");
	else if ((size_t)n >= len && len > 4)
		memcpy(buf + len - 4, "...", 4);	/* cut, and visibly so */
	printable(buf, len);
}

static struct check *
check_add(struct doctor *d, const char *name, enum verdict v, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static struct check *
check_add(struct doctor *d, const char *name, enum verdict v, const char *fmt, ...)
{
	struct check *c = d->n < DOCTOR_MAX_CHECKS ? &d->checks[d->n++] : &d->spare;
	va_list ap;

	memset(c, 0, sizeof *c);
	c->name = name;
	c->status = v;
	va_start(ap, fmt);
	vformat(c->detail, sizeof c->detail, fmt, ap);
	va_end(ap);
	return c;
}

/*
 * A detail that ends in the same advice as the fix (a module's error often
 * says what to do) loses it: the fix line says it once.  Advice elsewhere in
 * the detail is part of its sentence, and then the fix line goes instead.
 */
static void
check_dedupe(struct check *c)
{
	size_t dl = strlen(c->detail), fl = strlen(c->fix);
	char *at;

	if (fl == 0 || (at = strstr(c->detail, c->fix)) == NULL)
		return;
	if (at + fl != c->detail + dl) {
		c->fix[0] = '\0';
		return;
	}
	while (at > c->detail && strchr(":;, (", at[-1]) != NULL)
		at--;
	if (at > c->detail)
		*at = '\0';
	else
		c->fix[0] = '\0';
}

static void
check_fix(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
check_fix(struct check *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vformat(c->fix, sizeof c->fix, fmt, ap);
	va_end(ap);
	check_dedupe(c);
}

/*
 * A URL (or a proxy's "host:port") with its user info replaced by "***", the
 * scheme and the rest as they were: "user:pw@proxy:3128" becomes "***@proxy:3128".
 */
static void
mask_url(const char *url, char *out, size_t len)
{
	const char *auth, *end, *at = NULL, *p;

	if (url == NULL) {
		(void)snprintf(out, len, "(none)");
		return;
	}
	p = strstr(url, "://");
	auth = p != NULL ? p + 3 : url;
	end = auth + strcspn(auth, "/?#");
	/* The last '@' ends the user info: a password may hold '@' too. */
	for (p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	if (at == NULL)
		(void)snprintf(out, len, "%s", url);
	else
		(void)snprintf(out, len, "%.*s***%s", (int)(auth - url), url, at);
	printable(out, len);
}

static const char *
value_or(const char *v, const char *none)
{
	return v != NULL && v[0] != '\0' ? v : none;
}

/* "(default)" or "(from env MLAUTH_ISSUER)": where a setting came from, into buf. */
static const char *
from(const char *source, char *buf, size_t len)
{
	if (source == NULL || source[0] == '\0' || strcmp(source, "default") == 0)
		(void)snprintf(buf, len, "(default)");
	else
		(void)snprintf(buf, len, "(from %s)", source);
	return buf;
}

/* ---- settings ---- */

static void
check_settings(struct doctor *d)
{
	static const enum config_key shown[] = {
		CONFIG_ISSUER, CONFIG_CLIENT_ID, CONFIG_API_BASE, CONFIG_STORE, CONFIG_CA_FILE
	};
	const struct config *cfg = d->cfg;
	char v[600], src[300];

	if (cfg->file_refused != NULL)
		check_add(d, "config", CHECK_FAIL, "%s (not read: the checks below go without it)",
		    cfg->file_refused);
	else
		check_add(d, "config", CHECK_OK, "profile %s %s; config file %s (%s)",
		    cfg->profile, from(cfg->profile_source, src, sizeof src),
		    value_or(cfg->file, "(none)"),
		    cfg->file_exists ? "read" : "not present: defaults and environment only");
	for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++) {
		enum config_key k = shown[i];
		const struct config_value *cv = &cfg->v[k];

		if (k == CONFIG_ISSUER || k == CONFIG_API_BASE)
			mask_url(cv->value, v, sizeof v);
		else
			(void)snprintf(v, sizeof v, "%s", value_or(cv->value, "not set"));
		check_add(d, config_key_name(k), CHECK_OK, "%s %s", v,
		    from(cv->source, src, sizeof src));
	}
}

/* ---- where the session is kept ---- */

static void
check_secret_service(struct doctor *d)
{
	const struct config *cfg = d->cfg;
	struct ml_err err, probe;
	struct check *c;

	err_clear(&err);
	err_clear(&probe);
	if (store_open(cfg, &d->st, &err) != ML_OK) {
		c = check_add(d, "secret_service", CHECK_FAIL, "%s", err.msg);
		if (cfg->store == CONFIG_STORE_SECRET)
			check_fix(c, "start a Secret Service (GNOME Keyring, KWallet, "
			    "KeePassXC) in this session and unlock it, or set store=auto or "
			    "store=file");
		else
			check_fix(c, "make $XDG_STATE_HOME/mlauth a directory of yours that only "
			    "you can enter, or start a Secret Service");
		return;
	}
	d->store_ready = true;
	/* Present is not enough: a locked keyring can neither give nor keep a session. */
	if (d->st.backend == STORE_SECRET_SERVICE && store_writable(&d->st, &err) != ML_OK) {
		c = check_add(d, "secret_service", CHECK_FAIL, "%s", err.msg);
		check_fix(c, "unlock it (e.g. log in to the desktop) and retry, or use "
		    "-o store=file");
		return;
	}
	switch (cfg->store) {
	case CONFIG_STORE_SECRET:
		check_add(d, "secret_service", CHECK_OK, "answers on the session bus; "
		    "sessions are kept there (store=secret-service)");
		break;
	case CONFIG_STORE_AUTO:
		if (!d->st.fell_back) {
			check_add(d, "secret_service", CHECK_OK, "answers on the session bus; "
			    "sessions are kept there (store=auto)");
			break;
		}
		c = check_add(d, "secret_service", CHECK_WARN, "not reachable (%s): store=auto "
		    "falls back to the %s", d->st.reason, store_describe(&d->st));
		check_fix(c, "start a Secret Service (e.g. gnome-keyring-daemon) in this "
		    "session, or set store=file to keep the file on purpose");
		break;
	case CONFIG_STORE_FILE:
		if (store_secret_available(&probe) == ML_OK)
			check_add(d, "secret_service", CHECK_OK, "answers on the session bus, but "
			    "store=file keeps sessions in the %s", store_describe(&d->st));
		else
			check_add(d, "secret_service", CHECK_OK, "not reachable (%s); not needed: "
			    "store=file keeps sessions in the %s", probe.msg,
			    store_describe(&d->st));
		break;
	}
}

/* ---- the kernel keyring behind `mlauth token`'s fast path ---- */

static void
check_kernel_keyring(struct doctor *d)
{
	const struct config *cfg = d->cfg;
	static const char dummy[] = "mlauth-doctor-probe";
	struct cache_entry e;
	unsigned rnd = 0;
	char profile[64];
	int64_t now = util_now();
	const char *why = NULL;
	int saved = 0;
	struct check *c;

	if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
		rnd = (unsigned)now;
	/*
	 * A name no real profile has, so a concurrent mlauth never sees it; the
	 * key times out in a minute should we die before removing it.
	 */
	(void)snprintf(profile, sizeof profile, "doctor-%ld-%08x", (long)getpid(), rnd);
	errno = 0;
	if (cache_put(profile, cfg->issuer, "mlauth-doctor", dummy, now + 60, now, 0) != 0) {
		saved = errno;
		why = "cannot add a key";
	} else {
		if (cache_get(profile, cfg->issuer, "mlauth-doctor", &e) != 0)
			why = "a key just added cannot be read back";
		else if (e.token == NULL || strcmp(e.token, dummy) != 0)
			why = "a key just added reads back different";
		cache_entry_free(&e);
		cache_remove(profile, cfg->issuer, "mlauth-doctor");
		if (why == NULL && cache_get(profile, cfg->issuer, "mlauth-doctor", &e) == 0) {
			cache_entry_free(&e);
			why = "a key cannot be removed";
		}
	}
	if (why != NULL) {
		c = check_add(d, "kernel_keyring", CHECK_WARN, "not usable (%s%s%s): tokens then "
		    "come from the %s on every call (slower)", why, saved != 0 ? ": " : "",
		    saved != 0 ? strerror(saved) : "",
		    d->store_ready && d->st.backend == STORE_FILE ? "session file" : "keyring");
		check_fix(c, "optional: allow the keyctl and add_key system calls (a container's "
		    "seccomp profile may forbid them)");
		return;
	}
	if (cache_get(cfg->profile, cfg->issuer, cfg->client_id, &e) == 0) {
		char at[32];

		util_format_time(e.expires_at, at, sizeof at);
		cache_entry_free(&e);
		check_add(d, "kernel_keyring", CHECK_OK, "usable; the current access token is "
		    "cached until %s (mlauth token serves it without D-Bus)", at);
	} else {
		check_add(d, "kernel_keyring", CHECK_OK, "usable; no token cached yet (the next "
		    "mlauth token fills it)");
	}
	cache_entry_free(&e);
}

/* ---- the identity provider ---- */

static bool
http_ready(struct doctor *d)
{
	if (!d->http_ready && d->http_err.code == ML_OK) {
		if (http_global_init(&d->http_err) == ML_OK)
			d->http_ready = true;
		else if (d->http_err.code == ML_OK)
			d->http_err.code = ML_EFAIL;
	}
	return d->http_ready;
}

static void
check_discovery(struct doctor *d)
{
	const struct config *cfg = d->cfg;
	char origin[256];
	struct ml_err err;
	struct check *c;
	int rc;

	err_clear(&err);
	if (!http_ready(d)) {
		c = check_add(d, "discovery", CHECK_FAIL, "%s", d->http_err.msg);
		check_fix(c, "reinstall libcurl");
		return;
	}
	http_url_origin(cfg->issuer, origin, sizeof origin);
	if ((rc = oidc_discover(&d->ho, cfg->issuer, &d->p, &err)) != ML_OK) {
		c = check_add(d, "discovery", CHECK_FAIL, "%s", err.msg);
		if (rc == ML_ENET)
			check_fix(c, "check that %s is up and reachable from here (see the "
			    "tls and proxy checks), and the issuer setting", origin);
		else if (rc == ML_EINTR)
			check_fix(c, "run mlauth doctor again");
		else
			check_fix(c, "set issuer to exactly the URL the provider names as its "
			    "issuer (https://HOST/realms/REALM)");
		return;
	}
	d->discovered = true;
	d->discovered_at = util_now();
	check_add(d, "discovery", CHECK_OK, "%s answers and names itself as the issuer; "
	    "device flow and token endpoints%s", origin,
	    d->p.revocation_endpoint != NULL ? ", revocation too" : ", no revocation endpoint");
}

/* ---- TLS ---- */

/* A CA bundle: a readable regular file holding PEM certificates. */
static void
check_ca_file(struct doctor *d, const char *path, const char *from, const char *fix)
{
	struct check *c;
	struct stat sb;
	char *buf = NULL;
	size_t len = 0, certs = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		c = check_add(d, "tls", CHECK_FAIL, "CA file %s (from %s) cannot be read: %s",
		    path, from, strerror(errno));
		check_fix(c, "%s", fix);
		return;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		c = check_add(d, "tls", CHECK_FAIL, "CA file %s (from %s) is not a regular file",
		    path, from);
		check_fix(c, "%s", fix);
		goto out;
	}
	if (sb.st_size > DOCTOR_CA_MAX || (buf = malloc((size_t)sb.st_size + 1)) == NULL) {
		check_add(d, "tls", CHECK_OK, "CA file %s (from %s): %lld bytes, not inspected",
		    path, from, (long long)sb.st_size);
		goto out;
	}
	while (len < (size_t)sb.st_size) {
		n = read(fd, buf + len, (size_t)sb.st_size - len);
		if (n > 0)
			len += (size_t)n;
		else if (n == 0 || errno != EINTR)
			break;
	}
	buf[len] = '\0';
	for (const char *p = buf; (p = strstr(p, PEM_CERT)) != NULL; p += sizeof PEM_CERT - 1)
		certs++;
	if (certs == 0) {
		c = check_add(d, "tls", CHECK_FAIL, "CA file %s (from %s) holds no PEM "
		    "certificate (" PEM_CERT ")", path, from);
		check_fix(c, "%s (convert a DER certificate with: openssl x509 -inform der "
		    "-in CERT -out CERT.pem)", fix);
	} else {
		check_add(d, "tls", CHECK_OK, "CA file %s (from %s): %zu certificate%s", path,
		    from, certs, certs == 1 ? "" : "s");
	}
out:
	free(buf);
	close(fd);
}

static void
check_tls(struct doctor *d)
{
	const struct config *cfg = d->cfg;
	const char *bundle = getenv("CURL_CA_BUNDLE"), *file = getenv("SSL_CERT_FILE");
	const char *dir = getenv("SSL_CERT_DIR");
	char from[300];
	size_t first = d->n;
	struct stat sb;
	struct check *c;

	/* The same order as http.c: the setting, CURL_CA_BUNDLE, SSL_CERT_FILE/DIR, libcurl's. */
	if (cfg->ca_file != NULL && cfg->ca_file[0] != '\0') {
		(void)snprintf(from, sizeof from, "setting ca_file, %s",
		    cfg->v[CONFIG_CA_FILE].source);
		check_ca_file(d, cfg->ca_file, from, "set ca_file to a PEM file of your CA "
		    "certificates, or unset it");
	} else if (bundle != NULL && bundle[0] != '\0') {
		check_ca_file(d, bundle, "CURL_CA_BUNDLE", "point CURL_CA_BUNDLE at a PEM "
		    "bundle, or unset it");
	} else if ((file != NULL && file[0] != '\0') || (dir != NULL && dir[0] != '\0')) {
		if (file != NULL && file[0] != '\0')
			check_ca_file(d, file, "SSL_CERT_FILE", "point SSL_CERT_FILE at a PEM "
			    "bundle, or unset it");
		if (dir != NULL && dir[0] != '\0') {
			if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) ||
			    access(dir, R_OK | X_OK) != 0) {
				c = check_add(d, "tls", CHECK_FAIL, "CA directory %s (from "
				    "SSL_CERT_DIR) is not a readable directory", dir);
				check_fix(c, "point SSL_CERT_DIR at a directory of hashed CA "
				    "certificates (c_rehash), or unset it");
			} else {
				check_add(d, "tls", CHECK_OK, "CA directory %s (from "
				    "SSL_CERT_DIR)", dir);
			}
		}
	} else {
		check_add(d, "tls", CHECK_OK, "system default CA certificates (libcurl's own; "
		    "no ca_file, CURL_CA_BUNDLE, SSL_CERT_FILE or SSL_CERT_DIR)");
	}
	/* Said once, on the first TLS line: whether TLS is in play at all. */
	if (d->n > first && strncmp(cfg->issuer, "https://", 8) != 0 &&
	    strncmp(cfg->api_base, "https://", 8) != 0) {
		struct check *t = &d->checks[first];
		size_t l = strlen(t->detail);

		(void)snprintf(t->detail + l, sizeof t->detail - l, "; not used here: issuer "
		    "and api_base are plain http on this machine");
	}
}

/* ---- proxies ---- */

static void
check_proxy(struct doctor *d)
{
	/* libcurl reads these itself; plain HTTP_PROXY only in lower case (httpoxy). */
	static const char *const vars[] = {
		"https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy",
		"ALL_PROXY", "no_proxy", "NO_PROXY", NULL
	};
	char list[900], shown[400];
	size_t len = 0;
	bool any_proxy = false, upper_http = false;
	int n;

	list[0] = '\0';
	for (const char *const *v = vars; *v != NULL; v++) {
		const char *val = getenv(*v);

		if (val == NULL || val[0] == '\0')
			continue;
		if (strstr(*v, "no_proxy") != NULL || strstr(*v, "NO_PROXY") != NULL) {
			(void)snprintf(shown, sizeof shown, "%s", val);
			printable(shown, sizeof shown);
		} else {
			mask_url(val, shown, sizeof shown);
			any_proxy = true;
		}
		if (strcmp(*v, "HTTP_PROXY") == 0 && getenv("http_proxy") == NULL)
			upper_http = true;
		n = snprintf(list + len, sizeof list - len, "%s%s=%s", len > 0 ? ", " : "",
		    *v, shown);
		if (n < 0 || (size_t)n >= sizeof list - len)
			break;	/* check_add marks the cut */
		len += (size_t)n;
	}
	if (len == 0)
		check_add(d, "proxy", CHECK_OK, "no proxy variables set: direct connections");
	else
		check_add(d, "proxy", CHECK_OK, "%s%s%s", list,
		    any_proxy ? "" : " (no proxy itself is set)",
		    upper_http ? "; HTTP_PROXY is ignored for http:// URLs (only http_proxy "
		    "counts), https URLs use https_proxy" : "");
}

/* ---- the clock ---- */

static void
check_clock(struct doctor *d)
{
	struct check *c;
	int64_t skew;

	if (!d->discovered) {
		check_add(d, "clock", CHECK_SKIP, "the provider did not answer (see "
		    "discovery), so there is no Date header to compare with; timedatectl "
		    "status compares with a time server");
		return;
	}
	if (d->p.date == 0) {
		c = check_add(d, "clock", CHECK_WARN, "cannot check: the provider sent no "
		    "Date header");
		check_fix(c, "compare with a time server (timedatectl status)");
		return;
	}
	skew = (int64_t)d->p.date - d->discovered_at;
	if (skew >= -DOCTOR_SKEW_MAX && skew <= DOCTOR_SKEW_MAX) {
		check_add(d, "clock", CHECK_OK, "within %lld s of the provider's Date header",
		    (long long)(skew < 0 ? -skew : skew));
		return;
	}
	c = check_add(d, "clock", CHECK_WARN, "the local clock is %lld s %s the provider's "
	    "(its Date header)", (long long)(skew < 0 ? -skew : skew),
	    skew > 0 ? "behind" : "ahead of");
	check_fix(c, "synchronise the clock (timedatectl set-ntp true, or chronyc makestep): "
	    "TLS checks and tools that read a token's exp claim go by it");
}

/* ---- the stored session ---- */

static void
check_session(struct doctor *d)
{
	const struct config *cfg = d->cfg;
	struct jwt_claims at, id;
	struct ml_err err;
	struct check *c;
	char when[32], in[32], access[160], session[320];
	struct session_who w;
	int64_t now = util_now();
	bool access_ok;
	int rc;

	if (!d->store_ready) {
		check_add(d, "session", CHECK_SKIP, "no store to read it from (see "
		    "secret_service)");
		return;
	}
	err_clear(&err);
	if ((rc = token_load(cfg, &d->st, &d->rec, &err)) != ML_OK) {
		c = check_add(d, "session", rc == ML_ELOGIN ? CHECK_WARN : CHECK_FAIL, "%s",
		    err.msg);
		check_fix(c, rc == ML_ELOGIN ? "run mlauth login" : "check the store above; "
		    "mlauth login replaces a damaged session");
		return;
	}
	memset(&at, 0, sizeof at);
	memset(&id, 0, sizeof id);
	/* Claims only name the user: an undecodable token still has an expiry. */
	(void)jwt_claims_parse(d->rec.access_token, &at, NULL);
	if (d->rec.id_token != NULL)
		(void)jwt_claims_parse(d->rec.id_token, &id, NULL);
	session_who(&at, &id, &w);

	access_ok = d->rec.expires_at > now;
	util_format_time(d->rec.expires_at, when, sizeof when);
	util_format_duration(access_ok ? d->rec.expires_at - now : now - d->rec.expires_at,
	    in, sizeof in);
	(void)snprintf(access, sizeof access, access_ok ? "access token valid until %s (in %s)" :
	    "access token expired at %s (%s ago)", when, in);
	session_describe_end(&d->rec, now, true, session, sizeof session);
	if (session_usable(&d->rec, now)) {
		d->logged_in = true;
		check_add(d, "session", CHECK_OK, "logged in%s%s; %s; %s%s; kept in %s",
		    w.name != NULL ? " as " : "", w.name != NULL ? w.name : "", access, session,
		    !access_ok ? " (mlauth token refreshes it)" : "", store_describe(&d->st));
	} else {
		c = check_add(d, "session", CHECK_WARN, "not logged in: the stored session has "
		    "ended (%s; %s)", access, session);
		check_fix(c, "run mlauth login");
	}
	jwt_claims_free(&at);
	jwt_claims_free(&id);
}

/* ---- the environment other tools read ---- */

/* Whether the variable is set to a non-empty value other than except (NULL: none). */
static bool
env_set_to_other(const char *name, const char *except)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' && (except == NULL || strcmp(v, except) != 0);
}

/*
 * ANTHROPIC_AUTH_TOKEN and ANTHROPIC_API_KEY as Claude Code 2.1 treats them
 * beside an apiKeyHelper: the first replaces the helper's token, the second
 * goes along with it as x-api-key.  Set to the running proxy's key they are
 * the proxy's own settings (mlauth proxy --env), not leftovers.
 */
static bool
check_env_credentials(struct doctor *d, const char *proxy_key)
{
	bool tok = env_set_to_other("ANTHROPIC_AUTH_TOKEN", proxy_key);
	bool key = env_set_to_other("ANTHROPIC_API_KEY", proxy_key);
	struct check *c;

	if (!tok && !key)
		return false;
	/* Only their names: the values are credentials. */
	c = check_add(d, "environment", CHECK_WARN, "%s%s%s",
	    tok ? "ANTHROPIC_AUTH_TOKEN is set: Claude Code sends it instead of its "
	    "apiKeyHelper's token (mlauth token), until it expires" : "",
	    tok && key ? "; " : "",
	    key ? "ANTHROPIC_API_KEY is set: Claude Code sends it as x-api-key beside its "
	    "apiKeyHelper's token, so the key leaks to the API's host" : "");
	check_fix(c, "unset %s%s%s (and remove %s from your shell profile and Claude Code's "
	    "settings); for tools that only take a key, use mlauth proxy",
	    tok ? "ANTHROPIC_AUTH_TOKEN" : "", tok && key ? " " : "",
	    key ? "ANTHROPIC_API_KEY" : "", tok && key ? "them" : "it");
	return true;
}

/* Whether base names the same place as want, trailing slashes aside. */
static bool
same_base(const char *base, const char *want)
{
	size_t bl = strlen(base), al = strlen(want);

	while (bl > 0 && base[bl - 1] == '/')
		bl--;
	while (al > 0 && want[al - 1] == '/')
		al--;
	return bl == al && strncmp(base, want, bl) == 0;
}

static void
check_environment(struct doctor *d)
{
	const char *base = getenv("ANTHROPIC_BASE_URL");
	char shown[400], want[400], *purl = NULL, *pkey = NULL;
	struct ml_err err;
	struct check *c;
	bool creds;

	/* A running proxy of this profile: its address and key are fine to find here. */
	if (proxy_lookup(d->cfg->profile, &purl, &pkey, &err) != ML_OK)
		purl = pkey = NULL;
	/* Each finding on its own: fixing the first must not uncover the second. */
	creds = check_env_credentials(d, pkey);
	if (base != NULL && base[0] != '\0' && purl != NULL && same_base(base, purl)) {
		if (!creds)
			check_add(d, "environment", CHECK_OK, "ANTHROPIC_BASE_URL is the running "
			    "mlauth proxy (%s)", purl);
		goto out;
	}
	if (base != NULL && base[0] != '\0' && !same_base(base, d->cfg->api_base)) {
		/* A leftover base URL sends whatever token a tool has somewhere else. */
		mask_url(base, shown, sizeof shown);
		mask_url(d->cfg->api_base, want, sizeof want);
		c = check_add(d, "environment", CHECK_WARN, "ANTHROPIC_BASE_URL is %s, not "
		    "api_base %s: tools would send their token there", shown, want);
		check_fix(c, "unset ANTHROPIC_BASE_URL, or set it to %s", want);
		goto out;
	}
	if (!creds)
		check_add(d, "environment", CHECK_OK, "no ANTHROPIC_AUTH_TOKEN or "
		    "ANTHROPIC_API_KEY to get in apiKeyHelper's way%s", base != NULL &&
		    base[0] != '\0' ? "; ANTHROPIC_BASE_URL matches api_base" : "");
out:
	free(purl);
	secret_free(pkey);
}

/* ---- the messages API, asked once with the stored token ---- */

static const char *
api_fix(long status)
{
	if (status == 401)
		return "the API refused the token: run mlauth login (and check the clock)";
	if (status == 403)
		return "ask for access to the messages API for your account";
	if (status == 404 || status == 405)
		return "check the api_base setting: it should end before /v1/messages";
	if (messages_retryable(status) || status >= 500)
		return "the service is busy or down: try again later";
	return "check the model and api_base settings";
}

static void
check_messages(struct doctor *d)
{
	static const char *const headers[] = { "Accept: application/json", NULL };
	const struct config *cfg = d->cfg;
	struct messages_request mr = { .model = cfg->model, .max_tokens = 1, .text = "ping" };
	/* The stored token as it is: doctor looks, it does not refresh. */
	struct token_opts to = { .min_valid = 0, .no_refresh = true };
	struct api_call call = { .content_type = "application/json", .headers = headers,
		.once = true };
	struct api_session as;
	struct http_response resp;
	struct ml_err err;
	struct check *c;
	char shown[600];
	char *body = NULL;
	int rc;

	if (!d->logged_in) {
		check_add(d, "messages_api", CHECK_SKIP, "no usable session to ask with (see "
		    "session)");
		return;
	}
	if (d->rec.expires_at - util_now() <= DOCTOR_TOKEN_MARGIN) {
		c = check_add(d, "messages_api", CHECK_WARN, "not checked: the stored access "
		    "token has (almost) expired, and doctor does not refresh it");
		check_fix(c, "run mlauth token (it refreshes the token), then mlauth doctor "
		    "again");
		return;
	}
	err_clear(&err);
	memset(&resp, 0, sizeof resp);
	mask_url(cfg->api_base, shown, sizeof shown);
	if (!http_ready(d)) {
		c = check_add(d, "messages_api", CHECK_FAIL, "%s", d->http_err.msg);
		check_fix(c, "reinstall libcurl");
		return;
	}
	api_session_init(&as, cfg, d->ctx->verbose, &to);
	as.ho = d->ho;
	if (as.ho.timeout < DOCTOR_API_TIMEOUT)
		as.ho.timeout = cfg->timeout > 0 && cfg->timeout < DOCTOR_API_TIMEOUT ?
		    cfg->timeout : DOCTOR_API_TIMEOUT;
	if ((rc = messages_build_body(&mr, &body, &err)) != ML_OK) {
		c = check_add(d, "messages_api", CHECK_FAIL, "%s", err.msg);
		check_fix(c, "check the model setting");
		goto out;
	}
	call.body = body;
	call.body_len = strlen(body);
	if ((rc = api_session_use(&as, d->rec.access_token, d->rec.expires_at,
	    d->rec.obtained_at, &err)) != ML_OK ||
	    (rc = api_perform(&as, &call, &resp, &err)) != ML_OK) {
		c = check_add(d, "messages_api", CHECK_FAIL, "%s", err.msg);
		if (rc == ML_EUSAGE)
			check_fix(c, "set a shorter application_name");
		else
			check_fix(c, "check the api_base setting, the network and the proxy "
			    "variables");
		goto out;
	}
	if (resp.status >= 200 && resp.status < 300) {
		check_add(d, "messages_api", CHECK_OK, "%s/v1/messages answered HTTP %ld to "
		    "an authenticated one-token request (model %s)", shown, resp.status,
		    cfg->model);
		goto out;
	}
	(void)messages_parse_error(resp.status, resp.body, resp.len, &err);
	c = check_add(d, "messages_api", CHECK_FAIL, "%s", err.msg);
	check_fix(c, "%s", api_fix(resp.status));
out:
	http_response_free(&resp);
	api_session_free(&as);
	free(body);
}

/* ---- output ---- */

/*
 * s from column col to the end of the line, wrapped at spaces to d->width
 * columns, continuation lines indented to col; one line when not wrapping.
 * A word longer than a line stays whole: the terminal breaks it, not us.
 */
static void
print_wrapped(const struct doctor *d, const char *s, int col)
{
	int room = d->width - col;
	size_t cut;

	while (d->width > 0 && room >= 20 && strlen(s) > (size_t)room) {
		for (cut = (size_t)room; cut > 0 && s[cut] != ' '; cut--)
			;
		if (cut == 0)
			cut = strcspn(s, " ");
		fwrite(s, 1, cut, stdout);
		for (s += cut; *s == ' '; s++)
			;
		if (*s == '\0')
			break;
		printf("\n%*s", col, "");
	}
	printf("%s\n", s);
}

static void
print_check(const struct doctor *d, const struct check *c)
{
	const char *v = verdict_name[c->status];

	if (d->color)
		printf("\033[%sm%s\033[0m", verdict_color[c->status], v);
	else
		fputs(v, stdout);
	printf("%*s  %-15s ", 4 - (int)strlen(v), "", c->name);
	print_wrapped(d, c->detail, DOCTOR_INDENT);
	if (c->status != CHECK_OK && c->status != CHECK_SKIP && c->fix[0] != '\0') {
		printf("%*sfix: ", DOCTOR_INDENT, "");
		print_wrapped(d, c->fix, DOCTOR_INDENT + 5);
	}
}

/* The checks that ended since the last call, so the report grows as they end. */
static void
doctor_flush(struct doctor *d)
{
	if (!d->text)
		return;
	for (; d->printed < d->n; d->printed++) {
		const struct check *c = &d->checks[d->printed];

		if (!d->ctx->quiet || c->status != CHECK_OK)
			print_check(d, c);
	}
	(void)fflush(stdout);
}

static void
print_summary(const struct doctor *d)
{
	size_t count[CHECK_NVERDICTS] = { 0 };

	for (size_t i = 0; i < d->n; i++)
		count[d->checks[i].status]++;
	if (d->ctx->quiet && count[CHECK_WARN] + count[CHECK_FAIL] + count[CHECK_SKIP] == 0)
		return;
	printf("\n%zu checks: %zu ok, %zu warning%s, %zu failure%s", d->n, count[CHECK_OK],
	    count[CHECK_WARN], count[CHECK_WARN] == 1 ? "" : "s", count[CHECK_FAIL],
	    count[CHECK_FAIL] == 1 ? "" : "s");
	if (count[CHECK_SKIP] > 0)
		printf(", %zu skipped", count[CHECK_SKIP]);
	putchar('\n');
}

static int
print_json(const struct doctor *d, bool ok)
{
	json_t *list = json_array(), *o;
	int rc = ML_EFAIL;

	if (list == NULL)
		return ML_EFAIL;
	for (size_t i = 0; i < d->n; i++) {
		const struct check *c = &d->checks[i];

		o = json_pack("{s:s,s:s,s:s,s:s?}", "name", c->name, "status",
		    verdict_name[c->status], "detail", c->detail, "fix",
		    c->fix[0] != '\0' ? c->fix : NULL);
		if (o == NULL || json_array_append_new(list, o) != 0) {
			json_decref(list);
			return ML_EFAIL;
		}
	}
	/* "o" steals list, even when the pack fails. */
	if ((o = json_pack("{s:o,s:b}", "checks", list, "ok", ok)) != NULL &&
	    json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) == 0 &&
	    putchar('\n') != EOF)
		rc = ML_OK;
	json_decref(o);
	return rc;
}

static int
exec_doctor(struct cmd_ctx *ctx, int argc, char **argv)
{
	static void (*const checks[])(struct doctor *) = {
		check_settings, check_secret_service, check_kernel_keyring, check_discovery,
		check_tls, check_proxy, check_clock, check_session, check_environment,
		check_messages,
	};
	struct doctor *d;
	bool json = false, ok = true;
	int c, status;

	while ((c = cmd_getopt(ctx, argc, argv, &status)) != -1) {
		if (c == CMD_OPT_DONE)
			return status;
		if (c == 'j')
			json = true;
	}
	if (optind < argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);

	/* A few kilobytes of findings: not for the stack. */
	if ((d = calloc(1, sizeof *d)) == NULL) {
		cmd_error(ctx, "out of memory");
		return ML_EFAIL;
	}
	d->ctx = ctx;
	d->cfg = &ctx->cfg;
	d->text = !json;
	/* Colour and wrapping for a terminal only: a pipe or a file gets plain lines. */
	if (isatty(STDOUT_FILENO) == 1) {
		d->color = ctx->color;
		d->width = term_columns(STDOUT_FILENO);
	}
	cmd_http_opts(ctx, &d->ho);
	d->ho.no_advice = true;	/* each check has a fix line of its own */
	if (d->ho.timeout <= 0 || d->ho.timeout > DOCTOR_REACH_TIMEOUT)
		d->ho.timeout = DOCTOR_REACH_TIMEOUT;

	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
		checks[i](d);
		doctor_flush(d);
	}

	for (size_t i = 0; i < d->n; i++)
		if (d->checks[i].status == CHECK_FAIL)
			ok = false;
	if (json) {
		status = print_json(d, ok);
	} else {
		print_summary(d);
		status = ML_OK;
	}
	if (status == ML_OK && !ok)
		status = ML_EFAIL;

	record_free(&d->rec);
	oidc_provider_free(&d->p);
	if (d->store_ready)
		store_close(&d->st);
	free(d);
	return status;
}

const struct cmd_entry cmd_doctor_entry = {
	.name = "doctor",
	.summary = "check the set-up and say what to fix",
	.usage = "[--json]",
	.help =
	    "Options:\n"
	    "  -j, --json   print {\"checks\":[{\"name\",\"status\",\"detail\",\"fix\"}],\"ok\"}\n"
	    "\nChecks the settings and where each came from, the Secret Service and the\n"
	    "store mlauth will use, the kernel keyring cache, the issuer's discovery\n"
	    "document, the CA certificates, proxy variables (credentials masked), the\n"
	    "local clock against the provider's, the stored session, ANTHROPIC_* variables\n"
	    "that would get in Claude Code's apiKeyHelper's way, and, with a fresh token, one\n"
	    "minimal request to the messages API (max_tokens 1).  Each line says ok, warn\n"
	    "or fail, what was found, and the fix.  Never prints a token.\n"
	    "\nExit status 0 when nothing failed (warnings allowed), 1 when a check failed.\n",
	.options = options,
	.exec = exec_doctor,
};
