/*
 * proxy.c: the local gateway behind `mlauth proxy` and `mlauth exec --proxy`.
 *
 * libmicrohttpd takes the requests (a thread per connection), api.c makes
 * the authorized request upstream with libcurl.  Each forwarded request has
 * a worker thread for the upstream transfer; the connection's thread waits
 * for the answer's status and headers, queues a response with them and then
 * reads the body from a small ring the worker fills, so a stream passes
 * through as it arrives and a large answer is never held whole.  A full ring
 * holds the worker back (and so libcurl and the API): memory per stream stays
 * bounded whatever the client's pace.
 *
 * The request body is kept (up to PROXY_MAX_BODY) so that a 401 can be
 * answered by one refresh and the same request again.
 *
 * libmicrohttpd is opened when a proxy starts, not linked: it brings GnuTLS
 * and p11-kit, milliseconds at every start of the helper, which most runs
 * (a refresh, a login, a send) would pay for nothing.
 */
#define _DEFAULT_SOURCE	/* flock */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "mlauth/proxy.h"
#include "mlauth/secret.h"
#include "mlauth/store.h"

#ifndef PROXY_LIBMHD
#define PROXY_LIBMHD	"libmicrohttpd.so.12"
#endif

#define PROXY_RING		(64 * 1024)	/* answer bytes in flight per request */
#define PROXY_BLOCK		(16 * 1024)	/* handed to libmicrohttpd at a time */
#define PROXY_MAX_HEADERS	100		/* request header lines passed on */
#define PROXY_TIMEOUT		600L		/* seconds for one upstream request */
#define PROXY_IDLE		120U		/* seconds an idle client connection lasts */
#define PROXY_CONNECTIONS	512U
#define PROXY_STACK		(512 * 1024)
#define PROXY_WAIT_MS		200L		/* waits wake this often to notice a stop */

#define PROXY_MHD_FUNCS(X)						\
	X(start_daemon) X(stop_daemon) X(quiesce_daemon) X(get_daemon_info)	\
	X(get_connection_values) X(lookup_connection_value) X(get_connection_info) \
	X(create_response_from_buffer) X(create_response_from_callback)	\
	X(add_response_header) X(queue_response) X(destroy_response)

static struct {
	void *lib;
#define X(f) __typeof__(MHD_##f) *f;
	PROXY_MHD_FUNCS(X)
#undef X
} mhd;

static pthread_mutex_t mhd_load_lock = PTHREAD_MUTEX_INITIALIZER;

struct proxy {
	struct api_session api;
	struct MHD_Daemon *daemon;
	const struct proxy_opts *o;
	char url[64];
	char key[PROXY_KEY_LEN + 1];
	atomic_ulong requests;
	atomic_int active;		/* forwarded requests not yet complete */
	atomic_bool cutting;		/* stopping: end what is still open */
};

/* One request, from its first header to its completion. */
struct preq {
	struct proxy *p;
	char *uri;			/* as the client sent it, query included */
	bool started;			/* the first access call is past */
	bool refused;			/* answered without going upstream */
	const char *method;		/* libmicrohttpd's, valid for the request's life */
	char *lines[PROXY_MAX_HEADERS + 1];
	size_t nlines;
	char *body;
	size_t len, cap;
	bool too_large;
	struct timespec t0;

	/* Between the worker and the connection thread, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t worker;
	bool worker_started;
	bool headers_ready;		/* a 2xx is streaming: status and headers are final */
	bool done;			/* the worker has finished */
	bool gone;			/* the client went away or the proxy is cutting */
	int rc;
	struct ml_err err;
	struct http_response resp;
	long status;
	char **rlines;			/* the answer's header lines: "Name\0value" */
	size_t nrlines, caprlines;
	uint64_t clen;			/* the answer's Content-Length, or MHD_SIZE_UNKNOWN */
	char ring[PROXY_RING];
	size_t rhead, rlen;
	unsigned long long sent;
};

/* ---- loading libmicrohttpd ---- */

