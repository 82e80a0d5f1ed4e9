/* egress.h: where a plain-http request would go, and whether it may carry a secret. */
#ifndef MLAUTH_EGRESS_H
#define MLAUTH_EGRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "mlauth/err.h"

/* host[0..len) names this machine: 127.0.0.0/8, ::1 (bracketed or not), localhost. */
bool egress_host_loopback(const char *host, size_t len);

/*
 * The proxy libcurl would take from the environment for the plain-http url
 * (http_proxy, then all_proxy, ALL_PROXY; curl ignores HTTP_PROXY), or NULL
 * when none is set or no_proxy/NO_PROXY excludes url's host ("*", a host,
 * a .domain suffix, an IPv4 CIDR).  Borrowed from the environment.
 */
const char *egress_http_proxy(const char *url, const char **var);

/*
 * For a plain-http url: set *proxy to the proxy the request must use (NULL:
 * go direct).  A request carrying a secret (a bearer token, a refresh token,
 * a device code) through a proxy that is not on this machine would leave it
 * in clear text: that is ML_EUSAGE, with the fix in the message.
 */
int egress_http_check(const char *url, bool carries_secret, const char **proxy,
    struct ml_err *err);

#endif
