/*
 * session.c: the rules of a session (see session.h), in one place for the
 * front's fast path, token, login, status and doctor.  Nothing here loads a
 * heavy library or touches the network: the front links it.
 */
#include <stdio.h>
#include <string.h>

#include "mlauth/jwt.h"
#include "mlauth/session.h"
#include "mlauth/util.h"

int64_t
session_min_valid(int64_t expires_at, int64_t obtained_at, long min_valid)
{
	int64_t lifetime = expires_at - obtained_at;

	if (obtained_at > 0 && lifetime > 0 && min_valid > lifetime / 2)
		return lifetime / 2;
	return min_valid;
}

bool
session_token_fresh(int64_t expires_at, int64_t obtained_at, long min_valid, int64_t now)
{
	return expires_at - now > session_min_valid(expires_at, obtained_at, min_valid);
}

int64_t
session_keepalive_at(const struct record *r)
{
	/*
	 * An offline session (refresh_expires_at 0) has no window to keep open
	 * from here: its idle limit (Keycloak's Offline Session Idle, 30 days)
	 * is far longer than an access token, so any use renews it.
	 */
	if (r->refresh_token == NULL || r->refresh_expires_at == 0 ||
	    r->obtained_at <= 0 || r->refresh_expires_at <= r->obtained_at)
		return INT64_MAX;
	return r->obtained_at + (r->refresh_expires_at - r->obtained_at) / 2;
}

bool
session_fresh(const struct record *r, long min_valid, int64_t now)
{
	if (session_refused(r))
		return false;
	return session_token_fresh(r->expires_at, r->obtained_at, min_valid, now) &&
	    now < session_keepalive_at(r);
}

int64_t
session_cache_until(const struct record *r)
{
	int64_t k = session_keepalive_at(r);

	return k < r->expires_at ? k : r->expires_at;
}

bool
session_refused(const struct record *r)
{
	return r->refused_at != 0;
}

bool
session_usable(const struct record *r, int64_t now)
{
	if (session_refused(r))
		return false;
	return r->expires_at > now || (r->refresh_token != NULL &&
	    (r->refresh_expires_at == 0 || r->refresh_expires_at > now));
}

void
session_who(const struct jwt_claims *at, const struct jwt_claims *id, struct session_who *w)
{
	w->user = id->preferred_username ? id->preferred_username : at->preferred_username;
	w->email = id->email ? id->email : at->email;
	w->name = id->name ? id->name : at->name ? at->name : w->user;
}

void
session_describe_end(const struct record *r, int64_t now, bool brief, char *buf, size_t len)
{
	bool online = r->session == RECORD_SESSION_ONLINE;
	char when[32], in[32];

	util_format_time(session_refused(r) ? r->refused_at : r->refresh_expires_at, when,
	    sizeof when);
	if (session_refused(r)) {
		(void)snprintf(buf, len, "session ended by the provider (refresh refused at %s)",
		    when);
	} else if (r->refresh_token == NULL) {
		(void)snprintf(buf, len, "no refresh token");
	} else if (r->session == RECORD_SESSION_OFFLINE) {
		/*
		 * Keycloak answers refresh_expires_in 0 for an offline token, yet
		 * its Offline Session Idle (30 days by default) still applies.
		 */
		(void)snprintf(buf, len, brief ? "offline session, renewed by every refresh" :
		    "offline: no fixed end, but it lapses after the provider's offline idle "
		    "time without a refresh (Keycloak: 30 days by default); every refresh "
		    "renews it");
	} else if (r->refresh_expires_at == 0) {
		(void)snprintf(buf, len, brief ? "session end not announced" :
		    "no end announced by the provider");
	} else if (r->refresh_expires_at > now) {
		util_format_duration(r->refresh_expires_at - now, in, sizeof in);
		if (brief)
			(void)snprintf(buf, len, "%ssession until %s", online ? "online " : "", when);
		else if (online)
			(void)snprintf(buf, len, "online, until %s (in %s) unless refreshed before; "
			    "ends with the provider's login session", when, in);
		else
			(void)snprintf(buf, len, "until %s (in %s)", when, in);
	} else {
		(void)snprintf(buf, len, "%sexpired at %s", brief ? "session " : "", when);
	}
}
