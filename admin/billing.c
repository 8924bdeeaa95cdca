/* admin/billing.c - see billing.h.
 *
 * An invoice is read, never stored, while its month is open: it is
 * computed from usage_events on each request, so it can never disagree
 * with the metering record.  Closing a month freezes its lines in one
 * writer transaction; from then on the frozen lines are what is shown,
 * and usage rows of that month committed later are billed on the next
 * open month as adjustment lines (db.h, db_period_close). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/http.h>

#include "admin/admin.h"
#include "admin/billing.h"
#include "admin/period.h"
#include "common/xmalloc.h"
#include "db/db.h"
#include "gateway/http.h"
#include "gateway/server.h"

#define REPORT_MAX_DAYS		366
#define DAY_US			(86400LL * 1000000)

static bool	 want_csv(struct req *, const char *last);
static json_t	*invoice_build(struct req *, const char *tenant_id,
		    const struct db_period *, bool with_lines);
static void	 csv_field(FILE *, const char *, bool last);
static void	 reply_csv(struct req *, char *, size_t, const char *name);

/* --- periods --- */

/* CSV when the last path segment ends ".csv" (stripped by the caller),
 * or the client asks for text/csv, or ?format=csv. */
static bool
want_csv(struct req *r, const char *last)
{
	const char	*accept = http_header(r, "Accept");
	const char	*fmt = http_query(r, "format");
	size_t		 n = last != NULL ? strlen(last) : 0;

	if (n > 4 && strcmp(last + n - 4, ".csv") == 0)
		return true;
	if (fmt != NULL && strcmp(fmt, "csv") == 0)
		return true;
	return accept != NULL && strstr(accept, "text/csv") != NULL;
}

/* --- invoices --- */

static const char *
line_quantity_unit(const char *unit)
{
	if (strcmp(unit, "requests") == 0)
		return "request";
	if (strcmp(unit, "compute_seconds") == 0)
		return "microsecond";
	if (strcmp(unit, "budget_cap") == 0)
		return "none";
	return "token";
}

static const char *
line_price_per(const char *unit)
{
	if (strcmp(unit, "requests") == 0)
		return "request";
	if (strcmp(unit, "compute_seconds") == 0)
		return "second";
	if (strcmp(unit, "budget_cap") == 0)
		return "none";
	return "1000 tokens";
}

/* The invoice of one tenant for one month (new reference), or NULL after
 * replying an error. */
static json_t *
invoice_build(struct req *r, const char *tenant_id,
    const struct db_period *p, bool with_lines)
{
	json_t		*closed, *lines, *line, *inv;
	json_int_t	 usage = 0, adj = 0;
	size_t		 i;

	closed = db_period_get(r->srv->db, p->period);
	lines = closed != NULL ?
	    db_invoice_frozen(r->srv->db, tenant_id, p->period) :
	    db_invoice_lines(r->srv->db, tenant_id, p, INT64_MAX);
	if (lines == NULL) {
		json_decref(closed);
		http_error(r, 500, "internal_error", NULL,
		    "cannot read the database");
		return NULL;
	}
	json_array_foreach(lines, i, line) {
		const char	*unit = json_string_value(json_object_get(line,
				    "unit"));
		json_int_t	 a = json_integer_value(json_object_get(line,
				    "amount_micros"));

		json_object_del(line, "tenant_id");
		if (unit == NULL)
			unit = "";
		json_object_set_new(line, "quantity_unit",
		    json_string(line_quantity_unit(unit)));
		json_object_set_new(line, "price_per",
		    json_string(line_price_per(unit)));
		if (strcmp(json_string_value(json_object_get(line, "kind")),
		    "adjustment") == 0)
			adj += a;
		else
			usage += a;
	}
	inv = json_pack("{s:s, s:s, s:s, s:s, s:O, s:I, s:I, s:s, s:I, s:I,"
	    " s:I, s:I}", "object", "invoice", "tenant_id", tenant_id,
	    "period", p->period, "status", closed != NULL ? "closed" : "open",
	    "closed_at", closed != NULL ? json_object_get(closed,
	    "closed_at") : json_null(),
	    "period_start", (json_int_t)(p->start_us / 1000000),
	    "period_end", (json_int_t)(p->end_us / 1000000),
	    "currency_unit", "micros", "usage_micros", usage,
	    "adjustments_micros", adj, "total_micros", usage + adj,
	    "line_count", (json_int_t)json_array_size(lines));
	if (with_lines)
		json_object_set(inv, "lines", lines);
	json_decref(lines);
	json_decref(closed);
	return inv;
}

