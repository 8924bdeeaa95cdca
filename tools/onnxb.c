/* tools/onnxb.c - see onnxb.h. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"
#include "common/xmalloc.h"
#include "tools/onnxb.h"

#define DIM_VALUE	ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
#define DIM_PARAM	ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM

/* Appends item to a protobuf-c repeated field (arr, n). */
#define APPEND(arr, n, item) do {					\
	(arr) = xreallocarray((arr), (n) + 1, sizeof(*(arr)));		\
	(arr)[(n)++] = (item);						\
} while (0)

static Onnx__ValueInfoProto	*value_info(const char *, int, int,
				    const int64_t *, const char *);
static Onnx__TensorProto	*tensor(const char *, int, int,
				    const int64_t *, size_t);
static Onnx__AttributeProto	*attr(Onnx__NodeProto *, const char *,
				    Onnx__AttributeProto__AttributeType);

Onnx__ModelProto *
onnxb_model(int64_t ir_version, int64_t opset, const char *graph_name)
{
	Onnx__ModelProto		*m = xmalloc(sizeof(*m));
	Onnx__OperatorSetIdProto	*o = xmalloc(sizeof(*o));

	onnx__model_proto__init(m);
	m->has_ir_version = 1;
	m->ir_version = ir_version;
	onnx__operator_set_id_proto__init(o);
	o->domain = xstrdup("");
	o->has_version = 1;
	o->version = opset;
	APPEND(m->opset_import, m->n_opset_import, o);
	m->graph = xmalloc(sizeof(*m->graph));
	onnx__graph_proto__init(m->graph);
	m->graph->name = xstrdup(graph_name);
	return m;
}

void
onnxb_free(Onnx__ModelProto *m)
{
	if (m != NULL)
		onnx__model_proto__free_unpacked(m, NULL);
}

Onnx__NodeProto *
onnxb_node(Onnx__ModelProto *m, const char *op_type, const char *name,
    const char *const *inputs, const char *output)
{
	Onnx__NodeProto	*n = xmalloc(sizeof(*n));

	onnx__node_proto__init(n);
	n->op_type = xstrdup(op_type);
	if (name != NULL)
		n->name = xstrdup(name);
	for (; inputs != NULL && *inputs != NULL; inputs++)
		APPEND(n->input, n->n_input, xstrdup(*inputs));
	APPEND(n->output, n->n_output, xstrdup(output));
	APPEND(m->graph->node, m->graph->n_node, n);
	return n;
}

static Onnx__AttributeProto *
attr(Onnx__NodeProto *n, const char *name,
    Onnx__AttributeProto__AttributeType type)
{
	Onnx__AttributeProto	*a = xmalloc(sizeof(*a));

	onnx__attribute_proto__init(a);
	a->name = xstrdup(name);
	a->has_type = 1;
	a->type = type;
	APPEND(n->attribute, n->n_attribute, a);
	return a;
}

void
onnxb_attr_int(Onnx__NodeProto *n, const char *name, int64_t v)
{
	Onnx__AttributeProto	*a;

	a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
	a->has_i = 1;
	a->i = v;
}

void
onnxb_attr_float(Onnx__NodeProto *n, const char *name, float v)
{
	Onnx__AttributeProto	*a;

	a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
	a->has_f = 1;
	a->f = v;
}

void
onnxb_attr_ints(Onnx__NodeProto *n, const char *name, size_t count,
    const int64_t *v)
{
	Onnx__AttributeProto	*a;

	a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
	a->ints = xreallocarray(NULL, count ? count : 1, sizeof(*a->ints));
	memcpy(a->ints, v, count * sizeof(*a->ints));
	a->n_ints = count;
}

void
onnxb_attr_str(Onnx__NodeProto *n, const char *name, const char *v)
{
	Onnx__AttributeProto	*a;

	a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
	a->has_s = 1;
	a->s.len = strlen(v);
	a->s.data = (uint8_t *)xstrdup(v);
}

