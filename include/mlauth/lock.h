/* lock.h: the single-flight lock around a profile's refresh. */
#ifndef MLAUTH_LOCK_H
#define MLAUTH_LOCK_H

#include "mlauth/err.h"

/* How long lock_acquire waits for another holder before giving up. */
#define LOCK_WAIT_MS	60000

/*
 * Take an exclusive flock on $XDG_STATE_HOME/mlauth/PROFILE.lock (beside the
 * file store; the same file whatever XDG_RUNTIME_DIR says), creating the 0700
 * directory and the 0600 file.  Waits while another process holds it, up to
 * LOCK_WAIT_MS: then ML_EFAIL, so a wedged holder cannot hang every caller.
 * A signal while waiting gives ML_EINTR.  On success *fd holds the lock
 * (close-on-exec); give it to lock_release.  On failure *fd is -1.
 */
int lock_acquire(const char *profile, int *fd, struct ml_err *err);
/* The same with the limit in milliseconds (0: try once). */
int lock_acquire_timeout(const char *profile, long timeout_ms, int *fd, struct ml_err *err);
/* Unlock and close; -1 is fine. */
void lock_release(int fd);

#endif
