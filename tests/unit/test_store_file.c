/* test_store_file.c: the fallback store's file and directory rules. */
#define _DEFAULT_SOURCE	/* mkdtemp */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"

#include "mlauth/config.h"
#include "mlauth/err.h"
#include "mlauth/record.h"
#include "mlauth/secret.h"
#include "mlauth/store.h"

#define RECORD	"{\"issuer\":\"https://id.example/realms/x\",\"access_token\":\"AT\"}"

struct fx {
	char root[64];		/* private temp dir, removed afterwards */
	char state[128];	/* $XDG_STATE_HOME */
	char dir[160];		/* $XDG_STATE_HOME/mlauth */
	char *path;		/* the record file of profile "t" */
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	struct ml_err err;

	if (f == NULL)
		return -1;
	(void)snprintf(f->root, sizeof f->root, "/tmp/mlauth-store-XXXXXX");
	if (mkdtemp(f->root) == NULL)
		return -1;
	/* Not created: store_file_save must make it and its parent. */
	(void)snprintf(f->state, sizeof f->state, "%s/state", f->root);
	(void)snprintf(f->dir, sizeof f->dir, "%s/mlauth", f->state);
	if (setenv("XDG_STATE_HOME", f->state, 1) != 0 || setenv("HOME", f->root, 1) != 0)
		return -1;
	err_clear(&err);
	if (store_file_path("t", &f->path, &err) != ML_OK)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char cmd[256];

	(void)snprintf(cmd, sizeof cmd, "chmod -R u+rwx %s; rm -rf %s", f->root, f->root);
	if (system(cmd) != 0)
		return -1;
	free(f->path);
	free(f);
	return 0;
}

/* Write a file with exact bytes and mode, bypassing the module. */
static void
put_file(const char *path, const char *data, size_t len, mode_t mode)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
test_path_honours_xdg_state_home(void **state)
{
	struct fx *f = *state;
	struct ml_err err;
	char want[256], *p = NULL;

	(void)snprintf(want, sizeof want, "%s/t.json", f->dir);
	assert_string_equal(f->path, want);
	/* Creating the path name must not create anything. */
	assert_int_equal(access(f->state, F_OK), -1);

	/* Unset, or relative (invalid per XDG): ~/.local/state. */
	assert_int_equal(unsetenv("XDG_STATE_HOME"), 0);
	assert_int_equal(store_file_path("t", &p, &err), ML_OK);
	(void)snprintf(want, sizeof want, "%s/.local/state/mlauth/t.json", f->root);
	assert_string_equal(p, want);
	free(p);
	assert_int_equal(setenv("XDG_STATE_HOME", "rel/state", 1), 0);
	assert_int_equal(store_file_path("t", &p, &err), ML_OK);
	assert_string_equal(p, want);
	free(p);

	/* A profile is a file name: nothing that leaves the directory. */
	p = NULL;
	assert_int_equal(store_file_path("../x", &p, &err), ML_EUSAGE);
	assert_null(p);
	assert_int_equal(store_file_path("", &p, &err), ML_EUSAGE);
	assert_int_equal(store_file_path("..", &p, &err), ML_EUSAGE);
}

