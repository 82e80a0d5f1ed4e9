/*
 * herd: start N copies of a command at the same instant and time each one.
 *
 *   herd N OUTDIR CMD [ARGS...]
 *
 * Forks N children first; each opens OUTDIR/I.out and OUTDIR/I.err as its
 * stdout and stderr and blocks on a shared pipe.  Closing the pipe releases
 * them all at once (T0); each then executes CMD.  The parent reaps them and
 * prints one JSON object on stdout:
 *   {"n":N,"latency_ms":[...],"status":[...]}
 * latency_ms[I] is child I's exit time minus T0, status[I] its exit status
 * (128+signal when killed, -1 when CMD could not be executed).
 * Used by bench/bench.js for "100 concurrent mlauth token at expiry".
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_N 1000

static double
now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void
redirect(const char *dir, int i, const char *ext, int target)
{
	char path[PATH_MAX];
	int fd;

	(void)snprintf(path, sizeof path, "%s/%d.%s", dir, i, ext);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || dup2(fd, target) < 0)
		_exit(126);
	(void)close(fd);
}

int
main(int argc, char **argv)
{
	static pid_t pids[MAX_N];
	static double lat[MAX_N];
	static int st[MAX_N];
	int barrier[2], n, left;
	double t0;
	char c;

	if (argc < 4 || (n = atoi(argv[1])) < 1 || n > MAX_N) {
		fprintf(stderr, "usage: herd N OUTDIR CMD [ARGS...]  (1 <= N <= %d)\n", MAX_N);
		return 2;
	}
	if (pipe(barrier) != 0) {
		perror("herd: pipe");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("herd: fork");
			/* Release and reap what we started before giving up. */
			(void)close(barrier[1]);
			while (wait(NULL) > 0)
				;
			return 1;
		}
		if (pid == 0) {
			(void)close(barrier[1]);
			redirect(argv[2], i, "out", STDOUT_FILENO);
			redirect(argv[2], i, "err", STDERR_FILENO);
			/* EOF on the barrier is the starting gun. */
			while (read(barrier[0], &c, 1) < 0 && errno == EINTR)
				;
			(void)close(barrier[0]);
			execvp(argv[3], argv + 3);
			_exit(127);
		}
		pids[i] = pid;
		st[i] = -2;
	}
	(void)close(barrier[0]);
	/* Let every child reach its read() before the start. */
	(void)nanosleep(&(struct timespec){ 0, 200 * 1000 * 1000 }, NULL);
	t0 = now_ms();
	(void)close(barrier[1]);
	for (left = n; left > 0;) {
		int status;
		pid_t pid = waitpid(-1, &status, 0);
		double t = now_ms();

		if (pid < 0) {
			if (errno == EINTR)
				continue;
			perror("herd: waitpid");
			return 1;
		}
		for (int i = 0; i < n; i++)
			if (pids[i] == pid) {
				lat[i] = t - t0;
				st[i] = WIFEXITED(status) ? (WEXITSTATUS(status) == 127 ? -1 :
				    WEXITSTATUS(status)) : 128 + WTERMSIG(status);
				left--;
				break;
			}
	}
	printf("{\"n\":%d,\"latency_ms\":[", n);
	for (int i = 0; i < n; i++)
		printf("%s%.3f", i ? "," : "", lat[i]);
	printf("],\"status\":[");
	for (int i = 0; i < n; i++)
		printf("%s%d", i ? "," : "", st[i]);
	printf("]}\n");
	return fflush(stdout) == 0 ? 0 : 1;
}
