/*
 * cmd_send.c: `mlauth send`: one authenticated request to the messages API.
 *
 * The body is built by messages.c (or taken verbatim from --body); this file
 * owns the conversation: a fresh token, the retry loop (backoff with jitter,
 * Retry-After, one refresh after a 401), and printing as the answer arrives.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "mlauth/api.h"
#include "mlauth/cmd.h"
#include "mlauth/http.h"
#include "mlauth/messages.h"
#include "mlauth/sanitize.h"
#include "mlauth/secret.h"
#include "mlauth/sse.h"
#include "mlauth/store.h"
#include "mlauth/token.h"

#define SEND_TIMEOUT 600	/* seconds, at least, for one messages request */

enum { OPT_MAX_TOKENS = 256, OPT_TEMPERATURE, OPT_STREAM, OPT_BODY, OPT_RETRIES, OPT_MODEL };

static const struct option options[] = {
	/* No -m: that is --min-valid in token, exec, env and proxy. */
	{ "model", required_argument, NULL, OPT_MODEL },
	{ "max-tokens", required_argument, NULL, OPT_MAX_TOKENS },
	{ "system", required_argument, NULL, 's' },
	{ "temperature", required_argument, NULL, OPT_TEMPERATURE },
	{ "stream", no_argument, NULL, OPT_STREAM },
	{ "json", no_argument, NULL, 'j' },
	{ "body", required_argument, NULL, OPT_BODY },
	{ "retries", required_argument, NULL, OPT_RETRIES },
	{ NULL, 0, NULL, 0 }
};

struct send {
	struct cmd_ctx *ctx;
	struct messages_request req;
	const char *body_file;
	char *body;
	size_t body_len;
	bool json;
	long retries;
	/* Streaming state, reset for every attempt. */
	struct sse_parser *sse;
	struct messages_stream ms;
	struct ml_err stream_err;
	bool printed;		/* output already reached stdout: no retry may repeat it */
	bool text_ends_nl;
	bool tty;		/* stdout is a terminal: the reply's text is sanitised */
	struct sanitize_stream san;
};

/*
 * The reply's text: byte for byte into a pipe or file, but to a terminal by
 * the one rule for network text (sanitize.h), so a reply cannot set the
 * title, write the clipboard or clear the screen.
 */
static int
put_text(struct send *s, const char *text, size_t len)
{
	char out[1024 + SANITIZE_HELD];
	size_t n;

	if (!s->tty)
		return fwrite(text, 1, len, stdout) == len ? 0 : -1;
	for (size_t i = 0; i < len; i += 1024) {
		n = sanitize_stream(&s->san, text + i, len - i < 1024 ? len - i : 1024, out);
		if (fwrite(out, 1, n, stdout) != n)
			return -1;
	}
	return 0;
}

/* A character the reply left unfinished, shown as '?'. */
static void
put_text_end(struct send *s)
{
	char out[SANITIZE_HELD];

	if (s->tty)
		(void)fwrite(out, 1, sanitize_stream_end(&s->san, out), stdout);
}

/* Read all of fd, at most cap bytes; *out is NUL-terminated and allocated. */
static int
read_all(int fd, size_t cap, char **out, size_t *outlen, struct ml_err *err)
{
	size_t len = 0, size = 4096;
	char *buf = malloc(size), *nb;
	ssize_t n;

	if (buf == NULL)
		return err_set(err, ML_EFAIL, "out of memory");
	for (;;) {
		if (len + 1 >= size) {
			if (size > cap) {
				free(buf);
				return err_set(err, ML_EUSAGE, "input is larger than %zu bytes", cap);
			}
			if ((nb = realloc(buf, size * 2)) == NULL) {
				free(buf);
				return err_set(err, ML_EFAIL, "out of memory");
			}
			buf = nb;
			size *= 2;
		}
		n = read(fd, buf + len, size - len - 1);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR && !http_interrupted)
				continue;
			free(buf);
			return err_set(err, errno == EINTR ? ML_EINTR : ML_EFAIL,
			    "cannot read input: %s", strerror(errno));
		}
		len += (size_t)n;
	}
	if (len > cap) {
		free(buf);
		return err_set(err, ML_EUSAGE, "input is larger than %zu bytes", cap);
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return ML_OK;
}