static int
proxy_load(struct ml_err *err)
{
	void *h, *sym;
	int rc = ML_OK;

	(void)pthread_mutex_lock(&mhd_load_lock);
	if (mhd.lib != NULL)
		goto out;
	if ((h = dlopen(PROXY_LIBMHD, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		rc = err_set(err, ML_EFAIL, "cannot load libmicrohttpd (%s): %s; install it "
		    "(Debian: apt install libmicrohttpd12)", PROXY_LIBMHD, dlerror());
		goto out;
	}
#define X(f)								\
	if ((sym = dlsym(h, "MHD_" #f)) == NULL) {			\
		rc = err_set(err, ML_EFAIL, "%s has no MHD_%s: too old a libmicrohttpd", \
		    PROXY_LIBMHD, #f);					\
		goto out;						\
	}								\
	mhd.f = (__typeof__(mhd.f))sym;
	PROXY_MHD_FUNCS(X)
#undef X
	mhd.lib = h;	/* last: a table with a gap must not pass for a loaded one */
out:
	(void)pthread_mutex_unlock(&mhd_load_lock);
	return rc;
}

/* ---- small helpers ---- */

static void
proxy_now(struct timespec *ts)
{
	(void)clock_gettime(CLOCK_MONOTONIC, ts);
}

static long
proxy_ms_since(const struct timespec *t0)
{
	struct timespec t;

	proxy_now(&t);
	return (t.tv_sec - t0->tv_sec) * 1000L + (t.tv_nsec - t0->tv_nsec) / 1000000L;
}

/* Wait on q->cv for at most PROXY_WAIT_MS (q->mu held). */
static void
proxy_wait(struct preq *q)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += PROXY_WAIT_MS * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	(void)pthread_cond_timedwait(&q->cv, &q->mu, &ts);
}

/* Equal without saying where they differ: the key is a secret. */
static bool
proxy_key_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = la != lb;

	for (size_t i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

static bool
proxy_name_in(const char *name, size_t n, const char *const *list)
{
	for (size_t i = 0; list[i] != NULL; i++)
		if (strlen(list[i]) == n && strncasecmp(name, list[i], n) == 0)
			return true;
	return false;
}

/* Hop-by-hop and framing headers: each side of the proxy has its own (RFC 9110 7.6.1). */
static const char *const proxy_hop_headers[] = {
	"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
	"proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
	"content-length", "host", "expect", NULL
};

/* The credentials a client sends: the per-run key, never passed upstream. */
static const char *const proxy_key_headers[] = { "authorization", "x-api-key", NULL };

/* ---- answers made here, in the gateway's error shape ---- */

/* {"detail": msg}, like the gateway's own 401 and 502; the proxy's words say who spoke. */
static enum MHD_Result
proxy_answer_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
	struct MHD_Response *r;
	enum MHD_Result ok;
	json_t *o;
	char *text;
	char detail[sizeof ((struct ml_err *)0)->msg + 32];

	(void)snprintf(detail, sizeof detail, "mlauth proxy: %s", msg);
	o = json_pack("{s:s}", "detail", detail);
	text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (text == NULL)
		return MHD_NO;
	r = mhd.create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
	free(text);
	if (r == NULL)
		return MHD_NO;
	(void)mhd.add_response_header(r, "Content-Type", "application/json");
	if (status == MHD_HTTP_UNAUTHORIZED)
		(void)mhd.add_response_header(r, "WWW-Authenticate", "Bearer");
	ok = mhd.queue_response(c, status, r);
	mhd.destroy_response(r);
	return ok;
}

/* The status a failure to forward becomes, so SDKs retry what is worth retrying. */
static unsigned
proxy_error_status(int rc)
{
	switch (rc) {
	case ML_ELOGIN:
		return MHD_HTTP_UNAUTHORIZED;
	case ML_EUSAGE:
		return MHD_HTTP_BAD_REQUEST;
	case ML_EINTR:
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	default:
		return MHD_HTTP_BAD_GATEWAY;
	}
}

/* ---- the request as it arrives ---- */

static enum MHD_Result
proxy_collect_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct preq *q = cls;
	size_t n;
	char *line;

	(void)kind;
	if (key == NULL || proxy_name_in(key, strlen(key), proxy_hop_headers) ||
	    proxy_name_in(key, strlen(key), proxy_key_headers))
		return MHD_YES;
	if (value == NULL)
		value = "";
	if (q->nlines >= PROXY_MAX_HEADERS) {
		q->too_large = true;
		return MHD_NO;
	}
	n = strlen(key) + 2 + strlen(value) + 1;
	if ((line = malloc(n)) == NULL) {
		q->too_large = true;
		return MHD_NO;
	}
	(void)snprintf(line, n, "%s: %s", key, value);
	q->lines[q->nlines++] = line;
	q->lines[q->nlines] = NULL;
	return MHD_YES;
}

/*
 * The owner of the client's end of our connection, asked of the kernel by
 * its exact address and port pair (sock_diag, as ss does): one answer, where
 * reading /proc/net/tcp walks every socket of the machine (tens of ms on a
 * busy one).  -1 when it cannot be told.
 */
static int
proxy_diag_uid(const struct sockaddr_in *me, const struct sockaddr_in *peer, uid_t *uid)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	union {
		struct nlmsghdr h;
		char buf[8192];
	} ans;
	struct nlmsghdr *h = &ans.h;
	struct timeval tv = { 1, 0 };
	ssize_t n;
	int fd, rc = -1;

	memset(&req, 0, sizeof req);
	req.nlh.nlmsg_len = sizeof req;
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST;	/* no NLM_F_DUMP: the one socket named */
	req.r.sdiag_family = AF_INET;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = ~0U;
	req.r.id.idiag_sport = peer->sin_port;	/* the client's socket: from it, to us */
	req.r.id.idiag_dport = me->sin_port;
	req.r.id.idiag_src[0] = peer->sin_addr.s_addr;
	req.r.id.idiag_dst[0] = me->sin_addr.s_addr;
	req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	if ((fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)) < 0)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&kernel, sizeof kernel) ==
	    (ssize_t)sizeof req && (n = recv(fd, ans.buf, sizeof ans.buf, 0)) > 0 &&
	    NLMSG_OK(h, (size_t)n) && h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
	    h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
		*uid = (uid_t)((struct inet_diag_msg *)NLMSG_DATA(h))->idiag_uid;
		rc = 0;
	}
	(void)close(fd);
	return rc;
}

