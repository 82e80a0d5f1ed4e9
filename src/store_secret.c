/*
 * store_secret.c: the record in the Secret Service (GNOME Keyring, KWallet,
 * KeePassXC) through libsecret.  The only file that includes libsecret.
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
#include <sys/stat.h>
#include <unistd.h>

#include <libsecret/secret.h>

#include "mlauth/config.h"
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
 * One time-limited conversation with the session bus: a private main
 * context, a cancellable the deadline cancels, and the result of the one
 * operation in flight.
 */
struct ks {
	GMainContext *ctx;
	GCancellable *cancel;
	GSource *deadline;	/* cancels what is in flight */
	GSource *giveup;	/* stops waiting should cancelling not end it */
	GAsyncResult *res;	/* of the operation just waited for */
	GDBusConnection *bus;
	SecretService *svc;
	long timeout_ms;
	bool pushed, timed_out, abandoned;
};

static gboolean
on_deadline(gpointer data)
{
	struct ks *ks = data;

	ks->timed_out = true;
	g_cancellable_cancel(ks->cancel);
	return G_SOURCE_REMOVE;
}

static gboolean
on_giveup(gpointer data)
{
	struct ks *ks = data;

	ks->abandoned = true;
	return G_SOURCE_REMOVE;
}

static void
on_done(GObject *source, GAsyncResult *res, gpointer data)
{
	struct ks *ks = data;

	g_clear_object(&ks->res);
	ks->res = g_object_ref(res);
}

/*
 * Run our context until the operation started with on_done reports; the
 * result is in ks->res, or NULL when we gave up on it.
 */
static GAsyncResult *
ks_wait(struct ks *ks)
{
	g_clear_object(&ks->res);
	while (ks->res == NULL && !ks->abandoned)
		g_main_context_iteration(ks->ctx, TRUE);
	return ks->res;
}

/*
 * Turn a failure into one line.  Takes gerr (NULL when we gave up waiting).
 * D-Bus and libsecret messages name objects and methods, never secrets.
 */
