/* gateway/tensorjson.c - KServe v2 JSON tensors <-> IPC tensor lists.
 *
 * An inference request is checked completely here, against the metadata
 * the runtime reported in HELLO, before it is queued: a wrong input name,
 * datatype, rank, fixed dimension or element count is a 400 that says
 * which input and what was expected.  The runtime checks again (it trusts
 * nobody), but the tenant should never need its answer to find a typo. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "gateway/tensorjson.h"

/* --- JSON -> tensors --- */

struct fill {
	enum dtype	 dt;
	uint8_t		*out;		/* next element */
	uint64_t	 left;		/* elements still expected */
	char		*err;
	size_t		 errsz;
	const char	*name;
};

static int
fill_leaf(struct fill *f, json_t *v)
{
	size_t	esz = dtype_size(f->dt);

	if (f->left == 0) {
		snprintf(f->err, f->errsz, "input '%s': data has more "
		    "elements than its shape", f->name);
		return -1;
	}
	switch (f->dt) {
	case DT_FP32: {
		float	x;

		if (!json_is_number(v))
			goto type;
		x = (float)json_number_value(v);
		memcpy(f->out, &x, 4);
		break;
	}
	case DT_FP64: {
		double	x;

		if (!json_is_number(v))
			goto type;
		x = json_number_value(v);
		memcpy(f->out, &x, 8);
		break;
	}
	case DT_BOOL:
		if (!json_is_boolean(v))
			goto type;
		*f->out = json_is_true(v) ? 1 : 0;
		break;
	case DT_INT8: case DT_INT16: case DT_INT32: case DT_INT64:
	case DT_UINT8: case DT_UINT16: case DT_UINT32: case DT_UINT64: {
		json_int_t	x;
		int64_t		lo, hi;
		bool		is_signed = f->dt <= DT_INT64;

		if (!json_is_integer(v))
			goto type;
		x = json_integer_value(v);
		hi = esz == 8 ? INT64_MAX : is_signed ?
		    (int64_t)((1ULL << (8 * esz - 1)) - 1) :
		    (int64_t)((1ULL << (8 * esz)) - 1);
		lo = is_signed ? (esz == 8 ? INT64_MIN : -hi - 1) : 0;
		if (x < lo || x > hi) {
			snprintf(f->err, f->errsz, "input '%s': value %lld "
			    "out of range for %s", f->name, (long long)x,
			    dtype_kserve_name(f->dt));
			return -1;
		}
		/* Little-endian: the low esz bytes of the 64-bit value. */
		{
			uint64_t	u = (uint64_t)x;

			for (size_t i = 0; i < esz; i++)
				f->out[i] = (uint8_t)(u >> (8 * i));
		}
		break;
	}
	default:
		snprintf(f->err, f->errsz, "input '%s': datatype %s is not "
		    "supported in JSON", f->name, dtype_kserve_name(f->dt));
		return -1;
	}
	f->out += esz;
	f->left--;
	return 0;
 type:
	snprintf(f->err, f->errsz, "input '%s': data must hold %s values",
	    f->name, f->dt == DT_BOOL ? "boolean" :
	    (f->dt == DT_FP32 || f->dt == DT_FP64) ? "numeric" : "integer");
	return -1;
}

/* Walks flat or nested data arrays, depth-bounded. */
static int
fill_walk(struct fill *f, json_t *v, int depth)
{
	size_t	 i;
	json_t	*e;

	if (!json_is_array(v))
		return fill_leaf(f, v);
	if (depth > TENSOR_MAX_DIMS) {
		snprintf(f->err, f->errsz, "input '%s': data is nested deeper "
		    "than %d levels", f->name, TENSOR_MAX_DIMS);
		return -1;
	}
	json_array_foreach(v, i, e)
		if (fill_walk(f, e, depth + 1) == -1)
			return -1;
	return 0;
}

static void
shape_str(const int64_t *dims, int ndim, char *out, size_t outsz)
{
	size_t	n = 0;

	n += (size_t)snprintf(out, outsz, "[");
	for (int i = 0; i < ndim && n < outsz; i++)
		n += (size_t)snprintf(out + n, outsz - n, "%s%lld",
		    i ? "," : "", (long long)dims[i]);
	if (n < outsz)
		snprintf(out + n, outsz - n, "]");
}

static const struct ipc_tensor_desc *
meta_find(const struct ipc_tensor_desc *d, uint32_t n, const char *name)
{
	for (uint32_t i = 0; i < n; i++)
		if (strcmp(d[i].name, name) == 0)
			return &d[i];
	return NULL;
}

