/* runtime/onnx/exec.c - binding a request to the graph, planning, running.
 *
 * A plan holds the concrete shape of every value and its offset in the
 * activation arena.  It depends only on the input shapes, so it is kept
 * until a request brings different ones.  Offsets come from a greedy
 * first fit over value lifetimes (definition to last read), so values that
 * are never alive at once share memory; a node's output never shares with
 * its inputs, which the kernels rely on. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "runtime/onnx/graph.h"

static int		bind_syms(struct onnx_model *, size_t,
			    const struct ipc_tensor_desc *, char *, size_t);
static enum onnx_status	bind_inputs(struct onnx_model *,
			    const struct ipc_tensor *, size_t, char *, size_t);
static enum onnx_status	plan(struct onnx_model *, char *, size_t);
static size_t		place(struct onnx_model *, int, size_t *, size_t);
static void		fuse(struct onnx_model *);
static bool		fuse_bias(struct onnx_model *, struct onnx_node *,
			    const int *);
static void		alias_to(struct onnx_model *, int, int);
static bool		fuse_scale(struct onnx_model *, struct onnx_node *,
			    const int *);
static bool		fuse_relu(struct onnx_model *, struct onnx_node *,
			    const int *);
static bool		fuse_pool(struct onnx_model *, struct onnx_node *,
			    const int *);
static void		outlive(struct onnx_model *, int, int);
static bool		fuse_transpose_in(struct onnx_model *,
			    struct onnx_node *, const int *);
static bool		fuse_transpose_out(struct onnx_model *,
			    struct onnx_node *, const int *);
static bool		fuse_gelu(struct onnx_model *, struct onnx_node *,
			    const int *);
static bool		scalar_near(const struct onnx_model *, int, float,
			    int);
static struct onnx_node	*only_reader(struct onnx_model *, int, const int *,
			    const char *);

/* --- messages --- */

void
onnx_fmt_shape(char *buf, size_t len, const int64_t *dims, int nd)
{
	size_t	off = 0;
	int	r;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (int i = 0; i <= nd && off < len; i++) {
		if (i == nd)
			r = snprintf(buf + off, len - off, "]");
		else
			r = snprintf(buf + off, len - off, "%s%lld",
			    i == 0 ? "[" : ",", (long long)dims[i]);
		if (r < 0)
			break;
		off += (size_t)r;
	}
	if (nd == 0)
		snprintf(buf, len, "[]");
}

void
onnx_node_label(char *buf, size_t len, const struct onnx_node *n)
{
	const char	*op = n->op != NULL ? n->op->name : "?";

	if (n->name[0] != '\0')
		snprintf(buf, len, "node '%s' (%s)", n->name, op);
	else
		snprintf(buf, len, "node #%d (%s)", n->idx, op);
}

void
onnx_node_err(char *err, size_t errlen, const struct onnx_node *n,
    const char *fmt, ...)
{
	va_list	ap;
	size_t	off;

	onnx_node_label(err, errlen, n);
	off = strlen(err);
	if (off + 2 >= errlen)
		return;
	memcpy(err + off, ": ", 3);
	off += 2;
	va_start(ap, fmt);
	vsnprintf(err + off, errlen - off, fmt, ap);
	va_end(ap);
}

void
onnx_err_clean(char *err)
{
	for (; *err != '\0'; err++)
		if ((unsigned char)*err < 0x20 || *err == 0x7f)
			*err = '?';
}

enum onnx_status
onnx_shape_check(struct onnx_value *v, const struct onnx_node *n, char *err,
    size_t errlen)
{
	char		s[128];
	uint64_t	count = 1;
	bool		known = true, empty = false;

	for (int i = 0; i < v->ndim; i++) {
		if (v->shape[i] == -1) {
			known = false;
			continue;
		}
		onnx_fmt_shape(s, sizeof(s), v->shape, v->ndim);
		if (v->shape[i] < 0) {
			onnx_node_err(err, errlen, n, "output %s has a "
			    "negative dimension", s);
			return ONNX_EINPUT;
		}
		if (v->shape[i] == 0) {
			empty = true;
			continue;
		}
		/* The other dims of an empty tensor are bounded too: the
		 * kernels multiply them (outer and inner sizes). */
		if (count > (uint64_t)(ONNX_MAX_ELEMS / v->shape[i])) {
			onnx_node_err(err, errlen, n, "output %s would have "
			    "more than %d elements", s, ONNX_MAX_ELEMS);
			return ONNX_ETOOBIG;
		}
		count *= (uint64_t)v->shape[i];
	}
	v->count = known && !empty ? count : 0;
	return ONNX_OK;
}

/* Whether every output of n is empty (count 0 in a concrete plan): the
 * node then has nothing to write and does not run. */
static bool
outputs_empty(const struct onnx_model *m, const struct onnx_node *n)
{
	for (int j = 0; j < n->n_out; j++)
		if (n->out[j] >= 0 && m->vals[n->out[j]].count > 0)
			return false;
	return true;
}