void
admin_invoice_list(struct req *r, char **arg)
{
	struct db_period	 p;
	const char		*ps = http_query(r, "period");
	const char		*tenant = http_query(r, "tenant");
	const char		*after;
	json_t			*page, *row, *data, *inv;
	size_t			 i;
	int			 limit;

	(void)arg;
	if (admin_page_params(r, &limit, &after) == -1)
		return;
	if (ps == NULL)
		period_of(http_wall_us() / 1000000, &p);
	else if (period_parse(ps, &p) == -1) {
		http_error(r, 400, "invalid_request", "period",
		    "'period' must be a month as YYYY-MM");
		return;
	}
	/* One statement for both: with ?tenant= the same rule (tenant ids
	 * above after, limit) over a set of at most one. */
	page = db_tenant_page(r->srv->db, tenant, after, limit);
	if (page == NULL) {
		http_error(r, 500, "internal_error", NULL,
		    "cannot read the database");
		return;
	}
	data = json_array();
	json_array_foreach(json_object_get(page, "data"), i, row) {
		inv = invoice_build(r, json_string_value(json_object_get(row,
		    "id")), &p, false);
		if (inv == NULL) {
			json_decref(data);
			json_decref(page);
			return;
		}
		json_object_set(inv, "tenant_name", json_object_get(row,
		    "name"));
		json_array_append_new(data, inv);
	}
	json_object_set_new(page, "data", data);
	json_object_set_new(page, "object", json_string("list"));
	http_reply_json(r, 200, page);
}

static void
csv_field(FILE *f, const char *s, bool last)
{
	bool	quote = strpbrk(s, ",\"\r\n") != NULL;

	if (quote) {
		fputc('"', f);
		for (; *s != '\0'; s++) {
			if (*s == '"')
				fputc('"', f);
			fputc(*s, f);
		}
		fputc('"', f);
	} else
		fputs(s, f);
	fputs(last ? "\r\n" : ",", f);
}

/* A JSON scalar as CSV text: strings as they are, null empty. */
static void
csv_json(FILE *f, json_t *v, bool last)
{
	char	num[32];

	if (json_is_string(v))
		csv_field(f, json_string_value(v), last);
	else if (json_is_integer(v)) {
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		csv_field(f, num, last);
	} else
		csv_field(f, "", last);
}

static void
reply_csv(struct req *r, char *buf, size_t len, const char *name)
{
	char	disp[160];

	snprintf(disp, sizeof(disp), "attachment; filename=\"%s\"", name);
	http_add_header(r, "Content-Disposition", disp);
	http_reply(r, 200, "text/csv; charset=utf-8", buf, len);
}

static const char *const invoice_csv_cols[] = {
	"kind", "for_period", "model", "unit", "quantity", "quantity_unit",
	"unit_price_micros", "price_per", "price_starts_at", "amount_micros",
};
#define INVOICE_CSV_NCOLS \
	(sizeof(invoice_csv_cols) / sizeof(invoice_csv_cols[0]))

/* tenant_id,period first, then the line columns; a last "total" row. */
static void
invoice_csv(struct req *r, json_t *inv)
{
	const char	*tenant = json_string_value(json_object_get(inv,
			    "tenant_id"));
	const char	*period = json_string_value(json_object_get(inv,
			    "period"));
	json_t		*line;
	FILE		*f;
	char		*buf = NULL, name[128];
	size_t		 len = 0, i, k;

	if ((f = open_memstream(&buf, &len)) == NULL) {
		http_error(r, 500, "internal_error", NULL,
		    "cannot build the CSV");
		return;
	}
	csv_field(f, "tenant_id", false);
	csv_field(f, "period", false);
	for (k = 0; k < INVOICE_CSV_NCOLS; k++)
		csv_field(f, invoice_csv_cols[k], k + 1 == INVOICE_CSV_NCOLS);
	json_array_foreach(json_object_get(inv, "lines"), i, line) {
		csv_field(f, tenant, false);
		csv_field(f, period, false);
		for (k = 0; k < INVOICE_CSV_NCOLS; k++)
			csv_json(f, json_object_get(line, invoice_csv_cols[k]),
			    k + 1 == INVOICE_CSV_NCOLS);
	}
	csv_field(f, tenant, false);
	csv_field(f, period, false);
	csv_field(f, "total", false);
	for (k = 1; k + 1 < INVOICE_CSV_NCOLS; k++)
		csv_field(f, "", false);
	csv_json(f, json_object_get(inv, "total_micros"), true);
	fclose(f);
	snprintf(name, sizeof(name), "invoice-%.64s-%.7s.csv", tenant, period);
	reply_csv(r, buf, len, name);
	free(buf);
}

