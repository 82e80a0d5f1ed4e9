/*
 * store_secret.c: the record in the Secret Service (GNOME Keyring, KWallet,
 * KeePassXC) through libsecret.  The only file that includes libsecret, and
 * built on its own as the module mlauth-secret.so, which store.c opens when
 * a run uses the keyring: libsecret and GIO are then loaded by that run only.
 *
 * Never hang.  libsecret's _sync calls wait on a private main loop with no
 * time limit, and a prompt waits for a human.  So every operation here runs
 * libsecret's asynchronous API on a main context of our own, with a
 * GCancellable that a timeout source on that context cancels; and prompts
 * are refused outright by a SecretService subclass (the documented way to
 * customise prompting), so a locked keyring fails at once with a message
 * saying so instead of waiting for a dialog nobody may see.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * For secret-paths.h, which libsecret still files as unstable: searching by
 * D-Bus path and decoding a secret ourselves read an item without making a
 * proxy for it.
 */
#define SECRET_API_SUBJECT_TO_CHANGE
#include <libsecret/secret.h>

#include "mlauth/err.h"
#include "mlauth/record.h"
#include "mlauth/secret.h"
#include "mlauth/store.h"

#define SECRETS_NAME	"org.freedesktop.secrets"

/* The probe answers "is there a keyring?" for store=auto: it must be quick. */
#define PROBE_MS	3000
/* A lookup takes ~15 ms; starting gnome-keyring by D-Bus activation ~1 s. */
#define OP_MS		10000
/* After cancelling, how long to wait for the operation to notice. */
#define GRACE_MS	2000

/*
 * Attributes are public (anyone on the session bus can list them), so they
 * hold names only.  Lookups match on profile alone, which is what
 * `secret-tool lookup profile NAME` does; the schema name stays matched
 * (no SECRET_SCHEMA_DONT_MATCH_NAME) so other programs' "profile" items
 * are never ours.
 */
static const SecretSchema token_schema = {
	.name = "org.mlauth.Token",
	.flags = SECRET_SCHEMA_NONE,
	.attributes = {
		{ "profile", SECRET_SCHEMA_ATTRIBUTE_STRING },
		{ "issuer", SECRET_SCHEMA_ATTRIBUTE_STRING },
		{ "client_id", SECRET_SCHEMA_ATTRIBUTE_STRING },
		{ NULL, SECRET_SCHEMA_ATTRIBUTE_STRING },
	},
};

/* The error our prompt refusal raises, so it can be told apart. */
static GQuark
prompt_quark(void)
{
	return g_quark_from_static_string("mlauth-keyring-prompt");
}

/* A SecretService that refuses every prompt instead of showing one. */
typedef SecretService MlKeyring;
typedef SecretServiceClass MlKeyringClass;
static GType ml_keyring_get_type(void);
G_DEFINE_TYPE(MlKeyring, ml_keyring, SECRET_TYPE_SERVICE)

static GVariant *
ml_keyring_prompt_sync(SecretService *self, SecretPrompt *prompt, GCancellable *cancellable,
    const GVariantType *return_type, GError **error)
{
	g_set_error_literal(error, prompt_quark(), 1, "the keyring wants a password prompt");
	return NULL;
}

static void
ml_keyring_prompt_async(SecretService *self, SecretPrompt *prompt,
    const GVariantType *return_type, GCancellable *cancellable,
    GAsyncReadyCallback callback, gpointer user_data)
{
	g_task_report_new_error(self, callback, user_data, NULL, prompt_quark(), 1, "%s",
	    "the keyring wants a password prompt");
}

static GVariant *
ml_keyring_prompt_finish(SecretService *self, GAsyncResult *result, GError **error)
{
	return g_task_propagate_pointer(G_TASK(result), error);
}

static void
ml_keyring_init(MlKeyring *self)
{
}

static void
ml_keyring_class_init(MlKeyringClass *klass)
{
	klass->prompt_sync = ml_keyring_prompt_sync;
	klass->prompt_async = ml_keyring_prompt_async;
	klass->prompt_finish = ml_keyring_prompt_finish;
}

/*
 * The connection to the session bus, kept from the probe (store_open) to
 * store_close, and the keyring service opened on it by the first operation
 * that needs it.  A token refresh loads, loads again under the lock, then
 * saves: one connection and one encrypted session serve all three, where a
 * connection each cost a second handshake and a second OpenSession.
 *
 * Each operation still has a time limit of its own (ks_op_begin..ks_op_end):
 * a fresh cancellable, and a deadline and a give-up source on our private
 * main context, which is the thread default only while the operation runs.
 * The service proxy, made while it was, keeps reporting there between
 * operations; what it queues meanwhile runs at the next operation or at
 * store_secret_close.
 */