static int
ks_fail(struct ks *ks, GError *gerr, const char *what, struct ml_err *err)
{
	int rc;

	if (ks->timed_out || ks->abandoned)
		rc = err_set(err, ML_ESTORE, "%s: no answer within %ld s",
		    what, (ks->timeout_ms + 999) / 1000);
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
 * Is a session bus there to connect to?  Checked by hand first because
 * GDBus, finding neither variable, would run `dbus-launch --autolaunch`,
 * which can start a bus for nothing or wait on an X server.
 */
static int
bus_address_check(struct ml_err *err)
{
	const char *addr = getenv("DBUS_SESSION_BUS_ADDRESS");
	const char *rt = getenv("XDG_RUNTIME_DIR");
	char *path;
	struct stat st;
	bool ok;

	if (addr != NULL && addr[0] != '\0') {
		if (strstr(addr, "autolaunch:") != NULL)
			return err_set(err, ML_ESTORE, "no session bus (DBUS_SESSION_BUS_ADDRESS "
			    "asks for autolaunch, which mlauth does not do)");
		return ML_OK;
	}
	/* GDBus's own next choice, as systemd user sessions provide it. */
	if (rt != NULL && rt[0] == '/') {
		path = g_build_filename(rt, "bus", NULL);
		ok = stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
		g_free(path);
		if (ok)
			return ML_OK;
	}
	return err_set(err, ML_ESTORE, "no session bus (DBUS_SESSION_BUS_ADDRESS is not set)");
}

static void
ks_end(struct ks *ks)
{
	int spins;

	/* The result holds its source object (the service): drop it first. */
	g_clear_object(&ks->res);
	g_clear_object(&ks->svc);
	/*
	 * A finalised proxy queues clean-ups (its signal unsubscriptions) on our
	 * context: run them, or they stay attached to it and leak.
	 */
	for (spins = 0; ks->ctx != NULL && spins < 100 &&
	    g_main_context_iteration(ks->ctx, FALSE); spins++)
		;
	g_clear_object(&ks->res);
	g_clear_object(&ks->bus);
	if (ks->deadline != NULL) {
		g_source_destroy(ks->deadline);
		g_source_unref(ks->deadline);
	}
	if (ks->giveup != NULL) {
		g_source_destroy(ks->giveup);
		g_source_unref(ks->giveup);
	}
	g_clear_object(&ks->cancel);
	if (ks->pushed)
		g_main_context_pop_thread_default(ks->ctx);
	if (ks->ctx != NULL)
		g_main_context_unref(ks->ctx);
	memset(ks, 0, sizeof *ks);
}

/*
 * Start a conversation limited to timeout_ms in all, and connect to the
 * session bus within it.  Call ks_end afterwards, even after a failure.
 */
static int
ks_begin(struct ks *ks, long timeout_ms, struct ml_err *err)
{
	GError *gerr = NULL;
	GAsyncResult *res;
	int rc;

	memset(ks, 0, sizeof *ks);
	ks->timeout_ms = timeout_ms;
	if ((rc = bus_address_check(err)) != ML_OK)
		return rc;
	ks->ctx = g_main_context_new();
	/* Async calls started from now on report to (and only to) our context. */
	g_main_context_push_thread_default(ks->ctx);
	ks->pushed = true;
	ks->cancel = g_cancellable_new();
	ks->deadline = g_timeout_source_new((guint)timeout_ms);
	g_source_set_callback(ks->deadline, on_deadline, ks, NULL);
	(void)g_source_attach(ks->deadline, ks->ctx);
	ks->giveup = g_timeout_source_new((guint)(timeout_ms + GRACE_MS));
	g_source_set_callback(ks->giveup, on_giveup, ks, NULL);
	(void)g_source_attach(ks->giveup, ks->ctx);

	/* Async because connecting has no time limit of its own (a wedged bus). */
	g_bus_get(G_BUS_TYPE_SESSION, ks->cancel, on_done, ks);
	if ((res = ks_wait(ks)) == NULL)
		return ks_fail(ks, NULL, "cannot connect to the session bus", err);
	if ((ks->bus = g_bus_get_finish(res, &gerr)) == NULL)
		return ks_fail(ks, gerr, "cannot connect to the session bus", err);
	/* GDBus would otherwise raise SIGTERM on us should the bus go away. */
	g_dbus_connection_set_exit_on_close(ks->bus, FALSE);
	return ML_OK;
}

/* Connect to the Secret Service itself, with a session for passing secrets. */
static int
ks_open_service(struct ks *ks, struct ml_err *err)
{
	GError *gerr = NULL;
	GAsyncResult *res;

	secret_service_open(ml_keyring_get_type(), NULL, SECRET_SERVICE_OPEN_SESSION,
	    ks->cancel, on_done, ks);
	if ((res = ks_wait(ks)) == NULL)
		return ks_fail(ks, NULL, "cannot open the keyring", err);
	if ((ks->svc = secret_service_open_finish(res, &gerr)) == NULL)
		return ks_fail(ks, gerr, "cannot open the keyring", err);
	return ML_OK;
}

/* Whether the bus daemon says yes to a question about name (NameHasOwner...). */
static int
ks_ask_bus(struct ks *ks, const char *method, const char *name, bool *yes,
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
	g_dbus_connection_call(ks->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
	    "org.freedesktop.DBus", method, list ? NULL : g_variant_new("(s)", name),
	    G_VARIANT_TYPE(list ? "(as)" : "(b)"), G_DBUS_CALL_FLAGS_NO_AUTO_START,
	    (gint)ks->timeout_ms, ks->cancel, on_done, ks);
	if ((res = ks_wait(ks)) == NULL)
		return ks_fail(ks, NULL, "cannot ask the session bus", err);
	if ((reply = g_dbus_connection_call_finish(ks->bus, res, &gerr)) == NULL)
		return ks_fail(ks, gerr, "cannot ask the session bus", err);
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

int
store_secret_probe(struct ml_err *err)
{
	struct ks ks;
	bool there = false;
	int rc;

	if ((rc = ks_begin(&ks, PROBE_MS, err)) != ML_OK)
		goto out;
	/* Running, or startable on demand (D-Bus activation starts it on first use). */
	if ((rc = ks_ask_bus(&ks, "NameHasOwner", SECRETS_NAME, &there, err)) != ML_OK)
		goto out;
	if (!there &&
	    (rc = ks_ask_bus(&ks, "ListActivatableNames", SECRETS_NAME, &there, err)) != ML_OK)
		goto out;
	rc = there ? ML_OK : err_set(err, ML_ESTORE, "no Secret Service on the session bus");
out:
	ks_end(&ks);
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

static int
check_profile(const char *profile, struct ml_err *err)
{
	if (profile == NULL || !config_profile_valid(profile))
		return err_set(err, ML_EUSAGE, "invalid profile name '%s'",
		    profile != NULL ? profile : "(null)");
	return ML_OK;
}

int
store_secret_load(const char *profile, char **json, struct ml_err *err)
{
	GHashTable *attrs = NULL;
	SecretValue *value = NULL;
	GList *items = NULL;
	GError *gerr = NULL;
	GAsyncResult *res;
	gchar *pw = NULL;
	gsize len = 0;
	struct ks ks;
	int rc;

	*json = NULL;
	memset(&ks, 0, sizeof ks);
	if ((rc = check_profile(profile, err)) != ML_OK)
		return rc;
	if ((rc = ks_begin(&ks, OP_MS, err)) != ML_OK || (rc = ks_open_service(&ks, err)) != ML_OK)
		goto out;
	attrs = attrs_new(profile, NULL, NULL);
	/*
	 * A search rather than secret_service_lookup: it says whether the item
	 * is locked without trying to unlock it, and the lookup path of
	 * libsecret 0.20.5 leaks the D-Bus reply that carried the secret.
	 * Without SECRET_SEARCH_ALL the first item is an unlocked one if any is.
	 */
	secret_service_search(ks.svc, &token_schema, attrs, SECRET_SEARCH_LOAD_SECRETS,
	    ks.cancel, on_done, &ks);
	if ((res = ks_wait(&ks)) == NULL) {
		rc = ks_fail(&ks, NULL, "cannot read the keyring", err);
		goto out;
	}
	items = secret_service_search_finish(ks.svc, res, &gerr);
	if (gerr != NULL) {
		rc = ks_fail(&ks, gerr, "cannot read the keyring", err);
		goto out;
	}
	if (items == NULL) {
		rc = ML_OK;	/* nothing stored */
		goto out;
	}
	if (secret_item_get_locked(items->data)) {
		rc = ks_fail(&ks, g_error_new_literal(prompt_quark(), 1, "locked"),
		    "cannot read the keyring", err);
		goto out;
	}
	if ((value = secret_item_get_secret(items->data)) == NULL) {
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
	g_list_free_full(items, g_object_unref);
	if (attrs != NULL)
		g_hash_table_unref(attrs);
	ks_end(&ks);
	return rc;
}

/*
 * Remove the profile's other entries.  The keyring replaces an item only
 * when all attributes match, so a profile whose issuer or client changed
 * would keep its old entry too, and a lookup by profile could find either.
 * Locked items are left alone: we cannot read their attributes reliably.
 */
static int
prune_others(struct ks *ks, const char *profile, const char *issuer, const char *client_id,
    struct ml_err *err)
{
	GHashTable *attrs = attrs_new(profile, NULL, NULL);
	GList *items = NULL, *l;
	GError *gerr = NULL;
	GAsyncResult *res;
	int rc = ML_OK;

	secret_service_search(ks->svc, &token_schema, attrs, SECRET_SEARCH_ALL, ks->cancel,
	    on_done, ks);
	if ((res = ks_wait(ks)) == NULL) {
		rc = ks_fail(ks, NULL, "stored, but cannot search the keyring", err);
		goto out;
	}
	items = secret_service_search_finish(ks->svc, res, &gerr);
	if (gerr != NULL) {
		rc = ks_fail(ks, gerr, "stored, but cannot search the keyring", err);
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
		secret_item_delete(item, ks->cancel, on_done, ks);
		if ((res = ks_wait(ks)) == NULL) {
			rc = ks_fail(ks, NULL, "stored, but cannot remove the old entry", err);
			goto out;
		}
		if (!secret_item_delete_finish(item, res, &gerr)) {
			rc = ks_fail(ks, gerr, "stored, but cannot remove the old entry", err);
			goto out;
		}
	}
out:
	g_list_free_full(items, g_object_unref);
	g_hash_table_unref(attrs);
	return rc;
}

int
store_secret_save(const char *profile, const char *issuer, const char *client_id,
    const char *json, struct ml_err *err)
{
	GHashTable *attrs = NULL;
	SecretValue *value = NULL;
	GError *gerr = NULL;
	GAsyncResult *res;
	gchar *label = NULL;
	struct ks ks;
	size_t len;
	int rc;

	memset(&ks, 0, sizeof ks);
	if ((rc = check_profile(profile, err)) != ML_OK)
		return rc;
	if (issuer == NULL || client_id == NULL || json == NULL)
		return err_set(err, ML_ESTORE, "incomplete record for profile %s", profile);
	/* A record we could not load back would log the user out. */
	if ((len = strlen(json)) > RECORD_MAX_LEN)
		return err_set(err, ML_ESTORE, "record of %zu bytes is larger than %d", len,
		    RECORD_MAX_LEN);
	if ((rc = ks_begin(&ks, OP_MS, err)) != ML_OK || (rc = ks_open_service(&ks, err)) != ML_OK)
		goto out;
	/* The label is as public as the attributes: names only. */
	label = g_strdup_printf("mlauth: %s (%s)", profile, issuer);
	attrs = attrs_new(profile, issuer, client_id);
	/* Copied into libsecret's wiped memory; unref wipes it. */
	value = secret_value_new(json, (gssize)len, "text/plain");
	secret_service_store(ks.svc, &token_schema, attrs, SECRET_COLLECTION_DEFAULT, label,
	    value, ks.cancel, on_done, &ks);
	if ((res = ks_wait(&ks)) == NULL) {
		rc = ks_fail(&ks, NULL, "cannot write to the keyring", err);
		goto out;
	}
	if (!secret_service_store_finish(ks.svc, res, &gerr)) {
		rc = ks_fail(&ks, gerr, "cannot write to the keyring", err);
		goto out;
	}
	rc = prune_others(&ks, profile, issuer, client_id, err);
out:
	if (value != NULL)
		secret_value_unref(value);
	if (attrs != NULL)
		g_hash_table_unref(attrs);
	g_free(label);
	ks_end(&ks);
	return rc;
}

/* Fail when an item matching attrs is still there, locked. */
static int
check_none_locked(struct ks *ks, GHashTable *attrs, struct ml_err *err)
{
	GList *items = NULL, *l;
	GError *gerr = NULL;
	GAsyncResult *res;
	int rc = ML_OK;

	secret_service_search(ks->svc, &token_schema, attrs, SECRET_SEARCH_ALL, ks->cancel,
	    on_done, ks);
	if ((res = ks_wait(ks)) == NULL)
		return ks_fail(ks, NULL, "cannot search the keyring", err);
	items = secret_service_search_finish(ks->svc, res, &gerr);
	if (gerr != NULL)
		return ks_fail(ks, gerr, "cannot search the keyring", err);
	for (l = items; l != NULL && rc == ML_OK; l = l->next)
		if (secret_item_get_locked(l->data))
			rc = ks_fail(ks, g_error_new_literal(prompt_quark(), 1, "locked"),
			    "cannot delete from the keyring", err);
	g_list_free_full(items, g_object_unref);
	return rc;
}

int
store_secret_delete(const char *profile, bool *found, struct ml_err *err)
{
	GHashTable *attrs = NULL;
	GError *gerr = NULL;
	GAsyncResult *res;
	struct ks ks;
	int rc;

	*found = false;
	memset(&ks, 0, sizeof ks);
	if ((rc = check_profile(profile, err)) != ML_OK)
		return rc;
	if ((rc = ks_begin(&ks, OP_MS, err)) != ML_OK || (rc = ks_open_service(&ks, err)) != ML_OK)
		goto out;
	attrs = attrs_new(profile, NULL, NULL);
	secret_service_clear(ks.svc, &token_schema, attrs, ks.cancel, on_done, &ks);
	if ((res = ks_wait(&ks)) == NULL) {
		rc = ks_fail(&ks, NULL, "cannot delete from the keyring", err);
		goto out;
	}
	/* FALSE without an error: nothing unlocked matched. */
	*found = secret_service_clear_finish(ks.svc, res, &gerr);
	if (gerr != NULL) {
		*found = false;
		rc = ks_fail(&ks, gerr, "cannot delete from the keyring", err);
		goto out;
	}
	/* Clearing skips locked items: "nothing stored" must not hide one. */
	if (!*found && (rc = check_none_locked(&ks, attrs, err)) != ML_OK)
		goto out;
	rc = ML_OK;
out:
	if (attrs != NULL)
		g_hash_table_unref(attrs);
	ks_end(&ks);
	return rc;
}
