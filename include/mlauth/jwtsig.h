/*
 * jwtsig.h: the signature check of a JWT, the module mlauth-jwt.so
 * (src/jwt_sig.c, libjwt and libcrypto), which verify.c opens only when a
 * token is to be validated: neither library is loaded by a run that does not.
 */
#ifndef MLAUTH_JWTSIG_H
#define MLAUTH_JWTSIG_H

#include "mlauth/err.h"

/*
 * One key of a JWKS (RFC 7517), its members as the set gives them
 * (base64url n and e of an RSA key; x5c[0], standard base64 DER, of any);
 * NULL when absent.
 */
struct jwt_sig_key {
	const char *kty, *n, *e, *x5c;
};

#define JWT_SIG_ABI	1
struct jwt_sig_ops {
	int abi;		/* JWT_SIG_ABI: a module of another build is refused */
	/*
	 * ML_OK when token is signed with alg by key.  alg must be an
	 * asymmetric algorithm of the key's type (RS256/384/512 for RSA,
	 * ES256/384/512 for EC): "none" and HMAC are refused whatever the
	 * token says.  ML_EFAIL with a message that does not quote the token.
	 */
	int (*verify)(const char *token, const char *alg, const struct jwt_sig_key *key,
	    struct ml_err *err);
};
extern const struct jwt_sig_ops jwt_sig_module;

#endif
