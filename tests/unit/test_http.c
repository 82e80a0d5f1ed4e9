/*
 * The HTTP wrapper: form encoding, and real transfers against a tiny server
 * forked per test on 127.0.0.1 (ephemeral port): the size cap, redirects not
 * followed, headers, streaming, Ctrl-C, timeouts, the redacted trace, and the
 * OIDC requests over the wire.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"
#include "mlauth/http.h"
#include "mlauth/oidc.h"
#include "mlauth/secret.h"

static pid_t srv_pid = -1;
static int srv_port;
static char srv_base[64];	/* http://127.0.0.1:PORT */
/* The client's "got the first chunk" to the server, so /stream's second chunk comes after
 * it was read, however slowly: one byte per /stream request. */
static int srv_go[2] = { -1, -1 };

/* ---- no network ---- */

/* Run before http_global_init: a request refused up front must not touch libcurl. */
static void
early_exit_before_libcurl(void **state)
{
	struct http_request req = { .url = "http://127.0.0.1:9/", .method = "put" };
	struct http_response resp;
	struct ml_err err;

	assert_int_equal(http_perform(NULL, NULL, &resp, &err), ML_EFAIL);
	msg_has(err.msg, "missing request");
	http_response_free(&resp);
	assert_int_equal(http_perform(NULL, &req, &resp, &err), ML_EFAIL);
	msg_has(err.msg, "unsupported HTTP method put");
	http_response_free(&resp);
}

static void
form_add_escapes(void **state)
{
	struct ml_err err;
	char *form = NULL;

	assert_int_equal(http_form_add(&form, "k", "a b&c=d", &err), ML_OK);
	assert_string_equal(form, "k=a%20b%26c%3Dd");
	assert_int_equal(http_form_add(&form, "scope", "openid offline_access", &err), ML_OK);
	assert_int_equal(http_form_add(&form, "we ird=", "", &err), ML_OK);
	assert_int_equal(http_form_add(&form, "u", "\xc3\xa9+/?#%\n", &err), ML_OK);
	assert_string_equal(form, "k=a%20b%26c%3Dd&scope=openid%20offline_access&we%20ird%3D="
	    "&u=%C3%A9%2B%2F%3F%23%25%0A");
	assert_int_equal(http_form_add(&form, "k", NULL, &err), ML_EFAIL);
	assert_int_equal(http_form_add(&form, "", "v", &err), ML_EFAIL);
	/* A failure leaves the form as it was. */
	assert_string_equal(form, "k=a%20b%26c%3Dd&scope=openid%20offline_access&we%20ird%3D="
	    "&u=%C3%A9%2B%2F%3F%23%25%0A");
	secret_free(form);

	form = NULL;
	assert_int_equal(http_form_add(&form, "grant_type",
	    "urn:ietf:params:oauth:grant-type:device_code", &err), ML_OK);
	assert_string_equal(form, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code");
	secret_free(form);
}

static void
url_origin(void **state)
{
	char o[64];

	http_url_origin("https://user:pw@kc.example.test:8443/realms/x?code=1#f", o, sizeof o);
	assert_string_equal(o, "https://kc.example.test:8443");
	http_url_origin("https://a@b@kc.example.test/x", o, sizeof o);
	assert_string_equal(o, "https://kc.example.test");
	http_url_origin("http://127.0.0.1:9?token=abc", o, sizeof o);
	assert_string_equal(o, "http://127.0.0.1:9");
	http_url_origin("https://[::1]:8443/x", o, sizeof o);
	assert_string_equal(o, "https://[::1]:8443");
	http_url_origin("https://k\x1b[2Jc/x", o, sizeof o);
	assert_string_equal(o, "https://k?[2Jc");
	http_url_origin("no scheme", o, sizeof o);
	assert_string_equal(o, "(invalid URL)");
	http_url_origin(NULL, o, sizeof o);
	assert_string_equal(o, "(invalid URL)");
	http_url_origin("https://a-very-long-host-name.example.test/", o, 12);
	assert_string_equal(o, "https://a-v");
}

static void
header_injection_refused(void **state)
{
	static const char *const bad[] = { "X-A: 1\r\nX-B: 2", NULL };
	struct http_request req = { 0 };
	struct http_response resp;
	struct ml_err err;

	req.method = "GET";
	req.url = "http://127.0.0.1:9/x";
	req.bearer = "tok\r\nX-Evil: 1";
	assert_int_equal(http_perform(NULL, &req, &resp, &err), ML_EFAIL);
	msg_has(err.msg, "line break");
	msg_lacks(err.msg, "tok");
	http_response_free(&resp);

	req.bearer = NULL;
	req.headers = bad;
	assert_int_equal(http_perform(NULL, &req, &resp, &err), ML_EFAIL);
	http_response_free(&resp);

	req.headers = NULL;
	req.method = "GET /x HTTP/1.1\r\nX-Evil: 1\r\n\r\nGET";
	assert_int_equal(http_perform(NULL, &req, &resp, &err), ML_EFAIL);
	http_response_free(&resp);
}

static void
only_http_and_https(void **state)
{
	static const char *const urls[] = {
		"file:///etc/passwd", "ftp://127.0.0.1:9/x", "gopher://127.0.0.1:9/", "dict://127.0.0.1:9/"
	};
	struct http_request req = { 0 };
	struct http_response resp;
	struct ml_err err;

	req.method = "GET";
	for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
		req.url = urls[i];
		assert_int_equal(http_perform(NULL, &req, &resp, &err), ML_EUSAGE);
		assert_null(resp.body);
		http_response_free(&resp);
	}
}

