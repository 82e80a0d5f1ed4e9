/*
 * secret.c: memory for tokens, and a process that does not give them away.
 *
 * Strings from secret_dup and secret_alloc live in one mapping of their own,
 * not the ordinary heap: marked MADV_DONTDUMP (no core file or crash report
 * holds them, even where a dump is taken despite PR_SET_DUMPABLE, e.g. by
 * gcore as root) and, where RLIMIT_MEMLOCK allows, locked so they are never
 * written to swap.  Each allocation takes whole pages (tokens are a few kB,
 * a run holds a handful); a request the pool cannot serve falls back to
 * malloc, still wiped on free.  The pool is mapped on first use, so a run
 * without secrets pays nothing, and only the pages used become resident.
 */
#define _DEFAULT_SOURCE	/* explicit_bzero, MADV_DONTDUMP */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "mlauth/secret.h"

#define SECRET_PAGE	4096u
#define SECRET_PAGES	64u	/* 256 KiB of address space, resident only as used */

static struct {
	unsigned char *base;		/* NULL until first use; MAP_FAILED: unavailable */
	uint64_t used;			/* a bit per page */
	unsigned char len[SECRET_PAGES];	/* pages of the allocation starting here */
	bool no_lock;			/* mlock failed once: the limit is reached */
} pool;
/* The authorized-request layer may refresh from another thread. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

static bool
secret_pool_open(void)
{
	void *p;

	if (pool.base == (unsigned char *)MAP_FAILED)
		return false;
	if (pool.base != NULL)
		return true;
	p = mmap(NULL, (size_t)SECRET_PAGES * SECRET_PAGE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pool.base = p;
	if (p == MAP_FAILED)
		return false;
	/* Best effort: a kernel without MADV_DONTDUMP still gets PR_SET_DUMPABLE 0. */
	(void)madvise(p, (size_t)SECRET_PAGES * SECRET_PAGE, MADV_DONTDUMP);
	return true;
}

static bool
secret_in_pool(const void *p)
{
	const unsigned char *c = p;

	return pool.base != NULL && pool.base != (unsigned char *)MAP_FAILED &&
	    c >= pool.base && c < pool.base + (size_t)SECRET_PAGES * SECRET_PAGE;
}

/* n pages in a row from the pool, or NULL. */
static void *
secret_pool_take(size_t n)
{
	uint64_t mask;

	if (n == 0 || n > SECRET_PAGES || !secret_pool_open())
		return NULL;
	mask = n == 64 ? UINT64_MAX : (((uint64_t)1 << n) - 1);
	for (size_t i = 0; i + n <= SECRET_PAGES; i++) {
		unsigned char *p;

		if ((pool.used & (mask << i)) != 0)
			continue;
		pool.used |= mask << i;
		pool.len[i] = (unsigned char)n;
		p = pool.base + i * SECRET_PAGE;
		if (!pool.no_lock && mlock(p, n * SECRET_PAGE) != 0)
			pool.no_lock = true;	/* RLIMIT_MEMLOCK: unswapped where it allows */
		return p;
	}
	return NULL;
}

void *
secret_alloc(size_t n)
{
	void *p = NULL;

	if (n <= (size_t)SECRET_PAGES * SECRET_PAGE) {
		(void)pthread_mutex_lock(&pool_lock);
		p = secret_pool_take((n + SECRET_PAGE - 1) / SECRET_PAGE);
		(void)pthread_mutex_unlock(&pool_lock);
	}
	return p != NULL ? p : malloc(n > 0 ? n : 1);
}

char *
secret_dup(const char *s)
{
	size_t n;
	char *d;

	if (s == NULL)
		return NULL;
	n = strlen(s) + 1;
	if ((d = secret_alloc(n)) != NULL)
		memcpy(d, s, n);
	return d;
}

void
secret_wipe(void *p, size_t n)
{
	if (p != NULL)
		explicit_bzero(p, n);
}

void
secret_release(void *p, size_t n)
{
	size_t i, pages;

	if (p == NULL)
		return;
	if (!secret_in_pool(p)) {
		explicit_bzero(p, n);
		free(p);
		return;
	}
	i = (size_t)((unsigned char *)p - pool.base) / SECRET_PAGE;
	(void)pthread_mutex_lock(&pool_lock);
	pages = pool.len[i];
	/* The whole allocation, whatever n says: pool pages are wiped before reuse. */
	explicit_bzero(pool.base + i * SECRET_PAGE, pages * SECRET_PAGE);
	pool.used &= ~((pages == 64 ? UINT64_MAX : (((uint64_t)1 << pages) - 1)) << i);
	pool.len[i] = 0;
	(void)pthread_mutex_unlock(&pool_lock);
}

void
secret_free(char *s)
{
	if (s != NULL)
		secret_release(s, strlen(s));
}

void
secret_protect_process(void)
{
	struct rlimit core;

	/*
	 * Best effort: a core file or a ptrace by another process of the same
	 * user would expose the tokens.  Failure leaves us no worse off.  Only
	 * the soft limit: children of `mlauth exec` may raise it again.
	 */
	if (getrlimit(RLIMIT_CORE, &core) == 0) {
		core.rlim_cur = 0;
		(void)setrlimit(RLIMIT_CORE, &core);
	}
	secret_undumpable();
}

void
secret_undumpable(void)
{
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

bool
secret_is_protected(const void *p)
{
	return secret_in_pool(p);
}
