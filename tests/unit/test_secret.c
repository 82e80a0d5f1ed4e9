/*
 * secret: tokens in memory kept out of core dumps (MADV_DONTDUMP) and, where
 * RLIMIT_MEMLOCK allows, out of swap (mlock); wiped when freed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "unit.h"
#include "mlauth/secret.h"

/* AddressSanitizer makes mlock a no-op that succeeds: nothing to see in VmFlags then. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* The VmFlags line of the mapping of /proc/self/smaps that holds p, into flags. */
static int
vmflags_of(const void *p, char *flags, size_t len)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	unsigned long lo, hi, a = (unsigned long)p;
	int in = 0, found = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = a >= lo && a < hi;
		else if (in && strncmp(line, "VmFlags:", 8) == 0) {
			(void)snprintf(flags, len, "%s", line + 8);
			found = 0;
			break;
		}
	}
	fclose(f);
	return found;
}

static bool
has_flag(const char *flags, const char *f)
{
	char word[8];

	(void)snprintf(word, sizeof word, " %s ", f);
	return strstr(flags, word) != NULL;
}

static void
kept_out_of_dumps_and_swap(void **state)
{
	char *t = secret_dup("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl");
	char flags[512];
	struct rlimit ml;

	assert_non_null(t);
	assert_true(secret_is_protected(t));
	assert_int_equal(vmflags_of(t, flags, sizeof flags), 0);
	if (!has_flag(flags, "dd")) {
		/* Some kernels (gVisor) accept MADV_DONTDUMP but do not report it. */
		secret_free(t);
		skip();
	}
#if !UNDER_ASAN
	if (getrlimit(RLIMIT_MEMLOCK, &ml) == 0 && ml.rlim_cur >= 64 * 1024)
		assert_true(has_flag(flags, "lo"));
#else
	(void)ml;
#endif
	secret_free(t);
}

static void
wiped_and_reused(void **state)
{
	char *a = secret_dup("first-secret-value"), *b, *h = strdup("heap");
	char *big = secret_alloc(300 * 1024);	/* larger than the pool: the heap */

	assert_non_null(a);
	assert_non_null(big);
	assert_false(secret_is_protected(big));
	secret_release(big, 300 * 1024);
	secret_free(a);
	/* The same page again, wiped: nothing of the first secret left in it. */
	b = secret_alloc(4096);
	assert_ptr_equal(a, b);
	for (size_t i = 0; i < 4096; i++)
		assert_int_equal(((unsigned char *)b)[i], 0);
	secret_release(b, 4096);
	secret_free(h);		/* an ordinary heap string: wiped and freed */
	secret_free(NULL);
}

static void
pool_full_falls_back(void **state)
{
	char *p[80];

	for (size_t i = 0; i < 80; i++)
		assert_non_null(p[i] = secret_dup("token"));
	assert_true(secret_is_protected(p[0]));
	assert_false(secret_is_protected(p[79]));	/* 64 pages: the rest on the heap */
	for (size_t i = 0; i < 80; i++)
		secret_free(p[i]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(kept_out_of_dumps_and_swap),
		cmocka_unit_test(wiped_and_reused),
		cmocka_unit_test(pool_full_falls_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