/* The same from /proc/net/tcp, for a kernel without sock_diag: where ss and netstat look. */
static int
proxy_proc_uid(const struct sockaddr_in *me, const struct sockaddr_in *peer, uid_t *uid)
{
	char line[512];
	FILE *f;
	int rc = -1;

	if ((f = fopen("/proc/net/tcp", "re")) == NULL)
		return -1;
	while (rc != 0 && fgets(line, sizeof line, f) != NULL) {
		unsigned la, lp, ra, rp;
		unsigned long u;

		/* "sl: local rem st tx:rx tr:when retrnsmt uid": addresses as the kernel holds them. */
		if (sscanf(line, "%*u: %8X:%4X %8X:%4X %*X %*X:%*X %*X:%*X %*X %lu", &la, &lp, &ra,
		    &rp, &u) != 5)
			continue;
		if (la == peer->sin_addr.s_addr && lp == ntohs(peer->sin_port) &&
		    ra == me->sin_addr.s_addr && rp == ntohs(me->sin_port)) {
			*uid = (uid_t)u;
			rc = 0;
		}
	}
	(void)fclose(f);
	return rc;
}

/* The owner of the client's end of connection fd; -1 when it cannot be told. */
static int
proxy_peer_uid(int fd, uid_t *uid)
{
	struct sockaddr_in me, peer;
	socklen_t ml = sizeof me, pl = sizeof peer;

	if (getsockname(fd, (struct sockaddr *)&me, &ml) != 0 ||
	    getpeername(fd, (struct sockaddr *)&peer, &pl) != 0 ||
	    me.sin_family != AF_INET || peer.sin_family != AF_INET)
		return -1;
	if (proxy_diag_uid(&me, &peer, uid) == 0)
		return 0;
	return proxy_proc_uid(&me, &peer, uid);
}

/*
 * Whether the client runs as our user: a loopback port is open to every
 * user of the machine, and the key alone would make a leaked key enough.
 */
static bool
proxy_same_user(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
	    mhd.get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	uid_t uid;

	return ci != NULL && proxy_peer_uid(ci->connect_fd, &uid) == 0 && uid == geteuid();
}

/* Whether the request carries the key, as x-api-key or as a bearer token. */
static bool
proxy_authorized(const struct proxy *p, struct MHD_Connection *c)
{
	const char *k = mhd.lookup_connection_value(c, MHD_HEADER_KIND, "x-api-key");
	const char *a = mhd.lookup_connection_value(c, MHD_HEADER_KIND, "authorization");
	bool ok = false;

	if (k != NULL)
		ok = proxy_key_equal(k, p->key);
	if (!ok && a != NULL && strncasecmp(a, "Bearer ", 7) == 0) {
		for (a += 7; *a == ' '; a++)
			;
		ok = proxy_key_equal(a, p->key);
	}
	return ok;
}

