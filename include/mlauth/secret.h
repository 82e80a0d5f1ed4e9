/* secret.h: strings that hold tokens, wiped before their memory is freed. */
#ifndef MLAUTH_SECRET_H
#define MLAUTH_SECRET_H

#include <stddef.h>

/* A copy of s (NULL when s is NULL or memory runs out); free with secret_free. */
char *secret_dup(const char *s);
/* Wipe the string's bytes, then free it.  NULL is fine. */
void secret_free(char *s);
/* Wipe n bytes of a buffer the compiler must not optimise away. */
void secret_wipe(void *p, size_t n);
/* Make the process non-dumpable and disable core files: called before secrets are held. */
void secret_protect_process(void);

#endif