/* ---- the loopback server (child process) ---- */

static void
srv_write(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;	/* the client gave up: fine, that may be the test */
		s += w;
		n -= (size_t)w;
	}
}

static void
srv_puts(int fd, const char *s)
{
	srv_write(fd, s, strlen(s));
}

static void
srv_msleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Holds a connection for up to ms, or until the client hangs up (so the next test's
 * request is not kept waiting behind a stall the client already gave up on). */
static void
srv_stall(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;
	int n;

	while ((n = poll(&p, 1, ms)) < 0 && errno == EINTR)
		;
	/* Readable means hung up: the request was read whole before. */
	if (n == 1 && read(fd, &c, 1) < 0)
		return;
}

static void
srv_reply(int fd, const char *status, const char *ctype, const char *body)
{
	char head[512];

	(void)snprintf(head, sizeof head, "HTTP/1.1 %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
	    status, ctype, strlen(body));
	srv_puts(fd, head);
	srv_puts(fd, body);
}

static void
srv_fill(int fd, size_t n)
{
	static char block[65536];

	memset(block, 'a', sizeof block);
	while (n > 0) {
		size_t k = n < sizeof block ? n : sizeof block;

		srv_write(fd, block, k);
		n -= k;
	}
}

static void
srv_answer(int fd, const char *req)
{
	char path[256] = "", head[512], body[2048];
	const char *reqbody = strstr(req, "\r\n\r\n");

	reqbody = reqbody != NULL ? reqbody + 4 : "";
	if (sscanf(req, "%*s %255s", path) != 1)
		return;
	if (strcmp(path, "/echo") == 0) {
		srv_reply(fd, "200 OK", "text/plain", req);
	} else if (strcmp(path, "/redirect") == 0) {
		srv_puts(fd, "HTTP/1.1 302 Found\r\nLocation: /followed\r\nContent-Length: 5\r\n\r\n"
		    "moved");
	} else if (strcmp(path, "/followed") == 0) {
		srv_reply(fd, "200 OK", "text/plain", "followed");
	} else if (strcmp(path, "/big-cl") == 0) {
		(void)snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
		    HTTP_MAX_BODY + 1);
		srv_puts(fd, head);
		srv_fill(fd, (size_t)HTTP_MAX_BODY + 1);
	} else if (strcmp(path, "/big-close") == 0 || strcmp(path, "/exact-close") == 0) {
		/* No length: only the write callback's count can stop it. */
		srv_puts(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
		srv_fill(fd, (size_t)HTTP_MAX_BODY + (path[1] == 'b' ? 1 : 0));
	} else if (strcmp(path, "/headers") == 0) {
		srv_puts(fd, "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\n"
		    "request-id: req_123\r\nX-Request-Id: later\r\n"
		    "Content-Type: application/json; charset=utf-8\r\n"
		    "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 2\r\n\r\n{}");
	} else if (strcmp(path, "/retry-date") == 0) {
		time_t when = time(NULL) + 100;
		struct tm tm;
		char date[64];

		(void)strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&when, &tm));
		(void)snprintf(head, sizeof head, "HTTP/1.1 503 Unavailable\r\nRetry-After: %s\r\n"
		    "x-request-id: xr-9\r\nContent-Length: 0\r\n\r\n", date);
		srv_puts(fd, head);
	} else if (strcmp(path, "/stream") == 0) {
		srv_puts(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
		    "Content-Length: 12\r\n\r\nchunk1");
		struct pollfd go = { .fd = srv_go[0], .events = POLLIN };
		char c;

		if (poll(&go, 1, 30000) == 1 && read(srv_go[0], &c, 1) != 1)
			return;
		srv_puts(fd, "chunk2");
	} else if (strcmp(path, "/stream-err") == 0) {
		srv_reply(fd, "500 Internal Server Error", "application/json", "{\"error\":\"boom\"}");
	} else if (strcmp(path, "/stall") == 0) {
		srv_puts(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
		srv_stall(fd, 60000);
	} else if (strncmp(path, "/silent", 7) == 0) {
		srv_stall(fd, 60000);
	} else if (strcmp(path, "/token-split") == 0) {
		/* The token straddles two reads: redaction must still hold. */
		static const char one[] = "{\"access_token\": \"SECRET-ACC";
		static const char two[] = "ESS-0123456789\",\"refresh_token\":\"SECRET-REFRESH\","
		    "\"token_type\":\"Bearer\",\"expires_in\":300}";

		(void)snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: application/json"
		    "\r\nSet-Cookie: KC_SESSION=SECRET-COOKIE\r\nContent-Length: %zu\r\n\r\n",
		    strlen(one) + strlen(two));
		srv_puts(fd, head);
		srv_puts(fd, one);
		srv_msleep(150);
		srv_puts(fd, two);
	} else if (strcmp(path, "/realms/t/.well-known/openid-configuration") == 0) {
		(void)snprintf(body, sizeof body, "{\"issuer\":\"%s/realms/t\","
		    "\"device_authorization_endpoint\":\"%s/realms/t/device\","
		    "\"token_endpoint\":\"%s/realms/t/token\","
		    "\"revocation_endpoint\":\"%s/realms/t/revoke\"}",
		    srv_base, srv_base, srv_base, srv_base);
		srv_reply(fd, "200 OK", "application/json", body);
	} else if (strcmp(path, "/realms/t/device") == 0) {
		(void)snprintf(body, sizeof body, "{\"device_code\":\"DC-1\",\"user_code\":\"ABCD\","
		    "\"verification_uri\":\"%s/realms/t/verify\",\"expires_in\":60}", srv_base);
		if (strstr(reqbody, "scope=openid%20bogus") != NULL)
			srv_reply(fd, "400 Bad Request", "application/json", "{\"error\":"
			    "\"invalid_scope\",\"error_description\":\"Invalid scopes: bogus\"}");
		else
			srv_reply(fd, strstr(reqbody, "scope=openid%20offline_access") != NULL &&
			    strstr(reqbody, "client_id=cli") != NULL ? "200 OK" : "400 Bad Request",
			    "application/json", body);
	} else if (strcmp(path, "/realms/t/token") == 0) {
		if (strstr(reqbody, "grant_type=refresh_token&refresh_token=RT-1&client_id=cli") != NULL)
			srv_reply(fd, "400 Bad Request", "application/json",
			    "{\"error\":\"invalid_grant\",\"error_description\":\"Token is not active\"}");
		else if (strstr(reqbody, "refresh_token=RT-ECHO") != NULL)
			srv_reply(fd, "400 Bad Request", "application/json", "{\"error\":"
			    "\"invalid_request\",\"error_description\":\"bad token RT-ECHO\"}");
		else if (strstr(reqbody, "device_code=DC-1") != NULL)
			srv_reply(fd, "400 Bad Request", "application/json",
			    "{\"error\":\"authorization_pending\"}");
		else
			srv_reply(fd, "500 Internal Server Error", "text/plain", "unexpected");
	} else if (strcmp(path, "/realms/t/revoke") == 0) {
		if (strstr(reqbody, "token=RT-2&token_type_hint=refresh_token&client_id=cli") != NULL)
			srv_reply(fd, "200 OK", "application/json", "{}");
		else
			srv_reply(fd, "400 Bad Request", "application/json", "{\"error\":"
			    "\"invalid_request\",\"error_description\":\"unknown token RT-3\"}");
	} else if (strcmp(path, "/moved/.well-known/openid-configuration") == 0) {
		srv_puts(fd, "HTTP/1.1 301 Moved\r\nLocation: https://portal.example.test/login\r\n"
		    "Content-Length: 0\r\n\r\n");
	} else {
		srv_reply(fd, "404 Not Found", "text/plain", "no");
	}
}