int
onnx_empty_check(const struct onnx_model *m, const struct onnx_node *n,
    char *err, size_t errlen)
{
	if (outputs_empty(m, n))
		return 1;
	if (n->op->flags & (ONNX_OP_SHAPE_ONLY | ONNX_OP_EMPTY_OK))
		return 0;
	for (int j = 0; j < n->n_in; j++) {
		const struct onnx_value	*x;

		if (n->in[j] < 0)
			continue;
		x = &m->vals[n->in[j]];
		if (x->count == 0 && onnx_dims_prod(x->shape, 0,
		    x->ndim) == 0) {
			onnx_node_err(err, errlen, n, "input '%s' is empty, "
			    "which this operator does not support", x->name);
			return -1;
		}
	}
	return 0;
}

/* --- describing --- */

static void
desc_fill(struct ipc_tensor_desc *d, const struct onnx_value *v,
    const int64_t *dims)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", v->name);
	d->dtype = v->dtype;
	d->ndim = v->ndim;
	memcpy(d->dims, dims, sizeof(d->dims));
}

void
onnx_meta(const struct onnx_model *m, struct ipc_meta *meta)
{
	memset(meta, 0, sizeof(*meta));
	meta->format = MODEL_FORMAT_ONNX;
	meta->mem_bytes = onnx_mem_bytes(m);
	meta->n_inputs = (uint32_t)m->n_inputs;
	meta->n_outputs = (uint32_t)m->n_outputs;
	meta->inputs = xcalloc(m->n_inputs ? m->n_inputs : 1,
	    sizeof(*meta->inputs));
	meta->outputs = xcalloc(m->n_outputs, sizeof(*meta->outputs));
	for (size_t i = 0; i < m->n_inputs; i++) {
		const struct onnx_value	*v = &m->vals[m->inputs[i]];

		desc_fill(&meta->inputs[i], v, v->dims);
		meta->inputs[i].dtype = v->wire;
	}
	for (size_t i = 0; i < m->n_outputs; i++) {
		const struct onnx_value	*v = &m->vals[m->outputs[i]];

		desc_fill(&meta->outputs[i], v, v->dims);
	}
}

int64_t
onnx_opset(const struct onnx_model *m)
{
	return m->opset;
}

uint64_t
onnx_mem_bytes(const struct onnx_model *m)
{
	return m->const_bytes + m->arena.cap;
}

size_t
onnx_n_outputs(const struct onnx_model *m)
{
	return m->n_outputs;
}

int
onnx_output_index(const struct onnx_model *m, const char *name, size_t len)
{
	for (size_t i = 0; i < m->n_outputs; i++) {
		const char	*on = m->vals[m->outputs[i]].name;

		if (strlen(on) == len && memcmp(on, name, len) == 0)
			return (int)i;
	}
	return -1;
}

const void *
onnx_output(const struct onnx_model *m, size_t i,
    struct ipc_tensor_desc *desc, uint64_t *nbytes)
{
	const struct onnx_value	*v = &m->vals[m->outputs[i]];

	desc_fill(desc, v, v->shape);
	*nbytes = v->count * dtype_size(v->dtype);
	return v->data;
}

/* --- aliases and fusions --- */

/* Value id shares the memory of value of (or of the value of aliases). */
static void
alias_to(struct onnx_model *m, int id, int of)
{
	struct onnx_value	*v = &m->vals[id], *r;

	if (m->vals[of].alias >= 0)
		of = m->vals[of].alias;
	r = &m->vals[of];
	v->alias = of;
	/* The shared memory lives as long as its last reader. */
	if (r->last < v->last)
		r->last = v->last;
}

/* Add(MatMul(x, W), b) with constant W and b, where b is one row of W's
 * width and nothing else reads the product: the MatMul adds b itself
 * and the Add's output is its output. */
static bool
fuse_bias(struct onnx_model *m, struct onnx_node *n, const int *nread)
{
	for (int k = 0; k < 2; k++) {
		int			 pid = n->in[k], bid = n->in[1 - k];
		const struct onnx_value	*p, *b, *w;
		struct onnx_node	*mm;

		if (pid < 0 || bid < 0)
			continue;
		p = &m->vals[pid];
		b = &m->vals[bid];
		if (p->def < 0 || p->kind != ONNX_V_ACT || p->alias >= 0 ||
		    nread[pid] != 1 || p->dtype != DT_FP32)
			continue;
		mm = &m->nodes[p->def];
		if (strcmp(mm->op->name, "MatMul") != 0 ||
		    mm->when != ONNX_AT_RUN || mm->n_in != 2 ||
		    mm->in[1] < 0 || mm->tr[0] >= 0 || mm->tr_out >= 0)
			continue;
		w = &m->vals[mm->in[1]];
		if (w->kind != ONNX_V_CONST || w->ndim < 2 ||
		    b->kind != ONNX_V_CONST || b->dtype != DT_FP32 ||
		    b->ndim < 1 || b->ndim > p->ndim ||
		    b->count != (size_t)w->dims[w->ndim - 1])
			continue;
		if (onnx_dims_prod(b->dims, 0, b->ndim - 1) != 1)
			continue;
		mm->bias = bid;
		n->fused = true;
		alias_to(m, n->out[0], pid);
		return true;
	}
	return false;
}

