/* tests/unit/test_sched_fairq.c - the scheduler's pure parts: weighted
 * fair queuing (shares by weight, an idle tenant not punished, priorities
 * inside a tenant, removal, the victim of a full queue) and batching
 * (rows and signatures, compatibility, concatenation and the split back,
 * checked byte for byte against the parts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/ipc.h"
#include "scheduler/batch.h"
#include "scheduler/internal.h"

/* --- fair queuing --- */

static struct sched_job *
job(struct fairq *q, const char *tenant, unsigned weight,
    enum sched_priority prio, uint64_t id)
{
	struct sched_job	*j = calloc(1, sizeof(*j));

	j->flow = fairq_flow(q, tenant);
	if (weight)
		j->flow->weight = weight;
	j->prio = prio;
	j->id = id;
	fairq_push(q, j);
	return j;
}

/* Pops one job and finishes it at once (one replica, no overlap). */
static struct sched_job *
serve(struct fairq *q)
{
	struct sched_job	*j = fairq_pop(q);

	if (j != NULL)
		fairq_finished(q, j->flow);
	return j;
}

static void
test_weights_split_service(void **state)
{
	struct fairq	 q;
	int		 a = 0, b = 0, c = 0;

	(void)state;
	fairq_init(&q);
	for (int i = 0; i < 300; i++) {
		job(&q, "a", 2, SCHED_PRIO_NORMAL, 0);
		job(&q, "b", 1, SCHED_PRIO_NORMAL, 0);
		job(&q, "c", 3, SCHED_PRIO_NORMAL, 0);
	}
	/* While all three are backlogged, service follows 2:1:3. */
	for (int i = 0; i < 600; i++) {
		struct sched_job	*j = serve(&q);

		switch (j->flow->tenant_id[0]) {
		case 'a': a++; break;
		case 'b': b++; break;
		default: c++; break;
		}
		free(j);
	}
	assert_in_range(a, 198, 202);
	assert_in_range(b, 98, 102);
	assert_in_range(c, 298, 302);
	while (q.queued > 0)
		free(serve(&q));
	fairq_release(&q);
}

/* A tenant that sends one request at a time beside one that keeps the
 * queue full waits for at most one of the other's jobs. */
static void
test_newcomer_not_behind_flood(void **state)
{
	struct fairq		 q;
	struct sched_job	*j;

	(void)state;
	fairq_init(&q);
	for (int i = 0; i < 32; i++)
		job(&q, "flood", 1, SCHED_PRIO_NORMAL, (uint64_t)i);
	for (int round = 0; round < 50; round++) {
		/* One flood job is computing when the newcomer arrives. */
		j = fairq_pop(&q);
		assert_string_equal(j->flow->tenant_id, "flood");
		job(&q, "solo", 1, SCHED_PRIO_NORMAL, 1000);
		fairq_finished(&q, j->flow);
		free(j);
		job(&q, "flood", 1, SCHED_PRIO_NORMAL, 0);	/* refill */
		j = serve(&q);
		assert_string_equal(j->flow->tenant_id, "solo");
		free(j);
	}
	while (q.queued > 0)
		free(serve(&q));
	fairq_release(&q);
}

static void
test_priorities_within_tenant(void **state)
{
	struct fairq		 q;
	struct sched_job	*j;
	uint64_t		 order[6];

	(void)state;
	fairq_init(&q);
	job(&q, "t", 1, SCHED_PRIO_LOW, 1);
	job(&q, "t", 1, SCHED_PRIO_NORMAL, 2);
	job(&q, "t", 1, SCHED_PRIO_HIGH, 3);
	job(&q, "t", 1, SCHED_PRIO_LOW, 4);
	job(&q, "t", 1, SCHED_PRIO_HIGH, 5);
	job(&q, "t", 1, SCHED_PRIO_NORMAL, 6);
	for (int i = 0; i < 6; i++) {
		j = serve(&q);
		order[i] = j->id;
		free(j);
	}
	assert_int_equal(order[0], 3);
	assert_int_equal(order[1], 5);
	assert_int_equal(order[2], 2);
	assert_int_equal(order[3], 6);
	assert_int_equal(order[4], 1);
	assert_int_equal(order[5], 4);
	/* A high-priority job does not buy a bigger share: with another
	 * tenant backlogged, each gets half (t, having just been served,
	 * lets u catch up first). */
	for (int i = 0; i < 20; i++) {
		job(&q, "t", 1, SCHED_PRIO_HIGH, 0);
		job(&q, "u", 1, SCHED_PRIO_LOW, 0);
	}
	{
		int	t = 0;

		for (int i = 0; i < 20; i++) {
			j = serve(&q);
			t += j->flow->tenant_id[0] == 't';
			free(j);
		}
		assert_in_range(t, 6, 10);
		while (q.queued > 0)
			free(serve(&q));
	}
	fairq_release(&q);
}

