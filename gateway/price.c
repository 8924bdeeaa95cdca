/* gateway/price.c - see price.h.  A flat array of rows: price lists are
 * short, and lookups scan only one model's rows. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "gateway/price.h"

struct price_row {
	char		model[128];
	struct price	p;
};

struct compute_est {
	char		model[128];
	int64_t		us;		/* decaying max of compute_us */
};

struct prices {
	struct price_row	*rows;
	size_t			 n;
	struct compute_est	*est;
	size_t			 n_est;
};

struct prices *
prices_new(void)
{
	return xcalloc(1, sizeof(struct prices));
}

void
prices_free(struct prices *ps)
{
	if (ps == NULL)
		return;
	free(ps->rows);
	free(ps->est);
	free(ps);
}

static int64_t
row_int(json_t *row, const char *k)
{
	return (int64_t)json_integer_value(json_object_get(row, k));
}

void
prices_add_row(struct prices *ps, json_t *row)
{
	const char		*model = json_string_value(
	    json_object_get(row, "model"));
	struct price_row	*r;

	if (model == NULL || strlen(model) >= sizeof(r->model))
		return;
	ps->rows = xreallocarray(ps->rows, ps->n + 1, sizeof(*ps->rows));
	r = &ps->rows[ps->n++];
	memset(r, 0, sizeof(*r));
	memcpy(r->model, model, strlen(model) + 1);
	r->p.starts_at = row_int(row, "starts_at");
	r->p.per_1k_input = row_int(row, "per_1k_input_micros");
	r->p.per_1k_output = row_int(row, "per_1k_output_micros");
	r->p.per_request = row_int(row, "per_request_micros");
	r->p.per_compute_second = row_int(row, "per_compute_second_micros");
}

struct price
prices_at(struct prices *ps, const char *model, int64_t ts)
{
	struct price	best;
	bool		found = false;

	memset(&best, 0, sizeof(best));
	for (size_t i = 0; i < ps->n; i++) {
		const struct price_row	*r = &ps->rows[i];

		if (strcmp(r->model, model) != 0 || r->p.starts_at > ts)
			continue;
		if (!found || r->p.starts_at >= best.starts_at) {
			best = r->p;
			found = true;
		}
	}
	return best;
}

static struct compute_est *
est_find(struct prices *ps, const char *model, bool create)
{
	struct compute_est	*e;

	for (size_t i = 0; i < ps->n_est; i++)
		if (strcmp(ps->est[i].model, model) == 0)
			return &ps->est[i];
	if (!create || strlen(model) >= sizeof(e->model))
		return NULL;
	ps->est = xreallocarray(ps->est, ps->n_est + 1, sizeof(*ps->est));
	e = &ps->est[ps->n_est++];
	memset(e, 0, sizeof(*e));
	memcpy(e->model, model, strlen(model) + 1);
	return e;
}

void
prices_note_compute(struct prices *ps, const char *model, int64_t us)
{
	struct compute_est	*e = est_find(ps, model, true);

	if (e == NULL)
		return;
	e->us -= e->us / 16;
	if (us > e->us)
		e->us = us;
}

int64_t
prices_compute_estimate(struct prices *ps, const char *model)
{
	struct compute_est	*e = est_find(ps, model, false);

	return e != NULL ? e->us : 0;
}

/* a * b / d rounded half up, for non-negative operands. */
static int64_t
muldiv(int64_t a, int64_t b, int64_t d)
{
	__int128	x = (__int128)a * b;

	return (int64_t)((x + d / 2) / d);
}

int64_t
price_cost(const struct price *p, int64_t tokens_in, int64_t tokens_out,
    int64_t compute_us)
{
	return p->per_request + muldiv(p->per_1k_input, tokens_in, 1000) +
	    muldiv(p->per_1k_output, tokens_out, 1000) +
	    muldiv(p->per_compute_second, compute_us, 1000000);
}