/* Read one request (headers and a Content-Length body) into buf. */
static void
srv_read_request(int fd, char *buf, size_t cap)
{
	size_t n = 0, want = 0;
	char *end = NULL;

	while (n + 1 < cap) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);

		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
		if (end == NULL && (end = strstr(buf, "\r\n\r\n")) != NULL) {
			const char *cl = strstr(buf, "Content-Length: ");

			want = (size_t)(end + 4 - buf) + (cl != NULL && cl < end ?
			    strtoul(cl + 16, NULL, 10) : 0);
		}
		if (end != NULL && n >= want)
			break;
	}
	buf[n] = '\0';
}

static void
srv_serve(int ls)
{
	static char req[65536];

	(void)signal(SIGPIPE, SIG_IGN);
	alarm(300);	/* never outlive a broken test run */
	for (;;) {
		int c = accept(ls, NULL, NULL);

		if (c < 0)
			_exit(0);
		srv_read_request(c, req, sizeof req);
		srv_answer(c, req);
		close(c);
	}
}

static int
srv_start(void **state)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	int ls, one = 1;

	ls = socket(AF_INET, SOCK_STREAM, 0);
	if (ls < 0)
		return -1;
	(void)setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;
	if (bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 8) != 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &sl) != 0) {
		close(ls);
		return -1;
	}
	srv_port = ntohs(sa.sin_port);
	(void)snprintf(srv_base, sizeof srv_base, "http://127.0.0.1:%d", srv_port);
	if (pipe(srv_go) != 0) {
		close(ls);
		return -1;
	}
	fflush(NULL);
	srv_pid = fork();
	if (srv_pid < 0) {
		close(ls);
		return -1;
	}
	if (srv_pid == 0)
		srv_serve(ls);
	close(ls);	/* the child holds it; connects queue in its backlog */
	return 0;
}