/* A path under api_base: origin-form, no dot segments that would climb out of it. */
static bool
proxy_path_ok(const char *uri)
{
	size_t n = strcspn(uri, "?#");

	if (uri[0] != '/')
		return false;
	for (const char *s = uri; s < uri + n; s = strchr(s + 1, '/')) {
		if (s == NULL)
			break;
		if (strncmp(s, "/..", 3) == 0 && (s[3] == '/' || s + 3 == uri + n))
			return false;
		if (strncmp(s, "/.", 2) == 0 && (s[2] == '/' || s + 2 == uri + n))
			return false;
		if (strncasecmp(s, "/%2e", 4) == 0)
			return false;
	}
	return strchr(uri, '#') == NULL;
}

static int
proxy_body_add(struct preq *q, const char *data, size_t n)
{
	size_t ncap;
	char *nb;

	if (n > PROXY_MAX_BODY - q->len) {
		q->too_large = true;
		return -1;
	}
	if (q->len + n > q->cap) {
		ncap = q->cap > 0 ? q->cap : 16384;
		while (ncap < q->len + n)
			ncap *= 2;
		if ((nb = realloc(q->body, ncap)) == NULL)
			return -1;
		q->body = nb;
		q->cap = ncap;
	}
	memcpy(q->body + q->len, data, n);
	q->len += n;
	return 0;
}

/* ---- the worker: the upstream transfer ---- */

/* The code of a status line ("HTTP/1.1 201 Created"), or 0. */
static long
proxy_status_of(const char *line, size_t n)
{
	const char *sp = memchr(line, ' ', n);
	long code = 0;

	for (const char *c = sp != NULL ? sp + 1 : line + n; c < line + n && code < 1000 &&
	    *c >= '0' && *c <= '9'; c++)
		code = code * 10 + (*c - '0');
	return code >= 100 && code <= 999 ? code : 0;
}

static int
proxy_on_header(const char *name, size_t nlen, const char *value, size_t vlen, void *arg)
{
	struct preq *q = arg;
	char *line, **nl;

	if (q->headers_ready)
		return 0;	/* trailers: the headers have gone to the client already */
	if (name == NULL) {
		/* A new answer (after a 1xx): its status and lines replace the earlier ones. */
		for (size_t i = 0; i < q->nrlines; i++)
			free(q->rlines[i]);
		q->nrlines = 0;
		q->clen = MHD_SIZE_UNKNOWN;
		q->status = proxy_status_of(value, vlen);
		return 0;
	}
	if (nlen == 14 && strncasecmp(name, "content-length", 14) == 0) {
		q->clen = 0;
		for (size_t i = 0; i < vlen && q->clen != MHD_SIZE_UNKNOWN; i++)
			q->clen = value[i] >= '0' && value[i] <= '9' && q->clen < UINT64_MAX / 20 ?
			    q->clen * 10 + (uint64_t)(value[i] - '0') : MHD_SIZE_UNKNOWN;
		return 0;
	}
	if (proxy_name_in(name, nlen, proxy_hop_headers))
		return 0;
	if (q->nrlines == q->caprlines) {
		size_t ncap = q->caprlines > 0 ? q->caprlines * 2 : 16;

		if (ncap > 1024 || (nl = realloc(q->rlines, ncap * sizeof *nl)) == NULL)
			return ML_EFAIL;
		q->rlines = nl;
		q->caprlines = ncap;
	}
	if ((line = malloc(nlen + vlen + 2)) == NULL)
		return ML_EFAIL;
	memcpy(line, name, nlen);
	line[nlen] = '\0';
	memcpy(line + nlen + 1, value, vlen);
	line[nlen + 1 + vlen] = '\0';
	q->rlines[q->nrlines++] = line;
	return 0;
}

/* A 2xx body chunk: into the ring, waiting while it is full. */
static int
proxy_on_chunk(const char *buf, size_t len, void *arg)
{
	struct preq *q = arg;
	int rc = 0;

	(void)pthread_mutex_lock(&q->mu);
	if (!q->headers_ready) {
		q->headers_ready = true;
		(void)pthread_cond_broadcast(&q->cv);
	}
	while (len > 0) {
		size_t tail, n;

		if (q->gone || atomic_load(&q->p->cutting)) {
			rc = ML_EINTR;
			break;
		}
		if (q->rlen == PROXY_RING) {
			proxy_wait(q);
			continue;
		}
		tail = (q->rhead + q->rlen) % PROXY_RING;
		n = PROXY_RING - q->rlen;
		if (n > PROXY_RING - tail)
			n = PROXY_RING - tail;
		if (n > len)
			n = len;
		memcpy(q->ring + tail, buf, n);
		q->rlen += n;
		buf += n;
		len -= n;
		(void)pthread_cond_broadcast(&q->cv);
	}
	(void)pthread_mutex_unlock(&q->mu);
	return rc;
}