void
admin_invoice_get(struct req *r, char **arg)
{
	struct db_period	 p;
	json_t			*t, *inv;
	char			 ps[16];
	bool			 csv = want_csv(r, arg[1]);
	size_t			 n = strlen(arg[1]);

	if (n > 4 && strcmp(arg[1] + n - 4, ".csv") == 0)
		n -= 4;
	snprintf(ps, sizeof(ps), "%.*s", (int)(n < 15 ? n : 15), arg[1]);
	if (period_parse(ps, &p) == -1) {
		http_error(r, 400, "invalid_request", "period",
		    "the period must be a month as YYYY-MM");
		return;
	}
	if ((t = db_tenant_get(r->srv->db, arg[0])) == NULL) {
		http_error(r, 404, "not_found", NULL,
		    "tenant '%.64s' does not exist", arg[0]);
		return;
	}
	if ((inv = invoice_build(r, arg[0], &p, true)) == NULL) {
		json_decref(t);
		return;
	}
	json_object_set(inv, "tenant_name", json_object_get(t, "name"));
	json_decref(t);
	if (csv) {
		invoice_csv(r, inv);
		json_decref(inv);
		return;
	}
	http_reply_json(r, 200, inv);
}

/* GET /admin/v1/billing/periods?limit=&after=YYYY-MM: closed months,
 * oldest first; a row's id is its period. */
void
admin_period_list(struct req *r, char **arg)
{
	struct db_period	 p;
	const char		*after;
	json_t			*page;
	int			 limit;

	(void)arg;
	if (admin_page_params(r, &limit, &after) == -1)
		return;
	if (after != NULL && period_parse(after, &p) == -1) {
		http_error(r, 400, "invalid_request", "after",
		    "'after' must be a month as YYYY-MM");
		return;
	}
	page = db_period_page(r->srv->db, after, limit);
	admin_reply_list(r, page);
}

static void
period_closed(void *arg, enum db_status st, json_t *row)
{
	struct req	*r = arg;

	if (st == DB_OK && row != NULL) {
		json_object_set_new(row, "status", json_string("closed"));
		http_reply_json(r, 201, row);
		return;
	}
	json_decref(row);
	if (st == DB_CONFLICT)
		http_error(r, 409, "period_closed", NULL,
		    "this period is already closed");
	else
		http_error(r, 500, "internal_error", NULL,
		    "the period could not be closed");
}

void
admin_period_close(struct req *r, char **arg)
{
	struct db_period	 p;

	if (period_parse(arg[0], &p) == -1) {
		http_error(r, 400, "invalid_request", "period",
		    "the period must be a month as YYYY-MM");
		return;
	}
	/* A month still running would freeze an invoice that more usage is
	 * about to change. */
	if (http_wall_us() < p.end_us) {
		http_error(r, 409, "period_not_over", NULL,
		    "the period '%s' has not ended yet", p.period);
		return;
	}
	db_period_close(r->srv->db, &p, admin_actor(r), period_closed,
	    r);
}

/* --- usage reports --- */

static const char *const report_cols[] = {
	"day", "tenant_id", "model", "key_id", "requests", "errors",
	"input_tokens", "output_tokens", "latency_p50_us", "latency_p95_us",
	"latency_p99_us",
};
#define REPORT_NCOLS	(sizeof(report_cols) / sizeof(report_cols[0]))

