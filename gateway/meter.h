/* gateway/meter.h - the metering contract on the reply path.
 * A metered request's response is held until its usage row is durable in
 * SQLite (group commit), then sent; if the row cannot be written the
 * tenant gets a 500 instead, so a response that reached a tenant is always
 * in usage_events. */
#ifndef GATEWAY_METER_H
#define GATEWAY_METER_H
#include <stdbool.h>
#include <stddef.h>

struct req;

/* Records r->usage (filled from r: ids, tenant, key, timing, sizes, status)
 * and then replies with body (taken, freed by the req). */
void	meter_reply(struct req *, int status, char *body, size_t len);
/* For a streamed reply whose bytes already went out: records r->usage
 * the same way (bytes_out of what was sent) and calls fn(r, ok) once the
 * row is durable (ok) or could not be written; fn ends the stream. */
typedef void	meter_record_fn(struct req *, bool ok);
void	meter_record(struct req *, int status, size_t bytes_out,
	    meter_record_fn *fn);
/* Same, with an OpenAI-style error body of the given type. */
void	meter_error_typed(struct req *, int status, const char *type,
	    const char *code, const char *param, const char *fmt, ...)
	    __attribute__((format(printf, 6, 7)));
/* Same, with an OpenAI-style error body. */
void	meter_error(struct req *, int status, const char *code,
	    const char *param, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));
#endif