static void
test_remove_and_peek(void **state)
{
	struct fairq		 q;
	struct sched_job	*a1, *a2, *b1, *j;

	(void)state;
	fairq_init(&q);
	a1 = job(&q, "a", 1, SCHED_PRIO_NORMAL, 1);
	a2 = job(&q, "a", 1, SCHED_PRIO_NORMAL, 2);
	b1 = job(&q, "b", 1, SCHED_PRIO_NORMAL, 3);
	/* Equal tags: the tenant with less queued goes first. */
	assert_ptr_equal(fairq_peek(&q), b1);
	fairq_remove(&q, a1);
	free(a1);
	assert_int_equal(q.queued, 2);
	j = fairq_peek(&q);
	assert_true(j == a2 || j == b1);
	fairq_remove(&q, b1);
	free(b1);
	assert_ptr_equal(serve(&q), a2);
	free(a2);
	assert_null(fairq_peek(&q));
	assert_null(fairq_pop(&q));
	assert_int_equal(q.n_heap, 0);
	fairq_release(&q);
}

static void
test_victim_is_biggest_flow(void **state)
{
	struct fairq		 q;
	struct sched_job	*v, *last = NULL;

	(void)state;
	fairq_init(&q);
	for (int i = 0; i < 10; i++)
		last = job(&q, "big", 1, i == 9 ? SCHED_PRIO_HIGH :
		    SCHED_PRIO_NORMAL, (uint64_t)i);
	(void)last;
	job(&q, "small", 1, SCHED_PRIO_NORMAL, 100);
	/* The newest, lowest-priority job of the biggest flow goes. */
	v = fairq_victim(&q, "small");
	assert_non_null(v);
	assert_int_equal(v->id, 8);
	v = fairq_victim(&q, "newcomer");
	assert_int_equal(v->id, 8);
	/* The flood refuses its own new request. */
	assert_null(fairq_victim(&q, "big"));
	while (q.queued > 0)
		free(serve(&q));
	fairq_release(&q);
}

static void
test_many_flows_hash_grows(void **state)
{
	struct fairq	 q;
	char		 name[32];

	(void)state;
	fairq_init(&q);
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "ten_%d", i);
		job(&q, name, 1, SCHED_PRIO_NORMAL, (uint64_t)i);
	}
	assert_int_equal(q.n_flows, 1000);
	assert_true(q.n_buckets >= 1000);
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "ten_%d", i);
		assert_string_equal(fairq_flow(&q, name)->tenant_id, name);
	}
	assert_int_equal(q.n_flows, 1000);
	/* Equal weights, one job each: served in arrival order. */
	for (int i = 0; i < 1000; i++) {
		struct sched_job	*j = serve(&q);

		assert_int_equal(j->id, (uint64_t)i);
		free(j);
	}
	fairq_release(&q);
}

/* --- batching --- */

static void
put_input(struct wbuf *w, const char *name, enum dtype dt, int ndim,
    const int64_t *dims, uint8_t seed)
{
	struct ipc_tensor_desc	d;
	uint64_t		n = dtype_size(dt);

	memset(&d, 0, sizeof(d));
	snprintf(d.name, sizeof(d.name), "%s", name);
	d.dtype = dt;
	d.ndim = ndim;
	for (int i = 0; i < ndim; i++) {
		d.dims[i] = dims[i];
		n *= (uint64_t)dims[i];
	}
	ipc_put_tensor_header(w, &d, n);
	for (uint64_t i = 0; i < n; i++)
		wbuf_u8(w, (uint8_t)(seed + i));
}

/* An INFER payload: inputs x (rows, 3) FP32 and y (rows, 2, 2) INT8,
 * asking for outputs named in outs. */
static void
payload(struct wbuf *w, int64_t rows, uint8_t seed, const char *outs)
{
	int64_t	dx[2] = { rows, 3 }, dy[3] = { rows, 2, 2 };

	wbuf_init(w);
	wbuf_u32(w, 2);
	put_input(w, "x", DT_FP32, 2, dx, seed);
	put_input(w, "y", DT_INT8, 3, dy, (uint8_t)(seed + 100));
	wbuf_u32(w, outs ? 1 : 0);
	if (outs)
		wbuf_str16(w, outs);
}