static void *
proxy_worker(void *arg)
{
	struct preq *q = arg;
	struct api_call call = {
		.method = q->method, .path = q->uri, .body = q->body, .body_len = q->len,
		.headers = (const char *const *)q->lines, .on_chunk = proxy_on_chunk,
		.chunk_arg = q, .on_header = proxy_on_header, .header_arg = q,
	};
	struct ml_err err;
	struct http_response resp;
	int rc;

	err_clear(&err);
	rc = api_perform(&q->p->api, &call, &resp, &err);
	(void)pthread_mutex_lock(&q->mu);
	q->rc = rc;
	q->err = err;
	if (!q->headers_ready)
		q->status = resp.status;	/* a streamed answer's came with its headers */
	q->resp = resp;
	q->done = true;
	(void)pthread_cond_broadcast(&q->cv);
	(void)pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* ---- the answer to the client ---- */

static ssize_t
proxy_read_body(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct preq *q = cls;
	ssize_t out;
	size_t n;

	(void)pos;
	(void)pthread_mutex_lock(&q->mu);
	while (q->rlen == 0 && !q->done && !atomic_load(&q->p->cutting))
		proxy_wait(q);
	if (q->rlen == 0) {
		out = q->done && q->rc == ML_OK ? MHD_CONTENT_READER_END_OF_STREAM :
		    MHD_CONTENT_READER_END_WITH_ERROR;
	} else {
		n = q->rlen < max ? q->rlen : max;
		if (n > PROXY_RING - q->rhead)
			n = PROXY_RING - q->rhead;
		memcpy(buf, q->ring + q->rhead, n);
		q->rhead = (q->rhead + n) % PROXY_RING;
		q->rlen -= n;
		q->sent += n;
		out = (ssize_t)n;
		(void)pthread_cond_broadcast(&q->cv);
	}
	(void)pthread_mutex_unlock(&q->mu);
	return out;
}

/* The answer's own headers on r (not its framing: libmicrohttpd does that). */
static void
proxy_copy_headers(const struct preq *q, struct MHD_Response *r)
{
	for (size_t i = 0; i < q->nrlines; i++) {
		const char *name = q->rlines[i], *value = name + strlen(name) + 1;

		(void)mhd.add_response_header(r, name, value);
	}
}

/* Log one line per request under -v: no header, no body, nothing secret. */
static void
proxy_log(const struct preq *q, unsigned status, const char *note)
{
	char line[512];
	size_t n = strcspn(q->uri, "?");

	if (q->p->o->verbose < 1 || q->p->o->say == NULL)
		return;
	(void)snprintf(line, sizeof line, "proxy: %s %.*s -> %u%s%s (%ld ms)", q->method,
	    (int)(n > 200 ? 200 : n), q->uri, status, note[0] != '\0' ? ", " : "", note,
	    proxy_ms_since(&q->t0));
	q->p->o->say(q->p->o->say_arg, false, line);
}

/* Start the worker and queue whatever it comes back with: a stream, an answer, an error. */
static enum MHD_Result
proxy_forward(struct preq *q, struct MHD_Connection *c)
{
	struct MHD_Response *r;
	pthread_attr_t attr;
	enum MHD_Result ok;
	int prc;

	atomic_fetch_add(&q->p->requests, 1);
	atomic_fetch_add(&q->p->active, 1);
	q->clen = MHD_SIZE_UNKNOWN;
	if (pthread_attr_init(&attr) != 0)
		return proxy_answer_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of threads");
	(void)pthread_attr_setstacksize(&attr, PROXY_STACK);
	prc = pthread_create(&q->worker, &attr, proxy_worker, q);
	(void)pthread_attr_destroy(&attr);
	if (prc != 0) {
		proxy_log(q, 503, "no thread");
		return proxy_answer_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
		    "too many requests at once (no thread left)");
	}
	q->worker_started = true;
	(void)pthread_mutex_lock(&q->mu);
	while (!q->headers_ready && !q->done)
		proxy_wait(q);
	(void)pthread_mutex_unlock(&q->mu);

	if (q->headers_ready) {
		r = mhd.create_response_from_callback(q->clen, PROXY_BLOCK, proxy_read_body, q,
		    NULL);
	} else if (q->rc != ML_OK) {
		proxy_log(q, proxy_error_status(q->rc), q->err.msg);
		return proxy_answer_error(c, proxy_error_status(q->rc), q->err.msg);
	} else {
		/* Not streamed (an error, or a 2xx without a body): collected, and small. */
		r = mhd.create_response_from_buffer(q->resp.len, q->resp.body != NULL ?
		    q->resp.body : (char *)"", MHD_RESPMEM_MUST_COPY);
	}
	if (r == NULL)
		return MHD_NO;
	proxy_copy_headers(q, r);
	ok = mhd.queue_response(c, (unsigned)q->status > 0 ? (unsigned)q->status :
	    MHD_HTTP_OK, r);
	mhd.destroy_response(r);
	proxy_log(q, (unsigned)q->status, q->headers_ready ? "streamed" : "");
	return ok;
}