int
tensorjson_encode_request(const struct ipc_meta *meta, json_t *req,
    struct wbuf *out, char *err, size_t errsz)
{
	json_t		*inputs = json_object_get(req, "inputs");
	json_t		*outputs = json_object_get(req, "outputs");
	json_t		*in, *o;
	bool		 seen[IPC_MAX_TENSORS] = { false };
	uint64_t	 total = 0;
	size_t		 i;
	char		 want[128], got[128];

	if (!json_is_array(inputs) || json_array_size(inputs) == 0) {
		snprintf(err, errsz, "'inputs' must be a non-empty array");
		return -1;
	}
	if (json_array_size(inputs) > meta->n_inputs) {
		snprintf(err, errsz, "the model takes %u input(s), the request "
		    "has %zu", meta->n_inputs, json_array_size(inputs));
		return -1;
	}
	wbuf_u32(out, (uint32_t)json_array_size(inputs));
	json_array_foreach(inputs, i, in) {
		const struct ipc_tensor_desc	*d;
		struct ipc_tensor_desc		 td;
		const char			*name, *dtname;
		json_t				*shape, *data, *x;
		struct fill			 f;
		uint64_t			 count;
		size_t				 k;

		if (!json_is_object(in) ||
		    (name = json_string_value(json_object_get(in, "name")))
		    == NULL) {
			snprintf(err, errsz, "inputs[%zu]: 'name' must be a "
			    "string", i);
			return -1;
		}
		if ((d = meta_find(meta->inputs, meta->n_inputs, name))
		    == NULL) {
			snprintf(err, errsz, "unknown input '%.64s'; the model's "
			    "inputs are: %s%s", name, meta->inputs[0].name,
			    meta->n_inputs > 1 ? ", ..." : "");
			return -1;
		}
		if (seen[d - meta->inputs]) {
			snprintf(err, errsz, "input '%s' appears twice", name);
			return -1;
		}
		seen[d - meta->inputs] = true;
		dtname = json_string_value(json_object_get(in, "datatype"));
		if (dtname == NULL || dtype_from_kserve(dtname) != d->dtype) {
			snprintf(err, errsz, "input '%s': expected datatype %s, "
			    "got %.16s", name, dtype_kserve_name(d->dtype),
			    dtname ? dtname : "none");
			return -1;
		}
		shape = json_object_get(in, "shape");
		shape_str(d->dims, d->ndim, want, sizeof(want));
		if (!json_is_array(shape) ||
		    json_array_size(shape) != (size_t)d->ndim) {
			snprintf(err, errsz, "input '%s': expected shape %s "
			    "(rank %d)", name, want, d->ndim);
			return -1;
		}
		memset(&td, 0, sizeof(td));
		snprintf(td.name, sizeof(td.name), "%s", d->name);
		td.dtype = d->dtype;
		td.ndim = d->ndim;
		json_array_foreach(shape, k, x) {
			if (!json_is_integer(x) || json_integer_value(x) < 0) {
				snprintf(err, errsz, "input '%s': shape must "
				    "hold non-negative integers", name);
				return -1;
			}
			td.dims[k] = json_integer_value(x);
		}
		shape_str(td.dims, td.ndim, got, sizeof(got));
		for (k = 0; k < (size_t)d->ndim; k++) {
			if (d->dims[k] != -1 && d->dims[k] != td.dims[k]) {
				snprintf(err, errsz, "input '%s': expected "
				    "shape %s, got %s", name, want, got);
				return -1;
			}
		}
		if (tensor_count(td.dims, td.ndim, dtype_size(td.dtype),
		    IPC_MAX_PAYLOAD, &count) == -1 ||
		    count > TENSORJSON_MAX_ELEMENTS - total) {
			snprintf(err, errsz, "input '%s': shape %s is too large",
			    name, got);
			return -1;
		}
		total += count;
		data = json_object_get(in, "data");
		if (!json_is_array(data)) {
			snprintf(err, errsz, "input '%s': 'data' must be an "
			    "array", name);
			return -1;
		}
		ipc_put_tensor_header(out, &td, count * dtype_size(td.dtype));
		f.dt = td.dtype;
		f.out = wbuf_reserve(out, (size_t)(count *
		    dtype_size(td.dtype)));
		f.left = count;
		f.err = err;
		f.errsz = errsz;
		f.name = d->name;
		if (fill_walk(&f, data, 0) == -1)
			return -1;
		if (f.left != 0) {
			snprintf(err, errsz, "input '%s': shape %s needs %llu "
			    "elements, data has %llu", name, got,
			    (unsigned long long)count,
			    (unsigned long long)(count - f.left));
			return -1;
		}
	}
	for (uint32_t m = 0; m < meta->n_inputs; m++) {
		if (!seen[m]) {
			snprintf(err, errsz, "missing input '%s'",
			    meta->inputs[m].name);
			return -1;
		}
	}
	if (outputs != NULL && !json_is_array(outputs)) {
		snprintf(err, errsz, "'outputs' must be an array");
		return -1;
	}
	wbuf_u32(out, (uint32_t)json_array_size(outputs));
	json_array_foreach(outputs, i, o) {
		const char	*name = json_string_value(
		    json_object_get(o, "name"));

		if (name == NULL) {
			snprintf(err, errsz, "outputs[%zu]: 'name' must be a "
			    "string", i);
			return -1;
		}
		if (meta_find(meta->outputs, meta->n_outputs, name) == NULL) {
			snprintf(err, errsz, "unknown output '%.64s'", name);
			return -1;
		}
		if (i >= IPC_MAX_TENSORS) {
			snprintf(err, errsz, "too many outputs requested");
			return -1;
		}
		wbuf_str16(out, name);
	}
	return 0;
}