static void
usage_report(struct req *r, bool csv)
{
	struct db_report_q	 q;
	const char		*from_s = http_query(r, "from");
	const char		*to_s = http_query(r, "to");
	int64_t			 from, to, today;
	json_t			*rows, *row;
	FILE			*f;
	char			*buf = NULL;
	size_t			 len = 0, i, k;

	today = http_wall_us() / DAY_US * DAY_US;
	from = today - 30 * DAY_US;
	to = today + DAY_US;
	if ((from_s != NULL && admin_parse_time(from_s, &from) == -1) ||
	    (to_s != NULL && admin_parse_time(to_s, &to) == -1)) {
		http_error(r, 400, "invalid_request", from_s ? "from" : "to",
		    "'from' and 'to' must be Unix seconds, YYYY-MM-DD or "
		    "YYYY-MM-DDTHH:MM:SSZ");
		return;
	}
	if ((from_s != NULL && from > INT64_MAX / 1000000) ||
	    (to_s != NULL && to > INT64_MAX / 1000000)) {
		http_error(r, 400, "invalid_request", "to",
		    "'from' and 'to' are out of range");
		return;
	}
	if (from_s != NULL)
		from *= 1000000;
	if (to_s != NULL)
		to *= 1000000;
	if (to <= from || to - from > REPORT_MAX_DAYS * DAY_US) {
		http_error(r, 400, "invalid_request", "to",
		    "'to' must be after 'from', at most %d days later",
		    REPORT_MAX_DAYS);
		return;
	}
	memset(&q, 0, sizeof(q));
	q.from_us = from;
	q.to_us = to;
	q.tenant_id = http_query(r, "tenant");
	q.model = http_query(r, "model");
	q.key_id = http_query(r, "key");
	if ((rows = db_usage_report(r->srv->db, &q)) == NULL) {
		http_error(r, 500, "internal_error", NULL,
		    "cannot read the database");
		return;
	}
	if (!csv && !want_csv(r, NULL)) {
		http_reply_json(r, 200, json_pack("{s:s, s:I, s:I, s:s, s:o}",
		    "object", "usage_report", "from", (json_int_t)(from /
		    1000000), "to", (json_int_t)(to / 1000000), "latency",
		    "queue_us + compute_us of served (2xx) requests; "
		    "nearest-rank percentiles", "data", rows));
		return;
	}
	if ((f = open_memstream(&buf, &len)) == NULL) {
		json_decref(rows);
		http_error(r, 500, "internal_error", NULL,
		    "cannot build the CSV");
		return;
	}
	for (k = 0; k < REPORT_NCOLS; k++)
		csv_field(f, report_cols[k], k + 1 == REPORT_NCOLS);
	json_array_foreach(rows, i, row)
		for (k = 0; k < REPORT_NCOLS; k++)
			csv_json(f, json_object_get(row, report_cols[k]),
			    k + 1 == REPORT_NCOLS);
	fclose(f);
	json_decref(rows);
	reply_csv(r, buf, len, "usage-report.csv");
	free(buf);
}

void
admin_usage_report(struct req *r, char **arg)
{
	(void)arg;
	usage_report(r, false);
}

void
admin_usage_report_csv(struct req *r, char **arg)
{
	(void)arg;
	usage_report(r, true);
}

/* --- the dashboard's series --- */

/* GET /admin/v1/usage/series?from=&to=&step=&tenant=: per step of step
 * seconds (1-86400, default 60) over [from, to) (default: the 30 steps
 * up to the end of the current one), at most DB_SERIES_MAX_STEPS steps,
 * so that one call reads a bounded part of usage_events. */
void
admin_usage_series(struct req *r, char **arg)
{
	struct db_series_q	 q;
	const char		*from_s = http_query(r, "from");
	const char		*to_s = http_query(r, "to");
	const char		*step_s = http_query(r, "step");
	int64_t			 from, to, step = 60, now;
	json_t			*out;
	char			*end;

	(void)arg;
	if (step_s != NULL) {
		errno = 0;
		step = strtoll(step_s, &end, 10);
		if (errno != 0 || *step_s == '\0' || *end != '\0' ||
		    step < 1 || step > 86400) {
			http_error(r, 400, "invalid_request", "step",
			    "'step' must be a number of seconds from 1 to "
			    "86400");
			return;
		}
	}
	now = http_wall_us() / 1000000;
	to = (now / step + 1) * step;
	from = to - 30 * step;
	if ((from_s != NULL && admin_parse_time(from_s, &from) == -1) ||
	    (to_s != NULL && admin_parse_time(to_s, &to) == -1) ||
	    from > INT64_MAX / 1000000 || to > INT64_MAX / 1000000) {
		http_error(r, 400, "invalid_request", from_s ? "from" : "to",
		    "'from' and 'to' must be Unix seconds, YYYY-MM-DD or "
		    "YYYY-MM-DDTHH:MM:SSZ");
		return;
	}
	if (to <= from || (to - from + step - 1) / step >
	    DB_SERIES_MAX_STEPS) {
		http_error(r, 400, "invalid_request", "to",
		    "'to' must be after 'from', at most %d steps later",
		    DB_SERIES_MAX_STEPS);
		return;
	}
	memset(&q, 0, sizeof(q));
	q.from_us = from * 1000000;
	q.to_us = to * 1000000;
	q.step_us = step * 1000000;
	q.tenant_id = http_query(r, "tenant");
	q.top = 10;
	if ((out = db_usage_series(r->srv->db, &q)) == NULL) {
		http_error(r, 500, "internal_error", NULL,
		    "cannot read the database");
		return;
	}
	json_object_set_new(out, "object", json_string("usage_series"));
	json_object_set_new(out, "from", json_integer(from));
	json_object_set_new(out, "to", json_integer(to));
	json_object_set_new(out, "step", json_integer(step));
	json_object_set_new(out, "latency", json_string("queue_us + "
	    "compute_us of served (2xx) requests; nearest-rank "
	    "percentiles"));
	http_reply_json(r, 200, out);
}
