/* gateway/meter.c - see meter.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "db/db.h"
#include "gateway/admit.h"
#include "gateway/http.h"
#include "gateway/meter.h"
#include "gateway/server.h"

static void	meter_done(void *, enum db_status, json_t *);

/* A streamed request waiting for its usage row. */
struct meter_wait {
	struct req	*r;
	meter_record_fn	*fn;
};

static void	meter_fill(struct req *, int status, size_t len);
static void	meter_recorded(void *, enum db_status, json_t *);

void
meter_reply(struct req *r, int status, char *body, size_t len)
{
	r->status = status;
	free(r->body);
	r->body = body;
	r->body_len = len;
	meter_fill(r, status, len);
	db_usage_record(r->srv->db, &r->usage, meter_done, r);
}

void
meter_record(struct req *r, int status, size_t bytes_out,
    meter_record_fn *fn)
{
	struct meter_wait	*w = xcalloc(1, sizeof(*w));

	r->status = status;
	meter_fill(r, status, bytes_out);
	w->r = r;
	w->fn = fn;
	db_usage_record(r->srv->db, &r->usage, meter_recorded, w);
}

static void
meter_recorded(void *arg, enum db_status st, json_t *result)
{
	struct meter_wait	*w = arg;
	struct req		*r = w->r;
	meter_record_fn		*fn = w->fn;

	free(w);
	json_decref(result);
	if (st != DB_OK)
		log_warnx("req=%s tenant=%s cannot record usage (status %d)",
		    r->id, r->tenant_id, (int)st);
	fn(r, st == DB_OK);
}

/* Fills the usage row from r and settles the admission reservation. */
static void
meter_fill(struct req *r, int status, size_t len)
{
	struct usage_event	*u = &r->usage;

	snprintf(u->request_id, sizeof(u->request_id), "%s", r->id);
	snprintf(u->tenant_id, sizeof(u->tenant_id), "%s", r->tenant_id);
	snprintf(u->key_id, sizeof(u->key_id), "%s", r->key_id);
	u->ts_us = r->ts_us;
	u->status = status;
	u->bytes_in = (int64_t)r->bytes_in;
	u->bytes_out = (int64_t)len;
	u->admitted = r->ticket.active;
	admit_settle(r);
}

static void
meter_done(void *arg, enum db_status st, json_t *result)
{
	struct req	*r = arg;

	json_decref(result);
	if (st != DB_OK) {
		log_warnx("req=%s tenant=%s cannot record usage (status %d)",
		    r->id, r->tenant_id, (int)st);
		http_error(r, 500, "metering_failed", NULL,
		    "the request could not be recorded; it was not billed, "
		    "retry it");
		return;
	}
	http_reply(r, r->status, r->reply_ctype != NULL ? r->reply_ctype :
	    "application/json", r->body, r->body_len);
}

void
meter_error_typed(struct req *r, int status, const char *type,
    const char *code, const char *param, const char *fmt, ...)
{
	char	*body;
	size_t	 len;
	va_list	 ap;

	va_start(ap, fmt);
	body = http_error_vbody(status, type, code, param, &len, fmt, ap);
	va_end(ap);
	meter_reply(r, status, body, len);
}

void
meter_error(struct req *r, int status, const char *code, const char *param,
    const char *fmt, ...)
{
	char	*body;
	size_t	 len;
	va_list	 ap;

	va_start(ap, fmt);
	body = http_error_vbody(status, NULL, code, param, &len, fmt, ap);
	va_end(ap);
	meter_reply(r, status, body, len);
}