struct store_secret {
	GMainContext *ctx;
	GDBusConnection *bus;
	SecretService *svc;	/* NULL until an operation needs the keyring */
	gchar *svc_owner;	/* the unique name svc was opened on */
	/* The operation in progress. */
	GCancellable *cancel;
	GSource *deadline;	/* cancels what is in flight */
	GSource *giveup;	/* stops waiting should cancelling not end it */
	GAsyncResult *res;	/* of the call just waited for */
	long timeout_ms;
	bool pushed, timed_out, abandoned;
	/*
	 * An operation was given up on while still in flight: its late answer
	 * could be taken for the answer to a later call, so there are none.
	 */
	bool wedged;
};

static gboolean
on_deadline(gpointer data)
{
	struct store_secret *ss = data;

	ss->timed_out = true;
	g_cancellable_cancel(ss->cancel);
	return G_SOURCE_REMOVE;
}

static gboolean
on_giveup(gpointer data)
{
	struct store_secret *ss = data;

	ss->abandoned = true;
	return G_SOURCE_REMOVE;
}

static void
on_done(GObject *source, GAsyncResult *res, gpointer data)
{
	struct store_secret *ss = data;

	g_clear_object(&ss->res);
	ss->res = g_object_ref(res);
}

/*
 * Run our context until the call started with on_done reports; the result
 * is in ss->res, or NULL when we gave up on it.
 */
static GAsyncResult *
ks_wait(struct store_secret *ss)
{
	g_clear_object(&ss->res);
	while (ss->res == NULL && !ss->abandoned)
		g_main_context_iteration(ss->ctx, TRUE);
	return ss->res;
}

/* Run what is ready on our context (proxy clean-ups, queued signals), without waiting. */
static void
ks_spin(struct store_secret *ss)
{
	int spins;

	for (spins = 0; spins < 100 && g_main_context_iteration(ss->ctx, FALSE); spins++)
		;
}

/*
 * Turn a failure into one line.  Takes gerr (NULL when we gave up waiting).
 * D-Bus and libsecret messages name objects and methods, never secrets.
 */
static int
ks_fail(struct store_secret *ss, GError *gerr, const char *what, struct ml_err *err)
{
	int rc;

	if (ss->timed_out || ss->abandoned)
		rc = err_set(err, ML_ESTORE, "%s: no answer within %ld s",
		    what, (ss->timeout_ms + 999) / 1000);
	else if (gerr == NULL)
		rc = err_set(err, ML_ESTORE, "%s: failed", what);
	else if (g_error_matches(gerr, prompt_quark(), 1))
		rc = err_set(err, ML_ESTORE, "%s: the keyring is locked (or has no default "
		    "collection) and would need a password prompt, which mlauth does not "
		    "wait for; unlock it (e.g. log in to the desktop) and retry, or use "
		    "-o store=file", what);
	else {
		if (g_dbus_error_is_remote_error(gerr))
			(void)g_dbus_error_strip_remote_error(gerr);
		rc = err_set(err, ML_ESTORE, "%s: %s", what, gerr->message);
	}
	g_clear_error(&gerr);
	return rc;
}

/*
 * Start an operation limited to timeout_ms in all: calls started until
 * ks_op_end report to (and only to) our context.  Call ks_op_end
 * afterwards, even after a failure.
 */
static int
ks_op_begin(struct store_secret *ss, long timeout_ms, const char *what, struct ml_err *err)
{
	if (ss->wedged)
		return err_set(err, ML_ESTORE, "%s: the keyring has not answered an earlier "
		    "request", what);
	ss->timeout_ms = timeout_ms;
	ss->timed_out = ss->abandoned = false;
	g_main_context_push_thread_default(ss->ctx);
	ss->pushed = true;
	ss->cancel = g_cancellable_new();
	ss->deadline = g_timeout_source_new((guint)timeout_ms);
	g_source_set_callback(ss->deadline, on_deadline, ss, NULL);
	(void)g_source_attach(ss->deadline, ss->ctx);
	ss->giveup = g_timeout_source_new((guint)(timeout_ms + GRACE_MS));
	g_source_set_callback(ss->giveup, on_giveup, ss, NULL);
	(void)g_source_attach(ss->giveup, ss->ctx);
	return ML_OK;
}

