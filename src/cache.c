/*
 * cache.c: the kernel-keyring cache of access tokens (see cache.h).
 *
 * One "user" key per profile, issuer and client, in the user keyring, with
 * the key's timeout at the token's expiry.  The payload is plain text,
 * "mlauth-cache 2\n<expires_at>\n<obtained_at>\n<home>\n<token>", so the
 * front binary needs no JSON parser to read it.  <home> is the profile's
 * file-store path: the kernel keyring is per user, but a user may keep
 * several homes (XDG_STATE_HOME), each with its own session; a token cached
 * for another home is a miss, never served.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyutils.h>

#include "mlauth/cache.h"
#include "mlauth/secret.h"
#include "mlauth/store.h"
#include "mlauth/util.h"

#define MAGIC "mlauth-cache 2\n"
/* The largest payload: magic, two times, a home of up to PATH_MAX, the token. */
#define MAX_PAYLOAD (sizeof MAGIC + 2 * 21 + PATH_MAX + CACHE_MAX_TOKEN)

/* The description names all three, so another issuer's token is never served. */
static int
describe_as(const char *kind, char *buf, size_t len, const char *profile, const char *issuer,
    const char *client_id)
{
	int n = snprintf(buf, len, "%s:%s:%s:%s", kind, profile, client_id, issuer);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int
describe(char *buf, size_t len, const char *profile, const char *issuer,
    const char *client_id)
{
	return describe_as("mlauth", buf, len, profile, issuer, client_id);
}

static int
parse_int(const char **p, const char *end, int64_t *out)
{
	int64_t v = 0;
	const char *s = *p;

	if (s == end || *s < '0' || *s > '9')
		return -1;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (v > (INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	if (s == end || *s != '\n')
		return -1;
	*p = s + 1;
	*out = v;
	return 0;
}

/* The characters of a bearer token (RFC 6750 b64token), tested by range: the fast path. */
static bool
token_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '/' || c == '=';
}

int
cache_payload_parse(const char *buf, size_t len, struct cache_entry *e)
{
	const char *p = buf, *end = buf + len, *nl;
	size_t tlen;

	memset(e, 0, sizeof *e);
	if (len < sizeof MAGIC - 1 || memcmp(buf, MAGIC, sizeof MAGIC - 1) != 0)
		return -1;
	p += sizeof MAGIC - 1;
	if (parse_int(&p, end, &e->expires_at) < 0 || parse_int(&p, end, &e->obtained_at) < 0)
		return -1;
	if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL || nl == p ||
	    memchr(p, '\0', (size_t)(nl - p)) != NULL)
		return -1;
	if ((e->home = malloc((size_t)(nl - p) + 1)) == NULL)
		return -1;
	memcpy(e->home, p, (size_t)(nl - p));
	e->home[nl - p] = '\0';
	p = nl + 1;
	tlen = (size_t)(end - p);
	/*
	 * The token goes straight to stdout and into HTTP headers: only the
	 * characters a JWT or opaque bearer token is made of.
	 */
	if (tlen == 0 || tlen > CACHE_MAX_TOKEN)
		goto bad;
	for (size_t i = 0; i < tlen; i++)
		if (!token_char((unsigned char)p[i]))
			goto bad;
	if ((e->token = secret_alloc(tlen + 1)) == NULL)
		goto bad;
	memcpy(e->token, p, tlen);
	e->token[tlen] = '\0';
	return 0;
bad:
	cache_entry_free(e);
	return -1;
}

/* The profile's store path: whose session a cached token belongs to. */
static char *
home_of(const char *profile)
{
	struct ml_err err;
	char *path = NULL;

	if (store_file_path(profile, &path, &err) != ML_OK)
		return NULL;
	if (strchr(path, '\n') != NULL) {
		free(path);
		return NULL;
	}
	return path;
}

int
cache_get(const char *profile, const char *issuer, const char *client_id,
    struct cache_entry *e)
{
	/*
	 * Room for the largest payload cache_put writes, so one read gets it all
	 * (keyctl_read_alloc asks for the size first: a system call more on the
	 * fast path).  Static, not on the stack: only the pages the kernel
	 * writes are touched.
	 */
	static char buf[MAX_PAYLOAD];
	char desc[2048];
	key_serial_t key;
	long n;
	int rc;

	memset(e, 0, sizeof *e);
	if (describe(desc, sizeof desc, profile, issuer, client_id) < 0)
		return -1;
	key = keyctl_search(KEY_SPEC_USER_KEYRING, "user", desc, 0);
	if (key < 0)
		return -1;
	n = keyctl_read(key, buf, sizeof buf);
	if (n < 0)
		return -1;
	if ((size_t)n > sizeof buf) {
		/* Larger than anything cache_put writes: not ours. */
		secret_wipe(buf, sizeof buf);
		return -1;
	}
	rc = cache_payload_parse(buf, (size_t)n, e);
	secret_wipe(buf, (size_t)n);
	if (rc == 0) {
		char *home = home_of(profile);

		if (home == NULL || strcmp(home, e->home) != 0) {
			cache_entry_free(e);
			rc = -1;
		}
		free(home);
	}
	return rc;
}

/* Readable and writable by this user (and its possessors) only. */
static int
private_key(key_serial_t key)
{
	return keyctl_setperm(key, KEY_POS_ALL | KEY_USR_VIEW | KEY_USR_READ | KEY_USR_WRITE |
	    KEY_USR_SEARCH | KEY_USR_SETATTR) < 0 ? -1 : 0;
}

int
cache_put(const char *profile, const char *issuer, const char *client_id,
    const char *token, int64_t expires_at, int64_t obtained_at, int64_t drop_at)
{
	char desc[2048], *payload, *home;
	int64_t ttl = (drop_at != 0 && drop_at < expires_at ? drop_at : expires_at) - util_now();
	key_serial_t key;
	size_t tlen = strlen(token), cap;
	int n;

	if (ttl <= 0 || tlen > CACHE_MAX_TOKEN ||
	    describe(desc, sizeof desc, profile, issuer, client_id) < 0 ||
	    (home = home_of(profile)) == NULL)
		return -1;
	cap = tlen + strlen(home) + 64;
	if ((payload = malloc(cap)) == NULL) {
		free(home);
		return -1;
	}
	n = snprintf(payload, cap, MAGIC "%lld\n%lld\n%s\n%s", (long long)expires_at,
	    (long long)obtained_at, home, token);
	free(home);
	if (n < 0 || (size_t)n >= cap || (size_t)n > MAX_PAYLOAD) {
		secret_wipe(payload, cap);
		free(payload);
		return -1;
	}
	/* add_key replaces the payload of an existing key of that description in place. */
	key = add_key("user", desc, payload, (size_t)n, KEY_SPEC_USER_KEYRING);
	secret_wipe(payload, cap);
	free(payload);
	if (key < 0)
		return -1;
	/* Readable by this user only, and gone when the token expires. */
	if (private_key(key) < 0 ||
	    keyctl_set_timeout(key, (unsigned)(ttl > 0x7fffffff ? 0x7fffffff : ttl)) < 0) {
		(void)keyctl_invalidate(key);
		return -1;
	}
	return 0;
}

#define STASH_MAGIC "mlauth-stash 1\n"
#define STASH_TTL (30 * 24 * 3600)	/* Keycloak's default Offline Session Idle */

int
cache_stash_put(const char *profile, const char *issuer, const char *client_id,
    const char *json)
{
	char desc[2048], *payload, *home;
	size_t cap;
	key_serial_t key;
	int n;

	if (describe_as("mlauth-stash", desc, sizeof desc, profile, issuer, client_id) < 0 ||
	    (home = home_of(profile)) == NULL)
		return -1;
	cap = strlen(json) + strlen(home) + sizeof STASH_MAGIC + 2;
	if ((payload = malloc(cap)) == NULL) {
		free(home);
		return -1;
	}
	n = snprintf(payload, cap, STASH_MAGIC "%s\n%s", home, json);
	free(home);
	key = n < 0 || (size_t)n >= cap ? -1 :
	    add_key("user", desc, payload, (size_t)n, KEY_SPEC_USER_KEYRING);
	secret_wipe(payload, cap);
	free(payload);
	if (key < 0)
		return -1;
	/* Not forever: an unsaved session outlives no provider's offline idle time. */
	if (private_key(key) < 0 || keyctl_set_timeout(key, STASH_TTL) < 0) {
		(void)keyctl_invalidate(key);
		return -1;
	}
	return 0;
}

int
cache_stash_get(const char *profile, const char *issuer, const char *client_id,
    char **json)
{
	char desc[2048], *home = NULL, *buf = NULL, *p;
	key_serial_t key;
	size_t hl;
	long n;
	int rc = -1;

	*json = NULL;
	if (describe_as("mlauth-stash", desc, sizeof desc, profile, issuer, client_id) < 0 ||
	    (key = keyctl_search(KEY_SPEC_USER_KEYRING, "user", desc, 0)) < 0 ||
	    (n = keyctl_read_alloc(key, (void **)&buf)) < 0)
		return -1;
	if ((home = home_of(profile)) == NULL)
		goto out;
	hl = strlen(home);
	p = buf + sizeof STASH_MAGIC - 1;
	/* keyctl_read_alloc adds a NUL after the payload. */
	if ((size_t)n < sizeof STASH_MAGIC - 1 + hl + 1 ||
	    memcmp(buf, STASH_MAGIC, sizeof STASH_MAGIC - 1) != 0 ||
	    memcmp(p, home, hl) != 0 || p[hl] != '\n')
		goto out;
	if ((*json = strdup(p + hl + 1)) != NULL)
		rc = 0;
out:
	secret_wipe(buf, (size_t)n);
	free(buf);
	free(home);
	return rc;
}

void
cache_stash_remove(const char *profile, const char *issuer, const char *client_id)
{
	char desc[2048];
	key_serial_t key;

	if (describe_as("mlauth-stash", desc, sizeof desc, profile, issuer, client_id) < 0)
		return;
	key = keyctl_search(KEY_SPEC_USER_KEYRING, "user", desc, 0);
	if (key >= 0 && keyctl_invalidate(key) < 0)
		(void)keyctl_unlink(key, KEY_SPEC_USER_KEYRING);
}

void
cache_remove(const char *profile, const char *issuer, const char *client_id)
{
	char desc[2048];
	key_serial_t key;

	if (describe(desc, sizeof desc, profile, issuer, client_id) < 0)
		return;
	key = keyctl_search(KEY_SPEC_USER_KEYRING, "user", desc, 0);
	if (key >= 0 && keyctl_invalidate(key) < 0)
		(void)keyctl_unlink(key, KEY_SPEC_USER_KEYRING);
}

void
cache_entry_free(struct cache_entry *e)
{
	if (e == NULL)
		return;
	secret_free(e->token);
	free(e->home);
	memset(e, 0, sizeof *e);
}
