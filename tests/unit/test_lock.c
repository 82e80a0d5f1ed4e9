/* test_lock.c: the single-flight lock, across file descriptors and processes. */
#define _DEFAULT_SOURCE	/* mkdtemp */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

#include "mlauth/err.h"
#include "mlauth/http.h"
#include "mlauth/lock.h"

struct fx {
	char root[64];
	char run[128];		/* $XDG_RUNTIME_DIR */
	char state[128];	/* $XDG_STATE_HOME */
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);

	if (f == NULL)
		return -1;
	(void)snprintf(f->root, sizeof f->root, "/tmp/mlauth-lock-XXXXXX");
	if (mkdtemp(f->root) == NULL)
		return -1;
	(void)snprintf(f->run, sizeof f->run, "%s/run", f->root);
	(void)snprintf(f->state, sizeof f->state, "%s/state", f->root);
	if (mkdir(f->run, 0700) != 0)
		return -1;
	if (setenv("XDG_RUNTIME_DIR", f->run, 1) != 0 ||
	    setenv("XDG_STATE_HOME", f->state, 1) != 0 || setenv("HOME", f->root, 1) != 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char cmd[256];

	(void)snprintf(cmd, sizeof cmd, "rm -rf %s", f->root);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Whether the main thread is asleep in the lock's wait, its only sleep: read
 * from /proc (the syscall it is blocked in), so a test acts on the moment the
 * wait has begun rather than on a guess of when that will be.
 */
static int
main_thread_waiting(void)
{
	char path[64], buf[128];
	long nr = -1;
	FILE *f;

	(void)snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)getpid());
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	if (fgets(buf, sizeof buf, f) == NULL || sscanf(buf, "%ld", &nr) != 1)
		nr = -1;	/* "running" */
	(void)fclose(f);
#ifdef SYS_nanosleep
	if (nr == SYS_nanosleep)
		return 1;
#endif
	return nr == SYS_clock_nanosleep;
}

/*
 * Once the main thread waits for the lock: write a byte to fd; or signal it,
 * again at each step of the wait until it returns (`done`), since a signal
 * that lands between two steps is not one the wait can see.
 */
struct when_waiting {
	pthread_t main;
	int fd;		/* >= 0: write here */
	int sig;	/* else: send this */
	_Atomic int done;
	int saw_wait;
};

static void *
when_waiting(void *arg)
{
	struct when_waiting *w = arg;
	struct timespec ms = { 0, 1000000 };

	while (!w->done) {
		if (main_thread_waiting()) {
			w->saw_wait = 1;
			if (w->fd >= 0) {
				if (write(w->fd, "x", 1) != 1)
					w->saw_wait = 0;
				return NULL;
			}
			(void)pthread_kill(w->main, w->sig);
		}
		(void)nanosleep(&ms, NULL);
	}
	return NULL;
}

static void
test_dir_and_file_modes(void **state)
{
	struct fx *f = *state;
	struct ml_err err;
	char path[256];
	struct stat st;
	int fd = -1;

	umask(0);	/* the modes must come from the module */
	assert_int_equal(lock_acquire("t", &fd, &err), ML_OK);
	umask(022);
	assert_true(fd >= 0);
	(void)snprintf(path, sizeof path, "%s/mlauth", f->state);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	(void)snprintf(path, sizeof path, "%s/mlauth/t.lock", f->state);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	/* Close-on-exec: a command run by `mlauth exec` must not inherit the lock. */
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	lock_release(fd);
	/* The lock file stays: removing it would let two holders lock two inodes. */
	assert_int_equal(access(path, F_OK), 0);
}

static void
test_second_fd_waits_until_release(void **state)
{
	struct ml_err err;
	int a = -1, b = -1, c = -1;
	long t0;

	assert_int_equal(lock_acquire("t", &a, &err), ML_OK);
	/* flock conflicts between two opens even in one process. */
	t0 = now_ms();
	err_clear(&err);
	assert_int_equal(lock_acquire_timeout("t", 200, &b, &err), ML_EFAIL);
	assert_true(now_ms() - t0 >= 190);
	assert_int_equal(b, -1);
	assert_non_null(strstr(err.msg, "another mlauth holds the lock"));
	/* Other profiles are independent. */
	assert_int_equal(lock_acquire_timeout("u", 0, &c, &err), ML_OK);
	lock_release(c);
	lock_release(a);
	assert_int_equal(lock_acquire_timeout("t", 0, &b, &err), ML_OK);
	lock_release(b);
}

/* A child holds the lock until a byte arrives on go_fd, then exits (which releases it). */
static pid_t
child_holding(int go_fd, int ready_fd)
{
	struct ml_err err;
	pid_t pid = fork();
	int fd = -1;
	char c;

	assert_true(pid >= 0);
	if (pid > 0)
		return pid;
	if (lock_acquire("t", &fd, &err) != ML_OK)
		_exit(2);
	if (write(ready_fd, "x", 1) != 1)
		_exit(3);
	if (read(go_fd, &c, 1) != 1)
		_exit(4);
	_exit(0);
}