static void
ks_op_end(struct store_secret *ss)
{
	/* The result holds its source object (the service): not past the operation. */
	g_clear_object(&ss->res);
	if (ss->deadline != NULL) {
		g_source_destroy(ss->deadline);
		g_source_unref(ss->deadline);
		ss->deadline = NULL;
	}
	if (ss->giveup != NULL) {
		g_source_destroy(ss->giveup);
		g_source_unref(ss->giveup);
		ss->giveup = NULL;
	}
	/*
	 * The operation's item proxies are finalised by now and queued their
	 * clean-ups (signal unsubscriptions) on our context: run them now, as
	 * when each operation had a context of its own, rather than let them
	 * pile up until store_secret_close.
	 */
	ks_spin(ss);
	g_clear_object(&ss->cancel);
	if (ss->abandoned)
		ss->wedged = true;
	if (ss->pushed)
		g_main_context_pop_thread_default(ss->ctx);
	ss->pushed = false;
}

/* Drop the service proxy, running the clean-ups it queues on our context. */
static void
ks_drop_service(struct store_secret *ss)
{
	g_clear_object(&ss->svc);
	g_clear_pointer(&ss->svc_owner, g_free);
	/*
	 * A finalised proxy queues clean-ups (its signal unsubscriptions) on our
	 * context: run them, or they stay attached to it and leak.
	 */
	ks_spin(ss);
}

static void
store_secret_close(struct store_secret *ss)
{
	if (ss == NULL)
		return;
	/* What the clean-ups start reports to our context, as during an operation. */
	g_main_context_push_thread_default(ss->ctx);
	g_clear_object(&ss->res);
	ks_drop_service(ss);
	/* A call given up on may have reported meanwhile. */
	g_clear_object(&ss->res);
	g_clear_object(&ss->bus);
	g_main_context_pop_thread_default(ss->ctx);
	g_main_context_unref(ss->ctx);
	g_free(ss);
}

/*
 * The keyring service, opened with a session for passing secrets at the
 * first operation and kept for the next ones, unless its owner changed (the
 * keyring restarted since: the session was the old process's).  Within an
 * operation.
 */
static int
ks_service(struct store_secret *ss, struct ml_err *err)
{
	GError *gerr = NULL;
	GAsyncResult *res;
	gchar *owner;
	bool same;

	if (ss->svc != NULL) {
		/* Take in the NameOwnerChanged signals the proxy was sent since. */
		ks_spin(ss);
		owner = g_dbus_proxy_get_name_owner(G_DBUS_PROXY(ss->svc));
		same = owner != NULL && g_strcmp0(owner, ss->svc_owner) == 0;
		g_free(owner);
		if (same)
			return ML_OK;
		ks_drop_service(ss);
	}
	secret_service_open(ml_keyring_get_type(), NULL, SECRET_SERVICE_OPEN_SESSION,
	    ss->cancel, on_done, ss);
	if ((res = ks_wait(ss)) == NULL)
		return ks_fail(ss, NULL, "cannot open the keyring", err);
	if ((ss->svc = secret_service_open_finish(res, &gerr)) == NULL)
		return ks_fail(ss, gerr, "cannot open the keyring", err);
	ss->svc_owner = g_dbus_proxy_get_name_owner(G_DBUS_PROXY(ss->svc));
	return ML_OK;
}

/* Whether the bus daemon says yes to a question about name (NameHasOwner...). */
static int
ks_ask_bus(struct store_secret *ss, const char *method, const char *name, bool *yes,
    struct ml_err *err)
{
	GError *gerr = NULL;
	GVariant *reply = NULL;
	GVariantIter *names = NULL;
	GAsyncResult *res;
	const char *n;
	gboolean b = FALSE;
	bool list = strcmp(method, "ListActivatableNames") == 0;

