/*
 * http.c: the one libcurl wrapper.  Every request the program makes goes
 * through http_perform, so the safety rules live in one place: http and https
 * only, no redirects, TLS always verified, bounded time and size, secrets
 * redacted from the -vv trace, errors that name the host and nothing more.
 */
#define _GNU_SOURCE	/* RTLD_DEEPBIND */
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mlauth/egress.h"
#include "mlauth/http.h"
#include "mlauth/sanitize.h"
#include "mlauth/secret.h"

#ifndef MLAUTH_VERSION
#define MLAUTH_VERSION	"unknown"
#endif

#define HTTP_DEFAULT_TIMEOUT	30L
#define HTTP_CONNECT_TIMEOUT	10L
#define HTTP_STALL_TIME		15L		/* seconds without a byte, once the answer began */
#define HTTP_MAX_HEADERS	(256 * 1024)	/* all header lines of one exchange */
#define HTTP_FIELD_MAX		256		/* longest header value kept */
#define HTTP_RETRY_AFTER_MAX	86400L
#define HTTP_TRACE_MAX		(64 * 1024)	/* body bytes traced per direction */
#define HTTP_ORIGIN_MAX		256

/* The soname of libcurl's ABI, unchanged since 2006. */
#ifndef HTTP_LIBCURL
#define HTTP_LIBCURL	"libcurl.so.4"
#endif

volatile sig_atomic_t http_interrupted;

/*
 * libcurl is opened when the first request needs it, not linked: with its
 * TLS, SSH, LDAP and Kerberos libraries it costs ~6 ms to load, more than
 * all the rest of a keyring lookup, and most runs make no request at all.
 * The functions used are listed once, typed from curl.h's own prototypes.
 */
#define HTTP_CURL_FUNCS(X)						\
	X(global_init) X(global_cleanup) X(easy_init) X(easy_cleanup)	\
	X(easy_setopt) X(easy_perform) X(easy_getinfo) X(easy_strerror)	\
	X(easy_escape) X(free) X(slist_append) X(slist_free_all) X(getdate)	\
	X(share_init) X(share_setopt) X(share_cleanup)

static struct {
	void *lib;		/* never closed: libcurl's TLS library registers atexit handlers */
#define X(f) __typeof__(curl_##f) *f;
	HTTP_CURL_FUNCS(X)
#undef X
} lc;

static bool http_initialised;