static void
test_other_process_blocks_then_hands_over(void **state)
{
	struct when_waiting w = { .fd = -1 };
	struct ml_err err;
	int ready[2], go[2], fd = -1, status;
	pthread_t th;
	char c;
	pid_t pid;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid = child_holding(go[0], ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);	/* the child holds it now */

	/* Try-once fails while it is held. */
	assert_int_equal(lock_acquire_timeout("t", 0, &fd, &err), ML_EFAIL);
	assert_int_equal(fd, -1);
	/* A patient caller gets it once the holder lets go, which it does only after
	 * the caller has started waiting. */
	w.main = pthread_self();
	w.fd = go[1];
	assert_int_equal(pthread_create(&th, NULL, when_waiting, &w), 0);
	assert_int_equal(lock_acquire_timeout("t", LOCK_WAIT_MS, &fd, &err), ML_OK);
	w.done = 1;
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_true(w.saw_wait);
	assert_true(fd >= 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	lock_release(fd);
	for (int i = 0; i < 2; i++) {
		close(ready[i]);
		close(go[i]);
	}
}

/* Release must free the lock even while a forked child still shares the descriptor. */
static void
test_release_despite_inherited_fd(void **state)
{
	struct ml_err err;
	int fd = -1, again = -1, status;
	pid_t pid;

	int hold[2];
	char c;

	assert_int_equal(pipe(hold), 0);
	assert_int_equal(lock_acquire("t", &fd, &err), ML_OK);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(hold[1]);
		/* Holds its copy of fd until the parent is done. */
		_exit(read(hold[0], &c, 1) == 0 ? 0 : 1);
	}
	close(hold[0]);
	lock_release(fd);
	assert_int_equal(lock_acquire_timeout("t", 0, &again, &err), ML_OK);
	lock_release(again);
	close(hold[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void
on_usr1(int sig)
{
	(void)sig;
}

static void
test_signal_interrupts_wait(void **state)
{
	struct when_waiting w = { .fd = -1, .sig = SIGUSR1 };
	struct sigaction sa;
	struct ml_err err;
	int held = -1, fd = -1;
	pthread_t th;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;	/* no SA_RESTART, like a Ctrl-C handler */
	assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);
	assert_int_equal(lock_acquire("t", &held, &err), ML_OK);
	/* The signal comes once the wait has begun, however long that takes. */
	w.main = pthread_self();
	assert_int_equal(pthread_create(&th, NULL, when_waiting, &w), 0);
	err_clear(&err);
	assert_int_equal(lock_acquire_timeout("t", LOCK_WAIT_MS, &fd, &err), ML_EINTR);
	w.done = 1;
	assert_int_equal(fd, -1);
	msg_has(err.msg, "interrupted while waiting for lock");
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_true(w.saw_wait);
	lock_release(held);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGUSR1, &sa, NULL);
}

/*
 * A Ctrl-C that arrives while the wait is not asleep (in flock, between two
 * steps, or just before the call) only sets the flag main.c's handler sets;
 * the wait must still end at once rather than run its full length.
 */
static void
test_flag_set_outside_sleep_ends_wait(void **state)
{
	struct ml_err err;
	int held = -1, fd = -1;

	assert_int_equal(lock_acquire("t", &held, &err), ML_OK);
	http_interrupted = 1;
	err_clear(&err);
	/* Were the flag ignored, this would wait all 3 s and fail with ML_EFAIL. */
	assert_int_equal(lock_acquire_timeout("t", 3000, &fd, &err), ML_EINTR);
	http_interrupted = 0;
	assert_int_equal(fd, -1);
	msg_has(err.msg, "interrupted while waiting for lock");
	/* An uncontended lock is still taken: the caller decides what a Ctrl-C means then. */
	lock_release(held);
	http_interrupted = 1;
	assert_int_equal(lock_acquire_timeout("t", LOCK_WAIT_MS, &fd, &err), ML_OK);
	http_interrupted = 0;
	lock_release(fd);
}

/*
 * A cron job (no XDG_RUNTIME_DIR) and an SSH session (XDG_RUNTIME_DIR set)
 * of one user share a store, so they must share the lock too.
 */
static void
test_same_lock_whatever_runtime_dir(void **state)
{
	struct fx *f = *state;
	struct ml_err err;
	char path[256];
	struct stat st;
	int held = -1, fd = -1;

	(void)snprintf(path, sizeof path, "%s/mlauth/t.lock", f->state);
	assert_int_equal(lock_acquire_timeout("t", 0, &held, &err), ML_OK);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(unsetenv("XDG_RUNTIME_DIR"), 0);
	assert_int_equal(lock_acquire_timeout("t", 0, &fd, &err), ML_EFAIL);
	assert_int_equal(setenv("XDG_RUNTIME_DIR", "/nonexistent/run", 1), 0);
	assert_int_equal(lock_acquire_timeout("t", 0, &fd, &err), ML_EFAIL);
	assert_int_equal(fd, -1);
	lock_release(held);
	assert_int_equal(lock_acquire_timeout("t", 0, &fd, &err), ML_OK);
	lock_release(fd);
	/* Nothing under the runtime directory any more. */
	(void)snprintf(path, sizeof path, "%s/mlauth", f->run);
	assert_int_equal(lstat(path, &st), -1);
}

static void
test_refuses_bad_dir_and_names(void **state)
{
	struct fx *f = *state;
	struct ml_err err;
	char dir[256];
	int fd = -1;

	(void)snprintf(dir, sizeof dir, "%s", f->state);
	assert_int_equal(mkdir(dir, 0700), 0);
	(void)snprintf(dir, sizeof dir, "%s/mlauth", f->state);
	assert_int_equal(mkdir(dir, 0755), 0);
	err_clear(&err);
	assert_int_equal(lock_acquire_timeout("t", 0, &fd, &err), ML_ESTORE);
	assert_int_equal(fd, -1);
	assert_non_null(strstr(err.msg, "chmod 700"));
	assert_int_equal(lock_acquire_timeout("../t", 0, &fd, &err), ML_EUSAGE);
	assert_int_equal(fd, -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dir_and_file_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_fd_waits_until_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_process_blocks_then_hands_over, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_release_despite_inherited_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signal_interrupts_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flag_set_outside_sleep_ends_wait, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_same_lock_whatever_runtime_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_bad_dir_and_names, setup, teardown),
	};

	return cmocka_run_group_tests_name("lock", tests, NULL, NULL);
}
