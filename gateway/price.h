/* gateway/price.h - the price list in memory: per model, versioned by
 * start time, in integer micro-units of one currency.  Loaded from SQLite
 * at start and appended to when the admin adds a price; a request is
 * priced with the row in effect when it arrived, so old usage keeps its
 * old price. */
#ifndef GATEWAY_PRICE_H
#define GATEWAY_PRICE_H
#include <stdint.h>

#include <jansson.h>

struct prices;

struct price {
	int64_t	starts_at;
	int64_t	per_1k_input;
	int64_t	per_1k_output;
	int64_t	per_request;
	int64_t	per_compute_second;
};

struct prices	*prices_new(void);
void		 prices_free(struct prices *);
/* Adds one row as db/ returns it ({"model","starts_at","per_..."}). */
void		 prices_add_row(struct prices *, json_t *row);
/* The price of model at time ts (Unix seconds); all zero if none. */
struct price	 prices_at(struct prices *, const char *model, int64_t ts);
/* Notes a request's compute time, for reservations: each model keeps a
 * slowly decaying maximum of its recent compute times. */
void		 prices_note_compute(struct prices *, const char *model,
		    int64_t compute_us);
/* That estimate (0 before any request). */
int64_t		 prices_compute_estimate(struct prices *, const char *model);
/* Cost in micro-units, each part rounded half up to the micro-unit:
 * per_request + per_1k_input * in / 1000 + per_1k_output * out / 1000 +
 * per_compute_second * compute_us / 1e6. */
int64_t		 price_cost(const struct price *, int64_t tokens_in,
		    int64_t tokens_out, int64_t compute_us);
#endif
