/*
 * rounds: time commands interleaved round by round, for make bench.
 *
 *   rounds ROUNDS WARMUP SEED < SPEC
 *
 * SPEC has one command per line, its arguments separated by tabs.  Each round
 * runs every command once, in an order shuffled anew for the round, so a burst
 * of load from elsewhere on the machine falls on all of them alike (hyperfine
 * runs one command's runs back to back).  WARMUP rounds run first and are not
 * kept.  Each run: stdin and stdout /dev/null, stderr kept only for a failure;
 * wall time from before posix_spawn to after wait4, and wait4's rusage (page
 * faults, CPU).  Prints one JSON object: per command, arrays of wall_ns,
 * minflt, utime_us and stime_us, and the number failed.  Not peak RSS: at
 * exec the kernel counts the spawning process's size into the child's
 * ru_maxrss, so bench.js measures that with /usr/bin/time instead.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_CMDS 32
#define MAX_ARGS 64

struct cmd {
	char *argv[MAX_ARGS + 1];
	long long *wall_ns, *minflt, *utime_us, *stime_us;
	int failed;
	char first_error[512];
};

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int
parse_spec(struct cmd *cmds, int max)
{
	static char line[8192];
	int n = 0;

	while (n < max && fgets(line, sizeof line, stdin) != NULL) {
		char *save = NULL, *tok, *copy;
		int a = 0;

		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0')
			continue;
		if ((copy = strdup(line)) == NULL)
			return -1;
		for (tok = strtok_r(copy, "\t", &save); tok != NULL && a < MAX_ARGS;
		    tok = strtok_r(NULL, "\t", &save))
			cmds[n].argv[a++] = tok;
		cmds[n].argv[a] = NULL;
		n++;
	}
	return n;
}

/* One run of c; keep: record it as run number i. */
static int
run_one(struct cmd *c, int keep, int i, int devnull)
{
	posix_spawn_file_actions_t fa;
	char errpath[] = "/tmp/rounds-err-XXXXXX";
	struct rusage ru;
	long long t0, t1;
	int errfd = mkstemp(errpath), status;
	pid_t pid;

	if (errfd < 0)
		return -1;
	(void)unlink(errpath);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, devnull, 0);
	posix_spawn_file_actions_adddup2(&fa, devnull, 1);
	posix_spawn_file_actions_adddup2(&fa, errfd, 2);
	t0 = now_ns();
	if (posix_spawn(&pid, c->argv[0], &fa, NULL, c->argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		close(errfd);
		return -1;
	}
	if (wait4(pid, &status, 0, &ru) < 0) {
		posix_spawn_file_actions_destroy(&fa);
		close(errfd);
		return -1;
	}
	t1 = now_ns();
	posix_spawn_file_actions_destroy(&fa);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (c->failed++ == 0) {
			ssize_t n = pread(errfd, c->first_error, sizeof c->first_error - 1, 0);

			c->first_error[n > 0 ? n : 0] = '\0';
		}
	}
	close(errfd);
	if (keep) {
		c->wall_ns[i] = t1 - t0;
		c->minflt[i] = ru.ru_minflt;
		c->utime_us[i] = (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec;
		c->stime_us[i] = (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
	}
	return 0;
}

static void
print_array(const char *name, const long long *v, int n, int last)
{
	printf("\"%s\":[", name);
	for (int i = 0; i < n; i++)
		printf("%s%lld", i ? "," : "", v[i]);
	printf("]%s", last ? "" : ",");
}

/* The JSON string s, escaped. */
static void
print_string(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

int
main(int argc, char **argv)
{
	static struct cmd cmds[MAX_CMDS];
	int order[MAX_CMDS], rounds, warmup, n, devnull;

	if (argc != 4 || (rounds = atoi(argv[1])) <= 0 || (warmup = atoi(argv[2])) < 0) {
		fprintf(stderr, "usage: rounds ROUNDS WARMUP SEED < SPEC\n");
		return 2;
	}
	srand((unsigned)strtoul(argv[3], NULL, 10));
	if ((n = parse_spec(cmds, MAX_CMDS)) <= 0 ||
	    (devnull = open("/dev/null", O_RDWR)) < 0) {
		fprintf(stderr, "rounds: no commands, or no /dev/null\n");
		return 2;
	}
	for (int c = 0; c < n; c++) {
		long long **arrays[] = { &cmds[c].wall_ns, &cmds[c].minflt,
			&cmds[c].utime_us, &cmds[c].stime_us };

		for (size_t a = 0; a < sizeof arrays / sizeof arrays[0]; a++)
			if ((*arrays[a] = calloc((size_t)rounds, sizeof(long long))) == NULL)
				return 2;
		order[c] = c;
	}
	for (int r = 0; r < warmup + rounds; r++) {
		for (int i = n - 1; i > 0; i--) {	/* Fisher-Yates */
			int j = rand() % (i + 1), t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
		for (int i = 0; i < n; i++)
			if (run_one(&cmds[order[i]], r >= warmup, r - warmup, devnull) < 0) {
				fprintf(stderr, "rounds: cannot run %s\n", cmds[order[i]].argv[0]);
				return 1;
			}
	}
	printf("{\"rounds\":%d,\"commands\":[", rounds);
	for (int c = 0; c < n; c++) {
		printf("%s{", c ? "," : "");
		print_array("wall_ns", cmds[c].wall_ns, rounds, 0);
		print_array("minflt", cmds[c].minflt, rounds, 0);
		print_array("utime_us", cmds[c].utime_us, rounds, 0);
		print_array("stime_us", cmds[c].stime_us, rounds, 0);
		printf("\"failed\":%d,\"first_error\":", cmds[c].failed);
		print_string(cmds[c].first_error);
		putchar('}');
	}
	printf("]}\n");
	return fflush(stdout) == 0 ? 0 : 1;
}
