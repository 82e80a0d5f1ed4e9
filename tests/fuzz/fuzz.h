/*
 * fuzz.h: what the libFuzzer targets in tests/fuzz/ share.
 *
 * Each target feeds its input to one parser through the public API of its
 * module, frees everything (LeakSanitizer runs after every input) and checks
 * the promises the header makes about the result: a broken promise is a
 * crash (abort), so the fuzzer reports it like any memory error.
 */
#ifndef MLAUTH_FUZZ_H
#define MLAUTH_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Fail loudly: the message names the broken promise, then abort() makes it a crash. */
#define FUZZ_CHECK(cond, ...) do {						\
	if (!(cond)) {								\
		fprintf(stderr, "fuzz check failed (%s:%d): %s: ", __FILE__,	\
		    __LINE__, #cond);						\
		fprintf(stderr, __VA_ARGS__);					\
		fputc('\n', stderr);						\
		abort();							\
	}									\
} while (0)

/*
 * An HTTP status from the input: three ASCII digits at its start ("401{...}")
 * are the status and are consumed; otherwise the status is 200 and the whole
 * input is the body.  Seeds stay readable, and every status 0..999 is reachable.
 */
static inline long
fuzz_status(const uint8_t **data, size_t *size)
{
	const uint8_t *d = *data;

	if (*size >= 3 && d[0] >= '0' && d[0] <= '9' && d[1] >= '0' && d[1] <= '9' &&
	    d[2] >= '0' && d[2] <= '9') {
		*data += 3;
		*size -= 3;
		return (d[0] - '0') * 100L + (d[1] - '0') * 10L + (d[2] - '0');
	}
	return 200;
}

/* A NUL-terminated copy of the input (for APIs that take C strings); free() it. */
static inline char *
fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* An exact-size heap copy: ASan then catches a parser reading past len. */
static inline char *
fuzz_copy(const uint8_t *data, size_t size)
{
	char *s = malloc(size > 0 ? size : 1);

	if (s == NULL)
		abort();
	if (size > 0)
		memcpy(s, data, size);
	return s;
}

static inline bool
fuzz_tokenish(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '_' || c == '-' || c == '+' || c == '=';
}

/*
 * The longest run of token characters in s: messages must redact runs of 40
 * or more (a server or provider echoing a token must not get it shown).
 */
static inline size_t
fuzz_longest_token_run(const char *s)
{
	size_t best = 0, run = 0;

	for (; *s != '\0'; s++) {
		run = fuzz_tokenish((unsigned char)*s) ? run + 1 : 0;
		if (run > best)
			best = run;
	}
	return best;
}

/* Whether every byte of s is in [lo, 0x7e] (0x20: printable ASCII on one line). */
static inline bool
fuzz_ascii(const char *s, unsigned char lo)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < lo || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/* Whether s holds no control character (one line; UTF-8 of our own "…" is fine). */
static inline bool
fuzz_one_line(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return false;
	return true;
}

/* Whether an ml_err message is NUL-terminated inside its buffer. */
#define FUZZ_MSG_TERMINATED(e)	(memchr((e)->msg, '\0', sizeof (e)->msg) != NULL)

/* A small deterministic generator (xorshift64*), seeded from the input itself. */
static inline uint64_t
fuzz_hash(const uint8_t *data, size_t size)
{
	uint64_t h = 0xcbf29ce484222325ULL;	/* FNV-1a */

	for (size_t i = 0; i < size; i++) {
		h ^= data[i];
		h *= 0x100000001b3ULL;
	}
	return h != 0 ? h : 1;
}

static inline uint64_t
fuzz_next(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

#endif
