/*
 * session.h: a profile's session, the one place its rules live: when the
 * token must be refreshed, whether the session still works, whose it is,
 * how it ends, where its lock is, and the refresh itself.
 *
 * The rules (session.c) are small and linked into the front binary too, so
 * the fast path and the helper never disagree; the refresh (session_refresh.c)
 * is the helper's.
 */
#ifndef MLAUTH_SESSION_H
#define MLAUTH_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mlauth/config.h"
#include "mlauth/err.h"
#include "mlauth/record.h"

struct jwt_claims;
struct store;
struct oidc_tokens;

/* ---- the rules (session.c) ---- */

/*
 * min_valid capped at half the token's lifetime (expires_at - obtained_at),
 * so a short-lived token is not refreshed on every call.
 */
int64_t session_min_valid(int64_t expires_at, int64_t obtained_at, long min_valid);
/* The access token is valid for more than the capped min_valid after now. */
bool session_token_fresh(int64_t expires_at, int64_t obtained_at, long min_valid,
    int64_t now);
/*
 * When an online session (one with a refresh expiry) must be refreshed to
 * stay alive: once half the window the provider gave at the last refresh
 * has passed (Keycloak's SSO idle timeout restarts with each refresh).
 * INT64_MAX when nothing but the access token's expiry matters.
 */
int64_t session_keepalive_at(const struct record *r);
/* The access token is fresh for min_valid and the session needs no keep-alive yet. */
bool session_fresh(const struct record *r, long min_valid, int64_t now);
/* The moment the kernel cache must stop serving r's token (then the helper decides). */
int64_t session_cache_until(const struct record *r);
/* The provider refused the refresh token: only a new login helps. */
bool session_refused(const struct record *r);
/* The session still works without a login: its access token or its refresh. */
bool session_usable(const struct record *r, int64_t now);

/* Who the session belongs to: the ID token's claims first, then the access token's. */
struct session_who {
	const char *user;	/* preferred_username */
	const char *name;	/* the person's name, else user */
	const char *email;
};
void session_who(const struct jwt_claims *at, const struct jwt_claims *id,
    struct session_who *w);

/*
 * How the session ends, for people: "session until ... (in ...)", "offline
 * session: ...", "session ended by the provider ...": brief for one line of
 * login's, else with what renews it.  No trailing punctuation.
 */
void session_describe_end(const struct record *r, int64_t now, bool brief, char *buf,
    size_t len);

/*
 * The profile's lock (lock.h), in the state directory beside the file store:
 * the same file for every process of the user, whatever its environment.
 */
int session_lock(const struct config *cfg, long timeout_ms, int *fd, struct ml_err *err);

/* ---- the refresh (session_refresh.c) ---- */

/*
 * Refresh r (read under the profile's lock, held as *lockfd) so the refresh
 * cannot be lost with its caller: a detached process (its own session and
 * process group, the usual signals ignored) that shares the lock sends the
 * request and saves the answer; this one waits for it and reads the saved
 * record into *out.  If the caller dies meanwhile, the child finishes the
 * save and only then lets the lock go, so the next caller finds the new
 * session.  Interrupted while waiting, this returns ML_EINTR at once and
 * *lockfd is closed (not unlocked: the child still holds it) and set to -1.
 * A refusal by the provider marks the session refused (session_refused)
 * and is ML_ELOGIN.  A warning for the user goes to warn (left as it is
 * when there is none).
 */
int session_refresh(const struct config *cfg, int verbose, struct store *st, int *lockfd,
    const struct record *r, struct record *out, char *warn, size_t warnlen,
    struct ml_err *err);

/*
 * The detached refresh's own main, in the helper (main.c calls it for
 * argv[1] == SESSION_CHILD_ARG): argv are the globals it was given.  Returns
 * the exit status; its verdict goes back over the pipe, never to stderr.
 */
#define SESSION_CHILD_ARG	"--session-refresh-child"
int session_refresh_child(int argc, char **argv);

/*
 * Store the answer of a token request for cfg's profile (login or refresh):
 * token_store_answer, but a refresh token the answer carries is never lost:
 * if the rest of the answer is refused, it is saved with prev's other
 * tokens; if saving fails, it is kept in the kernel keyring (memory only,
 * this user only) for session_recover.  *warn as above.
 */
int session_save_answer(const struct config *cfg, struct store *st,
    const struct oidc_tokens *t, const struct record *prev, const char *token_endpoint,
    struct record *out, char *warn, size_t warnlen, struct ml_err *err);

/*
 * A session kept in the kernel keyring by a save that failed: when it is
 * there and newer than *r (the stored one, or empty), save it, put it in *r
 * and say so in *warn.  ML_OK when there was nothing to recover.
 */
int session_recover(const struct config *cfg, struct store *st, struct record *r,
    char *warn, size_t warnlen, struct ml_err *err);

#endif
