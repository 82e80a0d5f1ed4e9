/*
 * proxy.h: a local gateway to the messages API.  It listens on 127.0.0.1,
 * accepts a request only with its per-run key (x-api-key or Authorization:
 * Bearer), swaps the key for a fresh access token and streams the answer back.
 */
#ifndef MLAUTH_PROXY_H
#define MLAUTH_PROXY_H

#include <stdbool.h>

#include "mlauth/api.h"
#include "mlauth/config.h"
#include "mlauth/err.h"

#define PROXY_KEY_PREFIX	"mlauth-proxy-"
#define PROXY_KEY_LEN		(sizeof PROXY_KEY_PREFIX - 1 + 64)
/* The largest request body taken (Anthropic's own limit): it is kept to be sent again. */
#define PROXY_MAX_BODY		(32 * 1024 * 1024)

struct proxy_opts {
	const struct config *cfg;
	int verbose;			/* >= 1: one line per request through say */
	long min_valid;			/* seconds a forwarded token must still be valid */
	unsigned port;			/* 0: a free one */
	api_say_fn say;			/* token warnings and the request log; may be NULL */
	void *say_arg;
};

struct proxy;

/*
 * Load libmicrohttpd, make the key, listen on 127.0.0.1 and serve from its
 * own threads.  The session's token is fetched first, so a proxy that cannot
 * get one (ML_ELOGIN: not logged in) fails here rather than on each request.
 */
int proxy_start(const struct proxy_opts *o, struct proxy **out, struct ml_err *err);
/* "http://127.0.0.1:PORT" and the per-run key (a secret). */
const char *proxy_url(const struct proxy *p);
const char *proxy_key(const struct proxy *p);
/* Requests forwarded so far, and tokens replaced after the API refused one. */
unsigned long proxy_requests(const struct proxy *p);
unsigned long proxy_refreshes(struct proxy *p);
/*
 * Stop taking connections, give open requests up to grace_ms to finish, cut
 * the rest (a stream then ends without its last event) and free p.
 */
void proxy_stop(struct proxy *p, long grace_ms);

/*
 * The running proxy's address and key for `mlauth proxy --env`, kept in
 * $XDG_STATE_HOME/mlauth/proxy-PROFILE.json (0600) while it runs.  proxy_publish
 * writes it and holds a lock on it in *fd (close it at exit: proxy_unpublish);
 * a second proxy of the profile is refused while the first runs.
 */
int proxy_publish(const struct proxy *p, const char *profile, int *fd, struct ml_err *err);
void proxy_unpublish(int fd);
/* The published url and key (allocated; secret_free the key), or ML_EFAIL: none running. */
int proxy_lookup(const char *profile, char **url, char **key, struct ml_err *err);

#endif
