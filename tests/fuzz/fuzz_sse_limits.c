/*
 * fuzz_sse_limits: fuzz_sse on streams of about SSE_MAX_EVENT bytes, built
 * from a short repeated pattern (see fuzz_sse.c), for the size limits.
 */
#define FUZZ_SSE_LIMITS 1
#include "fuzz_sse.c"