static int
srv_stop(void **state)
{
	if (srv_pid > 0) {
		(void)kill(srv_pid, SIGKILL);
		(void)waitpid(srv_pid, NULL, 0);
	}
	srv_pid = -1;
	http_interrupted = 0;
	for (int i = 0; i < 2; i++) {
		if (srv_go[i] >= 0)
			(void)close(srv_go[i]);
		srv_go[i] = -1;
	}
	return 0;
}

static int
get(const struct http_opts *o, const char *path, struct http_response *resp,
    struct ml_err *err)
{
	struct http_request req = { 0 };
	char url[256];

	(void)snprintf(url, sizeof url, "%s%s", srv_base, path);
	req.method = "GET";
	req.url = url;
	return http_perform(o, &req, resp, err);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- transfers ---- */

static void
size_cap(void **state)
{
	struct http_response resp;
	struct ml_err err;

	assert_int_equal(get(NULL, "/big-close", &resp, &err), ML_ENET);
	msg_has(err.msg, "response from http://127.0.0.1:");
	msg_has(err.msg, "too large");
	msg_lacks(err.msg, "/big-close");
	http_response_free(&resp);

	assert_int_equal(get(NULL, "/big-cl", &resp, &err), ML_ENET);
	msg_has(err.msg, "too large");
	http_response_free(&resp);

	/* Exactly the cap is fine. */
	assert_int_equal(get(NULL, "/exact-close", &resp, &err), ML_OK);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.len, HTTP_MAX_BODY);
	assert_int_equal(resp.body[HTTP_MAX_BODY], '\0');
	http_response_free(&resp);
}