/* Relu(Conv(...)) or Relu(Gemm(...)) where nothing else reads the
 * product: the Conv or Gemm applies the Relu as it writes its output,
 * which the Relu's shares. */
static bool
fuse_relu(struct onnx_model *m, struct onnx_node *n, const int *nread)
{
	int			 xid = n->in[0];
	const struct onnx_value	*x = &m->vals[xid];
	struct onnx_node	*c;

	if (x->def < 0 || x->kind != ONNX_V_ACT || x->alias >= 0 ||
	    nread[xid] != 1 || x->dtype != DT_FP32)
		return false;
	c = &m->nodes[x->def];
	if ((strcmp(c->op->name, "Conv") != 0 && strcmp(c->op->name,
	    "Gemm") != 0) || c->when != ONNX_AT_RUN || c->fused || c->relu)
		return false;
	c->relu = true;
	n->fused = true;
	alias_to(m, n->out[0], xid);
	return true;
}

/* Value id (or the value whose memory it shares) stays live up to node
 * idx. */
static void
outlive(struct onnx_model *m, int id, int idx)
{
	if (id < 0)
		return;
	if (m->vals[id].last < idx)
		m->vals[id].last = idx;
	if (m->vals[id].alias >= 0 && m->vals[m->vals[id].alias].last < idx)
		m->vals[m->vals[id].alias].last = idx;
}

/* MaxPool(Conv(...)), or MaxPool(Relu(Conv(...))) with the Relu done by
 * the Conv, where nothing else reads the Conv's output and the MaxPool
 * has no Indices output, and no other node runs between them: the Conv
 * writes the MaxPool's output itself (pooling as it copies out its
 * product, ops_nn.c).  Since that output is planned at the MaxPool,
 * what the Conv reads must live until then. */
static bool
fuse_pool(struct onnx_model *m, struct onnx_node *n, const int *nread)
{
	int			 vid = n->in[0];
	const struct onnx_value	*v = &m->vals[vid];
	struct onnx_node	*c;

	if (ONNX_HAS_OUT(n, 1) || v->def < 0 || nread[vid] != 1 ||
	    v->kind != ONNX_V_ACT || v->dtype != DT_FP32)
		return false;
	c = &m->nodes[v->def];
	if (strcmp(c->op->name, "Relu") == 0 && c->fused) {
		/* fuse_relu() did it: its Conv wrote v. */
		if (c->in[0] < 0 || m->vals[c->in[0]].def < 0)
			return false;
		c = &m->nodes[m->vals[c->in[0]].def];
		if (!c->relu)
			return false;
	} else if (v->alias >= 0)
		return false;
	if (strcmp(c->op->name, "Conv") != 0 || c->when != ONNX_AT_RUN ||
	    c->fused || c->pool >= 0)
		return false;
	/* No node that runs comes between: the memory of n's output may
	 * hold values that die before n, and the Conv writes it early. */
	for (int i = c->idx + 1; i < n->idx; i++)
		if (m->nodes[i].when == ONNX_AT_RUN && !m->nodes[i].fused)
			return false;
	c->pool = n->idx;
	n->fused = true;
	for (int i = 0; i < c->n_in; i++)
		outlive(m, c->in[i], n->idx);
	outlive(m, c->scratch, n->idx);
	return true;
}

/* Whether value id is an FP32 constant with one element (and rank at
 * most nd), within 1e-6 of want if want is not NAN. */
static bool
scalar_near(const struct onnx_model *m, int id, float want, int nd)
{
	const struct onnx_value	*c;
	float			 f;

	if (id < 0)
		return false;
	c = &m->vals[id];
	if (c->kind != ONNX_V_CONST || c->dtype != DT_FP32 || c->count != 1 ||
	    c->ndim > nd)
		return false;
	f = *(const float *)c->data;
	return isnan(want) || fabsf(f - want) <= 1e-6f;
}

/* The node called op that alone reads value id, an FP32 activation that
 * shares no memory; NULL if there is no such node. */
static struct onnx_node *
only_reader(struct onnx_model *m, int id, const int *nread, const char *op)
{
	const struct onnx_value	*v = &m->vals[id];

	if (nread[id] != 1 || v->kind != ONNX_V_ACT || v->alias >= 0 ||
	    v->dtype != DT_FP32 || v->def < 0)
		return NULL;
	for (size_t i = (size_t)v->def + 1; i < m->n_nodes; i++) {
		struct onnx_node	*n = &m->nodes[i];

		for (int j = 0; j < n->n_in; j++)
			if (n->in[j] == id)
				return n->when == ONNX_AT_RUN &&
				    !n->fused && strcmp(n->op->name, op) == 0 ?
				    n : NULL;
	}
	return NULL;
}

/* Mul(MatMul(a, b), c) with a scalar constant c and nothing else reading
 * the product: sgemm's alpha does the Mul. */
