/* jwt.h: the claims of a JWT, read without checking its signature (that is the API's job). */
#ifndef MLAUTH_JWT_H
#define MLAUTH_JWT_H

#include <stdint.h>

#include "mlauth/err.h"

#define JWT_MAX_LEN	16384	/* larger input is refused before decoding */

struct jwt_claims {
	int64_t exp, iat;	/* 0 when absent */
	char *iss, *sub, *azp, *typ, *scope;
	char *preferred_username, *email, *name;
};

/*
 * Decode token's claims into *out (zeroed first).  Malformed, truncated,
 * oversized or non-JSON input fails with ML_EFAIL and a message that does not
 * quote the token.  Free with jwt_claims_free, even after a failure.
 */
int jwt_claims_parse(const char *token, struct jwt_claims *out, struct ml_err *err);
void jwt_claims_free(struct jwt_claims *c);

#endif