static void
redirect_not_followed(void **state)
{
	struct http_response resp;
	struct ml_err err;

	assert_int_equal(get(NULL, "/redirect", &resp, &err), ML_OK);
	assert_int_equal(resp.status, 302);
	assert_string_equal(resp.body, "moved");
	http_response_free(&resp);
}

static void
request_as_sent(void **state)
{
	static const char *const extra[] = { "X-Test: 1", "Accept: application/json", NULL };
	struct http_request req = { 0 };
	struct http_response resp;
	struct ml_err err;
	char url[128];

	(void)snprintf(url, sizeof url, "%s/echo", srv_base);
	req.method = "POST";
	req.url = url;
	req.content_type = "application/x-www-form-urlencoded";
	req.body = "a=b&c=d";
	req.body_len = 7;
	req.bearer = "tok-123";
	req.headers = extra;
	assert_int_equal(http_perform(NULL, &req, &resp, &err), ML_OK);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.content_type, "text/plain");
	assert_int_equal(resp.date, 784111777);
	msg_has(resp.body, "POST /echo HTTP/1.1\r\n");
	msg_has(resp.body, "\r\nUser-Agent: mlauth/" MLAUTH_VERSION "\r\n");
	msg_has(resp.body, "\r\nAuthorization: Bearer tok-123\r\n");
	msg_has(resp.body, "\r\nContent-Type: application/x-www-form-urlencoded\r\n");
	msg_has(resp.body, "\r\nX-Test: 1\r\n");
	msg_has(resp.body, "\r\nAccept: application/json\r\n");
	msg_lacks(resp.body, "Expect:");
	assert_int_equal(resp.len, strlen(resp.body));
	assert_string_equal(resp.body + resp.len - 11, "\r\n\r\na=b&c=d");
	http_response_free(&resp);

	/* Any method: the proxy passes the client's on, body and all. */
	req.method = "PATCH";
	req.bearer = NULL;
	req.headers = NULL;
	assert_int_equal(http_perform(NULL, &req, &resp, &err), ML_OK);
	msg_has(resp.body, "PATCH /echo HTTP/1.1\r\n");
	assert_string_equal(resp.body + resp.len - 11, "\r\n\r\na=b&c=d");
	http_response_free(&resp);
	req.method = "DELETE";
	req.body = NULL;
	req.body_len = 0;
	assert_int_equal(http_perform(NULL, &req, &resp, &err), ML_OK);
	msg_has(resp.body, "DELETE /echo HTTP/1.1\r\n");
	http_response_free(&resp);
	req.method = "HEAD";
	assert_int_equal(http_perform(NULL, &req, &resp, &err), ML_OK);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.len, 0);
	http_response_free(&resp);
}

struct header_log {
	char buf[1024];
	size_t len;
	int verdict;
};

static int
log_header(const char *name, size_t nlen, const char *value, size_t vlen, void *arg)
{
	struct header_log *h = arg;
	int n = name == NULL ?
	    snprintf(h->buf + h->len, sizeof h->buf - h->len, "[%.*s]", (int)vlen, value) :
	    snprintf(h->buf + h->len, sizeof h->buf - h->len, "%.*s=%.*s;", (int)nlen, name,
	    (int)vlen, value);

	if (n > 0 && (size_t)n < sizeof h->buf - h->len)
		h->len += (size_t)n;
	return h->verdict;
}