static bool
fuse_scale(struct onnx_model *m, struct onnx_node *n, const int *nread)
{
	for (int k = 0; k < 2; k++) {
		int			 pid = n->in[k], cid = n->in[1 - k];
		const struct onnx_value	*p;
		struct onnx_node	*mm;

		if (pid < 0 || !scalar_near(m, cid, NAN, m->vals[pid].ndim))
			continue;
		p = &m->vals[pid];
		if (p->def < 0 || only_reader(m, pid, nread, "Mul") != n)
			continue;
		mm = &m->nodes[p->def];
		if (strcmp(mm->op->name, "MatMul") != 0 ||
		    mm->when != ONNX_AT_RUN || mm->bias >= 0 ||
		    mm->scale != 1.0f)
			continue;
		mm->scale = *(const float *)m->vals[cid].data;
		n->fused = true;
		alias_to(m, n->out[0], pid);
		return true;
	}
	return false;
}

/* A MatMul whose operands and product all have the same rank r. */
static bool
matmul_flat(const struct onnx_model *m, const struct onnx_node *mm)
{
	int	r;

	if (strcmp(mm->op->name, "MatMul") != 0 || mm->when != ONNX_AT_RUN ||
	    mm->fused || mm->n_in != 2 || mm->in[0] < 0 || mm->in[1] < 0 ||
	    mm->n_out < 1 || mm->out[0] < 0 || mm->pack != NULL)
		return false;
	r = m->vals[mm->out[0]].ndim;
	return r >= 2 && m->vals[mm->in[0]].ndim == r &&
	    m->vals[mm->in[1]].ndim == r;
}

/* Transpose(x) read by a MatMul alone (the heads split of attention,
 * [N,S,H,D] -> [N,H,S,D] or [N,H,D,S]): the MatMul reads x where it
 * lies, as a matrix whose rows are contiguous (or, for its second
 * operand, whose columns are: sgemm's transposed B), with strides for
 * the batch dims, and the Transpose does not run.  Its output shares
 * x's memory, which it would hold in another order, but no node reads
 * it but the MatMul, which knows. */
static bool
fuse_transpose_in(struct onnx_model *m, struct onnx_node *mm,
    const int *nread)
{
	bool	done = false;
	int	r, perm[TENSOR_MAX_DIMS];

	if (!matmul_flat(m, mm) || mm->bias >= 0)
		return false;
	r = m->vals[mm->out[0]].ndim;
	for (int k = 0; k < 2; k++) {
		int			 vid = mm->in[k];
		const struct onnx_value	*v = &m->vals[vid], *x;
		struct onnx_node	*t;

		if (v->def < 0 || v->kind != ONNX_V_ACT || v->alias >= 0 ||
		    nread[vid] != 1 || v->dtype != DT_FP32 ||
		    (k == 1 && mm->in[0] == vid))
			continue;
		t = &m->nodes[v->def];
		if (strcmp(t->op->name, "Transpose") != 0 ||
		    t->when != ONNX_AT_RUN || t->fused || t->in[0] < 0)
			continue;
		x = &m->vals[t->in[0]];
		if ((x->kind != ONNX_V_ACT && x->kind != ONNX_V_INPUT) ||
		    x->dtype != DT_FP32 || x->ndim != r)
			continue;
		if (!onnx_perm(t, r, perm) || (perm[r - 1] != r - 1 &&
		    (k == 0 || perm[r - 2] != r - 1)))
			continue;
		mm->tr[k] = t->idx;
		t->fused = true;
		alias_to(m, vid, t->in[0]);
		done = true;
	}
	return done;
}

/* Transpose(MatMul(..)) that alone reads the product and keeps its last
 * dim last (the heads merge of attention, [N,H,S,D] -> [N,S,H,D]): the
 * MatMul writes each row of its product where the Transpose would have
 * put it, and the Transpose does not run. */
static bool
fuse_transpose_out(struct onnx_model *m, struct onnx_node *t,
    const int *nread)
{
	int			 pid = t->in[0], r, perm[TENSOR_MAX_DIMS];
	const struct onnx_value	*p;
	struct onnx_node	*mm;

	if (pid < 0 || t->n_out < 1 || t->out[0] < 0)
		return false;
	p = &m->vals[pid];
	if (p->def < 0 || p->kind != ONNX_V_ACT || p->alias >= 0 ||
	    nread[pid] != 1 || p->dtype != DT_FP32)
		return false;
	mm = &m->nodes[p->def];
	if (!matmul_flat(m, mm) || mm->bias >= 0 || mm->tr_out >= 0 ||
	    (r = p->ndim) != m->vals[t->out[0]].ndim)
		return false;
	if (!onnx_perm(t, r, perm) || perm[r - 1] != r - 1)
		return false;
	mm->tr_out = t->idx;
	t->fused = true;
	alias_to(m, t->out[0], pid);
	return true;
}