/* Connections (and DNS answers, TLS sessions) kept for the next request of any thread. */
struct http_share {
	CURLSH *sh;
	pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

/*
 * RTLD_DEEPBIND: libcurl and the 30 libraries it brings look their symbols up
 * among themselves first, not in the helper, GLib, libqrencode and the rest of
 * the global scope before that.  callgrind: 3 M instructions fewer per load,
 * about what `send` cost beyond curl sending the same request.  Not under
 * AddressSanitizer, whose runtime refuses it (it must interpose malloc).
 */
#if defined(__SANITIZE_ADDRESS__)
#define HTTP_DLOPEN_FLAGS (RTLD_LAZY | RTLD_LOCAL)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HTTP_DLOPEN_FLAGS (RTLD_LAZY | RTLD_LOCAL)
#endif
#endif
#ifndef HTTP_DLOPEN_FLAGS
#define HTTP_DLOPEN_FLAGS (RTLD_LAZY | RTLD_LOCAL | RTLD_DEEPBIND)
#endif

static int
http_load_curl(struct ml_err *err)
{
	void *h, *sym;

	if (lc.lib != NULL)
		return ML_OK;
	if ((h = dlopen(HTTP_LIBCURL, HTTP_DLOPEN_FLAGS)) == NULL)
		return err_set(err, ML_EFAIL, "cannot load libcurl (%s): %s; install it "
		    "(Debian: apt install libcurl4)", HTTP_LIBCURL, dlerror());
	/* lc.lib is set last: a table with a gap must not pass for a loaded one. */
#define X(f)								\
	if ((sym = dlsym(h, "curl_" #f)) == NULL)			\
		return err_set(err, ML_EFAIL, "%s has no curl_%s: too old a libcurl", \
		    HTTP_LIBCURL, #f);					\
	lc.f = (__typeof__(lc.f))sym;
	HTTP_CURL_FUNCS(X)
#undef X
	lc.lib = h;
	return ML_OK;
}

/*
 * The secrets a request sends (its bearer token, its form's secret fields),
 * hidden from the trace wherever they appear: a provider may echo a refresh
 * token back inside an error_description, under a key no list can foresee.
 * Form values are matched as sent (URL-encoded), which is how tokens and
 * device codes, made of URL-safe characters, also come back.
 */
#define HTTP_ECHO_MAX	8
#define HTTP_ECHO_MIN	8	/* shorter values would hide ordinary words */
struct http_echo {
	const char *v[HTTP_ECHO_MAX];
	size_t len[HTTP_ECHO_MAX];
	size_t n;
};

/* A body being traced: buffered whole so a secret split over chunks is still redacted. */
struct http_trace {
	char *buf;
	size_t len, cap, dropped;
	const char *prefix;
	const struct http_echo *echo;
};

struct http_xfer {
	bool advice;		/* unreachable: say which peer and what to check */
	const struct http_opts *opts;
	const char *origin;
	struct timespec started;
	bool slow;		/* on_slow was told the request is slow */
	CURL *curl;
	const struct http_request *req;
	struct http_response *resp;
	size_t cap;			/* bytes allocated for resp->body */
	size_t header_bytes;
	bool decided;			/* stream or collect chosen for this answer */
	bool stream;
	bool answer_started;		/* a status line arrived */
	bool too_large, headers_too_large, oom, stalled;
	int chunk_rc;			/* the reader's non-zero verdict */
	long stall;			/* seconds */
	curl_off_t last_dl;
	struct timespec last_progress;
	struct http_trace out, in;
	struct http_echo echo;
};

static const char *const http_secret_keys[] = {
	"access_token", "refresh_token", "id_token", "device_code", "code", "token",
	"client_secret", "password", NULL
};

static const char *const http_secret_headers[] = {
	"authorization", "proxy-authorization", "cookie", "set-cookie", NULL
};

int
http_global_init(struct ml_err *err)
{
	CURLcode cc;
	int rc;

	if (http_initialised)
		return ML_OK;
	if ((rc = http_load_curl(err)) != ML_OK)
		return rc;
	cc = lc.global_init(CURL_GLOBAL_DEFAULT);
	if (cc != CURLE_OK)
		return err_set(err, ML_EFAIL, "cannot initialise libcurl: %s",
		    lc.easy_strerror(cc));
	http_initialised = true;
	return ML_OK;
}

void
http_global_cleanup(void)
{
	if (!http_initialised)
		return;
	lc.global_cleanup();
	http_initialised = false;
}

static void
http_share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
	struct http_share *s = arg;

	(void)h;
	(void)access;
	(void)pthread_mutex_lock(&s->locks[data]);
}

static void
http_share_unlock(CURL *h, curl_lock_data data, void *arg)
{
	struct http_share *s = arg;

	(void)h;
	(void)pthread_mutex_unlock(&s->locks[data]);
}

int
http_share_new(struct http_share **out, struct ml_err *err)
{
	struct http_share *s;
	CURLSHcode sc;
	int rc;

	*out = NULL;
	if ((rc = http_global_init(err)) != ML_OK)
		return rc;
	if ((s = calloc(1, sizeof *s)) == NULL || (s->sh = lc.share_init()) == NULL) {
		free(s);
		return err_set(err, ML_EFAIL, "out of memory");
	}
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		(void)pthread_mutex_init(&s->locks[i], NULL);
	sc = lc.share_setopt(s->sh, CURLSHOPT_LOCKFUNC, http_share_lock);
	if (sc == CURLSHE_OK)
		sc = lc.share_setopt(s->sh, CURLSHOPT_UNLOCKFUNC, http_share_unlock);
	if (sc == CURLSHE_OK)
		sc = lc.share_setopt(s->sh, CURLSHOPT_USERDATA, s);
	if (sc == CURLSHE_OK)
		sc = lc.share_setopt(s->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	if (sc == CURLSHE_OK)
		sc = lc.share_setopt(s->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	if (sc == CURLSHE_OK)
		sc = lc.share_setopt(s->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	if (sc != CURLSHE_OK) {
		http_share_free(s);
		return err_set(err, ML_EFAIL, "libcurl cannot share connections between "
		    "requests (too old a libcurl?)");
	}
	*out = s;
	return ML_OK;
}

void
http_share_free(struct http_share *s)
{
	if (s == NULL)
		return;
	if (s->sh != NULL)
		(void)lc.share_cleanup(s->sh);
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		(void)pthread_mutex_destroy(&s->locks[i]);
	free(s);
}

static bool
http_printable(unsigned char c)
{
	return c >= 0x20 && c < 0x7f;
}

void
http_url_origin(const char *url, char *out, size_t outlen)
{
	const char *p, *auth, *at, *end;
	size_t n = 0, sl;

	if (out == NULL || outlen == 0)
		return;
	out[0] = '\0';
	if (url == NULL || (p = strstr(url, "://")) == NULL) {
		(void)snprintf(out, outlen, "(invalid URL)");
		return;
	}
	sl = (size_t)(p - url);
	auth = p + 3;
	end = auth + strcspn(auth, "/?#");
	/* The last '@' ends the user info: "user:p@ss@host" hides nothing then. */
	for (at = end; at > auth; at--)
		if (at[-1] == '@')
			break;
	if (at > auth)
		auth = at;
	for (const char *s = url; s < url + sl && n + 1 < outlen; s++)
		out[n++] = http_printable((unsigned char)*s) ? *s : '?';
	for (const char *s = "://"; *s != '\0' && n + 1 < outlen; s++)
		out[n++] = *s;
	for (const char *s = auth; s < end && n + 1 < outlen; s++)
		out[n++] = http_printable((unsigned char)*s) ? *s : '?';
	out[n] = '\0';
}

int
http_form_add(char **form, const char *key, const char *value, struct ml_err *err)
{
	char *k = NULL, *v = NULL, *next = NULL;
	size_t ol, kl, vl;
	int rc;

	if (form == NULL || key == NULL || value == NULL || key[0] == '\0') {
		rc = err_set(err, ML_EFAIL, "form field %s has no value",
		    key != NULL ? key : "(null)");
		goto out;
	}
	if ((rc = http_global_init(err)) != ML_OK)
		goto out;
	k = lc.easy_escape(NULL, key, 0);
	v = lc.easy_escape(NULL, value, 0);
	if (k == NULL || v == NULL) {
		rc = err_set(err, ML_EFAIL, "out of memory");
		goto out;
	}
	ol = *form != NULL ? strlen(*form) : 0;
	kl = strlen(k);
	vl = strlen(v);
	next = malloc(ol + 1 + kl + 1 + vl + 1);
	if (next == NULL) {
		rc = err_set(err, ML_EFAIL, "out of memory");
		goto out;
	}
	if (ol > 0) {
		memcpy(next, *form, ol);
		next[ol++] = '&';
	}
	memcpy(next + ol, k, kl);
	next[ol + kl] = '=';
	memcpy(next + ol + kl + 1, v, vl + 1);
	secret_free(*form);
	*form = next;
	rc = ML_OK;
out:
	/* curl's copy of the value may be a token: wipe it before curl_free. */
	if (v != NULL) {
		secret_wipe(v, strlen(v));
		lc.free(v);
	}
	if (k != NULL)
		lc.free(k);
	return rc;
}

static void
http_response_reset_headers(struct http_response *r)
{
	free(r->content_type);
	free(r->request_id);
	r->content_type = NULL;
	r->request_id = NULL;
	r->retry_after = -1;
	r->date = 0;
}

void
http_response_free(struct http_response *resp)
{
	if (resp == NULL)
		return;
	if (resp->body != NULL) {
		/* len, not strlen: a binary body may hold a NUL before a token. */
		secret_wipe(resp->body, resp->len);
		free(resp->body);
	}
	http_response_reset_headers(resp);
	memset(resp, 0, sizeof *resp);
	resp->retry_after = -1;
}

/* ---- tracing (-vv) ---- */

/*
 * The trace's text by the one rule for shown text, UTF-8 kept readable.  The
 * body is written a byte at a time where it is scrubbed, so a character
 * split between calls is held here until its line ends.
 */
static struct sanitize_stream http_trace_san;

static void
http_trace_text(const char *s, size_t n)
{
	char out[256 + SANITIZE_HELD];

	for (size_t i = 0; i < n; i += 256)
		fwrite(out, 1, sanitize_stream(&http_trace_san, s + i, n - i < 256 ? n - i : 256,
		    out), stderr);
}

static void
http_trace_eol(void)
{
	char out[SANITIZE_HELD];

	fwrite(out, 1, sanitize_stream_end(&http_trace_san, out), stderr);
	putc('\n', stderr);
}

static void
http_trace_write(const char *s, size_t n, const char *prefix, bool *bol)
{
	size_t i = 0, len;

	while (i < n) {
		if (s[i] == '\r') {	/* CRLF ends a header line: the LF alone shows it */
			i++;
			continue;
		}
		if (*bol) {
			fputs(prefix, stderr);
			*bol = false;
		}
		if (s[i] == '\n') {
			http_trace_eol();
			*bol = true;
			i++;
			continue;
		}
		for (len = 0; i + len < n && s[i + len] != '\n' && s[i + len] != '\r'; len++)
			;
		http_trace_text(s + i, len);
		i += len;
	}
}

static bool
http_key_at(const char *s, size_t avail, const char *key, size_t *klen)
{
	size_t kl = strlen(key);

	if (avail < kl || memcmp(s, key, kl) != 0)
		return false;
	*klen = kl;
	return true;
}

static bool
http_is_secret_key(const char *k, size_t kl)
{
	for (size_t i = 0; http_secret_keys[i] != NULL; i++)
		if (strlen(http_secret_keys[i]) == kl && memcmp(http_secret_keys[i], k, kl) == 0)
			return true;
	return false;
}

static void
http_echo_add(struct http_echo *e, const char *v, size_t len)
{
	if (v != NULL && len >= HTTP_ECHO_MIN && e->n < HTTP_ECHO_MAX) {
		e->v[e->n] = v;
		e->len[e->n++] = len;
	}
}

/* The request's secrets, borrowed from req: valid until http_perform returns. */
static void
http_echo_collect(const struct http_request *req, struct http_echo *e)
{
	const char *f, *end, *amp, *eq;

	memset(e, 0, sizeof *e);
	if (req->bearer != NULL)
		http_echo_add(e, req->bearer, strlen(req->bearer));
	if (req->body == NULL || req->content_type == NULL ||
	    strcmp(req->content_type, "application/x-www-form-urlencoded") != 0)
		return;
	for (f = req->body, end = req->body + req->body_len; f < end; f = amp + 1) {
		if ((amp = memchr(f, '&', (size_t)(end - f))) == NULL)
			amp = end;
		eq = memchr(f, '=', (size_t)(amp - f));
		if (eq != NULL && http_is_secret_key(f, (size_t)(eq - f)))
			http_echo_add(e, eq + 1, (size_t)(amp - eq - 1));
	}
}

/* The length of the request secret that b starts with, or 0. */
static size_t
http_echo_at(const struct http_echo *e, const char *b, size_t avail)
{
	for (size_t k = 0; e != NULL && k < e->n; k++)
		if (avail >= e->len[k] && memcmp(b, e->v[k], e->len[k]) == 0)
			return e->len[k];
	return 0;
}

/* Write s with every echo of a request secret replaced. */
static void
http_trace_scrubbed(const char *s, size_t n, const char *prefix, bool *bol,
    const struct http_echo *e)
{
	size_t i = 0, start = 0, m;

	while (i < n) {
		if ((m = http_echo_at(e, s + i, n - i)) == 0) {
			i++;
			continue;
		}
		http_trace_write(s + start, i - start, prefix, bol);
		http_trace_write("[redacted]", 10, prefix, bol);
		i += m;
		start = i;
	}
	http_trace_write(s + start, n - start, prefix, bol);
}

/*
 * Write body with the values of http_secret_keys replaced, for JSON
 * ("key": "value") and form (key=value&) bodies alike.  A value cut off by
 * the end of the buffer is redacted to the end.
 */
static void
http_trace_redacted(const char *b, size_t n, const char *prefix, const struct http_echo *e)
{
	bool bol = true;
	size_t i = 0, m;

	while (i < n) {
		bool matched = false;

		if ((m = http_echo_at(e, b + i, n - i)) > 0) {
			http_trace_write("[redacted]", 10, prefix, &bol);
			i += m;
			continue;
		}

		for (size_t k = 0; http_secret_keys[k] != NULL && !matched; k++) {
			const char *key = http_secret_keys[k];
			size_t kl, j;

			/* JSON: "key" ws : ws "value" */
			if (b[i] == '"' && http_key_at(b + i + 1, n - i - 1, key, &kl) &&
			    i + 1 + kl < n && b[i + 1 + kl] == '"') {
				j = i + kl + 2;
				while (j < n && (b[j] == ' ' || b[j] == '\t' || b[j] == '\n' || b[j] == '\r'))
					j++;
				if (j >= n || b[j] != ':')
					continue;
				j++;
				while (j < n && (b[j] == ' ' || b[j] == '\t' || b[j] == '\n' || b[j] == '\r'))
					j++;
				if (j >= n || b[j] != '"')
					continue;
				http_trace_write(b + i, j + 1 - i, prefix, &bol);
				http_trace_write("[redacted]", 10, prefix, &bol);
				for (j++; j < n && b[j] != '"'; j++)
					if (b[j] == '\\')
						j++;
				i = j;	/* at the closing quote, or past the end */
				matched = true;
			} else if ((i == 0 || b[i - 1] == '&' || b[i - 1] == '\n') &&
			    http_key_at(b + i, n - i, key, &kl) && i + kl < n && b[i + kl] == '=') {
				/* form: key=value up to & or the end */
				http_trace_write(b + i, kl + 1, prefix, &bol);
				http_trace_write("[redacted]", 10, prefix, &bol);
				for (j = i + kl + 1; j < n && b[j] != '&' && b[j] != '\n'; j++)
					;
				i = j;
				matched = true;
			}
		}
		if (!matched && i < n) {
			http_trace_write(b + i, 1, prefix, &bol);
			i++;
		}
	}
	if (!bol)
		http_trace_eol();
}

static void
http_trace_flush(struct http_trace *t)
{
	if (t->len > 0)
		http_trace_redacted(t->buf, t->len, t->prefix, t->echo);
	if (t->dropped > 0)
		fprintf(stderr, "%s[%zu more bytes not shown]\n", t->prefix, t->dropped);
	if (t->buf != NULL)
		secret_wipe(t->buf, t->cap);
	t->len = 0;
	t->dropped = 0;
}

static void
http_trace_free(struct http_trace *t)
{
	if (t->buf != NULL) {
		secret_wipe(t->buf, t->cap);
		free(t->buf);
	}
	t->buf = NULL;
	t->len = t->cap = t->dropped = 0;
}

static void
http_trace_add(struct http_trace *t, const char *data, size_t size)
{
	size_t take;

	if (t->buf == NULL) {
		t->buf = malloc(HTTP_TRACE_MAX);
		if (t->buf == NULL) {
			t->dropped += size;	/* a trace is not worth failing for */
			return;
		}
		t->cap = HTTP_TRACE_MAX;
	}
	take = t->cap - t->len < size ? t->cap - t->len : size;
	memcpy(t->buf + t->len, data, take);
	t->len += take;
	t->dropped += size - take;
}

/* Header lines, one per line, with credentials' values hidden. */
static void
http_trace_headers(const char *data, size_t size, const char *prefix, const struct http_echo *e)
{
	const char *line = data, *end = data + size;
	bool bol = true;

	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		const char *le = nl != NULL ? nl : end;
		const char *colon = memchr(line, ':', (size_t)(le - line));
		size_t len = (size_t)(le - line);
		bool secret = false;

		if (len > 0 && line[len - 1] == '\r')
			len--;
		for (size_t k = 0; colon != NULL && http_secret_headers[k] != NULL; k++)
			if ((size_t)(colon - line) == strlen(http_secret_headers[k]) &&
			    strncasecmp(line, http_secret_headers[k], (size_t)(colon - line)) == 0)
				secret = true;
		if (len > 0) {
			if (secret) {
				http_trace_write(line, (size_t)(colon - line) + 1, prefix, &bol);
				http_trace_write(" [redacted]\n", 12, prefix, &bol);
			} else {
				http_trace_scrubbed(line, len, prefix, &bol, e);
				http_trace_write("\n", 1, prefix, &bol);
			}
		}
		line = le + 1;
	}
}

static int
http_debug_cb(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
	struct http_xfer *x = arg;
	bool bol = true;

	switch (type) {
	case CURLINFO_TEXT:
		http_trace_scrubbed(data, size, "* ", &bol, &x->echo);
		if (!bol)
			http_trace_eol();
		break;
	case CURLINFO_HEADER_OUT:
		http_trace_headers(data, size, "> ", &x->echo);
		break;
	case CURLINFO_HEADER_IN:
		http_trace_flush(&x->out);
		http_trace_headers(data, size, "< ", &x->echo);
		break;
	case CURLINFO_DATA_OUT:
		http_trace_add(&x->out, data, size);
		break;
	case CURLINFO_DATA_IN:
		http_trace_add(&x->in, data, size);
		break;
	default:
		break;	/* TLS records: noise */
	}
	return 0;
}

/* ---- callbacks ---- */

static void
http_now(struct timespec *ts)
{
	if (clock_gettime(CLOCK_MONOTONIC, ts) != 0) {
		ts->tv_sec = time(NULL);
		ts->tv_nsec = 0;
	}
}

/* Grow resp->body to hold need bytes and a NUL, wiping the old copy (it may hold tokens). */
static int
http_body_reserve(struct http_xfer *x, size_t need)
{
	struct http_response *r = x->resp;
	size_t ncap;
	char *nb;

	if (r->body != NULL && need < x->cap)
		return 0;
	ncap = x->cap > 0 ? x->cap : 16384;
	while (ncap <= need)
		ncap *= 2;	/* need <= HTTP_MAX_BODY: no overflow */
	nb = malloc(ncap);
	if (nb == NULL)
		return -1;
	nb[0] = '\0';
	if (r->body != NULL) {
		memcpy(nb, r->body, r->len + 1);
		secret_wipe(r->body, x->cap);
		free(r->body);
	}
	r->body = nb;
	x->cap = ncap;
	return 0;
}

/* Whether the Content-Type value ct names the media type want. */
static bool
http_type_is(const char *ct, const char *want)
{
	size_t n = strlen(want);

	if (ct == NULL || strncasecmp(ct, want, n) != 0)
		return false;
	return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t';
}

static size_t
http_write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct http_xfer *x = arg;
	struct http_response *r = x->resp;
	size_t n = size * nmemb;

	if (!x->decided) {
		long status = 0;

		if (lc.easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
			status = 0;
		x->stream = x->req->on_chunk != NULL && status >= 200 && status < 300 &&
		    (x->req->stream_type == NULL ||
		    http_type_is(r->content_type, x->req->stream_type));
		x->decided = true;
	}
	if (x->stream) {
		int rc;

		/* Printed as it arrives, yet a server that never ends must still be stopped. */
		if (n > (size_t)HTTP_MAX_STREAM - r->len) {
			x->too_large = true;
			return 0;
		}
		rc = x->req->on_chunk(ptr, n, x->req->chunk_arg);
		if (rc != 0) {
			x->chunk_rc = rc;
			return 0;
		}
		r->len += n;
		return n;
	}
	if (n > (size_t)HTTP_MAX_BODY - r->len) {
		x->too_large = true;
		return 0;
	}
	if (http_body_reserve(x, r->len + n) != 0) {
		x->oom = true;
		return 0;
	}
	memcpy(r->body + r->len, ptr, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

/* A header value, trimmed, at most HTTP_FIELD_MAX bytes, unprintables as '?'. */
static char *
http_field_dup(const char *v, size_t n)
{
	char *s;

	if (n > HTTP_FIELD_MAX)
		n = HTTP_FIELD_MAX;
	s = malloc(n + 1);
	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		s[i] = http_printable((unsigned char)v[i]) ? v[i] : '?';
	s[n] = '\0';
	return s;
}

/* Seconds from a Retry-After value: delta-seconds or an HTTP-date; -1 when unusable. */
static long
http_parse_retry_after(const char *v, size_t n)
{
	char tmp[128];
	long secs = 0;
	time_t t, now;

	if (n > 0 && strspn(v, "0123456789") >= n) {
		for (size_t i = 0; i < n; i++) {
			secs = secs * 10 + (v[i] - '0');
			if (secs > HTTP_RETRY_AFTER_MAX)
				return HTTP_RETRY_AFTER_MAX;
		}
		return secs;
	}
	if (n == 0 || n >= sizeof tmp)
		return -1;
	memcpy(tmp, v, n);
	tmp[n] = '\0';
	if (http_load_curl(NULL) != ML_OK)
		return -1;
	t = lc.getdate(tmp, NULL);
	if (t == -1)
		return -1;
	now = time(NULL);
	if (t <= now)
		return 0;
	return t - now > HTTP_RETRY_AFTER_MAX ? HTTP_RETRY_AFTER_MAX : (long)(t - now);
}

static time_t
http_parse_date(const char *v, size_t n)
{
	char tmp[128];
	time_t t;

	if (n == 0 || n >= sizeof tmp)
		return 0;
	memcpy(tmp, v, n);
	tmp[n] = '\0';
	if (http_load_curl(NULL) != ML_OK)
		return 0;
	t = lc.getdate(tmp, NULL);
	return t == -1 ? 0 : t;
}

static bool
http_name_is(const char *name, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

/* Hand one header line to the caller's on_header; false when it refused. */
static bool
http_header_pass(struct http_xfer *x, const char *name, size_t nl, const char *v, size_t vl)
{
	int rc;

	if (x->req->on_header == NULL)
		return true;
	if (name == NULL)
		while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
			vl--;
	if ((rc = x->req->on_header(name, nl, v, vl, x->req->header_arg)) == 0)
		return true;
	x->chunk_rc = rc;
	return false;
}

static size_t
http_header_cb(char *buf, size_t size, size_t nitems, void *arg)
{
	struct http_xfer *x = arg;
	struct http_response *r = x->resp;
	size_t n = size * nitems, nl, vl;
	const char *colon, *v;

	x->header_bytes += n;
	if (x->header_bytes > HTTP_MAX_HEADERS) {
		x->headers_too_large = true;
		return 0;
	}
	http_now(&x->last_progress);
	if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
		/* A new answer (after a 1xx or a proxy's CONNECT): forget the last one's. */
		http_response_reset_headers(r);
		x->decided = false;
		x->answer_started = true;
		return http_header_pass(x, NULL, 0, buf, n) ? n : 0;
	}
	colon = memchr(buf, ':', n);
	if (colon == NULL)
		return n;
	nl = (size_t)(colon - buf);
	v = colon + 1;
	vl = n - nl - 1;
	while (vl > 0 && (*v == ' ' || *v == '\t'))
		v++, vl--;
	while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ' ||
	    v[vl - 1] == '\t'))
		vl--;

	if (http_name_is(buf, nl, "content-type")) {
		free(r->content_type);
		if ((r->content_type = http_field_dup(v, vl)) == NULL)
			goto oom;
	} else if ((http_name_is(buf, nl, "request-id") ||
	    http_name_is(buf, nl, "x-request-id")) && r->request_id == NULL) {
		if ((r->request_id = http_field_dup(v, vl)) == NULL)
			goto oom;
	} else if (http_name_is(buf, nl, "retry-after")) {
		r->retry_after = http_parse_retry_after(v, vl);
	} else if (http_name_is(buf, nl, "date")) {
		r->date = http_parse_date(v, vl);
	}
	return http_header_pass(x, buf, nl, v, vl) ? n : 0;
oom:
	x->oom = true;
	return 0;
}

static long
http_ms_between(const struct timespec *a, const struct timespec *b)
{
	return (long)(b->tv_sec - a->tv_sec) * 1000L + (b->tv_nsec - a->tv_nsec) / 1000000L;
}

/*
 * Called about once a second even while idle: the place to notice Ctrl-C and
 * a server that started answering, then went silent.  Waiting for the first
 * byte is left to the total timeout: a model may think for a minute before
 * a non-streamed answer begins.
 */
static int
http_xferinfo_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
    curl_off_t ulnow)
{
	struct http_xfer *x = arg;
	struct timespec now;

	if (http_interrupted)
		return 1;
	http_now(&now);
	if (!x->slow && x->opts->on_slow != NULL &&
	    http_ms_between(&x->started, &now) >= HTTP_SLOW_MS) {
		x->slow = true;
		x->opts->on_slow(x->opts->slow_arg, x->req->peer, x->origin, false);
	}
	if (dlnow != x->last_dl || !x->answer_started) {
		x->last_dl = dlnow;
		x->last_progress = now;
		return 0;
	}
	/* In milliseconds: whole seconds would cut the wait short by up to one. */
	if (http_ms_between(&x->last_progress, &now) >= x->stall * 1000L) {
		x->stalled = true;
		return 1;
	}
	return 0;
}

/* ---- the request ---- */

static bool
http_one_line(const char *s)
{
	return s == NULL || strpbrk(s, "\r\n") == NULL;
}

/*
 * The request's header list in *list (the caller wipes and frees it: the
 * Authorization line is a secret).  Line breaks are refused: a value must not
 * smuggle in a header of its own.
 */
static int
http_build_headers(const struct http_request *req, struct curl_slist **list,
    struct ml_err *err)
{
	struct curl_slist *l = NULL, *t;
	char *line = NULL;
	size_t n;
	int rc;

	*list = NULL;
	if (!http_one_line(req->bearer) || !http_one_line(req->content_type)) {
		rc = err_set(err, ML_EFAIL, "refusing a header value with a line break");
		goto out;
	}
	if (req->bearer != NULL) {
		n = strlen("Authorization: Bearer ") + strlen(req->bearer) + 1;
		if ((line = malloc(n)) == NULL)
			goto oom;
		(void)snprintf(line, n, "Authorization: Bearer %s", req->bearer);
		if ((t = lc.slist_append(l, line)) == NULL)
			goto oom;
		l = t;
	}
	if (req->content_type != NULL) {
		secret_free(line);
		n = strlen("Content-Type: ") + strlen(req->content_type) + 1;
		if ((line = malloc(n)) == NULL)
			goto oom;
		(void)snprintf(line, n, "Content-Type: %s", req->content_type);
		if ((t = lc.slist_append(l, line)) == NULL)
			goto oom;
		l = t;
	}
	/* No "Expect: 100-continue" round trip before a larger POST body. */
	if ((t = lc.slist_append(l, "Expect:")) == NULL)
		goto oom;
	l = t;
	for (size_t i = 0; req->headers != NULL && req->headers[i] != NULL; i++) {
		if (!http_one_line(req->headers[i])) {
			rc = err_set(err, ML_EFAIL, "refusing a header value with a line break");
			goto out;
		}
		if ((t = lc.slist_append(l, req->headers[i])) == NULL)
			goto oom;
		l = t;
	}
	*list = l;
	l = NULL;
	rc = ML_OK;
	goto out;
oom:
	rc = err_set(err, ML_EFAIL, "out of memory");
out:
	secret_free(line);
	for (t = l; t != NULL; t = t->next)
		secret_wipe(t->data, strlen(t->data));
	lc.slist_free_all(l);
	return rc;
}

static const char *
http_env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

/*
 * The message for a failed transfer: the origin and curl's reason, never the
 * URL; for a peer that cannot be reached, which peer it is and what to check.
 */
static int
http_curl_error(CURLcode cc, const char *origin, const struct http_request *req,
    bool advice, const char *errbuf, struct ml_err *err)
{
	char why[CURL_ERROR_SIZE];
	size_t n = 0;

	for (const char *s = errbuf[0] != '\0' ? errbuf : lc.easy_strerror(cc);
	    *s != '\0' && n + 1 < sizeof why; s++)
		why[n++] = http_printable((unsigned char)*s) ? *s : '?';
	while (n > 0 && why[n - 1] == ' ')
		n--;
	why[n] = '\0';

	switch (cc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		return err_set(err, ML_ENET,
		    "TLS check of %s failed: %s (behind a corporate CA? set ca_file)", origin, why);
	case CURLE_SSL_CACERT_BADFILE:
		return err_set(err, ML_EUSAGE, "cannot use the CA certificates for %s: %s",
		    origin, why);
	case CURLE_COULDNT_RESOLVE_PROXY:
		return err_set(err, ML_ENET, "cannot reach %s through the proxy: %s", origin, why);
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return err_set(err, ML_EUSAGE, "cannot use the URL of %s: %s", origin, why);
	default:
		if (!advice || req->peer == NULL || req->peer_check == NULL)
			return err_set(err, ML_ENET, "cannot reach %s: %s", origin, why);
		return err_set(err, ML_ENET, "cannot reach %s: %s; is %s up there, and %s "
		    "right? (mlauth doctor checks the network, proxy and TLS)", origin, why,
		    req->peer, req->peer_check);
	}
}

/* Plain http: the proxy egress.c allows, decided here rather than left to libcurl. */
static int
http_plain_proxy(const struct http_request *req, const char **proxy, struct ml_err *err)
{
	struct http_echo e;

	*proxy = NULL;
	if (strncmp(req->url, "http://", 7) != 0)
		return ML_OK;
	http_echo_collect(req, &e);
	return egress_http_check(req->url, e.n > 0, proxy, err);
}

#define HTTP_SETOPT(h, opt, val) do {					\
	if (cc == CURLE_OK)						\
		cc = lc.easy_setopt((h), (opt), (val));		\
} while (0)

/* A method name as RFC 9110 spells the usual ones: upper-case letters, short. */
static bool
http_method_ok(const char *m)
{
	size_t n = strspn(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZ");

	return n > 0 && n <= 16 && m[n] == '\0';
}

/* The safety rules every transfer gets: protocols, no redirects, TLS, time, callbacks. */
static CURLcode
http_setup_handle(struct http_xfer *x, const struct http_opts *o, long timeout,
    struct curl_slist *headers, const char *proxy, char *errbuf)
{
	CURLcode cc = CURLE_OK;

	if (o->share != NULL)
		HTTP_SETOPT(x->curl, CURLOPT_SHARE, o->share->sh);
	HTTP_SETOPT(x->curl, CURLOPT_URL, x->req->url);
	HTTP_SETOPT(x->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	HTTP_SETOPT(x->curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	HTTP_SETOPT(x->curl, CURLOPT_FOLLOWLOCATION, 0L);
	HTTP_SETOPT(x->curl, CURLOPT_NOSIGNAL, 1L);
	HTTP_SETOPT(x->curl, CURLOPT_SSL_VERIFYPEER, 1L);
	HTTP_SETOPT(x->curl, CURLOPT_SSL_VERIFYHOST, 2L);
	HTTP_SETOPT(x->curl, CURLOPT_TIMEOUT, timeout);
	HTTP_SETOPT(x->curl, CURLOPT_CONNECTTIMEOUT,
	    timeout < HTTP_CONNECT_TIMEOUT ? timeout : HTTP_CONNECT_TIMEOUT);
	HTTP_SETOPT(x->curl, CURLOPT_USERAGENT, "mlauth/" MLAUTH_VERSION);
	HTTP_SETOPT(x->curl, CURLOPT_HTTPHEADER, headers);
	if (strncmp(x->req->url, "http://", 7) == 0)	/* "": no proxy, whatever the environment */
		HTTP_SETOPT(x->curl, CURLOPT_PROXY, proxy != NULL ? proxy : "");
	HTTP_SETOPT(x->curl, CURLOPT_ERRORBUFFER, errbuf);
	HTTP_SETOPT(x->curl, CURLOPT_WRITEFUNCTION, http_write_cb);
	HTTP_SETOPT(x->curl, CURLOPT_WRITEDATA, x);
	HTTP_SETOPT(x->curl, CURLOPT_HEADERFUNCTION, http_header_cb);
	HTTP_SETOPT(x->curl, CURLOPT_HEADERDATA, x);
	HTTP_SETOPT(x->curl, CURLOPT_NOPROGRESS, 0L);
	HTTP_SETOPT(x->curl, CURLOPT_XFERINFOFUNCTION, http_xferinfo_cb);
	HTTP_SETOPT(x->curl, CURLOPT_XFERINFODATA, x);
	/* A collected body can be refused from its Content-Length before it arrives. */
	if (x->req->on_chunk == NULL)
		HTTP_SETOPT(x->curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)HTTP_MAX_BODY);
	return cc;
}

/* The method and the body: GET and HEAD send none, any other method req's (maybe empty). */
static CURLcode
http_setup_method(struct http_xfer *x)
{
	const struct http_request *req = x->req;
	CURLcode cc = CURLE_OK;

	if (strcmp(req->method, "GET") == 0) {
		HTTP_SETOPT(x->curl, CURLOPT_HTTPGET, 1L);
		return cc;
	}
	if (strcmp(req->method, "HEAD") == 0) {
		HTTP_SETOPT(x->curl, CURLOPT_NOBODY, 1L);
		return cc;
	}
	HTTP_SETOPT(x->curl, CURLOPT_POST, 1L);
	HTTP_SETOPT(x->curl, CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
	HTTP_SETOPT(x->curl, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)(req->body != NULL ? req->body_len : 0));
	if (strcmp(req->method, "POST") != 0)
		HTTP_SETOPT(x->curl, CURLOPT_CUSTOMREQUEST, req->method);
	return cc;
}

/*
 * libcurl reads the proxy variables itself, but CURL_CA_BUNDLE and
 * SSL_CERT_* only in the curl tool: honour them the same way here.
 */
static CURLcode
http_setup_ca(struct http_xfer *x, const struct http_opts *o)
{
	const char *ca, *capath = NULL;
	CURLcode cc = CURLE_OK;

	ca = o->ca_file != NULL && o->ca_file[0] != '\0' ? o->ca_file : http_env("CURL_CA_BUNDLE");
	if (ca == NULL) {
		ca = http_env("SSL_CERT_FILE");
		capath = http_env("SSL_CERT_DIR");
	}
	if (ca != NULL)
		HTTP_SETOPT(x->curl, CURLOPT_CAINFO, ca);
	if (capath != NULL)
		HTTP_SETOPT(x->curl, CURLOPT_CAPATH, capath);
	return cc;
}

/* -vv: the exchange on stderr, with the request's own secrets hidden wherever they recur. */
static CURLcode
http_setup_trace(struct http_xfer *x, const struct http_opts *o)
{
	CURLcode cc = CURLE_OK;

	if (o->verbose < 2)
		return cc;
	http_echo_collect(x->req, &x->echo);
	x->out.echo = x->in.echo = &x->echo;
	HTTP_SETOPT(x->curl, CURLOPT_DEBUGFUNCTION, http_debug_cb);
	HTTP_SETOPT(x->curl, CURLOPT_DEBUGDATA, x);
	HTTP_SETOPT(x->curl, CURLOPT_VERBOSE, 1L);
	return cc;
}

/* Why a transfer failed, in the words of whichever check stopped it. */
static int
http_transfer_error(const struct http_xfer *x, CURLcode cc, const char *origin,
    const char *errbuf, struct ml_err *err)
{
	if (x->chunk_rc != 0)
		return err_set(err, x->chunk_rc, "reading the answer from %s stopped", origin);
	if (x->oom)
		return err_set(err, ML_EFAIL, "out of memory reading the answer from %s", origin);
	if ((x->resp->too_large = x->too_large || cc == CURLE_FILESIZE_EXCEEDED))
		return err_set(err, ML_ENET, "response from %s too large (over %d MiB)",
		    origin, (x->stream ? HTTP_MAX_STREAM : HTTP_MAX_BODY) / (1024 * 1024));
	if (x->headers_too_large)
		return err_set(err, ML_ENET, "response headers from %s too large", origin);
	if (cc == CURLE_ABORTED_BY_CALLBACK && http_interrupted)
		return err_set(err, ML_EINTR, "interrupted");
	if (cc == CURLE_ABORTED_BY_CALLBACK && x->stalled)
		return err_set(err, ML_ENET, "%s stopped sending its answer (nothing for %ld s)",
		    origin, x->stall);
	/* Advice on reaching the peer only where it was not reached: not for a cut answer. */
	return http_curl_error(cc, origin, x->req, x->advice && (cc == CURLE_COULDNT_CONNECT ||
	    cc == CURLE_COULDNT_RESOLVE_HOST || (cc == CURLE_OPERATION_TIMEDOUT &&
	    !x->answer_started)), errbuf, err);
}

/* Run the set-up transfer and fill in the status; an unstreamed body is never NULL. */
static int
http_transfer(struct http_xfer *x, const struct http_opts *o, const char *origin,
    const char *errbuf, struct ml_err *err)
{
	struct http_response *resp = x->resp;
	CURLcode cc;

	cc = lc.easy_perform(x->curl);
	if (o->verbose >= 2) {
		http_trace_flush(&x->out);
		http_trace_flush(&x->in);
	}
	if (cc != CURLE_OK)
		return http_transfer_error(x, cc, origin, errbuf, err);
	if (lc.easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &resp->status) != CURLE_OK)
		return err_set(err, ML_EFAIL, "no status from %s", origin);
	/* Streamed iff a reader was given and the status is 2xx (see http.h). */
	if (!(x->req->on_chunk != NULL && resp->status >= 200 && resp->status < 300) &&
	    resp->body == NULL && http_body_reserve(x, 0) != 0)
		return err_set(err, ML_EFAIL, "out of memory");
	return ML_OK;
}

int
http_perform(const struct http_opts *o, const struct http_request *req,
    struct http_response *resp, struct ml_err *err)
{
	static const struct http_opts defaults = { .timeout = 0 };
	struct http_xfer x;
	struct curl_slist *headers = NULL;
	char origin[HTTP_ORIGIN_MAX], errbuf[CURL_ERROR_SIZE];
	const char *proxy = NULL;
	CURLcode cc;
	long timeout;
	int rc;

	memset(&x, 0, sizeof x);
	x.out.prefix = "> ";
	x.in.prefix = "< ";
	if (resp != NULL) {
		memset(resp, 0, sizeof *resp);
		resp->retry_after = -1;
	}
	if (o == NULL)
		o = &defaults;
	if (req == NULL || resp == NULL || req->url == NULL || req->method == NULL) {
		rc = err_set(err, ML_EFAIL, "http_perform: missing request");
		goto out;
	}
	http_url_origin(req->url, origin, sizeof origin);
	if (!http_method_ok(req->method)) {
		rc = err_set(err, ML_EFAIL, "unsupported HTTP method %.20s", req->method);
		goto out;
	}
	if (http_interrupted) {
		rc = err_set(err, ML_EINTR, "interrupted");
		goto out;
	}
	if ((rc = http_plain_proxy(req, &proxy, err)) != ML_OK ||
	    (rc = http_global_init(err)) != ML_OK ||
	    (rc = http_build_headers(req, &headers, err)) != ML_OK)
		goto out;
	if ((x.curl = lc.easy_init()) == NULL) {
		rc = err_set(err, ML_EFAIL, "cannot start libcurl");
		goto out;
	}
	x.req = req;
	x.resp = resp;
	x.advice = !o->no_advice;
	x.opts = o;
	x.origin = origin;
	http_now(&x.started);
	timeout = o->timeout > 0 ? o->timeout : HTTP_DEFAULT_TIMEOUT;
	x.stall = timeout < HTTP_STALL_TIME ? timeout : HTTP_STALL_TIME;
	http_now(&x.last_progress);
	errbuf[0] = '\0';

	cc = http_setup_handle(&x, o, timeout, headers, proxy, errbuf);
	if (cc == CURLE_OK)
		cc = http_setup_method(&x);
	if (cc == CURLE_OK)
		cc = http_setup_ca(&x, o);
	if (cc == CURLE_OK)
		cc = http_setup_trace(&x, o);
	if (cc != CURLE_OK) {
		/* Fail closed: a libcurl without one of these would be less safe. */
		rc = err_set(err, ML_EFAIL, "libcurl refused a setting: %s", lc.easy_strerror(cc));
		goto out;
	}
	rc = http_transfer(&x, o, origin, errbuf, err);
	if (x.slow)
		o->on_slow(o->slow_arg, req->peer, origin, true);
out:
	if (x.curl != NULL)
		lc.easy_cleanup(x.curl);
	for (struct curl_slist *t = headers; t != NULL; t = t->next)
		secret_wipe(t->data, strlen(t->data));
	if (headers != NULL)	/* an early exit may come before libcurl is loaded */
		lc.slist_free_all(headers);
	http_trace_free(&x.out);
	http_trace_free(&x.in);
	return rc;
}
