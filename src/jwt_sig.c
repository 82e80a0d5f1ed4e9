/*
 * jwt_sig.c: the module mlauth-jwt.so: a JWT's signature checked with libjwt
 * against one key of the provider's JWKS.
 *
 * libjwt 1.10 (Debian 12) takes a PEM public key, while a JWKS gives an RSA
 * key as its modulus and exponent (or a certificate, x5c): libcrypto turns
 * either into PEM.  Both libraries cost milliseconds to load, so they live
 * here, opened by verify.c only when a token is to be validated.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "mlauth/jwtsig.h"

#define KEY_PART_MAX	8192	/* base64 characters: a 16384-bit modulus, a large certificate */

/* Decode standard or URL-safe base64 (padding optional); NULL when malformed. */
static unsigned char *
b64_decode(const char *s, size_t *outlen)
{
	size_t n = strnlen(s, KEY_PART_MAX + 1), pad, i;
	unsigned char *in, *out;
	int len;

	if (n > KEY_PART_MAX)
		return NULL;
	while (n > 0 && s[n - 1] == '=')
		n--;
	pad = (4 - n % 4) % 4;
	if (n == 0 || pad == 3)
		return NULL;
	if ((in = malloc(n + pad + 1)) == NULL || (out = malloc(n + pad)) == NULL) {
		free(in);
		return NULL;
	}
	for (i = 0; i < n; i++)
		in[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : (unsigned char)s[i];
	memset(in + n, '=', pad);
	in[n + pad] = '\0';
	len = EVP_DecodeBlock(out, in, (int)(n + pad));
	free(in);
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	if (len < 0 || (size_t)len < pad) {
		free(out);
		return NULL;
	}
	*outlen = (size_t)len - pad;
	return out;
}

static BIGNUM *
b64_bn(const char *s)
{
	unsigned char *raw;
	size_t len;
	BIGNUM *bn;

	if (s == NULL || (raw = b64_decode(s, &len)) == NULL)
		return NULL;
	bn = len > 0 ? BN_bin2bn(raw, (int)len, NULL) : NULL;
	free(raw);
	return bn;
}

/* An RSA public key from the JWK's n and e. */
static EVP_PKEY *
key_from_rsa(const char *n64, const char *e64)
{
	BIGNUM *n = b64_bn(n64), *e = b64_bn(e64);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;

	if (n != NULL && e != NULL && bld != NULL &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1 &&
	    (params = OSSL_PARAM_BLD_to_param(bld)) != NULL &&
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) != NULL &&
	    EVP_PKEY_fromdata_init(ctx) == 1)
		(void)EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return pkey;
}

/* The public key of the JWK's first certificate (x5c[0], DER in standard base64). */
static EVP_PKEY *
key_from_x5c(const char *x5c)
{
	const unsigned char *p;
	unsigned char *der;
	EVP_PKEY *pkey = NULL;
	X509 *cert;
	size_t len;

	if ((der = b64_decode(x5c, &len)) == NULL)
		return NULL;
	p = der;
	if ((cert = d2i_X509(NULL, &p, (long)len)) != NULL) {
		pkey = X509_get_pubkey(cert);
		X509_free(cert);
	}
	free(der);
	return pkey;
}

/* pkey as a NUL-terminated PEM SubjectPublicKeyInfo (malloc'd), the form libjwt 1.10 reads. */
static char *
key_pem(EVP_PKEY *pkey, int *len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *pem = NULL;
	long n;

	if (bio != NULL && PEM_write_bio_PUBKEY(bio, pkey) == 1 &&
	    (n = BIO_get_mem_data(bio, &data)) > 0 && n < 65536 &&
	    (pem = malloc((size_t)n + 1)) != NULL) {
		memcpy(pem, data, (size_t)n);
		pem[n] = '\0';
		*len = (int)n;
	}
	BIO_free(bio);
	return pem;
}

/* Which key type alg needs: EVP_PKEY_RSA or EVP_PKEY_EC; 0 for any other algorithm. */
static int
alg_key_type(const char *alg)
{
	static const char *const rsa[] = { "RS256", "RS384", "RS512" };
	static const char *const ec[] = { "ES256", "ES384", "ES512" };

	for (size_t i = 0; i < 3; i++) {
		if (strcmp(alg, rsa[i]) == 0)
			return EVP_PKEY_RSA;
		if (strcmp(alg, ec[i]) == 0)
			return EVP_PKEY_EC;
	}
	return 0;
}

static EVP_PKEY *
key_of(const struct jwt_sig_key *k)
{
	if (k->kty != NULL && strcmp(k->kty, "RSA") == 0 && k->n != NULL && k->e != NULL)
		return key_from_rsa(k->n, k->e);
	return k->x5c != NULL ? key_from_x5c(k->x5c) : NULL;
}

static int
sig_verify(const char *token, const char *alg, const struct jwt_sig_key *k,
    struct ml_err *err)
{
	int type = alg_key_type(alg), len = 0, rc;
	EVP_PKEY *pkey;
	jwt_t *jwt = NULL;
	char *pem;

	/* The key decides the algorithm family, never the token: no "none", no HMAC. */
	if (type == 0)
		return err_set(err, ML_EFAIL, "its algorithm %.16s is not one mlauth accepts "
		    "(RS256/384/512, ES256/384/512)", alg);
	if ((pkey = key_of(k)) == NULL)
		return err_set(err, ML_EFAIL, "the provider's signing key is malformed");
	if (EVP_PKEY_get_base_id(pkey) != type) {
		EVP_PKEY_free(pkey);
		return err_set(err, ML_EFAIL, "its algorithm %.16s does not fit the provider's "
		    "key of type %.8s", alg, k->kty != NULL ? k->kty : "?");
	}
	pem = key_pem(pkey, &len);
	EVP_PKEY_free(pkey);
	if (pem == NULL)
		return err_set(err, ML_EFAIL, "out of memory");
	rc = jwt_decode(&jwt, token, (const unsigned char *)pem, len);
	free(pem);
	if (rc == 0 && jwt_get_alg(jwt) != jwt_str_alg(alg))
		rc = EINVAL;
	jwt_free(jwt);
	if (rc == ENOMEM)
		return err_set(err, ML_EFAIL, "out of memory");
	if (rc != 0)
		return err_set(err, ML_EFAIL, "its signature does not verify with the "
		    "provider's key");
	return ML_OK;
}

__attribute__((visibility("default"))) const struct jwt_sig_ops jwt_sig_module = {
	.abi = JWT_SIG_ABI,
	.verify = sig_verify,
};
