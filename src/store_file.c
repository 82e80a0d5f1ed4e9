/*
 * store_file.c: the fallback store, one 0600 JSON file per profile in a 0700
 * directory ($XDG_STATE_HOME/mlauth).  Used when no Secret Service answers.
 *
 * Everything here assumes another local user may be hostile: paths are
 * opened without following symbolic links and checked with fstat (not stat,
 * so what is checked is what is read), and a file or directory that someone
 * else owns or can read is refused with the command that fixes it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "mlauth/config.h"
#include "mlauth/err.h"
#include "mlauth/record.h"
#include "mlauth/secret.h"
#include "mlauth/store.h"

/* How often to retry a temp name that exists already (practically never). */
#define TEMP_TRIES	8
/* A temp file this old belongs to no live writer (a save takes milliseconds). */
#define TEMP_STALE_SECS	60

/* "a/b" from a and b; NULL when memory runs out. */
static char *
path_join(const char *a, const char *b)
{
	size_t n = strlen(a) + 1 + strlen(b) + 1;
	char *p = malloc(n);

	if (p == NULL)
		return NULL;
	/* The buffer is sized for the result: truncation cannot happen. */
	(void)snprintf(p, n, "%s/%s", a, b);
	return p;
}

/* The directory part of path ("." when it has none).  Allocated. */
static char *
path_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *d;

	if (slash == NULL)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	d = malloc((size_t)(slash - path) + 1);
	if (d == NULL)
		return NULL;
	memcpy(d, path, (size_t)(slash - path));
	d[slash - path] = '\0';
	return d;
}

/*
 * $XDG_STATE_HOME, or ~/.local/state.  The XDG spec says a relative value is
 * invalid and must be ignored; honouring it would put tokens wherever the
 * current directory happens to be.  Allocated.
 */
bool
store_file_base_from_env(void)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

	return (xdg != NULL && xdg[0] == '/') || (home != NULL && home[0] == '/');
}

static int
state_base(char **out, struct ml_err *err)
{
	const char *xdg = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	struct passwd *pw;

	*out = NULL;
	if (xdg != NULL && xdg[0] == '/') {
		*out = strdup(xdg);
		goto out;
	}
	if (!store_file_base_from_env()) {
		pw = getpwuid(geteuid());
		if (pw == NULL || pw->pw_dir == NULL || pw->pw_dir[0] != '/')
			return err_set(err, ML_ESTORE, "cannot find the state directory: "
			    "neither XDG_STATE_HOME nor HOME is set to an absolute path");
		home = pw->pw_dir;
	}
	*out = path_join(home, ".local/state");
out:
	if (*out == NULL)
		return err_set(err, ML_ESTORE, "out of memory");
	return ML_OK;
}

/*
 * mkdir -p for the components of dir that are missing.  Directories we create
 * get 0700 whatever the umask says: a umask of 0277 would otherwise give 0500
 * and the next level could not be created.
 */
static int
mkdir_parents(const char *dir, struct ml_err *err)
{
	char *p = strdup(dir);
	char *s;
	int rc = ML_OK;

	if (p == NULL)
		return err_set(err, ML_ESTORE, "out of memory");
	for (s = p + 1; ; s++) {
		bool last = *s == '\0';

		if (*s != '/' && !last)
			continue;
		*s = '\0';
		if (mkdir(p, 0700) == 0) {
			if (chmod(p, 0700) != 0) {
				rc = err_set(err, ML_ESTORE, "cannot set the mode of %s: %s", p,
				    strerror(errno));
				goto out;
			}
		} else if (errno != EEXIST) {
			rc = err_set(err, ML_ESTORE, "cannot create directory %s: %s", p,
			    strerror(errno));
			goto out;
		}
		if (last)
			break;
		*s = '/';
	}
out:
	free(p);
	return rc;
}

/*
 * Refuse a directory that is a symbolic link or no directory, that someone
 * else owns, or that group or others can access.
 */