/* The erf GELU of exported models, from its Erf node e:
 *	t1 = Mul(x, 1/sqrt(2)) or Div(x, sqrt(2));  t2 = Erf(t1)
 *	t3 = Add(t2, 1);  y = Mul(Mul(x, 0.5), t3) or Mul(Mul(x, t3), 0.5)
 * (operands in either order), each intermediate read only by the next
 * step.  The last Mul computes y from x; the others do not run. */
static bool
fuse_gelu(struct onnx_model *m, struct onnx_node *e, const int *nread)
{
	struct onnx_node	*d, *a, *m1, *h = NULL, *f;
	int			 t1 = e->in[0], x = -1, t3, o, nd;

	if (t1 < 0 || m->vals[t1].def < 0 || m->vals[t1].alias >= 0 ||
	    nread[t1] != 1 || m->vals[t1].kind != ONNX_V_ACT)
		return false;
	d = &m->nodes[m->vals[t1].def];
	nd = m->vals[t1].ndim;
	if (d->when != ONNX_AT_RUN || d->fused || d->n_in != 2)
		return false;
	if (strcmp(d->op->name, "Mul") == 0) {
		for (int k = 0; k < 2; k++)
			if (scalar_near(m, d->in[1 - k], 0.70710678f, nd))
				x = d->in[k];
	} else if (strcmp(d->op->name, "Div") == 0 &&
	    scalar_near(m, d->in[1], 1.41421356f, nd))
		x = d->in[0];
	if (x < 0 || m->vals[x].dtype != DT_FP32 || m->vals[x].ndim != nd)
		return false;
	if ((a = only_reader(m, e->out[0], nread, "Add")) == NULL ||
	    a->n_in != 2 || !scalar_near(m, a->in[a->in[0] == e->out[0] ?
	    1 : 0], 1.0f, nd))
		return false;
	t3 = a->out[0];
	if ((m1 = only_reader(m, t3, nread, "Mul")) == NULL || m1->n_in != 2)
		return false;
	o = m1->in[m1->in[0] == t3 ? 1 : 0];
	if (o == x) {
		/* Mul(Mul(x, t3), 0.5) */
		if ((f = only_reader(m, m1->out[0], nread, "Mul")) == NULL ||
		    f->n_in != 2 || !scalar_near(m, f->in[f->in[0] ==
		    m1->out[0] ? 1 : 0], 0.5f, nd))
			return false;
		h = m1;
	} else {
		/* Mul(Mul(x, 0.5), t3) */
		if (o < 0 || m->vals[o].def < 0 ||
		    only_reader(m, o, nread, "Mul") != m1)
			return false;
		h = &m->nodes[m->vals[o].def];
		if (h->when != ONNX_AT_RUN || h->fused || h->n_in != 2 ||
		    strcmp(h->op->name, "Mul") != 0 ||
		    !((h->in[0] == x && scalar_near(m, h->in[1], 0.5f, nd)) ||
		    (h->in[1] == x && scalar_near(m, h->in[0], 0.5f, nd))))
			return false;
		f = m1;
	}
	if (m->vals[f->out[0]].ndim != nd)
		return false;
	d->fused = e->fused = a->fused = h->fused = true;
	f->gelu = x;
	/* f now reads x. */
	if (m->vals[x].last < f->idx)
		m->vals[x].last = f->idx;
	return true;
}

/* Once, before the first plan: outputs of Reshape, Flatten, Squeeze,
 * Unsqueeze and Identity share their input's memory instead of copying
 * it; a Relu whose input has no other reader works in place, or is
 * done by the Conv before it, as is a MaxPool after them; a bias Add
 * folds into the MatMul before it, and a Transpose into the MatMul it
 * feeds or follows.  Values are written only by the node
 * that defines them, so memory shared by values that hold the same
 * elements is never overwritten while one of them is still read. */
