/* runtime/onnx/load.c - a serialized ModelProto to an executable graph.
 *
 * The bytes come from a model file an operator uploaded and are treated as
 * hostile: the protobuf nesting depth is bounded before protobuf-c (which
 * recurses without a limit) sees them, every count and dim is bounded
 * before it sizes anything, and every reference is resolved.  The unpacked
 * proto is kept for the model's lifetime: names and most weights point
 * into it, so weights are not copied.  raw_data is little-endian, as is
 * every machine we build for. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "runtime/onnx/graph.h"
#include "runtime/onnx/weights.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ONNX raw_data is little-endian; teach onnx_tensor_read to swap"
#endif

#define PB_MAX_DEPTH		100	/* as protobuf's own parsers */
#define DIM_VALUE	ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
#define DIM_PARAM	ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
#define ONNX_MAX_NODES		(1 << 16)	/* bounds planning: O(n^2) */

/* State of one onnx_load() call. */
struct loader {
	struct onnx_model	*m;
	int			*htab;	/* value ids by name; -1 empty */
	size_t			 hcap;	/* slots, a power of two */
	char			*err;
	size_t			 errlen;
};

static const struct {
	enum dtype	 dt;
	const char	*name;
} onnx_types[] = {
	[ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT] = { DT_FP32, "FLOAT" },
	[ONNX__TENSOR_PROTO__DATA_TYPE__UINT8] = { DT_UINT8, "UINT8" },
	[ONNX__TENSOR_PROTO__DATA_TYPE__INT8] = { DT_INT8, "INT8" },
	[ONNX__TENSOR_PROTO__DATA_TYPE__UINT16] = { DT_UINT16, "UINT16" },
	[ONNX__TENSOR_PROTO__DATA_TYPE__INT16] = { DT_INT16, "INT16" },
	[ONNX__TENSOR_PROTO__DATA_TYPE__INT32] = { DT_INT32, "INT32" },
	[ONNX__TENSOR_PROTO__DATA_TYPE__INT64] = { DT_INT64, "INT64" },
	[ONNX__TENSOR_PROTO__DATA_TYPE__STRING] = { DT_BYTES, "STRING" },
	[ONNX__TENSOR_PROTO__DATA_TYPE__BOOL] = { DT_BOOL, "BOOL" },
	[ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16] = { DT_FP16, "FLOAT16" },
	[ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE] = { DT_FP64, "DOUBLE" },
	[ONNX__TENSOR_PROTO__DATA_TYPE__UINT32] = { DT_UINT32, "UINT32" },
	[ONNX__TENSOR_PROTO__DATA_TYPE__UINT64] = { DT_UINT64, "UINT64" },
	[ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64] =
	    { DT_INVALID, "COMPLEX64" },
	[ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX128] =
	    { DT_INVALID, "COMPLEX128" },
	[ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16] = { DT_INVALID, "BFLOAT16" },
};
#define N_ONNX_TYPES	(int)(sizeof(onnx_types) / sizeof(onnx_types[0]))

static int	pb_check(const uint8_t *, size_t,
		    const ProtobufCMessageDescriptor *, int);
