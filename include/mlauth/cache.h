/*
 * cache.h: the access token in the kernel keyring, so `mlauth token` can
 * print it without D-Bus, libcurl or a file (MIT Kerberos's KEYRING: ccache
 * does the same).  Only the access token: the refresh token stays in the
 * store.  Where the kernel keyring is not available (containers that forbid
 * keyctl), every call fails quietly and callers fall through to the store.
 */
#ifndef MLAUTH_CACHE_H
#define MLAUTH_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CACHE_MAX_TOKEN	16384

struct cache_entry {
	int64_t expires_at, obtained_at;
	char *token;		/* secret: secret_free it (cache_entry_free does) */
	char *home;		/* the profile's file-store path when it was cached */
};

/*
 * The entry cached for profile at issuer for client_id, or -1 when there is
 * none, the kernel keyring is unusable, or the payload is damaged.
 */
int cache_get(const char *profile, const char *issuer, const char *client_id,
    struct cache_entry *e);
/*
 * Cache token, which expires at expires_at; the key times out then, or at
 * drop_at when that is sooner and not 0 (the session needs the helper then:
 * session_cache_until).  -1 when it cannot.
 */
int cache_put(const char *profile, const char *issuer, const char *client_id,
    const char *token, int64_t expires_at, int64_t obtained_at, int64_t drop_at);
/* Forget profile's token (logout); quiet when there is none. */
void cache_remove(const char *profile, const char *issuer, const char *client_id);
void cache_entry_free(struct cache_entry *e);

/*
 * A session that a failed save could not keep (session_save_answer): its
 * record JSON, in the user keyring under "mlauth-stash:PROFILE:CLIENT:ISSUER",
 * readable by this user only and never written to a disk, until the store can
 * take it (session_recover).  For this home's session only, like the cache.
 * put and get return -1 when they cannot; get's *json is secret_free'd by the caller.
 */
int cache_stash_put(const char *profile, const char *issuer, const char *client_id,
    const char *json);
int cache_stash_get(const char *profile, const char *issuer, const char *client_id,
    char **json);
void cache_stash_remove(const char *profile, const char *issuer, const char *client_id);

/* The payload format, exposed for tests and the fuzzer: parse len bytes into e. */
int cache_payload_parse(const char *buf, size_t len, struct cache_entry *e);

#endif
