/*
 * fuzz_config: config_load (config.h) on a config file holding the input.
 *
 * config.c reads only from a path (g_key_file_load_from_file), so the input
 * goes into an in-memory file (memfd) created once per process and rewritten
 * for each input; its path is /proc/self/fd/N.  No disk, no temp file left
 * behind.  Each input is loaded for the default profile and for "work".
 */
#define _GNU_SOURCE	/* memfd_create */
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "fuzz.h"
#include "mlauth/config.h"

static int memfd = -1;
static char path[64];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* Only the file may speak: no MLAUTH_* from the environment of whoever runs this. */
	for (int k = 0; k < CONFIG_NKEYS; k++)
		unsetenv(config_key_env((enum config_key)k));
	unsetenv("MLAUTH_PROFILE");
	unsetenv("MLAUTH_CONFIG");
	if ((memfd = memfd_create("mlauth-fuzz-config", MFD_CLOEXEC)) < 0) {
		perror("memfd_create");
		abort();
	}
	/* A memfd is born 0777: config_load refuses a file others could write (as ssh does). */
	if (fchmod(memfd, 0600) != 0) {
		perror("fchmod");
		abort();
	}
	(void)snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
	return 0;
}

static void
load(const char *profile)
{
	struct config cfg;
	struct ml_err err = { 0 };
	int rc;

	rc = config_load(&cfg, profile, path, NULL, 0, &err);
	if (rc == ML_OK) {
		gchar **groups = config_profiles(&cfg);

		FUZZ_CHECK(groups != NULL, "config_profiles");
		g_strfreev(groups);
		FUZZ_CHECK(config_url_allowed(cfg.issuer) && config_url_allowed(cfg.api_base),
		    "a URL that is not allowed");
		for (int k = 0; k < CONFIG_NKEYS; k++)
			FUZZ_CHECK(cfg.v[k].value != NULL && strpbrk(cfg.v[k].value, "\r\n") == NULL,
			    "value of %s", config_key_name((enum config_key)k));
		FUZZ_CHECK(cfg.max_tokens >= 1 && cfg.timeout >= 1 && cfg.retries >= 0 &&
		    cfg.min_valid >= 0, "a number out of range");
	} else {
		FUZZ_CHECK(rc == ML_EUSAGE && err.code == rc, "rc %d", rc);
		FUZZ_CHECK(FUZZ_MSG_TERMINATED(&err), "unterminated message");
	}
	config_free(&cfg);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (ftruncate(memfd, 0) != 0 ||
	    (size > 0 && pwrite(memfd, data, size, 0) != (ssize_t)size)) {
		perror("writing the config memfd");
		abort();
	}
	load(NULL);
	load("work");
	return 0;
}
