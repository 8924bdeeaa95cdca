/* runtime/onnx/exec.c - binding a request to the graph, planning, running.
 *
 * A plan holds the concrete shape of every value and its offset in the
 * activation arena.  It depends only on the input shapes, so it is kept
 * until a request brings different ones.  Offsets come from a greedy
 * first fit over value lifetimes (definition to last read), so values that
 * are never alive at once share memory; a node's output never shares with
 * its inputs, which the kernels rely on. */
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
	bool		known = true;

	for (int i = 0; i < v->ndim; i++) {
		if (v->shape[i] == -1) {
			known = false;
			continue;
		}
		onnx_fmt_shape(s, sizeof(s), v->shape, v->ndim);
		if (v->shape[i] <= 0) {
			onnx_node_err(err, errlen, n, "output %s would be "
			    "empty", s);
			return ONNX_EINPUT;
		}
		if (count > (uint64_t)(ONNX_MAX_ELEMS / v->shape[i])) {
			onnx_node_err(err, errlen, n, "output %s would have "
			    "more than %d elements", s, ONNX_MAX_ELEMS);
			return ONNX_ETOOBIG;
		}
		count *= (uint64_t)v->shape[i];
	}
	v->count = known ? count : 0;
	return ONNX_OK;
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
		if (d->dtype != v->dtype) {
			snprintf(err, errlen, "input '%s': expected dtype %s, "
			    "got %s", v->name, dtype_kserve_name(v->dtype),
			    dtype_kserve_name(d->dtype));
			return ONNX_EINPUT;
		}
		ok = d->ndim == v->ndim;
		for (int k = 0; ok && k < v->ndim; k++)
			ok = d->dims[k] > 0 &&
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
		if (tensor_count(d->dims, d->ndim, 1, ONNX_MAX_ELEMS,
		    &count) == -1) {
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
	bool			 same = m->planned;

	for (size_t i = 0; same && i < m->n_inputs; i++)
		same = memcmp(m->vals[m->inputs[i]].shape,
		    m->bound[i]->desc.dims,
		    m->bound[i]->desc.ndim * sizeof(int64_t)) == 0;
	if (same)
		return ONNX_OK;
	m->planned = false;
	for (size_t i = 0; i < m->n_inputs; i++) {
		struct onnx_value	*v = &m->vals[m->inputs[i]];

		memcpy(v->shape, m->bound[i]->desc.dims, sizeof(v->shape));
		(void)tensor_count(v->shape, v->ndim, 1, ONNX_MAX_ELEMS,
		    &v->count);
		top = place(m, m->inputs[i], &nlive, top);
	}
	for (size_t i = 0; i < m->n_nodes; i++) {
		struct onnx_node	*n = &m->nodes[i];

		if (n->folded)
			continue;
		if (n->op->infer(m, n, err, errlen) == -1)
			return ONNX_EINPUT;
		if ((st = onnx_shape_check(ONNX_OUT(m, n), n, err, errlen)) !=
		    ONNX_OK)
			return st;
		top = place(m, n->out, &nlive, top);
	}
	if (top > ONNX_MAX_ARENA || arena_reserve(&m->arena, top) == -1) {
		snprintf(err, errlen, "the request needs %zu MiB of "
		    "activations, more than this runtime can allocate",
		    top >> 20);
		return ONNX_ETOOBIG;
	}
	for (size_t i = 0; i < m->n_vals; i++) {
		struct onnx_value	*v = &m->vals[i];

		if (v->kind != ONNX_V_CONST)
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
	for (size_t i = 0; i < m->n_inputs; i++)
		memcpy(m->vals[m->inputs[i]].data, m->bound[i]->data,
		    (size_t)m->bound[i]->nbytes);
	for (size_t i = 0; i < m->n_nodes; i++)
		if (!m->nodes[i].folded)
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
		if (tensor_count(in[i].desc.dims, v->ndim, sizeof(float),
		    ONNX_MAX_ARENA, &count) == -1) {
			snprintf(err, errlen, "input '%s' is too large",
			    v->name);
			goto out;
		}
		in[i].nbytes = count * sizeof(float);
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