	*yes = false;
	g_dbus_connection_call(ss->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
	    "org.freedesktop.DBus", method, list ? NULL : g_variant_new("(s)", name),
	    G_VARIANT_TYPE(list ? "(as)" : "(b)"), G_DBUS_CALL_FLAGS_NO_AUTO_START,
	    (gint)ss->timeout_ms, ss->cancel, on_done, ss);
	if ((res = ks_wait(ss)) == NULL)
		return ks_fail(ss, NULL, "cannot ask the session bus", err);
	if ((reply = g_dbus_connection_call_finish(ss->bus, res, &gerr)) == NULL)
		return ks_fail(ss, gerr, "cannot ask the session bus", err);
	if (!list) {
		g_variant_get(reply, "(b)", &b);
		*yes = b;
	} else {
		g_variant_get(reply, "(as)", &names);
		while (!*yes && g_variant_iter_loop(names, "&s", &n))
			*yes = strcmp(n, name) == 0;
		g_variant_iter_free(names);
	}
	g_variant_unref(reply);
	return ML_OK;
}

/* Connect to the session bus and ask whether a Secret Service is on it. */
static int
ks_probe(struct store_secret *ss, struct ml_err *err)
{
	GError *gerr = NULL;
	GAsyncResult *res;
	bool there = false;
	int rc;

	/* Async because connecting has no time limit of its own (a wedged bus). */
	g_bus_get(G_BUS_TYPE_SESSION, ss->cancel, on_done, ss);
	if ((res = ks_wait(ss)) == NULL)
		return ks_fail(ss, NULL, "cannot connect to the session bus", err);
	if ((ss->bus = g_bus_get_finish(res, &gerr)) == NULL)
		return ks_fail(ss, gerr, "cannot connect to the session bus", err);
	/* GDBus would otherwise raise SIGTERM on us should the bus go away. */
	g_dbus_connection_set_exit_on_close(ss->bus, FALSE);
	/* Running, or startable on demand (D-Bus activation starts it on first use). */
	if ((rc = ks_ask_bus(ss, "NameHasOwner", SECRETS_NAME, &there, err)) != ML_OK)
		return rc;
	if (!there &&
	    (rc = ks_ask_bus(ss, "ListActivatableNames", SECRETS_NAME, &there, err)) != ML_OK)
		return rc;
	return there ? ML_OK : err_set(err, ML_ESTORE, "no Secret Service on the session bus");
}

static int
store_secret_open(struct store_secret **ssp, struct ml_err *err)
{
	struct store_secret *ss;
	int rc;

	/* store.c has checked that there is a session bus to connect to. */
	*ssp = NULL;
	ss = g_new0(struct store_secret, 1);
	ss->ctx = g_main_context_new();
	/* The probe answers "is there a keyring?" for store=auto: PROBE_MS in all. */
	if ((rc = ks_op_begin(ss, PROBE_MS, "cannot connect to the session bus", err)) == ML_OK)
		rc = ks_probe(ss, err);
	ks_op_end(ss);
	if (rc != ML_OK) {
		store_secret_close(ss);
		return rc;
	}
	*ssp = ss;
	return ML_OK;
}

static int
store_secret_probe(struct ml_err *err)
{
	struct store_secret *ss = NULL;
	int rc;

	rc = store_secret_open(&ss, err);
	store_secret_close(ss);
	return rc;
}

/* Attributes borrowing the strings given; NULL ones are left out. */
static GHashTable *
attrs_new(const char *profile, const char *issuer, const char *client_id)
{
	GHashTable *a = g_hash_table_new(g_str_hash, g_str_equal);

	g_hash_table_insert(a, (gpointer)"profile", (gpointer)profile);
	if (issuer != NULL)
		g_hash_table_insert(a, (gpointer)"issuer", (gpointer)issuer);
	if (client_id != NULL)
		g_hash_table_insert(a, (gpointer)"client_id", (gpointer)client_id);
	return a;
}

/*
 * The secret of the item at path, decoded with our session into libsecret's
 * wiped memory: *value, or NULL when the service sent none (it leaves out
 * locked items).  GetSecrets by hand rather than
 * secret_service_get_secret_for_dbus_path, whose _finish in libsecret 0.20.5
 * leaks the reply; and the reply type is checked before anything is read.
 */
static int
ks_read_secret(struct store_secret *ss, const char *path, SecretValue **value,
    struct ml_err *err)
{
	GDBusProxy *proxy = G_DBUS_PROXY(ss->svc);
	const char *session = secret_service_get_session_dbus_path(ss->svc);
	GVariant *reply = NULL, *secrets = NULL, *secret = NULL;
	GError *gerr = NULL;
	GAsyncResult *res;