static void
fuse(struct onnx_model *m)
{
	int	*nread = m->live;	/* planner scratch, free until plan */

	memset(nread, 0, m->n_vals * sizeof(*nread));
	for (size_t i = 0; i < m->n_vals; i++)
		m->vals[i].alias = -1;
	for (size_t i = 0; i < m->n_nodes; i++) {
		m->nodes[i].bias = -1;
		m->nodes[i].scale = 1.0f;
		m->nodes[i].gelu = -1;
		m->nodes[i].fused = false;
		m->nodes[i].relu = false;
		m->nodes[i].pool = -1;
		m->nodes[i].tr[0] = m->nodes[i].tr[1] = -1;
		m->nodes[i].tr_out = -1;
		for (int j = 0; j < m->nodes[i].n_in; j++)
			if (m->nodes[i].in[j] >= 0)
				nread[m->nodes[i].in[j]]++;
	}
	/* A graph output is read after the last node: never in place. */
	for (size_t i = 0; i < m->n_outputs; i++)
		nread[m->outputs[i]] += 2;
	for (size_t i = 0; i < m->n_nodes; i++) {
		struct onnx_node	*n = &m->nodes[i];
		struct onnx_value	*x, *y;

		if (n->when != ONNX_AT_RUN || n->n_in < 1 || n->in[0] < 0 ||
		    n->n_out < 1 || n->out[0] < 0)
			continue;
		x = ONNX_IN(m, n, 0);
		y = ONNX_OUT(m, n);
		if (y->kind != ONNX_V_ACT || y->dtype != x->dtype)
			continue;
		if (n->op->run == onnx_run_copy) {
			if (x->kind != ONNX_V_INPUT && x->kind != ONNX_V_ACT)
				continue;
			alias_to(m, n->out[0], n->in[0]);
			n->fused = true;
		} else if (strcmp(n->op->name, "Relu") == 0) {
			if (fuse_relu(m, n, nread))
				continue;
			if (x->kind != ONNX_V_ACT || x->alias >= 0 ||
			    nread[n->in[0]] != 1 || x->dtype != DT_FP32)
				continue;
			/* kernel_relu() may write over its input. */
			alias_to(m, n->out[0], n->in[0]);
		} else if (strcmp(n->op->name, "Add") == 0 && n->n_in == 2)
			(void)fuse_bias(m, n, nread);
		else if (strcmp(n->op->name, "Mul") == 0 && n->n_in == 2 &&
		    !n->fused)
			(void)fuse_scale(m, n, nread);
		else if (strcmp(n->op->name, "Erf") == 0)
			(void)fuse_gelu(m, n, nread);
		else if (strcmp(n->op->name, "MaxPool") == 0)
			(void)fuse_pool(m, n, nread);
		else if (strcmp(n->op->name, "MatMul") == 0)
			(void)fuse_transpose_in(m, n, nread);
		else if (strcmp(n->op->name, "Transpose") == 0)
			(void)fuse_transpose_out(m, n, nread);
	}
	/* An input nothing aliases is only ever read, through its own
	 * pointer: onnx_run() may point it at the request's bytes.  Not
	 * one that is also a graph output, which is read after the run,
	 * when those bytes may be gone (onnx_run_dummy() frees them). */
	for (size_t i = 0; i < m->n_inputs; i++)
		m->vals[m->inputs[i]].borrow = true;
	for (size_t i = 0; i < m->n_vals; i++)
		if (m->vals[i].alias >= 0)
			m->vals[m->vals[i].alias].borrow = false;
	for (size_t i = 0; i < m->n_outputs; i++)
		m->vals[m->outputs[i]].borrow = false;
	m->fused = true;
}

/* --- running --- */

/* Dims that share a dim_param must agree across the inputs. */
static int
bind_syms(struct onnx_model *m, size_t i, const struct ipc_tensor_desc *d,
    char *err, size_t errlen)
{
	const struct onnx_value	*v = &m->vals[m->inputs[i]];

	for (int k = 0; k < v->ndim; k++) {
		int	s = v->sym[k];

		if (s == 0)
			continue;
		if (m->symval[s] == 0) {
			m->symval[s] = d->dims[k];
			m->symsrc[s] = (int)i;
		} else if (m->symval[s] != d->dims[k]) {
			snprintf(err, errlen, "input '%s': dimension %d (%s) "
			    "is %lld but it is %lld in input '%s'", v->name,
			    k, m->syms[s - 1], (long long)d->dims[k],
			    (long long)m->symval[s],
			    m->vals[m->inputs[m->symsrc[s]]].name);
			return -1;
		}
	}
	return 0;
}

/* Matches the request's tensors to the graph inputs (m->bound) and checks
 * each against what the model declares. */
static enum onnx_status
bind_inputs(struct onnx_model *m, const struct ipc_tensor *in, size_t n,
    char *err, size_t errlen)
{
	char	want[128], got[128];

	memset(m->bound, 0, m->n_inputs * sizeof(*m->bound));
	for (size_t j = 0; j < n; j++) {
		size_t	i;

		for (i = 0; i < m->n_inputs; i++)
			if (strcmp(m->vals[m->inputs[i]].name,
			    in[j].desc.name) == 0)
				break;
		if (i == m->n_inputs) {
			snprintf(err, errlen, "unknown input '%s'",
			    in[j].desc.name);
			return ONNX_EINPUT;
		}
		if (m->bound[i] != NULL) {
			snprintf(err, errlen, "input '%s' is given more than "
			    "once", in[j].desc.name);
			return ONNX_EINPUT;
		}
		m->bound[i] = &in[j];
	}
	memset(m->symval, 0, (m->n_syms + 1) * sizeof(*m->symval));
	for (size_t i = 0; i < m->n_inputs; i++) {
		const struct onnx_value		*v = &m->vals[m->inputs[i]];
		const struct ipc_tensor_desc	*d;
		uint64_t			 count;
		bool				 ok;

		if (m->bound[i] == NULL) {
			snprintf(err, errlen, "missing input '%s'", v->name);
			return ONNX_EINPUT;
		}
		d = &m->bound[i]->desc;
		if (d->dtype != v->wire) {
			snprintf(err, errlen, "input '%s': expected dtype %s, "
			    "got %s", v->name, dtype_kserve_name(v->wire),
			    dtype_kserve_name(d->dtype));
			return ONNX_EINPUT;
		}
		ok = d->ndim == v->ndim;
		for (int k = 0; ok && k < v->ndim; k++)
			ok = d->dims[k] >= 0 &&
			    (v->dims[k] == -1 || v->dims[k] == d->dims[k]);
		if (!ok) {
			onnx_fmt_shape(want, sizeof(want), v->dims, v->ndim);
			onnx_fmt_shape(got, sizeof(got), d->dims, d->ndim);
			snprintf(err, errlen, "input '%s': expected shape %s, "
			    "got %s", v->name, want, got);
			return ONNX_EINPUT;
		}
		if (bind_syms(m, i, d, err, errlen) == -1)
			return ONNX_EINPUT;
		if (onnx_dims_bounded(d->dims, d->ndim, &count) == -1) {
			snprintf(err, errlen, "input '%s' has more than %d "
			    "elements", v->name, ONNX_MAX_ELEMS);
			return ONNX_ETOOBIG;
		}
	}
	return ONNX_OK;
}