static int
read_source(const char *path, char **out, size_t *len, struct ml_err *err)
{
	int fd, rc;

	if (strcmp(path, "-") == 0)
		return read_all(STDIN_FILENO, HTTP_MAX_BODY, out, len, err);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return err_set(err, ML_EUSAGE, "cannot open %s: %s", path, strerror(errno));
	rc = read_all(fd, HTTP_MAX_BODY, out, len, err);
	close(fd);
	if (rc != ML_OK)
		err_prefix(err, "%s", path);
	return rc;
}

/* Whether a raw --body asks for a stream, so its answer is read as one. */
static bool
body_wants_stream(const char *body, size_t len)
{
	json_t *o = json_loadb(body, len, 0, NULL);
	bool s = json_is_true(json_object_get(o, "stream"));

	json_decref(o);
	return s;
}

static int
on_text(const char *text, size_t len, void *arg)
{
	struct send *s = arg;

	if (s->json || len == 0)
		return 0;
	if (put_text(s, text, len) != 0 || fflush(stdout) != 0)
		return ML_EFAIL;
	s->printed = true;
	s->text_ends_nl = text[len - 1] == '\n';
	return 0;
}

static int
on_event(const char *event, const char *data, size_t len, void *arg)
{
	struct send *s = arg;

	return messages_stream_event(&s->ms, event, data, len, &s->stream_err);
}

static int
on_chunk(const char *buf, size_t len, void *arg)
{
	struct send *s = arg;

	if (s->json) {
		/* --json --stream: the events exactly as they came, still checked below. */
		if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0)
			return err_set(&s->stream_err, ML_EFAIL, "cannot write to standard output");
		s->printed = true;
	}
	return sse_feed(s->sse, buf, len, &s->stream_err);
}

static void
report_usage(struct send *s, const struct messages_reply *r, const char *request_id)
{
	if (s->ctx->verbose == 0)
		return;
	fprintf(stderr, "mlauth: model %s, stop reason %s, tokens in %ld out %ld, request id %s\n",
	    r->model ? r->model : "?", r->stop_reason ? r->stop_reason : "?",
	    r->input_tokens, r->output_tokens, request_id ? request_id : "?");
}

/* One complete 2xx answer (not streamed): print it. */
static int
print_reply(struct send *s, const struct http_response *resp, struct ml_err *err)
{
	struct messages_reply r;
	size_t n;
	int rc;

	rc = messages_parse_reply(resp->body, resp->len, &r, err);
	if (rc == ML_OK) {
		if (s->json) {
			/* Byte for byte what the API sent: scripts may hash or diff it. */
			if (fwrite(resp->body, 1, resp->len, stdout) != resp->len)
				rc = err_set(err, ML_EFAIL, "cannot write to standard output");
		} else {
			n = strlen(r.text);
			if (put_text(s, r.text, n) != 0)
				rc = err_set(err, ML_EFAIL, "cannot write to standard output");
			put_text_end(s);
			if (n == 0 || r.text[n - 1] != '\n')
				putchar('\n');
		}
		report_usage(s, &r, resp->request_id);
	}
	messages_reply_free(&r);
	return rc;
}

static int
attempt(struct send *s, struct api_session *as, struct http_response *resp,
    bool *token_failed, struct ml_err *err)
{
	static const char *const headers[] = { "Accept: application/json", NULL };
	struct api_call call = {
		.content_type = "application/json", .body = s->body, .body_len = s->body_len,
		.headers = headers,
	};
	int rc;

	*token_failed = false;
	if (s->req.stream) {
		sse_free(s->sse);
		messages_stream_free(&s->ms);
		messages_stream_init(&s->ms, on_text, s);
		err_clear(&s->stream_err);
		if ((s->sse = sse_new(on_event, s)) == NULL)
			return err_set(err, ML_EFAIL, "out of memory");
		call.on_chunk = on_chunk;
		call.chunk_arg = s;
		/* A server that answers with one JSON message instead is read as such. */
		call.stream_type = "text/event-stream";
	}
	rc = api_perform(as, &call, resp, err);
	*token_failed = call.token_failed;
	if (s->req.stream && s->stream_err.code != ML_OK && rc != ML_OK && rc != ML_EINTR)
		*err = s->stream_err;	/* the reader's own words beat "transfer aborted" */
	return rc;
}

