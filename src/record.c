/* record.c: the stored session as one JSON object (what store_* keep per profile). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mlauth/config.h"
#include "mlauth/record.h"
#include "mlauth/secret.h"

static int
put_str(json_t *o, const char *k, const char *v)
{
	if (v == NULL)
		return 0;
	return json_object_set_new(o, k, json_string(v));
}

const char *
record_session_name(enum record_session s)
{
	return s == RECORD_SESSION_ONLINE ? "online" : s == RECORD_SESSION_OFFLINE ?
	    "offline" : NULL;
}

/* A kind this version does not know (a newer mlauth's) reads as unknown, not as an error. */
static int
get_session(json_t *o, enum record_session *dst)
{
	json_t *v = json_object_get(o, "session");
	const char *name = json_string_value(v);

	*dst = RECORD_SESSION_UNKNOWN;
	if (v == NULL || json_is_null(v))
		return 0;
	if (name == NULL)
		return -1;
	if (strcmp(name, "online") == 0)
		*dst = RECORD_SESSION_ONLINE;
	else if (strcmp(name, "offline") == 0)
		*dst = RECORD_SESSION_OFFLINE;
	return 0;
}

int
record_to_json(const struct record *r, char **out, struct ml_err *err)
{
	json_t *o = json_object();
	int bad = 0;

	*out = NULL;
	if (o == NULL)
		return err_set(err, ML_EFAIL, "out of memory");
	bad |= json_object_set_new(o, "version", json_integer(1));
	bad |= put_str(o, "issuer", r->issuer);
	bad |= put_str(o, "client_id", r->client_id);
	bad |= put_str(o, "access_token", r->access_token);
	bad |= put_str(o, "refresh_token", r->refresh_token);
	bad |= put_str(o, "id_token", r->id_token);
	bad |= put_str(o, "scope", r->scope);
	bad |= put_str(o, "token_type", r->token_type);
	bad |= put_str(o, "token_endpoint", r->token_endpoint);
	bad |= put_str(o, "session", record_session_name(r->session));
	bad |= json_object_set_new(o, "expires_at", json_integer(r->expires_at));
	bad |= json_object_set_new(o, "refresh_expires_at", json_integer(r->refresh_expires_at));
	bad |= json_object_set_new(o, "obtained_at", json_integer(r->obtained_at));
	if (r->refused_at != 0)
		bad |= json_object_set_new(o, "refused_at", json_integer(r->refused_at));
	if (!bad)
		*out = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	/* jansson keeps copies of the tokens: wipe them before they are freed. */
	{
		const char *k;
		json_t *v;

		json_object_foreach(o, k, v)
			if (json_is_string(v))
				secret_wipe((void *)json_string_value(v), json_string_length(v));
	}
	json_decref(o);
	if (*out == NULL)
		return err_set(err, ML_EFAIL, "out of memory");
	return ML_OK;
}

/*
 * Copy an optional string member; a member of another type is an error.
 * The three tokens go to secret memory (secret.h), which record_free knows.
 */
static int
get_str(json_t *o, const char *k, char **dst, bool required)
{
	bool secret = strcmp(k, "access_token") == 0 || strcmp(k, "refresh_token") == 0 ||
	    strcmp(k, "id_token") == 0;
	json_t *v = json_object_get(o, k);

	if (v == NULL || json_is_null(v))
		return required ? -1 : 0;
	if (!json_is_string(v) || (required && json_string_length(v) == 0))
		return -1;
	if ((*dst = (secret ? secret_dup : strdup)(json_string_value(v))) == NULL)
		return -1;
	return 0;
}

static int
get_time(json_t *o, const char *k, int64_t *dst, bool required)
{
	json_t *v = json_object_get(o, k);

	if (v == NULL)
		return required ? -1 : 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*dst = json_integer_value(v);
	return 0;
}

int
record_from_json(const char *buf, size_t len, struct record *r, struct ml_err *err)
{
	json_error_t jerr;
	json_t *o;
	const char *bad = NULL;
	int rc = ML_OK;

	memset(r, 0, sizeof *r);
	if (len > RECORD_MAX_LEN)
		return err_set(err, ML_ESTORE, "stored session is larger than %d bytes",
		    RECORD_MAX_LEN);
	o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(o)) {
		rc = err_set(err, ML_ESTORE, "stored session is not a JSON object");
		goto out;
	}
	if (get_str(o, "issuer", &r->issuer, true) < 0)
		bad = "issuer";
	else if (get_str(o, "client_id", &r->client_id, true) < 0)
		bad = "client_id";
	else if (get_str(o, "access_token", &r->access_token, true) < 0)
		bad = "access_token";
	else if (get_str(o, "refresh_token", &r->refresh_token, false) < 0)
		bad = "refresh_token";
	else if (get_str(o, "id_token", &r->id_token, false) < 0)
		bad = "id_token";
	else if (get_str(o, "scope", &r->scope, false) < 0)
		bad = "scope";
	else if (get_str(o, "token_type", &r->token_type, false) < 0)
		bad = "token_type";
	else if (get_str(o, "token_endpoint", &r->token_endpoint, false) < 0 ||
	    (r->token_endpoint != NULL && !config_url_allowed(r->token_endpoint)))
		bad = "token_endpoint";
	else if (get_time(o, "expires_at", &r->expires_at, true) < 0)
		bad = "expires_at";
	else if (get_time(o, "refresh_expires_at", &r->refresh_expires_at, false) < 0)
		bad = "refresh_expires_at";
	else if (get_time(o, "obtained_at", &r->obtained_at, false) < 0)
		bad = "obtained_at";
	else if (get_session(o, &r->session) < 0)
		bad = "session";
	else if (get_time(o, "refused_at", &r->refused_at, false) < 0)
		bad = "refused_at";
	if (bad != NULL)
		rc = err_set(err, ML_ESTORE, "stored session has a missing or invalid '%s'", bad);
out:
	if (o != NULL) {
		const char *k;
		json_t *v;

		json_object_foreach(o, k, v)
			if (json_is_string(v))
				secret_wipe((void *)json_string_value(v), json_string_length(v));
		json_decref(o);
	}
	return rc;
}

void
record_free(struct record *r)
{
	if (r == NULL)
		return;
	free(r->issuer);
	free(r->client_id);
	secret_free(r->access_token);
	secret_free(r->refresh_token);
	secret_free(r->id_token);
	free(r->scope);
	free(r->token_type);
	free(r->token_endpoint);
	memset(r, 0, sizeof *r);
}