static void
test_round_trip_modes(void **state)
{
	struct fx *f = *state;
	struct ml_err err;
	struct stat st;
	char *json = NULL;
	mode_t old = umask(0);	/* the module, not the umask, must give 0600/0700 */

	err_clear(&err);
	assert_int_equal(store_file_save(f->path, RECORD, &err), ML_OK);
	umask(old);
	assert_int_equal(store_file_load(f->path, &json, &err), ML_OK);
	assert_non_null(json);
	assert_string_equal(json, RECORD);
	secret_free(json);

	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(lstat(f->dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(lstat(f->state, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);

	/* Replacing works and leaves only the record: no temp files behind. */
	assert_int_equal(store_file_save(f->path, "{\"v\":2}", &err), ML_OK);
	assert_int_equal(store_file_load(f->path, &json, &err), ML_OK);
	assert_string_equal(json, "{\"v\":2}");
	secret_free(json);
	assert_int_equal(count_entries(f->dir), 1);
}

static void
test_restrictive_umask(void **state)
{
	struct fx *f = *state;
	struct ml_err err;
	struct stat st;
	char *json = NULL;
	mode_t old = umask(0277);	/* would give 0400 files and 0500 dirs */
	int rc = store_file_save(f->path, RECORD, &err);

	umask(old);
	assert_int_equal(rc, ML_OK);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(store_file_load(f->path, &json, &err), ML_OK);
	assert_string_equal(json, RECORD);
	secret_free(json);
}

static void
test_missing_is_null(void **state)
{
	struct fx *f = *state;
	struct ml_err err;
	char *json = (char *)"untouched";

	assert_int_equal(store_file_load(f->path, &json, &err), ML_OK);
	assert_null(json);
}

static void
test_group_readable_refused(void **state)
{
	struct fx *f = *state;
	struct ml_err err;
	char *json = NULL;

	assert_int_equal(store_file_save(f->path, RECORD, &err), ML_OK);
	assert_int_equal(chmod(f->path, 0640), 0);
	err_clear(&err);
	assert_int_equal(store_file_load(f->path, &json, &err), ML_ESTORE);
	assert_null(json);
	assert_non_null(strstr(err.msg, f->path));
	assert_non_null(strstr(err.msg, "chmod 600"));

	/* Any group/other bit at all, even without read. */
	assert_int_equal(chmod(f->path, 0602), 0);
	assert_int_equal(store_file_load(f->path, &json, &err), ML_ESTORE);
	assert_int_equal(chmod(f->path, 0610), 0);
	assert_int_equal(store_file_load(f->path, &json, &err), ML_ESTORE);
	/* The fix the message names works. */
	assert_int_equal(chmod(f->path, 0600), 0);
	assert_int_equal(store_file_load(f->path, &json, &err), ML_OK);
	assert_string_equal(json, RECORD);
	secret_free(json);
}

static void
test_other_owner_refused(void **state)
{
	struct fx *f = *state;
	struct ml_err err;
	char *json = NULL;

	if (geteuid() != 0) {
		skip();
		return;
	}
	assert_int_equal(store_file_save(f->path, RECORD, &err), ML_OK);
	assert_int_equal(chown(f->path, 4242, (gid_t)-1), 0);
	err_clear(&err);
	assert_int_equal(store_file_load(f->path, &json, &err), ML_ESTORE);
	assert_null(json);
	assert_non_null(strstr(err.msg, "owned by uid 4242"));

	/* The directory too. */
	assert_int_equal(chown(f->path, 0, (gid_t)-1), 0);
	assert_int_equal(chown(f->dir, 4242, (gid_t)-1), 0);
	assert_int_equal(store_file_save(f->path, RECORD, &err), ML_ESTORE);
	assert_non_null(strstr(err.msg, "owned by uid 4242"));
}

static void
test_symlink_refused_target_untouched(void **state)
{
	struct fx *f = *state;
	struct ml_err err;
	char target[256], buf[64];
	char *json = NULL;
	ssize_t n;
	int fd;

	assert_int_equal(store_file_save(f->path, RECORD, &err), ML_OK);
	assert_int_equal(unlink(f->path), 0);
	(void)snprintf(target, sizeof target, "%s/target", f->root);
	put_file(target, "TARGET", 6, 0600);
	assert_int_equal(symlink(target, f->path), 0);

	err_clear(&err);
	assert_int_equal(store_file_load(f->path, &json, &err), ML_ESTORE);
	assert_null(json);
	assert_non_null(strstr(err.msg, "symbolic link"));
	assert_int_equal(store_file_save(f->path, RECORD, &err), ML_ESTORE);
	assert_non_null(strstr(err.msg, "symbolic link"));

	fd = open(target, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof buf);
	close(fd);
	assert_int_equal(n, 6);
	assert_memory_equal(buf, "TARGET", 6);
	/* Nothing left behind by the refused save either. */
	assert_int_equal(count_entries(f->dir), 1);
}

static void
test_not_regular_refused(void **state)
{
	struct fx *f = *state;
	struct ml_err err;
	char *json = NULL;

	assert_int_equal(store_file_save(f->path, RECORD, &err), ML_OK);
	assert_int_equal(unlink(f->path), 0);
	/* A FIFO must be refused, not block the open waiting for a writer. */
	assert_int_equal(mkfifo(f->path, 0600), 0);
	alarm(5);
	assert_int_equal(store_file_load(f->path, &json, &err), ML_ESTORE);
	alarm(0);
	assert_non_null(strstr(err.msg, "not a regular file"));
	assert_null(json);
}

static void
test_oversized_refused(void **state)
{
	struct fx *f = *state;
	struct ml_err err;
	char *big, *json = NULL;

	big = malloc(RECORD_MAX_LEN + 2);
	assert_non_null(big);
	memset(big, 'a', RECORD_MAX_LEN + 1);
	big[RECORD_MAX_LEN + 1] = '\0';

	/* Saving it is refused: it could never be loaded back. */
	assert_int_equal(store_file_save(f->path, big, &err), ML_ESTORE);
	assert_int_equal(access(f->path, F_OK), -1);

	assert_int_equal(store_file_save(f->path, RECORD, &err), ML_OK);
	put_file(f->path, big, RECORD_MAX_LEN + 1, 0600);
	err_clear(&err);
	assert_int_equal(store_file_load(f->path, &json, &err), ML_ESTORE);
	assert_null(json);
	assert_non_null(strstr(err.msg, "larger than"));

	/* Exactly the limit is fine. */
	big[RECORD_MAX_LEN] = '\0';
	assert_int_equal(store_file_save(f->path, big, &err), ML_OK);
	assert_int_equal(store_file_load(f->path, &json, &err), ML_OK);
	assert_int_equal(strlen(json), RECORD_MAX_LEN);
	secret_free(json);
	free(big);
}

static void
test_nul_byte_refused(void **state)
{
	struct fx *f = *state;
	struct ml_err err;
	char *json = NULL;

	assert_int_equal(store_file_save(f->path, RECORD, &err), ML_OK);
	put_file(f->path, "{}\0{}", 5, 0600);
	assert_int_equal(store_file_load(f->path, &json, &err), ML_ESTORE);
	assert_null(json);
}

static void
test_state_dir_checks(void **state)
{
	struct fx *f = *state;
	struct ml_err err;
	char *dir = NULL, other[256];
	struct stat st;

	assert_int_equal(store_state_dir(&dir, &err), ML_OK);
	assert_string_equal(dir, f->dir);
	free(dir);
	assert_int_equal(stat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);

	/* Group-accessible: refused, with the fix named. */
	assert_int_equal(chmod(f->dir, 0750), 0);
	dir = NULL;
	assert_int_equal(store_state_dir(&dir, &err), ML_ESTORE);
	assert_null(dir);
	assert_non_null(strstr(err.msg, "chmod 700"));
	assert_int_equal(store_file_save(f->path, RECORD, &err), ML_ESTORE);
	assert_int_equal(access(f->path, F_OK), -1);

	/* A symlink to a perfectly good directory: refused too. */
	assert_int_equal(rmdir(f->dir), 0);
	(void)snprintf(other, sizeof other, "%s/elsewhere", f->root);
	assert_int_equal(mkdir(other, 0700), 0);
	assert_int_equal(symlink(other, f->dir), 0);
	assert_int_equal(store_state_dir(&dir, &err), ML_ESTORE);
	assert_non_null(strstr(err.msg, "symbolic link"));
	assert_int_equal(store_file_save(f->path, RECORD, &err), ML_ESTORE);
	assert_int_equal(count_entries(other), 0);
}

static void
test_delete(void **state)
{
	struct fx *f = *state;
	struct ml_err err;
	bool found = false;

	assert_int_equal(store_file_save(f->path, RECORD, &err), ML_OK);
	assert_int_equal(store_file_delete(f->path, &found, &err), ML_OK);
	assert_true(found);
	assert_int_equal(access(f->path, F_OK), -1);
	found = true;
	assert_int_equal(store_file_delete(f->path, &found, &err), ML_OK);
	assert_false(found);
}

/*
 * A save that fails half way (here: a file size limit makes write fail after
 * the temp file exists) leaves no temp file and the old record intact.
 */
static void
test_failed_save_leaves_nothing(void **state)
{
	struct fx *f = *state;
	struct ml_err err;
	struct rlimit old, small;
	char *json = NULL;
	int rc;

	assert_int_equal(store_file_save(f->path, "{}", &err), ML_OK);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = old;
	small.rlim_cur = 4;
	assert_true(signal(SIGXFSZ, SIG_IGN) != SIG_ERR);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	err_clear(&err);
	rc = store_file_save(f->path, RECORD, &err);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(rc, ML_ESTORE);
	assert_non_null(strstr(err.msg, "cannot write"));
	assert_int_equal(count_entries(f->dir), 1);
	assert_int_equal(store_file_load(f->path, &json, &err), ML_OK);
	assert_string_equal(json, "{}");
	secret_free(json);
}

/* store.c's choice without a session bus: auto falls back, secret-service refuses. */
static void
test_store_open_without_bus(void **state)
{
	struct fx *f = *state;
	struct config cfg;
	struct store st;
	struct ml_err err;
	char want[256], *json = NULL;
	bool found = false;

	memset(&cfg, 0, sizeof cfg);
	cfg.profile = (char *)"t";
	assert_int_equal(unsetenv("DBUS_SESSION_BUS_ADDRESS"), 0);
	assert_int_equal(unsetenv("XDG_RUNTIME_DIR"), 0);

	cfg.store = CONFIG_STORE_SECRET;
	err_clear(&err);
	assert_int_equal(store_open(&cfg, &st, &err), ML_ESTORE);
	assert_non_null(strstr(err.msg, "no session bus"));
	store_close(&st);

	cfg.store = CONFIG_STORE_AUTO;
	err_clear(&err);
	assert_int_equal(store_open(&cfg, &st, &err), ML_OK);
	assert_int_equal(st.backend, STORE_FILE);
	assert_true(st.fell_back);
	assert_string_equal(st.reason, "no session bus (DBUS_SESSION_BUS_ADDRESS is not set)");
	(void)snprintf(want, sizeof want, "file %s", f->path);
	assert_string_equal(store_describe(&st), want);
	assert_int_equal(store_save(&st, "t", "https://i", "c", RECORD, &err), ML_OK);
	assert_int_equal(store_load(&st, "t", &json, &err), ML_OK);
	assert_string_equal(json, RECORD);
	secret_free(json);
	assert_int_equal(store_delete(&st, "t", &found, &err), ML_OK);
	assert_true(found);
	assert_int_equal(store_load(&st, "t", &json, &err), ML_OK);
	assert_null(json);
	store_close(&st);

	cfg.store = CONFIG_STORE_FILE;
	assert_int_equal(store_open(&cfg, &st, &err), ML_OK);
	assert_int_equal(st.backend, STORE_FILE);
	assert_false(st.fell_back);
	assert_string_equal(st.path, f->path);
	store_close(&st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_path_honours_xdg_state_home, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restrictive_umask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_is_null, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_readable_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_owner_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_refused_target_untouched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_regular_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nul_byte_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_dir_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_save_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_open_without_bus, setup, teardown),
	};

	return cmocka_run_group_tests_name("store_file", tests, NULL, NULL);
}