static enum MHD_Result
proxy_first_call(struct preq *q, struct MHD_Connection *c, const char *method)
{
	q->method = method;
	q->started = true;
	proxy_now(&q->t0);
	if (!proxy_authorized(q->p, c)) {
		q->refused = true;
		proxy_log(q, 401, "no key");
		return proxy_answer_error(c, MHD_HTTP_UNAUTHORIZED, "this request does not "
		    "carry the proxy's key (send it as x-api-key or Authorization: Bearer; "
		    "mlauth proxy --env prints it)");
	}
	if (!proxy_same_user(c)) {
		q->refused = true;
		proxy_log(q, 403, "another user");
		return proxy_answer_error(c, MHD_HTTP_FORBIDDEN, "this proxy serves only the "
		    "user who started it");
	}
	if (!proxy_path_ok(q->uri)) {
		q->refused = true;
		proxy_log(q, 400, "bad path");
		return proxy_answer_error(c, MHD_HTTP_BAD_REQUEST, "the path must be one under "
		    "the API's base, such as /v1/messages");
	}
	(void)mhd.get_connection_values(c, MHD_HEADER_KIND, proxy_collect_header, q);
	if (q->too_large) {
		q->refused = true;
		return proxy_answer_error(c, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
		    "too many request headers");
	}
	return MHD_YES;
}

static enum MHD_Result
proxy_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
	struct preq *q = *req_cls;

	(void)cls;
	(void)url;
	(void)version;
	if (q == NULL)
		return MHD_NO;
	if (!q->started)
		return proxy_first_call(q, c, method);
	if (q->refused) {
		*upload_size = 0;	/* the answer is queued: the body is not wanted */
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (proxy_body_add(q, upload, *upload_size) != 0) {
			q->refused = true;
			*upload_size = 0;
			proxy_log(q, 413, "body too large");
			return proxy_answer_error(c, q->too_large ? MHD_HTTP_CONTENT_TOO_LARGE :
			    MHD_HTTP_INTERNAL_SERVER_ERROR, q->too_large ? "request body over "
			    "32 MiB" : "out of memory");
		}
		*upload_size = 0;
		return MHD_YES;
	}
	return proxy_forward(q, c);
}

/* Called with the raw request line's URI, before any parsing: the query stays as sent. */
static void *
proxy_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct preq *q = calloc(1, sizeof *q);

	(void)c;
	if (q == NULL)
		return NULL;
	if ((q->uri = strdup(uri != NULL ? uri : "")) == NULL) {
		free(q);
		return NULL;
	}
	q->p = cls;
	(void)pthread_mutex_init(&q->mu, NULL);
	(void)pthread_cond_init(&q->cv, NULL);
	return q;
}

static void
proxy_completed(void *cls, struct MHD_Connection *c, void **req_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct preq *q = *req_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (q == NULL)
		return;
	*req_cls = NULL;
	if (q->worker_started) {
		(void)pthread_mutex_lock(&q->mu);
		q->gone = true;
		(void)pthread_cond_broadcast(&q->cv);
		(void)pthread_mutex_unlock(&q->mu);
		(void)pthread_join(q->worker, NULL);
	}
	if (q->started && !q->refused)
		atomic_fetch_sub(&q->p->active, 1);
	http_response_free(&q->resp);
	for (size_t i = 0; i < q->nlines; i++)
		free(q->lines[i]);
	for (size_t i = 0; i < q->nrlines; i++)
		free(q->rlines[i]);
	free(q->rlines);
	if (q->body != NULL)
		secret_wipe(q->body, q->len);
	free(q->body);
	free(q->uri);
	(void)pthread_cond_destroy(&q->cv);
	(void)pthread_mutex_destroy(&q->mu);
	free(q);
}

/* ---- start and stop ---- */