	*value = NULL;
	/* Opened with SECRET_SERVICE_OPEN_SESSION: there is one unless that changed. */
	if (session == NULL)
		return err_set(err, ML_ESTORE, "cannot read the keyring: no session open with it");
	g_dbus_connection_call(g_dbus_proxy_get_connection(proxy), g_dbus_proxy_get_name(proxy),
	    g_dbus_proxy_get_object_path(proxy), g_dbus_proxy_get_interface_name(proxy),
	    "GetSecrets", g_variant_new("(@aoo)", g_variant_new_objv(&path, 1), session),
	    G_VARIANT_TYPE("(a{o(oayays)})"), G_DBUS_CALL_FLAGS_NO_AUTO_START,
	    (gint)ss->timeout_ms, ss->cancel, on_done, ss);
	if ((res = ks_wait(ss)) == NULL)
		return ks_fail(ss, NULL, "cannot read the keyring", err);
	if ((reply = g_dbus_connection_call_finish(g_dbus_proxy_get_connection(proxy), res,
	    &gerr)) == NULL)
		return ks_fail(ss, gerr, "cannot read the keyring", err);
	secrets = g_variant_get_child_value(reply, 0);
	secret = g_variant_lookup_value(secrets, path, G_VARIANT_TYPE("(oayays)"));
	g_variant_unref(secrets);
	g_variant_unref(reply);
	if (secret == NULL)
		return ML_OK;
	*value = secret_service_decode_dbus_secret(ss->svc, secret);
	g_variant_unref(secret);
	/* A secret for another session, or one that does not decrypt. */
	if (*value == NULL)
		return err_set(err, ML_ESTORE, "cannot read the keyring: its answer could not "
		    "be decoded");
	return ML_OK;
}

static int
store_secret_load(struct store_secret *ss, const char *profile, char **json,
    struct ml_err *err)
{
	GHashTable *attrs = NULL;
	SecretValue *value = NULL;
	GError *gerr = NULL;
	GAsyncResult *res;
	gchar **unlocked = NULL, **locked = NULL;
	gchar *pw = NULL;
	gsize len = 0;
	int rc;

	*json = NULL;
	if ((rc = ks_op_begin(ss, OP_MS, "cannot read the keyring", err)) != ML_OK ||
	    (rc = ks_service(ss, err)) != ML_OK)
		goto out;
	attrs = attrs_new(profile, NULL, NULL);
	/*
	 * Paths rather than secret_service_search: the service answers with the
	 * unlocked and the locked matches apart, so "locked" needs no item proxy
	 * (a GetAll and signal subscriptions per item), and reading one secret
	 * is one GetSecrets.  Not secret_service_lookup either: it would try to
	 * unlock, and libsecret 0.20.5's lookup leaks the D-Bus reply that
	 * carried the secret.  An unlocked match is taken before a locked one,
	 * as secret_service_search does.
	 */
	secret_service_search_for_dbus_paths(ss->svc, &token_schema, attrs, ss->cancel, on_done,
	    ss);
	if ((res = ks_wait(ss)) == NULL) {
		rc = ks_fail(ss, NULL, "cannot read the keyring", err);
		goto out;
	}
	if (!secret_service_search_for_dbus_paths_finish(ss->svc, res, &unlocked, &locked,
	    &gerr)) {
		rc = ks_fail(ss, gerr, "cannot read the keyring", err);
		goto out;
	}
	if (unlocked == NULL || unlocked[0] == NULL) {
		if (locked != NULL && locked[0] != NULL)
			rc = ks_fail(ss, g_error_new_literal(prompt_quark(), 1, "locked"),
			    "cannot read the keyring", err);
		else
			rc = ML_OK;	/* nothing stored */
		goto out;
	}
	if ((rc = ks_read_secret(ss, unlocked[0], &value, err)) != ML_OK)
		goto out;
	/* Locked or deleted since the search. */
	if (value == NULL) {
		rc = err_set(err, ML_ESTORE, "cannot read the keyring: the entry for profile %s "
		    "came without its secret", profile);
		goto out;
	}
	/* Consumes value; pw is in libsecret's wiped, non-pageable memory. */
	pw = secret_value_unref_to_password(value, &len);
	value = NULL;
	if (pw == NULL || strlen(pw) != len || len > RECORD_MAX_LEN) {
		rc = err_set(err, ML_ESTORE, "the keyring entry for profile %s is not a record "
		    "(remove it: secret-tool clear profile %s)", profile, profile);
		goto out;
	}
	if ((*json = secret_dup(pw)) == NULL) {
		rc = err_set(err, ML_ESTORE, "out of memory");
		goto out;
	}
	rc = ML_OK;
out:
	secret_password_free(pw);
	if (value != NULL)
		secret_value_unref(value);
	g_strfreev(unlocked);
	g_strfreev(locked);
	if (attrs != NULL)
		g_hash_table_unref(attrs);
	ks_op_end(ss);
	return rc;
}