static int	lerr(struct loader *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	names_find(const struct loader *, const char *);
static int	value_new(struct loader *, const char *);
static int	load_opset(struct loader *);
static int	load_old_opset(struct loader *);
static void	lappend(struct loader *, size_t *, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static bool	attr_known(const char *, const char *);
static int	load_ops(struct loader *);
static int	load_initializers(struct loader *);
static int	load_inputs(struct loader *);
static int	load_input_shape(struct loader *, struct onnx_value *,
		    const Onnx__ValueInfoProto *);
static int	load_node_outputs(struct loader *);
static int	load_nodes(struct loader *);
static int	load_node(struct loader *, struct onnx_node *,
		    Onnx__NodeProto *);
static void	node_own(struct onnx_model *, struct onnx_node *,
		    enum onnx_vkind);
static int	load_outputs(struct loader *);
static void	load_finish(struct onnx_model *);

/* --- protobuf pre-check --- */

/* Walks the wire format of one message, recursing into fields the
 * descriptor says are messages; fails on bad framing or on nesting deeper
 * than PB_MAX_DEPTH, which would otherwise overflow protobuf-c's stack. */
static int
pb_check(const uint8_t *p, size_t len, const ProtobufCMessageDescriptor *d,
    int depth)
{
	const ProtobufCFieldDescriptor	*f;
	uint64_t			 key, v;
	size_t				 off = 0;

	if (depth > PB_MAX_DEPTH)
		return -1;
	while (off < len) {
		if (weights_varint(p, len, &off, &key) == -1)
			return -1;
		switch (key & 7) {
		case PROTOBUF_C_WIRE_TYPE_VARINT:
			if (weights_varint(p, len, &off, &v) == -1)
				return -1;
			break;
		case PROTOBUF_C_WIRE_TYPE_64BIT:
			if (len - off < 8)
				return -1;
			off += 8;
			break;
		case PROTOBUF_C_WIRE_TYPE_32BIT:
			if (len - off < 4)
				return -1;
			off += 4;
			break;
		case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED:
			if (weights_varint(p, len, &off, &v) == -1 ||
			    v > len - off)
				return -1;
			f = key >> 3 > UINT32_MAX ? NULL :
			    protobuf_c_message_descriptor_get_field(d,
			    (unsigned)(key >> 3));
			if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE &&
			    pb_check(p + off, (size_t)v, f->descriptor,
			    depth + 1) == -1)
				return -1;
			off += (size_t)v;
			break;
		default:	/* groups and reserved wire types */
			return -1;
		}
	}
	return 0;
}

/* --- helpers --- */

static int
lerr(struct loader *L, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(L->err, L->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static uint32_t
name_hash(const char *s)
{
	uint32_t	h = 2166136261U;	/* FNV-1a */

	while (*s != '\0')
		h = (h ^ (uint8_t)*s++) * 16777619U;
	return h;
}

static int
names_find(const struct loader *L, const char *name)
{
	size_t	i = name_hash(name) & (L->hcap - 1);

	for (; L->htab[i] != -1; i = (i + 1) & (L->hcap - 1))
		if (strcmp(L->m->vals[L->htab[i]].name, name) == 0)
			return L->htab[i];
	return -1;
}

/* A new value called name; -1 if the name is taken. */
static int
value_new(struct loader *L, const char *name)
{
	struct onnx_model	*m = L->m;
	struct onnx_value	*v;
	size_t			 i = name_hash(name) & (L->hcap - 1);
	int			 id = (int)m->n_vals;

	for (; L->htab[i] != -1; i = (i + 1) & (L->hcap - 1))
		if (strcmp(m->vals[L->htab[i]].name, name) == 0)
			return -1;
	L->htab[i] = id;
	v = &m->vals[m->n_vals++];
	v->name = name;
	v->def = v->last = -1;
	return id;
}

enum dtype
onnx_dtype(int t)
{
	return t > 0 && t < N_ONNX_TYPES ? onnx_types[t].dt : DT_INVALID;
}

const char *
onnx_dtype_name(int t)
{
	if (t > 0 && t < N_ONNX_TYPES && onnx_types[t].name != NULL)
		return onnx_types[t].name;
	return "UNDEFINED";
}

/* --- tensors --- */

int
onnx_tensor_read(struct onnx_value *v, Onnx__TensorProto *t,
    const char *label, char *err, size_t errlen)
{
	uint64_t	count;
	size_t		esz, have;
	void		*src;

	/* weights_unpack() has turned the external tensors it reaches into
	 * raw_data ones; others (in subgraphs) cannot be read. */
	if ((t->has_data_location && t->data_location ==
	    ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
	    t->n_external_data > 0) {
		snprintf(err, errlen, "%s: external data is not supported "
		    "here", label);
		return -1;
	}
	if (t->segment != NULL) {
		snprintf(err, errlen, "%s: segmented tensors are not "
		    "supported", label);
		return -1;
	}
	v->dtype = onnx_dtype(t->data_type);
	if (v->dtype != DT_FP32 && v->dtype != DT_INT64) {
		snprintf(err, errlen, "%s: data type %s is not supported "
		    "(only FLOAT and INT64)", label,
		    onnx_dtype_name(t->data_type));
		return -1;
	}
	if (t->n_dims > TENSOR_MAX_DIMS) {
		snprintf(err, errlen, "%s: rank %zu is above %d", label,
		    t->n_dims, TENSOR_MAX_DIMS);
		return -1;
	}
	v->ndim = (int)t->n_dims;
	for (int i = 0; i < v->ndim; i++) {
		v->dims[i] = t->dims[i];
		if (v->dims[i] < 0) {
			snprintf(err, errlen, "%s: dimension %d is %lld", label,
			    i, (long long)v->dims[i]);
			return -1;
		}
	}
	if (onnx_dims_bounded(v->dims, v->ndim, &count) == -1) {
		snprintf(err, errlen, "%s: more than %d elements", label,
		    ONNX_MAX_ELEMS);
		return -1;
	}
	esz = dtype_size(v->dtype);
	if (t->has_raw_data) {
		have = t->raw_data.len / esz;
		src = t->raw_data.data;
		if (t->raw_data.len != count * esz) {
			snprintf(err, errlen, "%s: raw_data holds %zu bytes, "
			    "expected %llu", label, t->raw_data.len,
			    (unsigned long long)(count * esz));
			return -1;
		}
	} else if (v->dtype == DT_FP32) {
		have = t->n_float_data;
		src = t->float_data;
	} else {
		have = t->n_int64_data;
		src = t->int64_data;
	}
	if (have != count) {
		snprintf(err, errlen, "%s: holds %zu values, expected %llu",
		    label, have, (unsigned long long)count);
		return -1;
	}
	/* protobuf-c mallocs every bytes field, so this never copies in
	 * practice; but the kernels need aligned floats. */
	if (count > 0 && (uintptr_t)src % esz != 0) {
		v->own = xmalloc(count * esz);
		memcpy(v->own, src, count * esz);
		src = v->own;
	} else if (count == 0)
		/* Empty: protobuf-c may leave src NULL, which memcpy() must
		 * not see even for 0 bytes. */
		src = v->own = xcalloc(1, sizeof(int64_t));
	v->data = src;
	v->count = count;
	memcpy(v->shape, v->dims, sizeof(v->shape));
	return 0;
}

/* --- the graph, in the order the checks are reported --- */

static int
load_opset(struct loader *L)
{
	Onnx__ModelProto	*p = L->m->proto;
	int64_t			 opset = -1;

	for (size_t i = 0; i < p->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto	*o = p->opset_import[i];

		if (o->domain != NULL && *o->domain != '\0' &&
		    strcmp(o->domain, "ai.onnx") != 0)
			continue;
		if (o->has_version)
			opset = o->version;
	}
	if (opset == -1)
		return lerr(L, "model does not import the default ONNX "
		    "opset (other domains are not supported)");
	/* Below ONNX_OPSET_MIN only some operators: load_old_opset(). */
	if (opset < 1 || opset > ONNX_OPSET_MAX)
		return lerr(L, "opset %lld is not supported (only %d to %d)",
		    (long long)opset, ONNX_OPSET_MIN, ONNX_OPSET_MAX);
	L->m->opset = opset;
	return 0;
}

/* A model of an opset below ONNX_OPSET_MIN is taken when each of its
 * operators means there what it means in the opsets we implement: the
 * opset from which each operator's semantics have not changed (attributes
 * that came or went are checked as for any model).  Others, above all the
 * binary operators with their old broadcast attribute, refuse it. */
static int
load_old_opset(struct loader *L)
{
	static const struct {
		const char	*op;
		int64_t		 since;
	} since[] = {
		{ "Abs", 6 }, { "AveragePool", 1 }, { "Cast", 6 },
		{ "Ceil", 6 }, { "Clip", 6 }, { "Concat", 4 },
		{ "Constant", 1 }, { "Conv", 1 }, { "Elu", 6 }, { "Exp", 6 },
		{ "Flatten", 1 }, { "Floor", 6 }, { "Gather", 1 },
		{ "GlobalAveragePool", 1 }, { "GlobalMaxPool", 1 },
		{ "HardSigmoid", 6 }, { "Identity", 1 }, { "LeakyRelu", 6 },
		{ "Log", 6 }, { "LogSoftmax", 1 }, { "MatMul", 1 },
		{ "MaxPool", 1 }, { "Neg", 6 }, { "Not", 1 },
		{ "Reciprocal", 6 }, { "ReduceL1", 1 }, { "ReduceL2", 1 },
		{ "ReduceLogSum", 1 }, { "ReduceMax", 1 }, { "ReduceMean", 1 },
		{ "ReduceMin", 1 }, { "ReduceProd", 1 }, { "ReduceSum", 1 },
		{ "ReduceSumSquare", 1 }, { "Relu", 6 }, { "Reshape", 5 },
		{ "Selu", 6 }, { "Shape", 1 }, { "Sigmoid", 6 }, { "Size", 1 },
		{ "Slice", 1 }, { "Softmax", 1 }, { "Softplus", 1 },
		{ "Softsign", 1 }, { "Split", 2 }, { "Sqrt", 6 },
		{ "Squeeze", 1 }, { "Tanh", 6 }, { "Transpose", 1 },
		{ "Unsqueeze", 1 },
	};
	struct onnx_model	*m = L->m;

	if (m->opset >= ONNX_OPSET_MIN)
		return 0;
	for (size_t i = 0; i < m->n_nodes; i++) {
		const char	*op = m->nodes[i].op->name;
		size_t		 k;

		for (k = 0; k < sizeof(since) / sizeof(since[0]); k++)
			if (strcmp(since[k].op, op) == 0)
				break;
		if (k == sizeof(since) / sizeof(since[0]) ||
		    since[k].since > m->opset)
			return lerr(L, "opset %lld is not supported (only %d "
			    "to %d; below %d only for operators unchanged "
			    "since, and %s is not one)", (long long)m->opset,
			    ONNX_OPSET_MIN, ONNX_OPSET_MAX, ONNX_OPSET_MIN,
			    op);
	}
	return 0;
}

/* Appends to the message in L->err, truncating. */
static void
lappend(struct loader *L, size_t *len, const char *fmt, ...)
{
	va_list	ap;
	int	r;

	if (*len + 1 >= L->errlen)
		return;
	va_start(ap, fmt);
	r = vsnprintf(L->err + *len, L->errlen - *len, fmt, ap);
	va_end(ap);
	if (r > 0)
		*len += (size_t)r < L->errlen - *len ? (size_t)r :
		    L->errlen - *len - 1;
}

/* Whether name is one of the space-separated words of known. */
static bool
attr_known(const char *known, const char *name)
{
	size_t	n = strlen(name);

	for (const char *p = known; p != NULL && *p != '\0';) {
		const char	*e = strchr(p, ' ');
		size_t		 k = e != NULL ? (size_t)(e - p) : strlen(p);

		if (k == n && strncmp(p, name, n) == 0)
			return true;
		p = e != NULL ? e + 1 : NULL;
	}
	return false;
}

/* Finds every node's operator and reports, in one message, every
 * unsupported operator (each once, in order of first use, with the nodes
 * using it) and every attribute an operator we have does not know. */
static int
load_ops(struct loader *L)
{
	Onnx__GraphProto	*g = L->m->proto->graph;
	struct onnx_model	*m = L->m;
	const Onnx__NodeProto	*uniq[64];	/* first node of each */
	size_t			 n_uniq = 0, len = 0, n_bad = 0;

	if (g->n_node > ONNX_MAX_NODES)
		return lerr(L, "graph has %zu nodes, more than %d", g->n_node,
		    ONNX_MAX_NODES);
	m->nodes = xcalloc(g->n_node, sizeof(*m->nodes));
	m->n_nodes = g->n_node;
	L->err[0] = '\0';
	for (size_t i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto	*p = g->node[i];
		const char		*dom = p->domain ? p->domain : "";
		const char		*op = p->op_type ? p->op_type : "";
		size_t			 u, k, named = 0;

		m->nodes[i].idx = (int)i;
		m->nodes[i].name = p->name ? p->name : "";
		m->nodes[i].scratch = -1;
		if ((m->nodes[i].op = onnx_op_find(dom, op)) != NULL)
			continue;
		for (u = 0; u < n_uniq; u++)
			if (strcmp(uniq[u]->op_type ? uniq[u]->op_type : "",
			    op) == 0 && strcmp(uniq[u]->domain ?
			    uniq[u]->domain : "", dom) == 0)
				break;
		if (u < n_uniq || n_uniq == sizeof(uniq) / sizeof(uniq[0]))
			continue;	/* listed, or the message is full */
		uniq[n_uniq++] = p;
		lappend(L, &len, "%s%s%s%s", len == 0 ?
		    "unsupported operators: " : ", ", dom, *dom ? "." : "",
		    *op ? op : "(empty)");
		/* The nodes that use it, a few of them. */
		for (k = i; k < g->n_node; k++) {
			const Onnx__NodeProto	*q = g->node[k];

			if (strcmp(q->op_type ? q->op_type : "", op) != 0 ||
			    strcmp(q->domain ? q->domain : "", dom) != 0)
				continue;
			if (named == 3) {
				lappend(L, &len, ", ...");
				break;
			}
			if (q->name != NULL && *q->name != '\0')
				lappend(L, &len, "%snode '%s'", named++ == 0 ?
				    " (" : ", ", q->name);
			else
				lappend(L, &len, "%snode #%zu", named++ == 0 ?
				    " (" : ", ", k);
		}
		if (named > 0)
			lappend(L, &len, ")");
	}
	for (size_t i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto	*p = g->node[i];
		const struct onnx_op	*op = m->nodes[i].op;
		char			 label[160];

		if (op == NULL)
			continue;
		for (size_t a = 0; a < p->n_attribute; a++) {
			const char	*an = p->attribute[a]->name;

			if (an != NULL && attr_known(op->known, an))
				continue;
			onnx_node_label(label, sizeof(label), &m->nodes[i]);
			lappend(L, &len, "%s%s: '%s'", n_bad++ > 0 ? ", " :
			    len > 0 ? "; unsupported attributes: " :
			    "unsupported attributes: ", label, an ? an : "");
		}
	}
	return n_uniq > 0 || n_bad > 0 ? -1 : 0;
}

static int
load_initializers(struct loader *L)
{
	Onnx__GraphProto	*g = L->m->proto->graph;
	char			 label[200];

	for (size_t i = 0; i < g->n_initializer; i++) {
		Onnx__TensorProto	*t = g->initializer[i];
		struct onnx_value	*v;
		int			 id;

		if (t->name == NULL || *t->name == '\0')
			return lerr(L, "initializer #%zu has no name", i);
		if ((id = value_new(L, t->name)) == -1)
			return lerr(L, "initializer '%s' is defined twice",
			    t->name);
		v = &L->m->vals[id];
		v->kind = ONNX_V_CONST;
		v->known = true;
		snprintf(label, sizeof(label), "initializer '%s'", t->name);
		if (onnx_tensor_load(v, t, label, L->err, L->errlen) == -1)
			return -1;
	}
	return 0;
}

static int
load_inputs(struct loader *L)
{
	struct onnx_model	*m = L->m;
	Onnx__GraphProto	*g = m->proto->graph;

	/* At most IPC_MAX_TENSORS of them are real inputs. */
	m->inputs = xcalloc(IPC_MAX_TENSORS, sizeof(*m->inputs));
	m->syms = xcalloc(IPC_MAX_TENSORS * TENSOR_MAX_DIMS,
	    sizeof(*m->syms));
	for (size_t i = 0; i < g->n_input; i++) {
		const Onnx__ValueInfoProto	*vi = g->input[i];
		const char			*name = vi->name;
		struct onnx_value		*v;
		int				 id;

		if (name == NULL || *name == '\0')
			return lerr(L, "graph input #%zu has no name", i);
		/* Before IR 4 initializers were listed as inputs too; either
		 * way an initializer makes it a constant. */
		if ((id = names_find(L, name)) != -1 &&
		    m->vals[id].kind == ONNX_V_CONST)
			continue;
		if (id != -1)
			return lerr(L, "graph input '%s' is listed twice",
			    name);
		if (strlen(name) >= IPC_NAME_MAX)
			return lerr(L, "graph input name '%.40s...' is longer "
			    "than %d bytes", name, IPC_NAME_MAX - 1);
		if (m->n_inputs >= IPC_MAX_TENSORS)
			return lerr(L, "graph has more than %d inputs",
			    IPC_MAX_TENSORS);
		id = value_new(L, name);
		v = &m->vals[id];
		v->kind = ONNX_V_INPUT;
		if (load_input_shape(L, v, vi) == -1)
			return -1;
		m->inputs[m->n_inputs++] = id;
	}
	return 0;
}

static int
load_input_shape(struct loader *L, struct onnx_value *v,
    const Onnx__ValueInfoProto *vi)
{
	struct onnx_model		*m = L->m;
	const Onnx__TypeProto__Tensor	*tt = NULL;
	const Onnx__TensorShapeProto	*sh;
	uint64_t			 known = 1;
	bool				 empty = false;

	if (vi->type != NULL &&
	    vi->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
		tt = vi->type->tensor_type;
	if (tt == NULL)
		return lerr(L, "graph input '%s' is not a tensor (sequences, "
		    "maps and optionals are not supported)", v->name);
	/* FP16 data is widened to FP32 as it is copied in. */
	v->wire = onnx_dtype(tt->elem_type);
	v->dtype = v->wire == DT_FP16 ? DT_FP32 : v->wire;
	if (((1u << v->dtype) & ONNX_T_ANY) == 0)
		return lerr(L, "graph input '%s' has data type %s, which is "
		    "not supported (only FLOAT, FLOAT16, INT64, INT32 and "
		    "BOOL)", v->name, onnx_dtype_name(tt->elem_type));
	if ((sh = tt->shape) == NULL)
		return lerr(L, "graph input '%s' has no shape", v->name);
	if (sh->n_dim > TENSOR_MAX_DIMS)
		return lerr(L, "graph input '%s' has rank %zu, above %d",
		    v->name, sh->n_dim, TENSOR_MAX_DIMS);
	v->ndim = (int)sh->n_dim;
	for (int i = 0; i < v->ndim; i++) {
		const Onnx__TensorShapeProto__Dimension	*d = sh->dim[i];

		v->dims[i] = -1;
		if (d->value_case == DIM_VALUE) {
			/* 0 is an empty tensor; known bounds the others. */
			if (d->dim_value == 0) {
				v->dims[i] = 0;
				empty = true;
				continue;
			}
			if (d->dim_value < 0 ||
			    d->dim_value > ONNX_MAX_ELEMS ||
			    known > (uint64_t)(ONNX_MAX_ELEMS / d->dim_value))
				return lerr(L, "graph input '%s': dimension %d "
				    "is %lld", v->name, i,
				    (long long)d->dim_value);
			v->dims[i] = d->dim_value;
			known *= (uint64_t)d->dim_value;
		} else if (d->value_case == DIM_PARAM &&
		    d->dim_param != NULL && *d->dim_param != '\0') {
			size_t	s;

			/* Dims that share a dim_param must agree. */
			for (s = 0; s < m->n_syms; s++)
				if (strcmp(m->syms[s], d->dim_param) == 0)
					break;
			if (s == m->n_syms)
				m->syms[m->n_syms++] = d->dim_param;
			v->sym[i] = (int)s + 1;
		}
	}
	memcpy(v->shape, v->dims, sizeof(v->shape));
	/* A small fixed-size integer input may be a shape, axes or
	 * starts: its values are read while planning, and a request with
	 * other values is planned anew. */
	if (empty)
		known = 0;
	if ((v->dtype == DT_INT64 || v->dtype == DT_INT32) &&
	    known <= TENSOR_MAX_DIMS) {
		bool	fixed = true;

		for (int i = 0; i < v->ndim; i++)
			fixed = fixed && v->dims[i] >= 0;
		if (fixed) {
			v->kind = ONNX_V_PLAN;
			v->count = v->size = (size_t)known;
			v->own = xcalloc(known ? known : 1,
			    dtype_size(v->dtype));
			v->data = v->own;
		}
	}
	return 0;
}

/* Declares every node's outputs up front, so that a reference to a value
 * from a later node can be told from one to nothing at all. */
static int
load_node_outputs(struct loader *L)
{
	struct onnx_model	*m = L->m;
	Onnx__GraphProto	*g = m->proto->graph;
	int			*ids = m->ids;

	for (size_t i = 0; i < m->n_nodes; i++) {
		const Onnx__NodeProto	*p = g->node[i];
		struct onnx_node	*n = &m->nodes[i];
		const struct onnx_op	*op = n->op;

		if ((int)p->n_output < op->min_out ||
		    p->n_output > (size_t)op->max_out) {
			if (op->min_out == op->max_out)
				onnx_node_err(L->err, L->errlen, n, "has %zu "
				    "outputs, expected %d", p->n_output,
				    op->min_out);
			else
				onnx_node_err(L->err, L->errlen, n, "has %zu "
				    "outputs, expected %d to %d", p->n_output,
				    op->min_out, op->max_out);
			return -1;
		}
		n->in = ids;
		ids += p->n_input;
		n->out = ids;
		ids += p->n_output;
		n->n_out = (int)p->n_output;
		for (int j = 0; j < n->n_out; j++) {
			const char		*name = p->output[j];
			struct onnx_value	*v;

			/* An optional output left out (every output of
			 * RNN, GRU and LSTM is optional). */
			if (*name == '\0' && (j > 0 || op->min_out == 0)) {
				n->out[j] = -1;
				continue;
			}
			if (*name == '\0') {
				onnx_node_err(L->err, L->errlen, n, "output "
				    "has no name");
				return -1;
			}
			if ((n->out[j] = value_new(L, name)) == -1) {
				onnx_node_err(L->err, L->errlen, n, "output "
				    "'%s' is already defined", name);
				return -1;
			}
			v = &m->vals[n->out[j]];
			v->kind = ONNX_V_ACT;
			v->dtype = DT_FP32;
			v->def = v->last = (int)i;
		}
	}
	return 0;
}

static int
load_nodes(struct loader *L)
{
	for (size_t i = 0; i < L->m->n_nodes; i++)
		if (load_node(L, &L->m->nodes[i],
		    L->m->proto->graph->node[i]) == -1)
			return -1;
	return 0;
}

/* Gives each output of n its own buffer (folded or plan-time values). */
static void
node_own(struct onnx_model *m, struct onnx_node *n, enum onnx_vkind kind)
{
	for (int j = 0; j < n->n_out; j++) {
		struct onnx_value	*y;

		if (n->out[j] < 0)
			continue;
		y = &m->vals[n->out[j]];
		y->own = xmalloc(y->count ? y->count * dtype_size(y->dtype) :
		    1);
		y->data = y->own;
		y->kind = kind;
		/* Plan-time values keep their capacity in size. */
		y->size = y->count;
	}
}

/* Resolves a node's inputs, reads its attributes, infers its output
 * shapes and decides when it runs: now, when every input is constant;
 * at planning, when its inputs are constant or plan-time and its outputs
 * small (shape arithmetic); otherwise per request. */
static int
load_node(struct loader *L, struct onnx_node *n, Onnx__NodeProto *p)
{
	struct onnx_model	*m = L->m;
	const struct onnx_op	*op = n->op;
	bool			 fold = true, plan = true;
	bool			 shape_only = op->flags & ONNX_OP_SHAPE_ONLY;
	uint64_t		 bytes = 0;

	if ((int)p->n_input < op->min_in || p->n_input > (size_t)op->max_in) {
		if (op->min_in == op->max_in)
			onnx_node_err(L->err, L->errlen, n, "has %zu inputs, "
			    "expected %d", p->n_input, op->min_in);
		else
			onnx_node_err(L->err, L->errlen, n, "has %zu inputs, "
			    "expected %d to %d", p->n_input, op->min_in,
			    op->max_in);
		return -1;
	}
	n->n_in = (int)p->n_input;
	for (int j = 0; j < n->n_in; j++) {
		const char		*name = p->input[j];
		struct onnx_value	*v;
		int			 id;

		n->in[j] = -1;
		if (*name == '\0' && j >= op->min_in)
			continue;	/* optional input left out */
		if (*name == '\0') {
			onnx_node_err(L->err, L->errlen, n, "input %d is "
			    "missing", j);
			return -1;
		}
		if ((id = names_find(L, name)) == -1) {
			onnx_node_err(L->err, L->errlen, n, "input '%s' is not "
			    "produced by any node", name);
			return -1;
		}
		v = &m->vals[id];
		if (v->def >= n->idx) {
			char	later[160];

			onnx_node_label(later, sizeof(later),
			    &m->nodes[v->def]);
			onnx_node_err(L->err, L->errlen, n, "input '%s' comes "
			    "from %s, which is later in the graph (nodes must "
			    "be in topological order)", name, later);
			return -1;
		}
		if (v->kind != ONNX_V_CONST)
			fold = false;
		if (v->kind != ONNX_V_CONST && v->kind != ONNX_V_PLAN)
			plan = false;
		if (v->last < n->idx)
			v->last = n->idx;
		n->in[j] = id;
	}
	if (op->attrs != NULL && op->attrs(m, n, p, L->err, L->errlen) == -1)
		return -1;
	if (op->infer == NULL) {
		/* Constant: attrs() has filled the value. */
		ONNX_OUT(m, n)->kind = ONNX_V_CONST;
		ONNX_OUT(m, n)->known = true;
		memcpy(ONNX_OUT(m, n)->shape, ONNX_OUT(m, n)->dims,
		    sizeof(ONNX_OUT(m, n)->shape));
		n->when = ONNX_AT_LOAD;
		return 0;
	}
	if (op->flags & ONNX_OP_SCRATCH) {
		struct onnx_value	*s;

		n->scratch = (int)m->n_vals++;
		s = &m->vals[n->scratch];
		s->name = "";
		s->kind = ONNX_V_ACT;
		s->dtype = DT_FP32;
		s->def = s->last = n->idx;
	}
	if (op->infer(m, n, L->err, L->errlen) == -1)
		return -1;
	for (int j = -1; j < n->n_out; j++) {
		int			 id = j < 0 ? n->scratch : n->out[j];
		struct onnx_value	*y;

		if (id < 0)
			continue;
		y = &m->vals[id];
		if (onnx_shape_check(y, n, L->err, L->errlen) != ONNX_OK)
			return -1;
		memcpy(y->dims, y->shape, sizeof(y->dims));
		for (int d = 0; d < y->ndim; d++)
			if (y->dims[d] == -1)
				fold = plan = false;
		if (j >= 0) {
			bytes += y->count * dtype_size(y->dtype);
			if (y->count > ONNX_PLAN_MAX)
				plan = false;
		}
	}
	/* An op that reads only shapes runs whenever they are known. */
	if (shape_only) {
		const struct onnx_value	*x = ONNX_IN(m, n, 0);

		fold = plan = true;
		for (int d = 0; d < x->ndim; d++)
			if (x->shape[d] == -1)
				fold = false;
		for (int j = 0; j < n->n_out; j++)
			if (n->out[j] >= 0 &&
			    m->vals[n->out[j]].count > ONNX_PLAN_MAX)
				fold = plan = false;
	}
	if (fold && bytes <= ONNX_FOLD_MAX) {
		void	*scratch = NULL;
		int	 r;

		if ((r = onnx_empty_check(m, n, L->err, L->errlen)) == -1)
			return -1;
		node_own(m, n, ONNX_V_CONST);
		if (n->scratch >= 0) {
			struct onnx_value	*s = &m->vals[n->scratch];

			s->data = scratch = xmalloc(s->count ? s->count *
			    sizeof(float) : 1);
		}
		if (r == 0)
			op->run(m, n);
		free(scratch);
		if (n->scratch >= 0)
			m->vals[n->scratch].data = NULL;
		for (int j = 0; j < n->n_out; j++)
			if (n->out[j] >= 0)
				m->vals[n->out[j]].known = true;
		n->when = ONNX_AT_LOAD;
		return 0;
	}
	if (plan && n->scratch < 0) {
		node_own(m, n, ONNX_V_PLAN);
		n->when = ONNX_AT_PLAN;
	}
	return 0;
}

static int
load_outputs(struct loader *L)
{
	struct onnx_model	*m = L->m;
	Onnx__GraphProto	*g = m->proto->graph;
	char			 want[128], have[128];

	if (g->n_output == 0)
		return lerr(L, "graph has no outputs");
	if (g->n_output > IPC_MAX_TENSORS)
		return lerr(L, "graph has more than %d outputs",
		    IPC_MAX_TENSORS);
	m->outputs = xcalloc(g->n_output, sizeof(*m->outputs));
	for (size_t i = 0; i < g->n_output; i++) {
		const Onnx__ValueInfoProto	*vi = g->output[i];
		const Onnx__TypeProto__Tensor	*tt = NULL;
		const char			*name;
		struct onnx_value		*v;
		int				 id;

		name = vi->name != NULL ? vi->name : "";
		if ((id = names_find(L, name)) == -1)
			return lerr(L, "graph output '%s' is not produced by "
			    "any node", name);
		if (strlen(name) >= IPC_NAME_MAX)
			return lerr(L, "graph output name '%.40s...' is longer "
			    "than %d bytes", name, IPC_NAME_MAX - 1);
		v = &m->vals[id];
		v->last = (int)m->n_nodes;
		m->outputs[m->n_outputs++] = id;
		if (vi->type != NULL && vi->type->value_case ==
		    ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
			tt = vi->type->tensor_type;
		if (tt == NULL)
			continue;
		if (tt->has_elem_type && onnx_dtype(tt->elem_type) == DT_FP16)
			return lerr(L, "graph output '%s' has data type FLOAT16, "
			    "which is not supported as an output", name);
		if (tt->has_elem_type && onnx_dtype(tt->elem_type) != v->dtype)
			return lerr(L, "graph output '%s' is declared %s but "
			    "computed as %s", name,
			    onnx_dtype_name(tt->elem_type),
			    dtype_kserve_name(v->dtype));
		if (tt->shape == NULL)
			continue;
		onnx_fmt_shape(have, sizeof(have), v->dims, v->ndim);
		if (tt->shape->n_dim != (size_t)v->ndim)
			return lerr(L, "graph output '%s' is declared with "
			    "rank %zu but computed as %s", name,
			    tt->shape->n_dim, have);
		for (int d = 0; d < v->ndim; d++) {
			const Onnx__TensorShapeProto__Dimension *sd =
			    tt->shape->dim[d];

			if (sd->value_case != DIM_VALUE || v->dims[d] == -1 ||
			    sd->dim_value == v->dims[d])
				continue;
			snprintf(want, sizeof(want), "%lld",
			    (long long)sd->dim_value);
			return lerr(L, "graph output '%s': dimension %d is "
			    "declared %s but computed as %s", name, d, want,
			    have);
		}
	}
	return 0;
}

static void
load_finish(struct onnx_model *m)
{
	onnx_pack_weights(m);
	for (size_t i = 0; i < m->n_vals; i++)
		/* Weights in the file's mapping are shared, not ours. */
		if (m->vals[i].kind == ONNX_V_CONST &&
		    !weights_borrowed(&m->weights, m->vals[i].data))
			m->const_bytes += m->vals[i].count *
			    dtype_size(m->vals[i].dtype);
	m->live = xcalloc(m->n_vals, sizeof(*m->live));
	m->symval = xcalloc(m->n_syms + 1, sizeof(*m->symval));
	m->symsrc = xcalloc(m->n_syms + 1, sizeof(*m->symsrc));
	m->bound = xcalloc(m->n_inputs, sizeof(*m->bound));
}

/* --- entry points --- */

struct onnx_model *
onnx_load(const void *buf, size_t len, char *err, size_t errlen)
{
	const struct onnx_source	src = { .buf = buf, .len = len };

	return onnx_load_source(&src, err, errlen);
}

struct onnx_model *
onnx_load_source(const struct onnx_source *src, char *err, size_t errlen)
{
	const void		*buf = src->buf;
	size_t			 len = src->len;
	struct loader		 L = { .err = err, .errlen = errlen };
	struct onnx_model	*m;
	Onnx__GraphProto	*g;
	size_t			 nv, nio;

	L.m = m = xcalloc(1, sizeof(*m));
	arena_init(&m->arena);
	if (len > ONNX_MAX_FILE) {
		lerr(&L, "model is too large (%zu bytes, limit %llu)", len,
		    (unsigned long long)ONNX_MAX_FILE);
		goto fail;
	}
	if (pb_check(buf, len, &onnx__model_proto__descriptor, 0) == -1) {
		lerr(&L, "not a valid ONNX model: protobuf parse failed");
		goto fail;
	}
	if ((m->proto = weights_unpack(&m->weights, src, err, errlen)) ==
	    NULL)
		goto fail;
	if ((g = m->proto->graph) == NULL) {
		lerr(&L, "not a valid ONNX model: no graph");
		goto fail;
	}
	if (load_opset(&L) == -1 || load_ops(&L) == -1 ||
	    load_old_opset(&L) == -1)
		goto fail;
	/* Every value is an initializer, an input, a node's output or its
	 * scratch buffer. */
	nv = g->n_initializer + g->n_input + g->n_node;
	nio = 0;
	for (size_t i = 0; i < g->n_node; i++) {
		nv += g->node[i]->n_output;
		nio += g->node[i]->n_input + g->node[i]->n_output;
	}
	m->vals = xcalloc(nv, sizeof(*m->vals));
	m->ids = xcalloc(nio ? nio : 1, sizeof(*m->ids));
	for (L.hcap = 16; L.hcap < 2 * nv; L.hcap *= 2)
		;
	L.htab = xmalloc(L.hcap * sizeof(*L.htab));
	memset(L.htab, 0xff, L.hcap * sizeof(*L.htab));
	if (load_initializers(&L) == -1 || load_inputs(&L) == -1 ||
	    load_node_outputs(&L) == -1 || load_nodes(&L) == -1 ||
	    load_outputs(&L) == -1)
		goto fail;
	load_finish(m);
	free(L.htab);
	return m;
 fail:
	onnx_err_clean(err);
	free(L.htab);
	onnx_free(m);
	return NULL;
}

void
onnx_free(struct onnx_model *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_vals; i++)
		free(m->vals[i].own);
	for (size_t i = 0; i < m->n_nodes; i++)
		free(m->nodes[i].pack);
	free(m->vals);
	free(m->nodes);
	free(m->ids);
	free(m->inputs);
	free(m->outputs);
	free(m->syms);
	free(m->live);
	free(m->symval);
	free(m->symsrc);
	free(m->bound);
	arena_release(&m->arena);
	weights_release(&m->weights, m->proto);
	if (m->proto != NULL)
		onnx__model_proto__free_unpacked(m->proto, NULL);
	free(m);
}