static int
dir_check(const char *dir, struct ml_err *err)
{
	struct stat st;
	int fd = -1, rc;

	/* Check the directory we can open, not a name that could be swapped later. */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		/* Linux says ENOTDIR, not ELOOP, for a symlink with O_DIRECTORY: ask lstat. */
		if ((errno == ELOOP || errno == ENOTDIR) && lstat(dir, &st) == 0 &&
		    S_ISLNK(st.st_mode))
			rc = err_set(err, ML_ESTORE, "refusing directory %s: it is a symbolic "
			    "link (remove it and run again)", dir);
		else if (errno == ELOOP || errno == ENOTDIR)
			rc = err_set(err, ML_ESTORE, "refusing directory %s: it is not a "
			    "directory", dir);
		else
			rc = err_set(err, ML_ESTORE, "cannot open directory %s: %s", dir,
			    strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		rc = err_set(err, ML_ESTORE, "cannot stat %s: %s", dir, strerror(errno));
		goto out;
	}
	if (st.st_uid != geteuid()) {
		rc = err_set(err, ML_ESTORE, "refusing directory %s: it is owned by uid %ld, "
		    "not by you", dir, (long)st.st_uid);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		rc = err_set(err, ML_ESTORE, "refusing directory %s: group or others can "
		    "access it (run: chmod 700 %s)", dir, dir);
		goto out;
	}
	rc = ML_OK;
out:
	if (fd >= 0)
		(void)close(fd);
	return rc;
}

int
store_dir_ensure(const char *dir, struct ml_err *err)
{
	int rc;

	if ((rc = mkdir_parents(dir, err)) != ML_OK)
		return rc;
	return dir_check(dir, err);
}

int
store_state_dir(char **dir, struct ml_err *err)
{
	char *base = NULL;
	int rc;

	*dir = NULL;
	if ((rc = state_base(&base, err)) != ML_OK)
		goto out;
	if ((*dir = path_join(base, "mlauth")) == NULL) {
		rc = err_set(err, ML_ESTORE, "out of memory");
		goto out;
	}
	if ((rc = store_dir_ensure(*dir, err)) != ML_OK) {
		free(*dir);
		*dir = NULL;
	}
out:
	free(base);
	return rc;
}

int
store_file_path(const char *profile, char **path, struct ml_err *err)
{
	char *base = NULL, *name = NULL;
	size_t n;
	int rc;

	*path = NULL;
	/* The profile becomes a file name: no '/', no "..". */
	if (profile == NULL || !config_profile_valid(profile))
		return err_set(err, ML_EUSAGE, "invalid profile name '%s'",
		    profile != NULL ? profile : "(null)");
	if ((rc = state_base(&base, err)) != ML_OK)
		return rc;
	n = strlen("mlauth/") + strlen(profile) + strlen(".json") + 1;
	if ((name = malloc(n)) == NULL) {
		rc = err_set(err, ML_ESTORE, "out of memory");
		goto out;
	}
	(void)snprintf(name, n, "mlauth/%s.json", profile);
	if ((*path = path_join(base, name)) == NULL) {
		rc = err_set(err, ML_ESTORE, "out of memory");
		goto out;
	}
	rc = ML_OK;
out:
	free(base);
	free(name);
	return rc;
}

/*
 * Refuse what must not be read as a record.  The messages name the fix:
 * these files are ours, so the user can repair them without our help.
 */
static int
check_record_file(const char *path, const struct stat *st, struct ml_err *err)
{
	if (!S_ISREG(st->st_mode))
		return err_set(err, ML_ESTORE, "refusing %s: it is not a regular file "
		    "(remove it and log in again)", path);
	if (st->st_uid != geteuid())
		return err_set(err, ML_ESTORE, "refusing %s: it is owned by uid %ld, not by "
		    "you (remove it and log in again)", path, (long)st->st_uid);
	if ((st->st_mode & 077) != 0)
		return err_set(err, ML_ESTORE, "refusing %s: group or others can access it, "
		    "so its tokens may be exposed (run: chmod 600 %s, or log out and in)",
		    path, path);
	if (st->st_size > RECORD_MAX_LEN)
		return err_set(err, ML_ESTORE, "refusing %s: larger than %d bytes", path,
		    RECORD_MAX_LEN);
	return ML_OK;
}