/*
 * Remove the profile's other entries.  The keyring replaces an item only
 * when all attributes match, so a profile whose issuer or client changed
 * would keep its old entry too, and a lookup by profile could find either.
 * Locked items are left alone: we cannot read their attributes reliably.
 */
static int
prune_others(struct store_secret *ss, const char *profile, const char *issuer,
    const char *client_id, struct ml_err *err)
{
	GHashTable *attrs = attrs_new(profile, NULL, NULL);
	GList *items = NULL, *l;
	GError *gerr = NULL;
	GAsyncResult *res;
	int rc = ML_OK;

	secret_service_search(ss->svc, &token_schema, attrs, SECRET_SEARCH_ALL, ss->cancel,
	    on_done, ss);
	if ((res = ks_wait(ss)) == NULL) {
		rc = ks_fail(ss, NULL, "stored, but cannot search the keyring", err);
		goto out;
	}
	items = secret_service_search_finish(ss->svc, res, &gerr);
	if (gerr != NULL) {
		rc = ks_fail(ss, gerr, "stored, but cannot search the keyring", err);
		goto out;
	}
	for (l = items; l != NULL; l = l->next) {
		SecretItem *item = l->data;
		GHashTable *a;
		bool same;

		if (secret_item_get_locked(item))
			continue;
		a = secret_item_get_attributes(item);
		same = a != NULL && g_strcmp0(g_hash_table_lookup(a, "issuer"), issuer) == 0 &&
		    g_strcmp0(g_hash_table_lookup(a, "client_id"), client_id) == 0;
		if (a != NULL)
			g_hash_table_unref(a);
		if (same)
			continue;
		secret_item_delete(item, ss->cancel, on_done, ss);
		if ((res = ks_wait(ss)) == NULL) {
			rc = ks_fail(ss, NULL, "stored, but cannot remove the old entry", err);
			goto out;
		}
		if (!secret_item_delete_finish(item, res, &gerr)) {
			rc = ks_fail(ss, gerr, "stored, but cannot remove the old entry", err);
			goto out;
		}
	}
out:
	g_list_free_full(items, g_object_unref);
	g_hash_table_unref(attrs);
	return rc;
}

static int
store_secret_save(struct store_secret *ss, const char *profile, const char *issuer,
    const char *client_id, const char *json, struct ml_err *err)
{
	GHashTable *attrs = NULL;
	SecretValue *value = NULL;
	GError *gerr = NULL;
	GAsyncResult *res;
	gchar *label = NULL;
	size_t len;
	int rc;

	if (issuer == NULL || client_id == NULL || json == NULL)
		return err_set(err, ML_ESTORE, "incomplete record for profile %s", profile);
	/* A record we could not load back would log the user out. */
	if ((len = strlen(json)) > RECORD_MAX_LEN)
		return err_set(err, ML_ESTORE, "record of %zu bytes is larger than %d", len,
		    RECORD_MAX_LEN);
	if ((rc = ks_op_begin(ss, OP_MS, "cannot write to the keyring", err)) != ML_OK ||
	    (rc = ks_service(ss, err)) != ML_OK)
		goto out;
	/* The label is as public as the attributes: names only. */
	label = g_strdup_printf("mlauth: %s (%s)", profile, issuer);
	attrs = attrs_new(profile, issuer, client_id);
	/* Copied into libsecret's wiped memory; unref wipes it. */
	value = secret_value_new(json, (gssize)len, "text/plain");
	secret_service_store(ss->svc, &token_schema, attrs, SECRET_COLLECTION_DEFAULT, label,
	    value, ss->cancel, on_done, ss);
	if ((res = ks_wait(ss)) == NULL) {
		rc = ks_fail(ss, NULL, "cannot write to the keyring", err);
		goto out;
	}
	if (!secret_service_store_finish(ss->svc, res, &gerr)) {
		rc = ks_fail(ss, gerr, "cannot write to the keyring", err);
		goto out;
	}
	rc = prune_others(ss, profile, issuer, client_id, err);
out:
	if (value != NULL)
		secret_value_unref(value);
	if (attrs != NULL)
		g_hash_table_unref(attrs);
	g_free(label);
	ks_op_end(ss);
	return rc;
}

