/* record.h: the session kept per profile, one JSON object. */
#ifndef MLAUTH_RECORD_H
#define MLAUTH_RECORD_H

#include <stdint.h>

#include "mlauth/err.h"

#define RECORD_MAX_LEN	(256 * 1024)

struct record {
	char *issuer, *client_id;
	char *access_token, *refresh_token, *id_token;	/* secrets */
	char *scope, *token_type;
	char *token_endpoint;	/* from discovery at login: refresh needs no discovery */
	int64_t expires_at;		/* access token, absolute, local clock */
	int64_t refresh_expires_at;	/* 0: unknown or no expiry (offline token) */
	int64_t obtained_at;
};

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