int
store_file_load(const char *path, char **json, struct ml_err *err)
{
	struct stat st;
	char *buf = NULL, *dir;
	size_t want = 0, got = 0;
	ssize_t n;
	char extra;
	int fd, rc;

	*json = NULL;
	/*
	 * The directory's rules hold for reading too: a session read from a
	 * directory that a save then refuses would be refreshed (and a rotated
	 * refresh token lost) before the refusal.  No directory: no record.
	 */
	if ((dir = path_dir(path)) == NULL)
		return err_set(err, ML_ESTORE, "out of memory");
	if (lstat(dir, &st) != 0 && errno == ENOENT) {
		free(dir);
		return ML_OK;
	}
	rc = dir_check(dir, err);
	free(dir);
	if (rc != ML_OK)
		return rc;
	/*
	 * O_NONBLOCK: a FIFO planted at the path would otherwise block open()
	 * until a writer appears; fstat then refuses it.
	 */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return ML_OK;
		if (errno == ELOOP)
			return err_set(err, ML_ESTORE, "refusing %s: it is a symbolic link "
			    "(remove it and log in again)", path);
		return err_set(err, ML_ESTORE, "cannot open %s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) != 0) {
		rc = err_set(err, ML_ESTORE, "cannot stat %s: %s", path, strerror(errno));
		goto out;
	}
	if ((rc = check_record_file(path, &st, err)) != ML_OK)
		goto out;

	/* Sized from fstat once: growing by realloc would leave unwiped copies. */
	want = (size_t)st.st_size;
	if ((buf = secret_alloc(want + 1)) == NULL) {
		rc = err_set(err, ML_ESTORE, "out of memory");
		goto out;
	}
	while (got < want) {
		n = read(fd, buf + got, want - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = err_set(err, ML_ESTORE, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	/* We replace the file by rename, never in place: growth means someone else writes it. */
	do
		n = read(fd, &extra, 1);
	while (n < 0 && errno == EINTR);
	if (n != 0) {
		rc = err_set(err, ML_ESTORE, "cannot read %s: %s", path,
		    n > 0 ? "it changed while being read" : strerror(errno));
		goto out;
	}
	buf[got] = '\0';
	if (memchr(buf, '\0', got) != NULL) {
		rc = err_set(err, ML_ESTORE, "refusing %s: it holds a NUL byte, so it is not "
		    "a record (remove it and log in again)", path);
		goto out;
	}
	*json = buf;
	buf = NULL;
	rc = ML_OK;
out:
	secret_release(buf, want + 1);
	(void)close(fd);
	return rc;
}

/* Write all of buf, through short writes and signals. */
static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* fsync a directory, so a rename or unlink in it survives a crash. */
static int
fsync_dir(const char *dir)
{
	int fd, rc, saved;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	saved = errno;
	(void)close(fd);
	errno = saved;
	return rc;
}

/*
 * Create DIR/.BASE.RANDOM.tmp exclusively, mode 0600.  The random part keeps
 * other processes from guessing the name; O_EXCL|O_NOFOLLOW keep a name
 * planted in advance (or a symlink) from being written through.
 */
static int
temp_create(const char *dir, const char *base, char **tmp, int *fdp, struct ml_err *err)
{
	unsigned char rnd[8];
	char hex[2 * sizeof rnd + 1];
	size_t n;
	int i, rc = ML_OK;

	*fdp = -1;
	n = strlen(dir) + strlen(base) + sizeof hex + 8;
	if ((*tmp = malloc(n)) == NULL)
		return err_set(err, ML_ESTORE, "out of memory");
	for (i = 0; i < TEMP_TRIES; i++) {
		if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
			rc = err_set(err, ML_ESTORE, "cannot make a temporary name: %s",
			    strerror(errno));
			goto out;
		}
		for (size_t k = 0; k < sizeof rnd; k++)
			(void)snprintf(hex + 2 * k, 3, "%02x", rnd[k]);
		(void)snprintf(*tmp, n, "%s/.%s.%s.tmp", dir, base, hex);
		*fdp = open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
		    O_NOCTTY, 0600);
		if (*fdp >= 0)
			goto out;
		if (errno != EEXIST) {
			rc = err_set(err, ML_ESTORE, "cannot create a temporary file in %s: %s",
			    dir, strerror(errno));
			goto out;
		}
	}
	rc = err_set(err, ML_ESTORE, "cannot create a temporary file in %s: names taken", dir);
out:
	if (rc != ML_OK) {
		free(*tmp);
		*tmp = NULL;
	}
	return rc;
}

/*
 * Remove the DIR/.BASE.<16 hex>.tmp files of writers that were killed before
 * their rename: each holds a whole record, tokens included.  Only those older
 * than TEMP_STALE_SECS (another process may be writing one right now), or
 * all of them (logout).  Best effort: what cannot be removed stays 0600 in
 * a 0700 directory.
 */
static void
temp_sweep(const char *dir, const char *base, bool all)
{
	size_t bl = strlen(base), nl;
	time_t now = time(NULL);
	struct dirent *de;
	struct stat st;
	const char *n;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		n = de->d_name;
		nl = strlen(n);
		if (nl != bl + 22 || n[0] != '.' || strncmp(n + 1, base, bl) != 0 ||
		    n[bl + 1] != '.' || strspn(n + bl + 2, "0123456789abcdef") != 16 ||
		    strcmp(n + bl + 18, ".tmp") != 0)
			continue;
		if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
		    st.st_uid != geteuid())
			continue;
		if (all || now - st.st_mtime > TEMP_STALE_SECS)
			(void)unlinkat(dirfd(d), n, 0);
	}
	(void)closedir(d);
}