static void
test_batch_rows_and_compat(void **state)
{
	struct wbuf	a, b, c, d, e;
	uint64_t	sa, sb, sc, sd;
	int64_t		dims[2] = { 2, 3 }, dims2[2] = { 3, 3 };

	(void)state;
	payload(&a, 2, 1, "out");
	payload(&b, 5, 7, "out");
	payload(&c, 2, 1, NULL);	/* asks for every output */
	assert_int_equal(batch_rows(a.data, a.len, &sa), 2);
	assert_int_equal(batch_rows(b.data, b.len, &sb), 5);
	assert_int_equal(batch_rows(c.data, c.len, &sc), 2);
	assert_true(sa == sb);
	assert_true(sa != sc);
	assert_true(batch_compatible(a.data, a.len, b.data, b.len));
	assert_false(batch_compatible(a.data, a.len, c.data, c.len));
	/* Inputs whose first dimensions differ: not batchable. */
	wbuf_init(&d);
	wbuf_u32(&d, 2);
	put_input(&d, "x", DT_FP32, 2, dims, 0);
	put_input(&d, "y", DT_FP32, 2, dims2, 0);
	wbuf_u32(&d, 0);
	assert_int_equal(batch_rows(d.data, d.len, &sd), 0);
	/* Truncated: not batchable, never a crash. */
	for (size_t n = 0; n < a.len; n++)
		assert_int_equal(batch_rows(a.data, n, &sd), 0);
	/* Another non-batch dimension: incompatible. */
	wbuf_init(&e);
	wbuf_u32(&e, 2);
	{
		int64_t	dx[2] = { 2, 4 }, dy[3] = { 2, 2, 2 };

		put_input(&e, "x", DT_FP32, 2, dx, 0);
		put_input(&e, "y", DT_INT8, 3, dy, 0);
	}
	wbuf_u32(&e, 1);
	wbuf_str16(&e, "out");
	assert_int_equal(batch_rows(e.data, e.len, &sd), 2);
	assert_false(batch_compatible(a.data, a.len, e.data, e.len));
	wbuf_release(&a);
	wbuf_release(&b);
	wbuf_release(&c);
	wbuf_release(&d);
	wbuf_release(&e);
}

/* Concatenating three payloads and splitting the result (seen as a
 * reply's tensor list) gives back each part's tensors exactly. */
static void
test_batch_concat_split_roundtrip(void **state)
{
	struct wbuf		 p[3], out, split, want;
	const struct wbuf	*parts[3] = { &p[0], &p[1], &p[2] };
	uint32_t		 rows[3] = { 1, 4, 2 }, first = 0;
	uint64_t		 sig;
	size_t			 list_len;

	(void)state;
	for (int i = 0; i < 3; i++)
		payload(&p[i], rows[i], (uint8_t)(i * 50), "out");
	wbuf_init(&out);
	wbuf_init(&split);
	assert_int_equal(batch_concat(&out, parts, 3, 7, IPC_MAX_PAYLOAD), 0);
	assert_int_equal(batch_rows(out.data, out.len, &sig), 7);
	assert_true(batch_compatible(out.data, out.len, p[0].data,
	    p[0].len));
	assert_int_equal(batch_concat(&out, parts, 3, 7, 16), -1);
	assert_int_equal(batch_concat(&out, parts, 3, 7, IPC_MAX_PAYLOAD), 0);
	/* The tensor list is the payload minus the output names. */
	list_len = out.len - 4 - 2 - 3;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(batch_split(&split, out.data, list_len, 7,
		    first, rows[i]), 0);
		wbuf_init(&want);
		wbuf_put(&want, p[i].data, p[i].len - 4 - 2 - 3);
		assert_int_equal(split.len, want.len);
		assert_memory_equal(split.data, want.data, want.len);
		wbuf_release(&want);
		first += rows[i];
	}
	/* Wrong total, out of range, trailing bytes: refused. */
	assert_int_equal(batch_split(&split, out.data, list_len, 6, 0, 1), -1);
	assert_int_equal(batch_split(&split, out.data, list_len, 7, 6, 2), -1);
	assert_int_equal(batch_split(&split, out.data, list_len + 1, 7, 0, 1),
	    -1);
	for (size_t n = 0; n < list_len; n++)
		assert_int_equal(batch_split(&split, out.data, n, 7, 0, 1), -1);
	for (int i = 0; i < 3; i++)
		wbuf_release(&p[i]);
	wbuf_release(&out);
	wbuf_release(&split);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_weights_split_service),
		cmocka_unit_test(test_newcomer_not_behind_flood),
		cmocka_unit_test(test_priorities_within_tenant),
		cmocka_unit_test(test_remove_and_peek),
		cmocka_unit_test(test_victim_is_biggest_flow),
		cmocka_unit_test(test_many_flows_hash_grows),
		cmocka_unit_test(test_batch_rows_and_compat),
		cmocka_unit_test(test_batch_concat_split_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