static void
headers_parsed(void **state)
{
	struct http_response resp;
	struct ml_err err;

	assert_int_equal(get(NULL, "/headers", &resp, &err), ML_OK);
	assert_int_equal(resp.status, 429);
	assert_int_equal(resp.retry_after, 120);
	assert_string_equal(resp.request_id, "req_123");
	assert_string_equal(resp.content_type, "application/json; charset=utf-8");
	assert_int_equal(resp.date, 784111777);
	assert_string_equal(resp.body, "{}");
	http_response_free(&resp);

	/* Every line reaches on_header as sent, after the status line; a refusal stops. */
	{
		struct header_log h = { .len = 0, .verdict = 0 };
		struct http_request req = { .method = "GET", .on_header = log_header,
			.header_arg = &h };
		char url[128];

		(void)snprintf(url, sizeof url, "%s/headers", srv_base);
		req.url = url;
		assert_int_equal(http_perform(NULL, &req, &resp, &err), ML_OK);
		assert_string_equal(h.buf, "[HTTP/1.1 429 Too Many Requests]Retry-After=120;"
		    "request-id=req_123;X-Request-Id=later;"
		    "Content-Type=application/json; charset=utf-8;"
		    "Date=Sun, 06 Nov 1994 08:49:37 GMT;Content-Length=2;");
		assert_string_equal(resp.body, "{}");
		http_response_free(&resp);
		h.len = 0;
		h.verdict = ML_EAPI;
		assert_int_equal(http_perform(NULL, &req, &resp, &err), ML_EAPI);
		assert_string_equal(h.buf, "[HTTP/1.1 429 Too Many Requests]");
		http_response_free(&resp);
	}

	assert_int_equal(get(NULL, "/retry-date", &resp, &err), ML_OK);
	assert_int_equal(resp.status, 503);
	assert_in_range(resp.retry_after, 95, 100);
	assert_string_equal(resp.request_id, "xr-9");
	assert_int_equal(resp.date, 0);
	assert_non_null(resp.body);
	assert_int_equal(resp.len, 0);
	http_response_free(&resp);
}

struct collect {
	char buf[64];
	size_t len;
	int calls;
	int verdict;
};

static int
collect_chunk(const char *buf, size_t len, void *arg)
{
	struct collect *c = arg;

	if (c->calls++ == 0)
		assert_int_equal(write(srv_go[1], "g", 1), 1);
	if (c->len + len < sizeof c->buf) {
		memcpy(c->buf + c->len, buf, len);
		c->len += len;
		c->buf[c->len] = '\0';
	}
	return c->verdict;
}

static void
streaming(void **state)
{
	struct http_request req = { 0 };
	struct http_response resp;
	struct ml_err err;
	struct collect c = { .len = 0 };
	char url[128];

	(void)snprintf(url, sizeof url, "%s/stream", srv_base);
	req.method = "GET";
	req.url = url;
	req.on_chunk = collect_chunk;
	req.chunk_arg = &c;
	assert_int_equal(http_perform(NULL, &req, &resp, &err), ML_OK);
	assert_int_equal(resp.status, 200);
	assert_null(resp.body);
	assert_int_equal(resp.len, 12);
	assert_string_equal(c.buf, "chunk1chunk2");
	/* Delivered as it came, not at the end: the second chunk was only sent once the
	 * first had reached the reader. */
	assert_int_equal(c.calls, 2);
	http_response_free(&resp);

	/* An error answer is collected for parsing, not streamed. */
	memset(&c, 0, sizeof c);
	(void)snprintf(url, sizeof url, "%s/stream-err", srv_base);
	assert_int_equal(http_perform(NULL, &req, &resp, &err), ML_OK);
	assert_int_equal(resp.status, 500);
	assert_string_equal(resp.body, "{\"error\":\"boom\"}");
	assert_int_equal(c.calls, 0);
	http_response_free(&resp);

	/* The reader stops the transfer: its verdict comes back. */
	memset(&c, 0, sizeof c);
	c.verdict = ML_EAPI;
	(void)snprintf(url, sizeof url, "%s/stream", srv_base);
	assert_int_equal(http_perform(NULL, &req, &resp, &err), ML_EAPI);
	assert_int_equal(c.calls, 1);
	http_response_free(&resp);
}

static void
on_alarm(int sig)
{
	http_interrupted = 1;
}

static void
interrupted(void **state)
{
	struct sigaction sa;
	struct http_response resp;
	struct ml_err err;
	double t0;

	http_interrupted = 1;
	assert_int_equal(get(NULL, "/followed", &resp, &err), ML_EINTR);
	http_response_free(&resp);
	http_interrupted = 0;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
	t0 = now_s();
	alarm(1);
	assert_int_equal(get(NULL, "/stall", &resp, &err), ML_EINTR);
	/* Not the server's 60 s stall: the interrupt ended it (the bound is for a hang). */
	assert_true(now_s() - t0 < 30);
	msg_has(err.msg, "interrupted");
	http_response_free(&resp);
	http_interrupted = 0;
}

