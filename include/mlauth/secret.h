/* secret.h: strings that hold tokens, wiped before their memory is freed. */
#ifndef MLAUTH_SECRET_H
#define MLAUTH_SECRET_H

#include <stdbool.h>
#include <stddef.h>

/*
 * A copy of s (NULL when s is NULL or memory runs out) in memory kept out of
 * core dumps and, where RLIMIT_MEMLOCK allows, out of swap; free with
 * secret_free.  secret_alloc gives n such bytes (uninitialised); free with
 * secret_release (or secret_free once it holds a string).  Both fall back
 * to malloc when that memory is used up.
 */
char *secret_dup(const char *s);
void *secret_alloc(size_t n);
/* Wipe the string's bytes, then free it: from secret_dup, secret_alloc or malloc.  NULL is fine. */
void secret_free(char *s);
/* Wipe n bytes of p (all of it when from secret_alloc), then free it.  NULL is fine. */
void secret_release(void *p, size_t n);
/* Whether p is in the protected memory (tests). */
bool secret_is_protected(const void *p);
/* Wipe n bytes of a buffer the compiler must not optimise away. */
void secret_wipe(void *p, size_t n);
/* Make the process non-dumpable and disable core files: called before secrets are held. */
void secret_protect_process(void);
/*
 * Non-dumpable alone (PR_SET_DUMPABLE 0): no core file, no ptrace or
 * /proc/PID/mem by the same user.  The kernel writes no core for a
 * non-dumpable process whatever its core limit (fs/coredump.c), so the front,
 * which execs nothing while it holds a token, needs no more.
 */
void secret_undumpable(void);

#endif
