/*
 * sse.c: an incremental text/event-stream parser (WHATWG HTML, "Server-sent
 * events", 9.2.6 "Interpreting an event stream").  Bytes arrive in whatever
 * pieces the network cut them into, so all state lives in the parser: the
 * line so far, the data so far, the event name, and whether the last byte
 * was a CR (whose LF may be the first byte of the next piece).  Memory is
 * bounded: a line or an event past SSE_MAX_EVENT is an error, never growth.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlauth/sse.h"

#define SSE_LINE_MAX	(SSE_MAX_EVENT + 64)	/* a full event's data plus "data: " */
#define SSE_NAME_MAX	128			/* event names are short words */
#define SSE_FIRST_CAP	256

static const unsigned char sse_bom[3] = { 0xef, 0xbb, 0xbf };

struct sse_parser {
	sse_event_fn on_event;
	void *arg;
	char *line;		/* the current line, without its end */
	size_t line_len, line_cap;
	char *data;		/* this event's data lines, each followed by LF */
	size_t data_len, data_cap;
	char event[SSE_NAME_MAX + 1];	/* "" until an event: field names one */
	size_t bom;		/* bytes of a leading BOM seen so far */
	bool bom_done;		/* past the point where a BOM may appear */
	bool after_cr;		/* the last byte was CR: an LF now ends nothing */
	int failed;		/* sticky: the status every later call returns */
	bool failed_here;	/* failed holds our error (else the callback's) */
	char failed_msg[128];
};

struct sse_parser *
sse_new(sse_event_fn on_event, void *arg)
{
	struct sse_parser *p = calloc(1, sizeof *p);

	if (p == NULL)
		return NULL;
	p->on_event = on_event;
	p->arg = arg;
	return p;
}

void
sse_free(struct sse_parser *p)
{
	if (p == NULL)
		return;
	free(p->line);
	free(p->data);
	free(p);
}