static void
timeout_names_host_only(void **state)
{
	struct http_opts o = { .timeout = 1 };
	struct http_response resp;
	struct ml_err err;
	double t0 = now_s();

	assert_int_equal(get(&o, "/silent?q=SECRET", &resp, &err), ML_ENET);
	assert_true(now_s() - t0 < 30);	/* the 1 s timeout, not the 60 s stall */
	msg_has(err.msg, srv_base);
	msg_lacks(err.msg, "silent");
	msg_lacks(err.msg, "SECRET");
	http_response_free(&resp);
}

static void
refused(void **state)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	struct http_request req = { 0 };
	struct http_response resp;
	struct ml_err err;
	char url[128], want[64];
	int s = socket(AF_INET, SOCK_STREAM, 0);

	/* A port that was free a moment ago and has no listener. */
	assert_true(s >= 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
	close(s);
	(void)snprintf(url, sizeof url, "http://u:pw@127.0.0.1:%d/realms/x?code=c0de",
	    ntohs(sa.sin_port));
	(void)snprintf(want, sizeof want, "cannot reach http://127.0.0.1:%d: ", ntohs(sa.sin_port));
	req.method = "GET";
	req.url = url;
	assert_int_equal(http_perform(NULL, &req, &resp, &err), ML_ENET);
	msg_has(err.msg, want);
	msg_lacks(err.msg, "pw");
	msg_lacks(err.msg, "c0de");
	http_response_free(&resp);
}

static void
trace_redacted(void **state)
{
	struct http_opts o = { .verbose = 2 };
	struct http_request req = { 0 };
	struct http_response resp;
	struct ml_err err;
	char url[128], path[] = "/tmp/mlauth-trace-XXXXXX", *trace;
	static const char form[] =
		"grant_type=refresh_token&refresh_token=SECRET-FORM&code=SECRET-CODE&client_id=cli";
	int fd, saved;
	long n;
	FILE *fp;

	(void)snprintf(url, sizeof url, "%s/token-split", srv_base);
	req.method = "POST";
	req.url = url;
	req.bearer = "SECRET-BEARER";
	req.body = form;
	req.body_len = strlen(form);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stderr);
	saved = dup(2);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	assert_int_equal(http_perform(&o, &req, &resp, &err), ML_OK);
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	close(fd);

	assert_int_equal(resp.status, 200);
	msg_has(resp.body, "SECRET-ACCESS-0123456789");	/* the caller gets it all */
	http_response_free(&resp);

	fp = fopen(path, "r");
	assert_non_null(fp);
	trace = calloc(1, 1 << 16);
	assert_non_null(trace);
	n = (long)fread(trace, 1, (1 << 16) - 1, fp);
	fclose(fp);
	unlink(path);
	assert_true(n > 0);
	msg_has(trace, "> POST /token-split HTTP/1.1");
	msg_has(trace, "> Authorization: [redacted]");
	msg_has(trace, "< Set-Cookie: [redacted]");
	msg_has(trace, "> grant_type=refresh_token&refresh_token=[redacted]&code=[redacted]"
	    "&client_id=cli");
	msg_has(trace, "< {\"access_token\": \"[redacted]\",\"refresh_token\":\"[redacted]\","
	    "\"token_type\":\"Bearer\"");
	msg_lacks(trace, "SECRET");
	free(trace);
}

/* ---- the OIDC requests over the wire ---- */