static int
proxy_make_key(struct proxy *p, struct ml_err *err)
{
	unsigned char raw[32];
	size_t off = sizeof PROXY_KEY_PREFIX - 1;

	if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
		return err_set(err, ML_EFAIL, "cannot make the proxy's key: %s", strerror(errno));
	memcpy(p->key, PROXY_KEY_PREFIX, off);
	for (size_t i = 0; i < sizeof raw; i++)
		(void)snprintf(p->key + off + 2 * i, 3, "%02x", raw[i]);
	secret_wipe(raw, sizeof raw);
	return ML_OK;
}

static int
proxy_listen(struct proxy *p, struct ml_err *err)
{
	struct sockaddr_in sa;
	const union MHD_DaemonInfo *info;

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);	/* never another address */
	sa.sin_port = htons((uint16_t)p->o->port);
	p->daemon = mhd.start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
	    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC, (uint16_t)p->o->port, NULL, NULL,
	    proxy_access, p,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
	    MHD_OPTION_URI_LOG_CALLBACK, proxy_uri, p,
	    MHD_OPTION_NOTIFY_COMPLETED, proxy_completed, p,
	    MHD_OPTION_CONNECTION_LIMIT, PROXY_CONNECTIONS,
	    MHD_OPTION_CONNECTION_TIMEOUT, PROXY_IDLE,
	    MHD_OPTION_THREAD_STACK_SIZE, (size_t)PROXY_STACK,
	    MHD_OPTION_END);
	if (p->daemon == NULL)
		return err_set(err, p->o->port != 0 ? ML_EUSAGE : ML_EFAIL, "cannot listen on "
		    "127.0.0.1:%u%s", p->o->port, p->o->port != 0 ? " (in use? pick another "
		    "--port, or leave it out for a free one)" : "");
	info = mhd.get_daemon_info(p->daemon, MHD_DAEMON_INFO_BIND_PORT);
	if (info == NULL || info->port == 0)
		return err_set(err, ML_EFAIL, "cannot tell which port the proxy listens on");
	(void)snprintf(p->url, sizeof p->url, "http://127.0.0.1:%u", (unsigned)info->port);
	return ML_OK;
}

int
proxy_start(const struct proxy_opts *o, struct proxy **out, struct ml_err *err)
{
	struct token_opts to = { .min_valid = o->min_valid };
	struct proxy *p;
	char *token = NULL;
	int rc;

	*out = NULL;
	if ((rc = proxy_load(err)) != ML_OK || (rc = http_global_init(err)) != ML_OK)
		return rc;
	if ((p = calloc(1, sizeof *p)) == NULL)
		return err_set(err, ML_EFAIL, "out of memory");
	p->o = o;
	api_session_init(&p->api, o->cfg, o->verbose, &to);
	p->api.say = o->say;
	p->api.say_arg = o->say_arg;
	if (p->api.ho.timeout < PROXY_TIMEOUT)
		p->api.ho.timeout = PROXY_TIMEOUT;
	/* Like the SDKs' own keep-alive: no new connection (and TLS handshake) per request. */
	if ((rc = http_share_new(&p->api.ho.share, err)) != ML_OK) {
		proxy_stop(p, 0);
		return rc;
	}
	/* A session that cannot give a token now is better told at start than per request. */
	if ((rc = api_token(&p->api, NULL, &token, err)) != ML_OK ||
	    (rc = proxy_make_key(p, err)) != ML_OK ||
	    (rc = proxy_listen(p, err)) != ML_OK) {
		secret_free(token);
		proxy_stop(p, 0);
		return rc;
	}
	secret_free(token);
	*out = p;
	return ML_OK;
}

const char *
proxy_url(const struct proxy *p)
{
	return p->url;
}

const char *
proxy_key(const struct proxy *p)
{
	return p->key;
}

unsigned long
proxy_requests(const struct proxy *p)
{
	return atomic_load(&p->requests);
}

unsigned long
proxy_refreshes(struct proxy *p)
{
	unsigned long n;

	(void)pthread_mutex_lock(&p->api.lock);
	n = p->api.refreshes;
	(void)pthread_mutex_unlock(&p->api.lock);
	return n;
}

void
proxy_stop(struct proxy *p, long grace_ms)
{
	struct timespec t0, step = { 0, 20 * 1000000L };
	sig_atomic_t was;
	MHD_socket ls;

	if (p == NULL)
		return;
	if (p->daemon != NULL) {
		/* No new connections; open requests get the grace period, then are cut. */
		if ((ls = mhd.quiesce_daemon(p->daemon)) != MHD_INVALID_SOCKET)
			(void)close(ls);
		proxy_now(&t0);
		while (atomic_load(&p->active) > 0 && proxy_ms_since(&t0) < grace_ms)
			(void)nanosleep(&step, NULL);
		atomic_store(&p->cutting, true);
		/* An upstream transfer still waiting for its first byte stops within a second. */
		was = http_interrupted;
		http_interrupted = 1;
		mhd.stop_daemon(p->daemon);
		http_interrupted = was;
	}
	http_share_free(p->api.ho.share);
	api_session_free(&p->api);
	secret_wipe(p->key, sizeof p->key);
	free(p);
}