/* --- tensors -> JSON --- */

static json_t *
tensor_value(enum dtype dt, const uint8_t *p)
{
	switch (dt) {
	case DT_FP32: {
		float	x;

		memcpy(&x, p, 4);
		return isfinite(x) ? json_real(x) : json_null();
	}
	case DT_FP64: {
		double	x;

		memcpy(&x, p, 8);
		return isfinite(x) ? json_real(x) : json_null();
	}
	case DT_BOOL:
		return json_boolean(*p != 0);
	case DT_INT8:
		return json_integer((int8_t)p[0]);
	case DT_UINT8:
		return json_integer(p[0]);
	case DT_INT16:
		return json_integer((int16_t)le16_get(p));
	case DT_UINT16:
		return json_integer(le16_get(p));
	case DT_INT32:
		return json_integer((int32_t)le32_get(p));
	case DT_UINT32:
		return json_integer(le32_get(p));
	case DT_INT64:
	case DT_UINT64:
		return json_integer((json_int_t)le64_get(p));
	default:
		return json_null();
	}
}

json_t *
tensorjson_decode_outputs(const uint8_t *payload, size_t len, char *err,
    size_t errsz)
{
	struct ipc_tensor	*t;
	struct rbuf		 rb;
	json_t			*outs;
	int			 n;

	t = xcalloc(IPC_MAX_TENSORS, sizeof(*t));
	rbuf_init(&rb, payload, len);
	if ((n = ipc_get_tensors(&rb, t, IPC_MAX_TENSORS)) == -1 ||
	    rbuf_left(&rb) != 0) {
		snprintf(err, errsz, "the runtime returned a malformed result");
		free(t);
		return NULL;
	}
	outs = json_array();
	for (int i = 0; i < n; i++) {
		size_t	 esz = dtype_size(t[i].desc.dtype);
		json_t	*shape = json_array(), *data = json_array();

		for (int k = 0; k < t[i].desc.ndim; k++)
			json_array_append_new(shape,
			    json_integer(t[i].desc.dims[k]));
		for (uint64_t off = 0; esz && off < t[i].nbytes; off += esz)
			json_array_append_new(data,
			    tensor_value(t[i].desc.dtype, t[i].data + off));
		json_array_append_new(outs, json_pack("{s:s, s:s, s:o, s:o}",
		    "name", t[i].desc.name,
		    "datatype", dtype_kserve_name(t[i].desc.dtype),
		    "shape", shape, "data", data));
	}
	free(t);
	return outs;
}

static json_t *
desc_list_json(const struct ipc_tensor_desc *d, uint32_t n)
{
	json_t	*arr = json_array();

	for (uint32_t i = 0; i < n; i++) {
		json_t	*shape = json_array();

		for (int k = 0; k < d[i].ndim; k++)
			json_array_append_new(shape,
			    json_integer(d[i].dims[k]));
		json_array_append_new(arr, json_pack("{s:s, s:s, s:o}",
		    "name", d[i].name, "datatype",
		    dtype_kserve_name(d[i].dtype), "shape", shape));
	}
	return arr;
}

json_t *
tensorjson_meta_json(const struct ipc_meta *m)
{
	return json_pack("{s:o, s:o}",
	    "inputs", desc_list_json(m->inputs, m->n_inputs),
	    "outputs", desc_list_json(m->outputs, m->n_outputs));
}