static void
oidc_over_loopback(void **state)
{
	struct oidc_provider p;
	struct oidc_device d;
	struct oidc_tokens t;
	struct ml_err err;
	char issuer[128];

	(void)snprintf(issuer, sizeof issuer, "%s/realms/t", srv_base);
	assert_int_equal(oidc_discover(NULL, issuer, &p, &err), ML_OK);
	assert_int_equal(p.date, 784111777);
	oidc_provider_free(&p);
	/* One trailing slash is dropped to build the URL, but the issuer must match exactly. */
	(void)snprintf(issuer, sizeof issuer, "%s/realms/t/", srv_base);
	assert_int_equal(oidc_discover(NULL, issuer, &p, &err), ML_EFAIL);
	msg_has(err.msg, "names issuer");
	oidc_provider_free(&p);

	(void)snprintf(issuer, sizeof issuer, "%s/realms/t", srv_base);
	assert_int_equal(oidc_discover(NULL, issuer, &p, &err), ML_OK);
	assert_int_equal(oidc_device_start(NULL, &p, "cli", "openid offline_access", &d, &err),
	    ML_OK);
	assert_string_equal(d.user_code, "ABCD");
	assert_int_equal(d.interval, 5);
	assert_int_equal(oidc_device_poll(NULL, &p, "cli", &d, &t, &err), OIDC_PENDING);
	oidc_tokens_free(&t);
	oidc_device_free(&d);
	/* invalid_scope: ML_EUSAGE naming the scope, so login can retry with "openid". */
	assert_int_equal(oidc_device_start(NULL, &p, "cli", "openid bogus", &d, &err), ML_EUSAGE);
	msg_has(err.msg, "scope \"openid bogus\"");
	msg_has(err.msg, "invalid_scope (Invalid scopes: bogus)");
	assert_null(d.device_code);
	oidc_tokens_free(&t);
	oidc_device_free(&d);
	assert_int_equal(oidc_refresh(NULL, &p, "cli", "RT-1", &t, &err), ML_ELOGIN);
	msg_has(err.msg, "session expired or revoked: run mlauth login");
	assert_null(t.access_token);
	/* A provider echoing the token it was sent: scrubbed from the message. */
	assert_int_equal(oidc_refresh(NULL, &p, "cli", "RT-ECHO", &t, &err), ML_EFAIL);
	msg_has(err.msg, "invalid_request (bad token [redacted])");
	msg_lacks(err.msg, "RT-ECHO");
	oidc_tokens_free(&t);
	assert_int_equal(oidc_revoke(NULL, &p, "cli", "RT-2", &err), ML_OK);
	assert_int_equal(oidc_revoke(NULL, &p, "cli", "RT-3", &err), ML_EFAIL);
	msg_has(err.msg, "answered HTTP 400: invalid_request (unknown token [redacted])");
	msg_lacks(err.msg, "RT-3");
	oidc_provider_free(&p);

	/* A captive portal's redirect: an error naming the host, never followed. */
	(void)snprintf(issuer, sizeof issuer, "%s/moved", srv_base);
	assert_int_equal(oidc_discover(NULL, issuer, &p, &err), ML_ENET);
	msg_has(err.msg, srv_base);
	msg_has(err.msg, "redirect (HTTP 301)");
	oidc_provider_free(&p);

	/* Discovery that is not there at all. */
	(void)snprintf(issuer, sizeof issuer, "%s/realms/none", srv_base);
	assert_int_equal(oidc_discover(NULL, issuer, &p, &err), ML_EFAIL);
	msg_has(err.msg, "HTTP 404");
	oidc_provider_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(form_add_escapes),
		cmocka_unit_test(url_origin),
		cmocka_unit_test(header_injection_refused),
		cmocka_unit_test(only_http_and_https),
		cmocka_unit_test_setup_teardown(size_cap, srv_start, srv_stop),
		cmocka_unit_test_setup_teardown(redirect_not_followed, srv_start, srv_stop),
		cmocka_unit_test_setup_teardown(request_as_sent, srv_start, srv_stop),
		cmocka_unit_test_setup_teardown(headers_parsed, srv_start, srv_stop),
		cmocka_unit_test_setup_teardown(streaming, srv_start, srv_stop),
		cmocka_unit_test_setup_teardown(interrupted, srv_start, srv_stop),
		cmocka_unit_test_setup_teardown(timeout_names_host_only, srv_start, srv_stop),
		cmocka_unit_test(refused),
		cmocka_unit_test_setup_teardown(trace_redacted, srv_start, srv_stop),
		cmocka_unit_test_setup_teardown(oidc_over_loopback, srv_start, srv_stop),
	};
	const struct CMUnitTest early[] = {
		cmocka_unit_test(early_exit_before_libcurl),
	};
	int rc;

	if (cmocka_run_group_tests_name("before libcurl is loaded", early, NULL, NULL) != 0)
		return 1;
	if (http_global_init(NULL) != ML_OK)
		return 1;
	/* Proxy settings of the caller's shell must not send 127.0.0.1 elsewhere. */
	(void)setenv("NO_PROXY", "*", 1);
	(void)setenv("no_proxy", "*", 1);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	http_global_cleanup();
	return rc;
}
