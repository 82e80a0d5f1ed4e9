/*
 * egress.c: the one decision about where a plain-http request goes.
 *
 * Plain http is allowed only to this machine (config_url_allowed), but an
 * http_proxy or all_proxy in the environment would carry such a request,
 * bearer token and all, in clear text to wherever the proxy is.  So for
 * plain http, mlauth decides the proxy itself (and hands libcurl exactly that
 * choice): a proxy on this machine is fine, any other refuses a request that
 * carries a secret.  https requests keep libcurl's own proxy handling: their
 * secrets travel inside TLS.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mlauth/egress.h"

#define EGRESS_HOST_MAX	256

bool
egress_host_loopback(const char *host, size_t len)
{
	char h[EGRESS_HOST_MAX];
	struct in_addr a4;

	if (len > 1 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof h)
		return false;
	memcpy(h, host, len);
	h[len] = '\0';
	if (strcasecmp(h, "localhost") == 0 || strcmp(h, "::1") == 0)
		return true;
	return inet_pton(AF_INET, h, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

/* The host part of a URL (scheme optional, user info skipped) as [*host, +*len). */
static void
egress_url_host(const char *url, const char **host, size_t *len)
{
	const char *p = strstr(url, "://"), *end, *at;

	p = p != NULL ? p + 3 : url;
	end = p + strcspn(p, "/?#");
	for (at = end; at > p && at[-1] != '@'; at--)
		;
	if (at > p)
		p = at;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));

		*host = p;
		*len = rb != NULL ? (size_t)(rb - p) + 1 : (size_t)(end - p);
		return;
	}
	*host = p;
	*len = strcspn(p, ":/?#");
	if (*len > (size_t)(end - p))
		*len = (size_t)(end - p);
}

/* One no_proxy entry against host: "*", the host itself, a domain suffix, an IPv4 CIDR. */
static bool
egress_entry_matches(const char *e, size_t el, const char *host, size_t hl)
{
	char ip[INET_ADDRSTRLEN], net[INET_ADDRSTRLEN];
	const char *slash = memchr(e, '/', el);
	struct in_addr a, n;
	unsigned long bits;
	char *end;

	if (el == 1 && e[0] == '*')
		return true;
	if (hl > 1 && host[0] == '[') {		/* curl matches IPv6 hosts without brackets */
		host++;
		hl -= 2;
	}
	if (slash != NULL) {
		bits = strtoul(slash + 1, &end, 10);
		if (end != e + el || bits > 32 || hl >= sizeof ip ||
		    (size_t)(slash - e) >= sizeof net)
			return false;
		(void)snprintf(ip, sizeof ip, "%.*s", (int)hl, host);
		(void)snprintf(net, sizeof net, "%.*s", (int)(slash - e), e);
		if (inet_pton(AF_INET, ip, &a) != 1 || inet_pton(AF_INET, net, &n) != 1)
			return false;
		return bits == 0 || ((ntohl(a.s_addr) ^ ntohl(n.s_addr)) >> (32 - bits)) == 0;
	}
	if (el > 0 && e[0] == '.') {
		e++;
		el--;
	}
	if (el == 0 || el > hl)
		return false;
	return strncasecmp(host + hl - el, e, el) == 0 &&
	    (hl == el || host[hl - el - 1] == '.');
}

static bool
egress_no_proxy(const char *list, const char *host, size_t hl)
{
	const char *e = list;

	while (*e != '\0') {
		size_t el;

		e += strspn(e, ", \t");
		el = strcspn(e, ", \t");
		if (el > 0 && egress_entry_matches(e, el, host, hl))
			return true;
		e += el;
	}
	return false;
}

static const char *
egress_env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

const char *
egress_http_proxy(const char *url, const char **var)
{
	static const char *const vars[] = { "http_proxy", "all_proxy", "ALL_PROXY" };
	const char *proxy = NULL, *np, *host;
	size_t hl;

	for (size_t i = 0; proxy == NULL && i < sizeof vars / sizeof vars[0]; i++)
		if ((proxy = egress_env(vars[i])) != NULL && var != NULL)
			*var = vars[i];
	if (proxy == NULL)
		return NULL;
	egress_url_host(url, &host, &hl);
	if ((np = egress_env("no_proxy")) == NULL)
		np = egress_env("NO_PROXY");
	return np != NULL && egress_no_proxy(np, host, hl) ? NULL : proxy;
}

int
egress_http_check(const char *url, bool carries_secret, const char **proxy,
    struct ml_err *err)
{
	const char *var = "http_proxy", *host, *phost;
	size_t hl, phl;

	*proxy = egress_http_proxy(url, &var);
	if (*proxy == NULL || !carries_secret)
		return ML_OK;
	egress_url_host(*proxy, &phost, &phl);
	if (egress_host_loopback(phost, phl))
		return ML_OK;	/* the request stays on this machine */
	egress_url_host(url, &host, &hl);
	return err_set(err, ML_EUSAGE, "refusing to send a token to http://%.*s through the "
	    "proxy %.*s (%s): it would leave this machine unencrypted; use https, or add "
	    "%.*s to no_proxy", (int)hl, host, (int)(phl < 128 ? phl : 128), phost, var,
	    (int)hl, host);
}