void
onnxb_attr_value_i64(Onnx__NodeProto *n, size_t count, const int64_t *v)
{
	Onnx__AttributeProto	*a;
	int64_t			 dim = (int64_t)count;

	a = attr(n, "value", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
	a->t = tensor(NULL, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, &dim,
	    count * 8);
	for (size_t i = 0; i < count; i++)
		le64_put(a->t->raw_data.data + 8 * i, (uint64_t)v[i]);
}

static Onnx__ValueInfoProto *
value_info(const char *name, int elem_type, int ndim, const int64_t *dims,
    const char *sym)
{
	Onnx__ValueInfoProto	*vi = xmalloc(sizeof(*vi));
	Onnx__TypeProto		*t = xmalloc(sizeof(*t));
	Onnx__TypeProto__Tensor	*tt = xmalloc(sizeof(*tt));

	onnx__value_info_proto__init(vi);
	onnx__type_proto__init(t);
	onnx__type_proto__tensor__init(tt);
	vi->name = xstrdup(name);
	vi->type = t;
	t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	t->tensor_type = tt;
	tt->has_elem_type = 1;
	tt->elem_type = elem_type;
	if (ndim == ONNXB_NOSHAPE)
		return vi;
	tt->shape = xmalloc(sizeof(*tt->shape));
	onnx__tensor_shape_proto__init(tt->shape);
	for (int i = 0; i < ndim; i++) {
		Onnx__TensorShapeProto__Dimension	*d;

		d = xmalloc(sizeof(*d));
		onnx__tensor_shape_proto__dimension__init(d);
		if (dims[i] >= 0) {
			d->value_case = DIM_VALUE;
			d->dim_value = dims[i];
		} else if (dims[i] == ONNXB_DYN) {
			d->value_case = DIM_PARAM;
			d->dim_param = xstrdup(sym != NULL ? sym : "N");
		}
		APPEND(tt->shape->dim, tt->shape->n_dim, d);
	}
	return vi;
}

void
onnxb_input(Onnx__ModelProto *m, const char *name, int elem_type, int ndim,
    const int64_t *dims, const char *sym)
{
	APPEND(m->graph->input, m->graph->n_input,
	    value_info(name, elem_type, ndim, dims, sym));
}

void
onnxb_output(Onnx__ModelProto *m, const char *name, int elem_type, int ndim,
    const int64_t *dims, const char *sym)
{
	APPEND(m->graph->output, m->graph->n_output,
	    value_info(name, elem_type, ndim, dims, sym));
}

/* A tensor with nbytes of zeroed raw_data for the caller to fill. */
static Onnx__TensorProto *
tensor(const char *name, int data_type, int ndim, const int64_t *dims,
    size_t nbytes)
{
	Onnx__TensorProto	*t = xmalloc(sizeof(*t));

	onnx__tensor_proto__init(t);
	if (name != NULL)
		t->name = xstrdup(name);
	t->has_data_type = 1;
	t->data_type = data_type;
	t->n_dims = (size_t)ndim;
	t->dims = xcalloc((size_t)ndim, sizeof(*t->dims));
	if (ndim > 0)
		memcpy(t->dims, dims, (size_t)ndim * sizeof(*t->dims));
	t->has_raw_data = 1;
	t->raw_data.len = nbytes;
	t->raw_data.data = xcalloc(1, nbytes);
	return t;
}

static size_t
count_of(int ndim, const int64_t *dims)
{
	size_t	n = 1;

	for (int i = 0; i < ndim; i++)
		n *= (size_t)dims[i];
	return n;
}

Onnx__TensorProto *
onnxb_init_f32(Onnx__ModelProto *m, const char *name, int ndim,
    const int64_t *dims, const float *data)
{
	size_t			 n = count_of(ndim, dims);
	Onnx__TensorProto	*t;

	t = tensor(name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, ndim, dims,
	    n * 4);
	for (size_t i = 0; i < n; i++) {
		uint32_t	bits;

		memcpy(&bits, &data[i], 4);
		le32_put(t->raw_data.data + 4 * i, bits);
	}
	APPEND(m->graph->initializer, m->graph->n_initializer, t);
	return t;
}

Onnx__TensorProto *
onnxb_init_i64(Onnx__ModelProto *m, const char *name, int ndim,
    const int64_t *dims, const int64_t *data)
{
	size_t			 n = count_of(ndim, dims);
	Onnx__TensorProto	*t;

	t = tensor(name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, ndim, dims,
	    n * 8);
	for (size_t i = 0; i < n; i++)
		le64_put(t->raw_data.data + 8 * i, (uint64_t)data[i]);
	APPEND(m->graph->initializer, m->graph->n_initializer, t);
	return t;
}

uint8_t *
onnxb_pack(const Onnx__ModelProto *m, size_t *len)
{
	uint8_t	*buf;

	*len = onnx__model_proto__get_packed_size(m);
	buf = xmalloc(*len);
	onnx__model_proto__pack(m, buf);
	return buf;
}

int
onnxb_write(const Onnx__ModelProto *m, const char *path)
{
	FILE	*f;
	uint8_t	*buf;
	size_t	 len;
	int	 ret = -1;
	bool	 ok;

	buf = onnxb_pack(m, &len);
	if ((f = fopen(path, "wb")) == NULL)
		goto out;
	ok = fwrite(buf, 1, len, f) == len;
	if (fclose(f) == 0 && ok)
		ret = 0;
 out:
	free(buf);
	return ret;
}

/* --- aligning raw_data in the file --- */

static int
align_varint(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (*off >= len)
			return -1;
		*v |= (uint64_t)(p[*off] & 0x7f) << shift;
		if ((p[(*off)++] & 0x80) == 0)
			return 0;
	}
	return -1;
}