/* The stream ended: check it was whole, and finish the output line. */
static int
finish_stream(struct send *s, const struct http_response *resp, struct ml_err *err)
{
	int rc;

	if ((rc = sse_finish(s->sse, err)) != ML_OK)
		return rc;
	if (s->stream_err.code != ML_OK) {
		*err = s->stream_err;
		return err->code;
	}
	if ((rc = messages_stream_finish(&s->ms, err)) != ML_OK)
		return rc;
	put_text_end(s);
	if (!s->json && (!s->printed || !s->text_ends_nl))
		putchar('\n');
	report_usage(s, &s->ms.reply, resp->request_id);
	return ML_OK;
}

static unsigned
jitter_seed(void)
{
	unsigned r = 0;

	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
		r = (unsigned)getpid() ^ (unsigned)time(NULL);
	return r;
}

static int
converse(struct send *s, struct ml_err *err)
{
	struct token_opts to = { .min_valid = s->ctx->cfg.min_valid };
	struct api_session as;
	struct http_response resp;
	bool token_failed;
	int rc, tries = 0;

	memset(&resp, 0, sizeof resp);
	api_session_init(&as, &s->ctx->cfg, s->ctx->verbose, &to);
	as.say = cmd_say;
	as.say_arg = (void *)s->ctx;
	/*
	 * A model may think for minutes before the first byte: like Anthropic's
	 * own SDKs, allow ten.  A stream that stalls once started is caught
	 * sooner by http.c's stall check.
	 */
	if (as.ho.timeout < SEND_TIMEOUT)
		as.ho.timeout = SEND_TIMEOUT;

	for (;;) {
		long wait_ms = -1;

		http_response_free(&resp);
		err_clear(err);
		rc = attempt(s, &as, &resp, &token_failed, err);
		if (rc == ML_ENET && s->printed) {
			/* Not "cannot reach": it did, and part of the answer is on screen. */
			err_prefix(err, "the answer was cut off before it ended");
			goto out;
		}
		/* Only a failed connection is worth another try: not an answer too large. */
		if (rc != ML_OK && (rc != ML_ENET || resp.too_large || token_failed))
			goto out;
		if (rc == ML_OK && resp.status >= 200 && resp.status < 300) {
			rc = s->req.stream && resp.body == NULL ? finish_stream(s, &resp, err) :
			    print_reply(s, &resp, err);
			goto out;
		}
		if (rc == ML_OK && !messages_retryable(resp.status)) {
			rc = messages_parse_error(resp.status, resp.body, resp.len, err);
			goto out;
		}
		/* A transport failure or 429/502/503/504/529: retry while allowed. */
		if (rc == ML_OK)
			rc = messages_parse_error(resp.status, resp.body, resp.len, err);
		if (tries >= s->retries)
			goto out;
		tries++;
		wait_ms = messages_backoff_ms(tries, rc == ML_EAPI ? resp.retry_after : -1,
		    jitter_seed());
		if (s->ctx->verbose)
			cmd_info(s->ctx, "mlauth: %s; retry %d of %ld in %.1fs", err->msg, tries,
			    s->retries, wait_ms / 1000.0);
		if ((rc = cmd_sleep_ms(wait_ms)) != ML_OK) {
			err_set(err, rc, "interrupted");
			goto out;
		}
	}
out:
	http_response_free(&resp);
	api_session_free(&as);
	return rc;
}