/* Places value id at the lowest offset free during its lifetime; values
 * are placed in order of definition, m->live[0..*nlive) holds the placed
 * ones still alive, sorted by offset.  Returns the new arena top. */
static size_t
place(struct onnx_model *m, int id, size_t *nlive, size_t top)
{
	struct onnx_value	*v = &m->vals[id];
	size_t			 k, j = 0, off = 0;

	/* Values dead before v is born stay dead for all later ones. */
	for (k = 0; k < *nlive; k++)
		if (m->vals[m->live[k]].last >= v->def)
			m->live[j++] = m->live[k];
	*nlive = j;
	v->size = (v->count * dtype_size(v->dtype) + ARENA_ALIGN - 1) &
	    ~(size_t)(ARENA_ALIGN - 1);
	for (k = 0; k < *nlive; k++) {
		const struct onnx_value	*w = &m->vals[m->live[k]];

		if (off + v->size <= w->off)
			break;
		if (w->off + w->size > off)
			off = w->off + w->size;
	}
	memmove(&m->live[k + 1], &m->live[k], (*nlive - k) * sizeof(int));
	m->live[k] = id;
	(*nlive)++;
	v->off = off;
	return off + v->size > top ? off + v->size : top;
}

/* Shapes and offsets for the bound inputs, unless the last plan fits. */
static enum onnx_status
plan(struct onnx_model *m, char *err, size_t errlen)
{
	enum onnx_status	 st;
	size_t			 nlive = 0, top = 0;
	bool			 same = m->planned, placed = false;
	int			 r;

	for (size_t i = 0; same && i < m->n_inputs; i++) {
		const struct onnx_value	*v = &m->vals[m->inputs[i]];

		same = memcmp(v->shape, m->bound[i]->desc.dims,
		    m->bound[i]->desc.ndim * sizeof(int64_t)) == 0;
		/* Values read while planning are part of the plan. */
		if (same && v->kind == ONNX_V_PLAN && m->bound[i]->nbytes > 0)
			same = memcmp(v->data, m->bound[i]->data,
			    (size_t)m->bound[i]->nbytes) == 0;
	}
	if (same)
		return ONNX_OK;
	if (!m->fused)
		fuse(m);
	m->planned = false;
	for (size_t i = 0; i < m->n_inputs; i++) {
		struct onnx_value	*v = &m->vals[m->inputs[i]];

		memcpy(v->shape, m->bound[i]->desc.dims, sizeof(v->shape));
		(void)tensor_count(v->shape, v->ndim, 1, ONNX_MAX_ELEMS,
		    &v->count);
		if (v->kind == ONNX_V_PLAN) {
			if (m->bound[i]->nbytes > 0)
				memcpy(v->data, m->bound[i]->data,
				    (size_t)m->bound[i]->nbytes);
			v->known = true;
			continue;
		}
		top = place(m, m->inputs[i], &nlive, top);
		placed = true;
	}
	for (size_t i = 0; i < m->n_nodes; i++) {
		struct onnx_node	*n = &m->nodes[i];

		if (n->when == ONNX_AT_LOAD)
			continue;
		if (n->op->infer(m, n, err, errlen) == -1)
			return ONNX_EINPUT;
		for (int j = -1; j < n->n_out; j++) {
			int	id = j < 0 ? n->scratch : n->out[j];

			if (id < 0)
				continue;
			if ((st = onnx_shape_check(&m->vals[id], n, err,
			    errlen)) != ONNX_OK)
				return st;
			if (n->when == ONNX_AT_PLAN) {
				/* Sized at load from ranks, which stay. */
				if (m->vals[id].count > m->vals[id].size) {
					onnx_node_err(err, errlen, n, "shape "
					    "value grew beyond its plan");
					return ONNX_EINPUT;
				}
				continue;
			}
			if (m->vals[id].alias >= 0) {
				/* Defined earlier, so placed already. */
				m->vals[id].off = m->vals[m->vals[id].alias].off;
				continue;
			}
			top = place(m, id, &nlive, top);
			placed = true;
		}
		if ((r = onnx_empty_check(m, n, err, errlen)) == -1)
			return ONNX_EINPUT;
		if (n->when == ONNX_AT_PLAN) {
			if (r == 0)
				n->op->run(m, n);
			for (int j = 0; j < n->n_out; j++)
				if (n->out[j] >= 0)
					m->vals[n->out[j]].known = true;
		}
	}
	/* Empty values still get a pointer into the arena: the kernels
	 * pass it to memcpy() with a length of 0. */
	if (placed && top == 0)
		top = ARENA_ALIGN;
	if (top > ONNX_MAX_ARENA || arena_reserve(&m->arena, top) == -1) {
		snprintf(err, errlen, "the request needs %zu MiB of "
		    "activations, more than this runtime can allocate",
		    top >> 20);
		return ONNX_ETOOBIG;
	}
	for (size_t i = 0; i < m->n_vals; i++) {
		struct onnx_value	*v = &m->vals[i];

		/* No arena at all when nothing runs per request. */
		if ((v->kind == ONNX_V_INPUT || v->kind == ONNX_V_ACT) &&
		    m->arena.base != NULL)
			v->data = (char *)m->arena.base + v->off;
	}
	m->planned = true;
	return ONNX_OK;
}