/* ---- the published address, for `mlauth proxy --env` ---- */

static int
proxy_state_path(const char *profile, char **path, struct ml_err *err)
{
	char *dir = NULL;
	size_t n;
	int rc;

	*path = NULL;
	/* Beside the lock, not under XDG_RUNTIME_DIR, for the reason lock.c gives. */
	if ((rc = store_state_dir(&dir, err)) != ML_OK)
		return rc;
	n = strlen(dir) + strlen(profile) + sizeof "/proxy-.json";
	if ((*path = malloc(n)) == NULL) {
		free(dir);
		return err_set(err, ML_EFAIL, "out of memory");
	}
	(void)snprintf(*path, n, "%s/proxy-%s.json", dir, profile);
	free(dir);
	return ML_OK;
}

int
proxy_publish(const struct proxy *p, const char *profile, int *fdp, struct ml_err *err)
{
	char *path = NULL, *text = NULL;
	json_t *o = NULL;
	int fd = -1, rc;

	*fdp = -1;
	if ((rc = proxy_state_path(profile, &path, err)) != ML_OK)
		return rc;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = err_set(err, ML_EFAIL, "cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		rc = err_set(err, ML_EUSAGE, "a proxy for profile %s is already running: "
		    "mlauth proxy --env prints its settings", profile);
		goto out;
	}
	o = json_pack("{s:s,s:s,s:i}", "url", p->url, "key", p->key, "pid", (int)getpid());
	if (o == NULL || (text = json_dumps(o, JSON_COMPACT)) == NULL) {
		rc = err_set(err, ML_EFAIL, "out of memory");
		goto out;
	}
	/* The lock is on this inode: rewrite it in place rather than rename over it. */
	if (fchmod(fd, 0600) != 0 || ftruncate(fd, 0) != 0 ||
	    pwrite(fd, text, strlen(text), 0) != (ssize_t)strlen(text)) {
		rc = err_set(err, ML_EFAIL, "cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	*fdp = fd;
	fd = -1;
	rc = ML_OK;
out:
	if (fd >= 0)
		(void)close(fd);
	json_decref(o);
	secret_free(text);
	free(path);
	return rc;
}

void
proxy_unpublish(int fd)
{
	int rc;

	if (fd < 0)
		return;
	/*
	 * Emptied, not removed: a late reader must not lock a new file meanwhile.
	 * Should that fail, the file keeps a key no proxy answers to any more.
	 */
	rc = ftruncate(fd, 0);
	(void)rc;
	(void)close(fd);
}

int
proxy_lookup(const char *profile, char **url, char **key, struct ml_err *err)
{
	char *path = NULL, buf[1024];
	json_t *o = NULL;
	const char *u, *k;
	ssize_t n;
	int fd = -1, rc;

	*url = *key = NULL;
	if ((rc = proxy_state_path(profile, &path, err)) != ML_OK)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	/* Running iff someone holds the lock: a crashed proxy leaves a file, not a lock. */
	if (fd < 0 || flock(fd, LOCK_SH | LOCK_NB) == 0 || errno != EWOULDBLOCK) {
		rc = err_set(err, ML_EFAIL, "no proxy is running for profile %s: start one "
		    "with mlauth proxy (or use mlauth exec --proxy -- CMD)", profile);
		goto out;
	}
	n = pread(fd, buf, sizeof buf - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	o = json_loads(buf, 0, NULL);
	u = json_string_value(json_object_get(o, "url"));
	k = json_string_value(json_object_get(o, "key"));
	if (u == NULL || k == NULL) {
		rc = err_set(err, ML_EFAIL, "%s is not a proxy's address file: stop the proxy "
		    "and start it again", path);
		goto out;
	}
	if ((*url = strdup(u)) == NULL || (*key = secret_dup(k)) == NULL) {
		free(*url);
		*url = NULL;
		rc = err_set(err, ML_EFAIL, "out of memory");
		goto out;
	}
	rc = ML_OK;
out:
	secret_wipe(buf, sizeof buf);
	json_decref(o);
	if (fd >= 0)
		(void)close(fd);
	free(path);
	return rc;
}