/* Offsets of the initializers' raw_data in a packed model, in order:
 * ModelProto.graph (7) -> GraphProto.initializer (5) -> raw_data (9).
 * Returns how many were found (at most max). */
static size_t
raw_offsets(const uint8_t *p, size_t len, int depth, size_t base,
    size_t *offs, size_t n, size_t max)
{
	static const unsigned	path[3] = { 7, 5, 9 };
	size_t			off = 0, body;
	uint64_t		key, v;

	while (off < len) {
		if (align_varint(p, len, &off, &key) == -1)
			break;
		switch (key & 7) {
		case 0:
			if (align_varint(p, len, &off, &v) == -1)
				return n;
			continue;
		case 1:
			off += 8;
			continue;
		case 5:
			off += 4;
			continue;
		case 2:
			break;
		default:
			return n;
		}
		if (align_varint(p, len, &off, &v) == -1 || v > len - off)
			return n;
		body = off;
		off += (size_t)v;
		if (key >> 3 != path[depth])
			continue;
		if (depth == 2) {
			if (n < max)
				offs[n++] = base + body;
		} else
			n = raw_offsets(p + body, (size_t)v, depth + 1,
			    base + body, offs, n, max);
	}
	return n;
}

int
onnxb_align(Onnx__ModelProto *m, size_t align)
{
	Onnx__GraphProto	 *g = m->graph;
	size_t			 *offs, *pad, n = g->n_initializer, len, found;
	uint8_t			 *buf;
	int			  ret = -1;

	if (n == 0 || align < 2 || align > 64)
		return n == 0 ? 0 : -1;
	offs = xcalloc(n, sizeof(*offs));
	pad = xcalloc(n, sizeof(*pad));
	/* Each fix may grow a length prefix and move what came before it:
	 * pack again until nothing moves. */
	for (size_t round = 0; round < 4 * n + 16; round++) {
		size_t	i, mis = 0;
		char	**holder;

		buf = onnxb_pack(m, &len);
		found = raw_offsets(buf, len, 0, 0, offs, 0, n);
		free(buf);
		for (i = 0; i < found; i++)
			if ((mis = offs[i] % align) != 0)
				break;
		if (i == found) {
			ret = 0;
			break;
		}
		/* What comes after the previous raw_data and before this
		 * one: the previous tensor's doc_string, or for the first
		 * the last node's. */
		if (i > 0)
			holder = &g->initializer[i - 1]->doc_string;
		else if (g->n_node > 0)
			holder = &g->node[g->n_node - 1]->doc_string;
		else
			break;
		pad[i] = (pad[i] + align - mis) % align;
		free(*holder);
		*holder = xmalloc(pad[i] + 1);
		memset(*holder, ' ', pad[i]);
		(*holder)[pad[i]] = '\0';
	}
	free(offs);
	free(pad);
	return ret;
}
