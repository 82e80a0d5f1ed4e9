/* sse.h: an incremental parser of text/event-stream (the WHATWG server-sent events format). */
#ifndef MLAUTH_SSE_H
#define MLAUTH_SSE_H

#include <stddef.h>

#include "mlauth/err.h"

#define SSE_MAX_EVENT	(1024 * 1024)	/* one event's data; more is an error */

/*
 * Called once per complete event (a blank line ends it).  event is "message"
 * when the stream named none; data is the joined data lines (NUL-terminated,
 * len bytes).  A non-zero return stops the parser and is returned by sse_feed.
 */
typedef int (*sse_event_fn)(const char *event, const char *data, size_t len, void *arg);

struct sse_parser;

/* A new parser (NULL when out of memory); free with sse_free. */
struct sse_parser *sse_new(sse_event_fn on_event, void *arg);
/* Feed bytes in any chunking (a line or a CRLF may be split anywhere). */
int sse_feed(struct sse_parser *p, const char *buf, size_t len, struct ml_err *err);
/* End of stream: a pending event without its blank line is dispatched per the spec's rules (dropped). */
int sse_finish(struct sse_parser *p, struct ml_err *err);
void sse_free(struct sse_parser *p);

#endif
