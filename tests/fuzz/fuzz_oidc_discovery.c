/*
 * fuzz_oidc_discovery: oidc_discovery_parse (oidc.h) on the body of a
 * discovery answer, for a Keycloak-shaped loopback issuer.
 */
#include "fuzz.h"
#include "mlauth/config.h"
#include "mlauth/oidc.h"

#define ISSUER	"http://127.0.0.1:8080/realms/test"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct oidc_provider p;
	struct ml_err err = { 0 };
	char *buf = fuzz_copy(data, size);
	int rc;

	rc = oidc_discovery_parse(buf, size, ISSUER, &p, &err);
	if (rc == ML_OK) {
		/* "the issuer it names must equal `issuer` exactly, every endpoint must pass" */
		FUZZ_CHECK(p.issuer != NULL && strcmp(p.issuer, ISSUER) == 0, "issuer");
		FUZZ_CHECK(config_url_allowed(p.device_authorization_endpoint), "device endpoint");
		FUZZ_CHECK(config_url_allowed(p.token_endpoint), "token endpoint");
		FUZZ_CHECK(p.revocation_endpoint == NULL ||
		    config_url_allowed(p.revocation_endpoint), "revocation endpoint");
		FUZZ_CHECK(p.jwks_uri == NULL || config_url_allowed(p.jwks_uri), "jwks_uri");
	} else {
		FUZZ_CHECK(rc == ML_EFAIL && err.code == rc, "rc %d", rc);
		FUZZ_CHECK(FUZZ_MSG_TERMINATED(&err), "unterminated message");
		FUZZ_CHECK(fuzz_ascii(err.msg, 0x20), "unprintable message: %s", err.msg);
		FUZZ_CHECK(p.issuer == NULL && p.token_endpoint == NULL, "not freed on failure");
	}
	oidc_provider_free(&p);
	free(buf);
	return 0;
}
