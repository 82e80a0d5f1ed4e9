/*
 * jwt.h: the claims of a JWT, read without libjwt or libcrypto (the signature is
 * verify.h's business, which loads them only when asked).
 */
#ifndef MLAUTH_JWT_H
#define MLAUTH_JWT_H

#include <stdint.h>

#include "mlauth/err.h"

#define JWT_MAX_LEN	16384	/* larger input is refused before decoding */

struct jwt_claims {
	int64_t exp, iat, nbf;	/* 0 when absent */
	char *iss, *sub, *azp, *typ, *scope;
	char *preferred_username, *email, *name;
	char **aud;		/* NULL-terminated; a single string becomes one entry */
};

/* The header members that choose the key and say the type ("" when absent). */
struct jwt_header {
	char alg[16];
	char kid[128];
	char typ[32];
};

/* What a validated token must say (OIDC Core 3.1.3.7; RFC 9068 for access tokens). */
struct jwt_expect {
	const char *issuer;	/* iss must equal it */
	const char *audience;	/* NULL: aud not checked; else aud must contain it */
	const char *azp;	/* NULL: not checked; else azp, when present, must equal it */
	int64_t now;		/* the provider's clock, as well as the caller knows it */
	long leeway;		/* seconds of clock difference tolerated on exp, nbf, iat */
};

/*
 * Decode token's claims into *out (zeroed first).  Malformed, truncated,
 * oversized or non-JSON input fails with ML_EFAIL and a message that does not
 * quote the token.  Free with jwt_claims_free, even after a failure.
 */
int jwt_claims_parse(const char *token, struct jwt_claims *out, struct ml_err *err);
void jwt_claims_free(struct jwt_claims *c);
/* The header of token, without checking anything else. */
int jwt_header_parse(const char *token, struct jwt_header *h, struct ml_err *err);
/*
 * The claim checks of a token whose signature is checked elsewhere: ML_EFAIL
 * with a message naming the first claim that fails (values quoted only when
 * they are printable and short).
 */
int jwt_claims_check(const struct jwt_claims *c, const struct jwt_expect *x,
    struct ml_err *err);

#endif
