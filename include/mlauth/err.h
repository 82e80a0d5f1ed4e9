/* err.h: the error every module returns (a status code and a one-line message). */
#ifndef MLAUTH_ERR_H
#define MLAUTH_ERR_H

/*
 * Status codes double as the documented exit statuses (man/mlauth.1), so a
 * module's verdict reaches the shell unchanged.  Keep them stable.
 */
enum ml_status {
	ML_OK = 0,
	ML_EFAIL = 1,	/* anything else */
	ML_EUSAGE = 2,	/* bad command line, setting or config file */
	ML_ELOGIN = 3,	/* no session, or the refresh token was rejected */
	ML_ENET = 4,	/* network or identity provider unreachable */
	ML_EAPI = 5,	/* the messages API answered with an error */
	ML_ESTORE = 6,	/* keyring or store failure */
	ML_EINTR = 130	/* interrupted */
};

/*
 * A fixed buffer, not an allocation: reporting an out-of-memory error must
 * not itself need memory.  Messages never hold a secret.
 */
struct ml_err {
	int code;
	char msg[512];
};

/* Record the error and return its code, so callers can `return err_set(...)`. */
int err_set(struct ml_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Put `prefix: ` in front of the message already held. */
void err_prefix(struct ml_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void err_clear(struct ml_err *e);

#endif