/*
 * Remove a temp file that may hold a record, closing fd (-1 when closed).
 * It is emptied first so that, should the unlink fail, no token stays behind.
 */
static int
temp_discard(const char *tmp, int fd)
{
	int rc = 0;

	if (fd < 0)
		fd = open(tmp, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || ftruncate(fd, 0) != 0)
		rc = -1;
	if (fd >= 0)
		(void)close(fd);
	if (unlink(tmp) != 0)
		rc = -1;
	return rc;
}

int
store_file_save(const char *path, const char *json, struct ml_err *err)
{
	char *dir = NULL, *tmp = NULL;
	const char *base;
	struct stat st;
	bool renamed = false;
	size_t len;
	int fd = -1, rc;

	if (json == NULL)
		return err_set(err, ML_ESTORE, "no record to store");
	/* A record we could not load back would log the user out. */
	if ((len = strlen(json)) > RECORD_MAX_LEN)
		return err_set(err, ML_ESTORE, "record of %zu bytes is larger than %d", len,
		    RECORD_MAX_LEN);
	base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
	if (base[0] == '\0')
		return err_set(err, ML_ESTORE, "invalid record path %s", path);
	if ((dir = path_dir(path)) == NULL)
		return err_set(err, ML_ESTORE, "out of memory");
	if ((rc = store_dir_ensure(dir, err)) != ML_OK)
		goto out;
	/* rename() would replace a symlink harmlessly, but something put it there: say so. */
	if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		rc = err_set(err, ML_ESTORE, "refusing %s: it is %s (remove it and run again)",
		    path, S_ISLNK(st.st_mode) ? "a symbolic link" : "not a regular file");
		goto out;
	}
	if ((rc = temp_create(dir, base, &tmp, &fd, err)) != ML_OK)
		goto out;
	/* The umask may have taken the owner's bits away; the mode is ours to fix. */
	if (fchmod(fd, 0600) != 0 || write_all(fd, json, len) != 0 || fsync(fd) != 0) {
		rc = err_set(err, ML_ESTORE, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = err_set(err, ML_ESTORE, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		rc = err_set(err, ML_ESTORE, "cannot replace %s: %s", path, strerror(errno));
		goto out;
	}
	renamed = true;
	if (fsync_dir(dir) != 0) {
		rc = err_set(err, ML_ESTORE, "cannot sync %s: %s", dir, strerror(errno));
		goto out;
	}
	temp_sweep(dir, base, false);
	rc = ML_OK;
out:
	/* Already failing: a failed clean-up has nothing better to report. */
	if (!renamed && tmp != NULL)
		(void)temp_discard(tmp, fd);
	else if (fd >= 0)
		(void)close(fd);
	free(tmp);
	free(dir);
	return rc;
}

int
store_file_delete(const char *path, bool *found, struct ml_err *err)
{
	const char *base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
	char *dir = path_dir(path);
	int saved;

	*found = false;
	/* What a killed writer left behind holds tokens too: logout takes it all. */
	if (dir != NULL)
		temp_sweep(dir, base, true);
	if (unlink(path) != 0) {
		saved = errno;
		free(dir);
		if (saved == ENOENT)
			return ML_OK;
		return err_set(err, ML_ESTORE, "cannot remove %s: %s", path, strerror(saved));
	}
	*found = true;
	/*
	 * Best effort: the file is gone for every reader already; a failed sync
	 * only means a crash could bring it back, which is no reason to fail logout.
	 */
	if (dir != NULL)
		(void)fsync_dir(dir);
	free(dir);
	return ML_OK;
}