enum onnx_status
onnx_run(struct onnx_model *m, const struct ipc_tensor *in, size_t n,
    char *err, size_t errlen)
{
	enum onnx_status	st;

	if ((st = bind_inputs(m, in, n, err, errlen)) != ONNX_OK ||
	    (st = plan(m, err, errlen)) != ONNX_OK) {
		onnx_err_clean(err);
		return st;
	}
	for (size_t i = 0; i < m->n_inputs; i++) {
		struct onnx_value	*v = &m->vals[m->inputs[i]];
		const uint8_t		*src = m->bound[i]->data;
		float			*dst = v->data;

		if (v->kind == ONNX_V_PLAN || v->count == 0)
			continue;	/* copied while planning, or empty */
		/* Read in place when the elements are aligned as their type
		 * wants (serve.c keeps the frame until it is answered): a
		 * batch-64 MLP's 200 KB copy, made by the serving thread
		 * alone while the workers wait, goes away.  Otherwise, and
		 * for FP16, into the input's place in the arena. */
		if (m->arena.base != NULL)
			v->data = (char *)m->arena.base + v->off;
		if (v->wire == v->dtype && v->borrow &&
		    (uintptr_t)src % dtype_size(v->dtype) == 0) {
			v->data = (void *)(uintptr_t)src;
			continue;
		}
		if (v->wire != DT_FP16) {
			memcpy(v->data, src, (size_t)m->bound[i]->nbytes);
			continue;
		}
		for (size_t k = 0; k < v->count; k++) {
			uint16_t	h;

			memcpy(&h, src + 2 * k, sizeof(h));
			dst[k] = onnx_half_to_float(h);
		}
	}
	for (size_t i = 0; i < m->n_nodes; i++)
		if (m->nodes[i].when == ONNX_AT_RUN && !m->nodes[i].fused &&
		    !outputs_empty(m, &m->nodes[i]))
			m->nodes[i].op->run(m, &m->nodes[i]);
	return ONNX_OK;
}

enum onnx_status
onnx_run_dummy(struct onnx_model *m, int64_t dyn, char *err, size_t errlen)
{
	struct ipc_tensor	*in;
	enum onnx_status	 st = ONNX_ETOOBIG;
	uint64_t		 count, max = 0;
	void			*zeros = NULL;

	in = xcalloc(m->n_inputs ? m->n_inputs : 1, sizeof(*in));
	for (size_t i = 0; i < m->n_inputs; i++) {
		const struct onnx_value	*v = &m->vals[m->inputs[i]];

		desc_fill(&in[i].desc, v, v->dims);
		for (int k = 0; k < v->ndim; k++)
			if (in[i].desc.dims[k] == -1)
				in[i].desc.dims[k] = dyn;
		in[i].desc.dtype = v->wire;
		if (tensor_count(in[i].desc.dims, v->ndim,
		    dtype_size(v->wire), ONNX_MAX_ARENA, &count) == -1) {
			snprintf(err, errlen, "input '%s' is too large",
			    v->name);
			goto out;
		}
		in[i].nbytes = count * dtype_size(v->wire);
		if (in[i].nbytes > max)
			max = in[i].nbytes;
	}
	/* Not xcalloc: a model too big for --mem-limit-mb fails cleanly. */
	if ((zeros = calloc(1, max ? (size_t)max : 1)) == NULL) {
		snprintf(err, errlen, "cannot allocate %llu bytes of inputs",
		    (unsigned long long)max);
		goto out;
	}
	for (size_t i = 0; i < m->n_inputs; i++)
		in[i].data = zeros;
	st = onnx_run(m, in, m->n_inputs, err, errlen);
 out:
	free(zeros);
	free(in);
	return st;
}