/* Fail when an item matching attrs is still there, locked. */
static int
check_none_locked(struct store_secret *ss, GHashTable *attrs, struct ml_err *err)
{
	gchar **locked = NULL;
	GError *gerr = NULL;
	GAsyncResult *res;
	int rc = ML_OK;

	/* The service lists the locked matches apart: no item proxies needed. */
	secret_service_search_for_dbus_paths(ss->svc, &token_schema, attrs, ss->cancel, on_done,
	    ss);
	if ((res = ks_wait(ss)) == NULL)
		return ks_fail(ss, NULL, "cannot search the keyring", err);
	if (!secret_service_search_for_dbus_paths_finish(ss->svc, res, NULL, &locked, &gerr))
		return ks_fail(ss, gerr, "cannot search the keyring", err);
	if (locked != NULL && locked[0] != NULL)
		rc = ks_fail(ss, g_error_new_literal(prompt_quark(), 1, "locked"),
		    "cannot delete from the keyring", err);
	g_strfreev(locked);
	return rc;
}

static int
store_secret_delete(struct store_secret *ss, const char *profile, bool *found,
    struct ml_err *err)
{
	GHashTable *attrs = NULL;
	GError *gerr = NULL;
	GAsyncResult *res;
	int rc;

	*found = false;
	if ((rc = ks_op_begin(ss, OP_MS, "cannot delete from the keyring", err)) != ML_OK ||
	    (rc = ks_service(ss, err)) != ML_OK)
		goto out;
	attrs = attrs_new(profile, NULL, NULL);
	secret_service_clear(ss->svc, &token_schema, attrs, ss->cancel, on_done, ss);
	if ((res = ks_wait(ss)) == NULL) {
		rc = ks_fail(ss, NULL, "cannot delete from the keyring", err);
		goto out;
	}
	/* FALSE without an error: nothing unlocked matched. */
	*found = secret_service_clear_finish(ss->svc, res, &gerr);
	if (gerr != NULL) {
		*found = false;
		rc = ks_fail(ss, gerr, "cannot delete from the keyring", err);
		goto out;
	}
	/* Clearing skips locked items: "nothing stored" must not hide one. */
	if (!*found && (rc = check_none_locked(ss, attrs, err)) != ML_OK)
		goto out;
	rc = ML_OK;
out:
	if (attrs != NULL)
		g_hash_table_unref(attrs);
	ks_op_end(ss);
	return rc;
}

/*
 * Whether a save would go through without a prompt: the default collection,
 * where saves go, exists and is unlocked.  Asked before a login shows its
 * code, so a locked keyring is found out before the user approves anything.
 */
static int
store_secret_writable(struct store_secret *ss, struct ml_err *err)
{
	static const char what[] = "cannot keep a session in the keyring";
	SecretCollection *c = NULL;
	GError *gerr = NULL;
	GAsyncResult *res;
	int rc;

	if ((rc = ks_op_begin(ss, OP_MS, what, err)) != ML_OK ||
	    (rc = ks_service(ss, err)) != ML_OK)
		goto out;
	secret_collection_for_alias(ss->svc, SECRET_COLLECTION_DEFAULT, SECRET_COLLECTION_NONE,
	    ss->cancel, on_done, ss);
	if ((res = ks_wait(ss)) == NULL) {
		rc = ks_fail(ss, NULL, what, err);
		goto out;
	}
	if ((c = secret_collection_for_alias_finish(res, &gerr)) == NULL && gerr != NULL) {
		rc = ks_fail(ss, gerr, what, err);
		goto out;
	}
	if (c == NULL || secret_collection_get_locked(c))
		rc = ks_fail(ss, g_error_new_literal(prompt_quark(), 1, "locked"), what, err);
out:
	g_clear_object(&c);
	ks_op_end(ss);
	return rc;
}

/* The module's one export: store.c finds it with dlsym. */
__attribute__((visibility("default"))) const struct store_secret_ops store_secret_module = {
	.abi = STORE_SECRET_ABI,
	.open = store_secret_open,
	.close = store_secret_close,
	.probe = store_secret_probe,
	.load = store_secret_load,
	.save = store_secret_save,
	.remove = store_secret_delete,
	.writable = store_secret_writable,
	.free_secret = secret_free,	/* this module's own secret memory */
};
