/* record.h: the session kept per profile, one JSON object. */
#ifndef MLAUTH_RECORD_H
#define MLAUTH_RECORD_H

#include <stdint.h>

#include "mlauth/err.h"

#define RECORD_MAX_LEN	(256 * 1024)

/*
 * The kind of session at the provider, as the token answer showed it (stored
 * as "session": "online" / "offline"; absent in records of older versions).
 * Keycloak grants an offline session only when the client has the
 * offline_access scope and the user the role; otherwise it silently grants
 * an online one, which ends with the provider's login session (SSO Session
 * Idle without use, SSO Session Max at the latest).
 */
enum record_session {
	RECORD_SESSION_UNKNOWN = 0,	/* an old record, or no refresh token */
	RECORD_SESSION_ONLINE,		/* refresh_expires_at: its idle end */
	RECORD_SESSION_OFFLINE		/* survives the login session (Offline Session Idle) */
};

struct record {
	char *issuer, *client_id;
	char *access_token, *refresh_token, *id_token;	/* secrets */
	char *scope, *token_type;
	char *token_endpoint;	/* from discovery at login: refresh needs no discovery */
	int64_t expires_at;		/* access token, absolute, local clock */
	int64_t refresh_expires_at;	/* 0: unknown or no expiry (offline token) */
	int64_t obtained_at;
	enum record_session session;
	int64_t refused_at;	/* the provider refused the refresh token then; 0: never */
};

/* "online", "offline", or NULL for RECORD_SESSION_UNKNOWN. */
const char *record_session_name(enum record_session s);

/* The record as JSON; *out is allocated (free with secret_free). */
int record_to_json(const struct record *r, char **out, struct ml_err *err);
/*
 * Parse a stored record.  issuer, client_id, access_token and expires_at are
 * required; anything else malformed fails with ML_ESTORE.  Free with
 * record_free, even after a failure.
 */
int record_from_json(const char *buf, size_t len, struct record *r, struct ml_err *err);
/* Wipe and free the strings of r and zero it. */
void record_free(struct record *r);

#endif