static int
parse_long_arg(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* The message text: the arguments joined by spaces, or stdin for "-" or a pipe. */
static int
message_text(int argc, char **argv, char **text, struct ml_err *err)
{
	size_t len = 0, n;

	if (argc == 0 || (argc == 1 && strcmp(argv[0], "-") == 0)) {
		if (argc == 0 && isatty(STDIN_FILENO))
			return err_set(err, ML_EUSAGE, "no message: give one as an argument "
			    "or on standard input");
		if (read_all(STDIN_FILENO, HTTP_MAX_BODY, text, &n, err) != ML_OK)
			return err->code;
		if (n == 0 || strspn(*text, " \t\r\n") == n) {
			free(*text);
			*text = NULL;
			return err_set(err, ML_EUSAGE, "the message on standard input is empty");
		}
		return ML_OK;
	}
	for (int i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	if ((*text = malloc(len + 1)) == NULL)
		return err_set(err, ML_EFAIL, "out of memory");
	(*text)[0] = '\0';
	for (int i = 0; i < argc; i++) {
		if (i > 0)
			strcat(*text, " ");
		strcat(*text, argv[i]);
	}
	return ML_OK;
}

static int
exec_send(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct send s;
	struct ml_err err;
	char *text = NULL, *end;
	int c, status;

	memset(&s, 0, sizeof s);
	s.tty = isatty(STDOUT_FILENO);
	s.ctx = ctx;
	s.req.model = ctx->cfg.model;
	s.req.max_tokens = ctx->cfg.max_tokens;
	s.retries = ctx->cfg.retries;
	while ((c = cmd_getopt(ctx, argc, argv, &status)) != -1) {
		switch (c) {
		case CMD_OPT_DONE:
			return status;
		case OPT_MODEL:
			if (*optarg == '\0')
				return cmd_usage_error(ctx, "--model must not be empty");
			s.req.model = optarg;
			break;
		case OPT_MAX_TOKENS:
			if (parse_long_arg(optarg, 1, 1000000, &s.req.max_tokens) < 0)
				return cmd_usage_error(ctx, "--max-tokens needs a whole number from "
				    "1 to 1000000, not '%s'", optarg);
			break;
		case 's':
			s.req.system = optarg;
			break;
		case OPT_TEMPERATURE:
			errno = 0;
			s.req.temperature = strtod(optarg, &end);
			if (*optarg == '\0' || *end != '\0' || errno != 0 ||
			    !(s.req.temperature >= 0 && s.req.temperature <= 2))
				return cmd_usage_error(ctx, "--temperature needs a number from 0 to 2, "
				    "not '%s'", optarg);
			s.req.has_temperature = true;
			break;
		case OPT_STREAM:
			s.req.stream = true;
			break;
		case 'j':
			s.json = true;
			break;
		case OPT_BODY:
			s.body_file = optarg;
			break;
		case OPT_RETRIES:
			if (parse_long_arg(optarg, 0, 10, &s.retries) < 0)
				return cmd_usage_error(ctx, "--retries needs a whole number from 0 to "
				    "10, not '%s'", optarg);
			break;
		}
	}
	err_clear(&err);
	if (s.body_file != NULL) {
		if (optind < argc)
			return cmd_usage_error(ctx, "--body sends the file as is: no message "
			    "argument too");
		if ((status = read_source(s.body_file, &s.body, &s.body_len, &err)) != ML_OK)
			goto fail;
		if (s.req.stream && !body_wants_stream(s.body, s.body_len)) {
			status = cmd_usage_error(ctx, "--body is sent as is: put \"stream\": true "
			    "in it to stream");
			goto out;
		}
		s.req.stream = body_wants_stream(s.body, s.body_len);
	} else {
		if ((status = message_text(argc - optind, argv + optind, &text, &err)) !=
		    ML_OK) {
			if (status == ML_EUSAGE) {
				status = cmd_usage_error(ctx, "%s", err.msg);
				goto out;
			}
			goto fail;
		}
		s.req.text = text;
		if ((status = messages_build_body(&s.req, &s.body, &err)) != ML_OK)
			goto fail;
		s.body_len = strlen(s.body);
	}
	if ((status = converse(&s, &err)) != ML_OK)
		goto fail;
	goto out;
fail:
	put_text_end(&s);
	if (s.printed && !s.text_ends_nl && !s.json)
		putchar('\n');
	status = cmd_fail(ctx, &err);
out:
	sse_free(s.sse);
	messages_stream_free(&s.ms);
	free(s.body);
	free(text);
	return status;
}

const struct cmd_entry cmd_send_entry = {
	.name = "send",
	.summary = "send a message to the messages API and print the reply",
	.usage = "[-m MODEL] [--max-tokens N] [-s SYSTEM] [--temperature T] [--stream] "
	    "[--json] [--retries N] [TEXT... | - | --body FILE|-]",
	.help =
	    "Options:\n"
	    "      --model MODEL      the model (default: setting model, claude-opus-4-6)\n"
	    "      --max-tokens N     the reply's length limit (default: setting max_tokens, 1024)\n"
	    "  -s, --system TEXT      a system prompt\n"
	    "      --temperature T    sampling temperature, 0 to 2\n"
	    "      --stream           print the reply as it is generated (server-sent events)\n"
	    "  -j, --json             print the raw response body (the raw events with --stream)\n"
	    "      --body FILE|-      send FILE (or stdin) as the request body, as is\n"
	    "      --retries N        retries after 429/502/503/504/529 or a network error\n"
	    "                         (default: setting retries, 2)\n"
	    "\nThe message is TEXT, or standard input with '-' or when it is a pipe.\n"
	    "With -v: model, stop reason, token usage and request id on stderr.\n"
	    "Exit status 5 when the API answers with an error, 3 when not logged in.\n",
	.options = options,
	.exec = exec_send,
};
