/* scheduler/batch.h - dynamic batching of INFER payloads.
 *
 * Jobs are compatible when their payloads name the same inputs in the
 * same order with the same dtypes and the same dimensions except the
 * first, every input has the same first dimension (the job's rows), and
 * they ask for the same outputs.  Their inputs are concatenated along
 * dimension 0 into one INFER; every output of the reply must have the
 * batch's total rows as its first dimension, and is cut back into each
 * job's rows.  This assumes rows are independent (true of MLPs and of
 * anything served with a dynamic batch dimension): batching is turned on
 * per deployment by its operator.
 *
 * Payloads were built by the gateway (trusted shape), but everything is
 * checked again: a payload that does not parse is simply not batched, and
 * a reply that does not split is an error for the batch's jobs.  Pure
 * functions; no allocation except through the wbufs given. */
#ifndef SCHEDULER_BATCH_H
#define SCHEDULER_BATCH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wire.h"

#define BATCH_MAX_JOBS	256	/* jobs in one INFER */

/* Rows of an INFER payload (the common first dimension of its inputs) and
 * in *sig a hash of everything that must match to batch; 0 if it cannot
 * be batched (no inputs, a scalar input, unequal first dimensions, a
 * variable-size dtype, or malformed). */
uint32_t	batch_rows(const uint8_t *payload, size_t len, uint64_t *sig);
/* Whether two payloads that batch_rows() accepted can share an INFER. */
bool		batch_compatible(const uint8_t *a, size_t alen,
		    const uint8_t *b, size_t blen);
/* Writes into out (reset first) the INFER payload of the n payloads
 * concatenated along dimension 0; total is the sum of their rows.  The
 * payloads must be pairwise compatible.  -1 if the result would exceed
 * max bytes. */
int		batch_concat(struct wbuf *out, const struct wbuf *const *parts,
		    size_t n, uint32_t total, size_t max);
/* Writes into out (reset first) rows [first, first + rows) of every
 * tensor of an INFER_OK tensor list whose tensors all have total rows.
 * -1 if the list is malformed or a tensor's first dimension is not
 * total. */
int		batch_split(struct wbuf *out, const uint8_t *list, size_t len,
		    uint32_t total, uint32_t first, uint32_t rows);
#endif
