/*
 * lock.c: the single-flight lock.  flock, not fcntl locks: it belongs to the
 * open file, so it is released when the holder dies however it dies, and a
 * second open in the same process conflicts too (tests rely on that).
 *
 * The lock file is never removed: unlinking a lock file lets a late comer
 * lock a new inode while an old holder still holds the unlinked one.
 */
#define _DEFAULT_SOURCE	/* flock */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mlauth/config.h"
#include "mlauth/err.h"
#include "mlauth/http.h"
#include "mlauth/lock.h"
#include "mlauth/store.h"

/* Polling steps: quick at first (a refresh takes ~100 ms), then gentle. */
#define STEP_MIN_MS	5
#define STEP_MAX_MS	100

static long
now_ms(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC is always there on Linux: a wall-clock jump must not matter. */
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The state directory ($XDG_STATE_HOME/mlauth, else ~/.local/state/mlauth),
 * beside the file store, and never $XDG_RUNTIME_DIR: that is set in a
 * desktop or SSH session but not in cron, systemd units or `su -l`, and two
 * processes of one user that lock different files refresh the same session
 * twice (a provider with reuse detection then revokes it).  Allocated.
 */
static int
lock_dir(char **dir, struct ml_err *err)
{
	return store_state_dir(dir, err);
}

int
lock_acquire(const char *profile, int *fd, struct ml_err *err)
{
	return lock_acquire_timeout(profile, LOCK_WAIT_MS, fd, err);
}

int
lock_acquire_timeout(const char *profile, long timeout_ms, int *fdp, struct ml_err *err)
{
	char *dir = NULL, *path = NULL;
	long deadline, left, step = STEP_MIN_MS;
	struct timespec ts;
	struct stat st;
	size_t n;
	int fd = -1, rc;

	*fdp = -1;
	if (profile == NULL || !config_profile_valid(profile))
		return err_set(err, ML_EUSAGE, "invalid profile name '%s'",
		    profile != NULL ? profile : "(null)");
	if ((rc = lock_dir(&dir, err)) != ML_OK)
		goto out;
	n = strlen(dir) + 1 + strlen(profile) + sizeof ".lock";
	if ((path = malloc(n)) == NULL) {
		rc = err_set(err, ML_EFAIL, "out of memory");
		goto out;
	}
	(void)snprintf(path, n, "%s/%s.lock", dir, profile);
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		rc = err_set(err, errno == EINTR ? ML_EINTR : ML_EFAIL, "cannot open lock %s: %s",
		    path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		rc = err_set(err, ML_EFAIL, "refusing lock %s: not a regular file of yours "
		    "(remove it)", path);
		goto out;
	}

	deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		if (errno == EINTR) {
			rc = err_set(err, ML_EINTR, "interrupted while waiting for lock %s", path);
			goto out;
		}
		if (errno != EWOULDBLOCK) {
			rc = err_set(err, ML_EFAIL, "cannot lock %s: %s", path, strerror(errno));
			goto out;
		}
		/* A Ctrl-C that landed outside the sleep (during flock, or before this
		 * call) only set the flag: without this check the wait would run on. */
		if (http_interrupted) {
			rc = err_set(err, ML_EINTR, "interrupted while waiting for lock %s", path);
			goto out;
		}
		if ((left = deadline - now_ms()) <= 0) {
			rc = err_set(err, ML_EFAIL, "another mlauth holds the lock %s and did not "
			    "let go within %ld s; is one stuck? (see: fuser -v %s)", path,
			    (timeout_ms + 999) / 1000, path);
			goto out;
		}
		if (step > left)
			step = left;
		ts.tv_sec = step / 1000;
		ts.tv_nsec = (step % 1000) * 1000000;
		/* A signal ends the wait: the caller checks its flags (Ctrl-C) and stops. */
		if (nanosleep(&ts, NULL) != 0) {
			rc = err_set(err, errno == EINTR ? ML_EINTR : ML_EFAIL,
			    "interrupted while waiting for lock %s", path);
			goto out;
		}
		if ((step *= 2) > STEP_MAX_MS)
			step = STEP_MAX_MS;
	}
	*fdp = fd;
	fd = -1;
	rc = ML_OK;
out:
	if (fd >= 0)
		(void)close(fd);
	free(path);
	free(dir);
	return rc;
}

void
lock_release(int fd)
{
	if (fd < 0)
		return;
	/* The lock belongs to the open file, which a child forked meanwhile shares:
	 * closing our descriptor alone would not release it. */
	(void)flock(fd, LOCK_UN);
	(void)close(fd);
}