/* Fail now and on every later call: a stream that broke once cannot be trusted again. */
static int sse_fail(struct sse_parser *p, struct ml_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
sse_fail(struct sse_parser *p, struct ml_err *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(p->failed_msg, sizeof p->failed_msg, fmt, ap);
	va_end(ap);
	p->failed = ML_EAPI;
	p->failed_here = true;
	return err_set(err, ML_EAPI, "%s", p->failed_msg);
}

/* Room for need bytes in *buf, never more than max: growth is doubling, capped. */
static int
sse_reserve(char **buf, size_t *cap, size_t need, size_t max)
{
	size_t ncap = *cap > 0 ? *cap : SSE_FIRST_CAP;
	char *nbuf;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	if (ncap > max)
		ncap = max;
	if ((nbuf = realloc(*buf, ncap)) == NULL)
		return -1;
	*buf = nbuf;
	*cap = ncap;
	return 0;
}

static int
sse_line_add(struct sse_parser *p, const char *s, size_t n, struct ml_err *err)
{
	if (n == 0)
		return ML_OK;
	if (n > SSE_LINE_MAX - p->line_len)
		return sse_fail(p, err, "event stream line longer than %d bytes", SSE_LINE_MAX);
	if (sse_reserve(&p->line, &p->line_cap, p->line_len + n, SSE_LINE_MAX) != 0)
		return sse_fail(p, err, "out of memory reading the event stream");
	memcpy(p->line + p->line_len, s, n);
	p->line_len += n;
	return ML_OK;
}

/* A blank line: hand over the event, if it has data (the spec drops one that has none). */
static int
sse_dispatch(struct sse_parser *p, struct ml_err *err)
{
	const char *name = p->event[0] != '\0' ? p->event : "message";
	int rc;

	if (p->data_len == 0) {
		p->event[0] = '\0';
		return ML_OK;
	}
	/* Every data line added an LF; the last one is not part of the data. */
	p->data[--p->data_len] = '\0';
	rc = p->on_event != NULL ? p->on_event(name, p->data, p->data_len, p->arg) : 0;
	p->data_len = 0;
	p->event[0] = '\0';
	if (rc != 0) {
		/* The callback knows why and has said so; err is its, not ours to overwrite. */
		p->failed = rc;
		p->failed_here = false;
	}
	return rc;
}

static int
sse_field(struct sse_parser *p, const char *name, size_t nlen, const char *value,
    size_t vlen, struct ml_err *err)
{
	if (nlen == 5 && memcmp(name, "event", 5) == 0) {
		if (vlen > SSE_NAME_MAX)
			return sse_fail(p, err, "event stream event name longer than %d bytes",
			    SSE_NAME_MAX);
		memcpy(p->event, value, vlen);
		p->event[vlen] = '\0';
		/* A NUL would make a long name read as a short, known one. */
		for (size_t i = 0; i < vlen; i++)
			if (p->event[i] == '\0')
				p->event[i] = '?';
		return ML_OK;
	}
	if (nlen == 4 && memcmp(name, "data", 4) == 0) {
		/* The joined data, its final LF dropped, may be SSE_MAX_EVENT bytes. */
		if (vlen + 1 > SSE_MAX_EVENT + 1 - p->data_len)
			return sse_fail(p, err, "event stream event larger than %d bytes",
			    SSE_MAX_EVENT);
		if (sse_reserve(&p->data, &p->data_cap, p->data_len + vlen + 1,
		    SSE_MAX_EVENT + 1) != 0)
			return sse_fail(p, err, "out of memory reading the event stream");
		memcpy(p->data + p->data_len, value, vlen);
		p->data_len += vlen;
		p->data[p->data_len++] = '\n';
		return ML_OK;
	}
	/* id and retry serve reconnection, which a one-shot request never does. */
	return ML_OK;
}

static int
sse_line_end(struct sse_parser *p, struct ml_err *err)
{
	const char *line = p->line, *colon;
	size_t len = p->line_len, nlen, voff;

	p->line_len = 0;
	if (len == 0)
		return sse_dispatch(p, err);
	if (line[0] == ':')
		return ML_OK;
	colon = memchr(line, ':', len);
	nlen = colon != NULL ? (size_t)(colon - line) : len;
	voff = colon != NULL ? nlen + 1 : len;
	if (voff < len && line[voff] == ' ')
		voff++;
	return sse_field(p, line, nlen, line + voff, len - voff, err);
}

/*
 * One byte while a leading BOM may still be arriving (it can be split across
 * pieces too): 1 when the byte belongs to the BOM, 0 when it does not and is
 * to be read as text, after the bytes that only looked like a BOM; -1 when
 * the parser failed.
 */
static int
sse_bom_step(struct sse_parser *p, unsigned char c, struct ml_err *err)
{
	if (c == sse_bom[p->bom]) {
		if (++p->bom == sizeof sse_bom)
			p->bom_done = true;
		return 1;
	}
	p->bom_done = true;
	if (sse_line_add(p, (const char *)sse_bom, p->bom, err) != ML_OK)
		return -1;
	return 0;
}

int
sse_feed(struct sse_parser *p, const char *buf, size_t len, struct ml_err *err)
{
	size_t i = 0, j;
	int rc;

	if (p == NULL || (buf == NULL && len > 0))
		return err_set(err, ML_EFAIL, "sse_feed: no parser or no buffer");
	if (p->failed != 0) {
		if (p->failed_here)
			(void)err_set(err, p->failed, "%s", p->failed_msg);
		return p->failed;
	}
	while (!p->bom_done && i < len) {
		if ((rc = sse_bom_step(p, (unsigned char)buf[i], err)) < 0)
			return p->failed;
		if (rc > 0)
			i++;
	}
	while (i < len) {
		/* The LF of a CRLF whose CR ended the previous line (maybe the previous piece). */
		if (p->after_cr) {
			p->after_cr = false;
			if (buf[i] == '\n') {
				i++;
				continue;
			}
		}
		for (j = i; j < len && buf[j] != '\n' && buf[j] != '\r'; j++)
			;
		if ((rc = sse_line_add(p, buf + i, j - i, err)) != ML_OK)
			return rc;
		if (j == len)
			break;
		p->after_cr = buf[j] == '\r';
		i = j + 1;
		if ((rc = sse_line_end(p, err)) != ML_OK)
			return rc;
	}
	return ML_OK;
}

int
sse_finish(struct sse_parser *p, struct ml_err *err)
{
	if (p == NULL)
		return err_set(err, ML_EFAIL, "sse_finish: no parser");
	if (p->failed != 0) {
		if (p->failed_here)
			(void)err_set(err, p->failed, "%s", p->failed_msg);
		return p->failed;
	}
	/* The spec: an event not closed by a blank line before the end is not dispatched. */
	p->line_len = 0;
	p->data_len = 0;
	p->event[0] = '\0';
	p->after_cr = false;
	return ML_OK;
}
