/* gateway/tensorjson.c - KServe v2 tensors (JSON and binary) <-> IPC
 * tensor lists.
 *
 * An inference request is checked completely here, against the metadata
 * the runtime reported in HELLO, before it is queued: a wrong input name,
 * datatype, rank, fixed dimension, element count, value range or binary
 * size is a 400 that says which input and what was expected.  The
 * runtime checks again (it trusts nobody), but the tenant should never
 * need its answer to find a typo.
 *
 * Sizes from the request are checked before anything is reserved for
 * them: a binary input's size against the bytes actually left in the
 * body, an element count against TENSORJSON_MAX_ELEMENTS and the IPC
 * frame limit. */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "gateway/tensorjson.h"

/* Digits accepted in Inference-Header-Content-Length: more cannot be a
 * length within a body we accepted. */
#define HDRLEN_DIGITS	19

struct fill {
	enum dtype	 dt;
	uint8_t		*out;		/* next element (fixed-size dtypes) */
	struct wbuf	*w;		/* BYTES elements are appended here */
	uint64_t	 left;		/* elements still expected */
	char		*err;
	size_t		 errsz;
	const char	*name;
};

static uint16_t	fp16_from_float(float);
static float	fp16_to_float(uint16_t);
static int	fill_leaf(struct fill *, json_t *);
static int	fill_walk(struct fill *, json_t *, int);
static int	bytes_check(const uint8_t *, uint64_t, uint64_t);
static void	shape_str(const int64_t *, int, char *, size_t);
static const struct ipc_tensor_desc *meta_find(
		    const struct ipc_tensor_desc *, uint32_t, const char *);
static int	encode_input(const struct ipc_meta *, json_t *, size_t,
		    bool *, uint64_t *, const uint8_t **, size_t *,
		    struct wbuf *, char *, size_t);
static int	encode_outputs(const struct ipc_meta *, json_t *,
		    struct wbuf *, struct tensorjson_outspec *, char *,
		    size_t);
static json_t	*tensor_value(enum dtype, const uint8_t *);
static json_t	*output_json(const struct ipc_tensor *, bool, char *,
		    size_t);
static int	decode_list(const uint8_t *, size_t, struct ipc_tensor *,
		    char *, size_t);

/* --- half precision --- */

/* IEEE 754 binary16 from binary32, rounding to nearest even. */
static uint16_t
fp16_from_float(float f)
{
	uint32_t	x, sign, man, h, rem, mid;
	int		e, shift;

	memcpy(&x, &f, 4);
	sign = (x >> 16) & 0x8000;
	man = x & 0x7fffff;
	if (((x >> 23) & 0xff) == 0xff)		/* inf, nan */
		return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
	e = (int)((x >> 23) & 0xff) - 127 + 15;
	if (e >= 0x1f)
		return (uint16_t)(sign | 0x7c00);
	if (e <= 0) {				/* subnormal or zero */
		if (e < -10)
			return (uint16_t)sign;
		man |= 0x800000;
		shift = 14 - e;
		h = man >> shift;
		rem = man & ((1U << shift) - 1);
		mid = 1U << (shift - 1);
		if (rem > mid || (rem == mid && (h & 1)))
			h++;
		return (uint16_t)(sign | h);
	}
	h = sign | ((uint32_t)e << 10) | (man >> 13);
	rem = man & 0x1fff;
	/* A carry out of the mantissa correctly bumps the exponent. */
	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++;
	return (uint16_t)h;
}

static float
fp16_to_float(uint16_t h)
{
	uint32_t	sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t	exp = (h >> 10) & 0x1f, man = h & 0x3ff, x;
	float		f;

	if (exp == 0) {
		f = ldexpf((float)man, -24);
		return sign ? -f : f;
	}
	if (exp == 0x1f)
		x = sign | 0x7f800000 | (man << 13);
	else
		x = sign | ((exp + 112) << 23) | (man << 13);
	memcpy(&f, &x, 4);
	return f;
}

/* --- JSON -> tensors --- */

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
	case DT_FP32: case DT_FP16: {
		double	d;
		float	x;

		if (!json_is_number(v))
			goto type;
		d = json_number_value(v);
		if (fabs(d) > (f->dt == DT_FP16 ? 65504.0 : (double)FLT_MAX))
			goto range;
		x = (float)d;
		if (f->dt == DT_FP16)
			le16_put(f->out, fp16_from_float(x));
		else
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
		uint64_t	u;
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
		u = (uint64_t)x;
		for (size_t i = 0; i < esz; i++)
			f->out[i] = (uint8_t)(u >> (8 * i));
		break;
	}
	case DT_BYTES: {
		size_t	n;

		if (!json_is_string(v))
			goto type;
		n = json_string_length(v);
		if (n > UINT32_MAX)
			goto range;
		wbuf_u32(f->w, (uint32_t)n);
		wbuf_put(f->w, json_string_value(v), n);
		break;
	}
	default:
		snprintf(f->err, f->errsz, "input '%s': datatype %s is not "
		    "supported", f->name, dtype_kserve_name(f->dt));
		return -1;
	}
	f->out += esz;
	f->left--;
	return 0;
 type:
	snprintf(f->err, f->errsz, "input '%s': data must hold %s values",
	    f->name, f->dt == DT_BOOL ? "boolean" : f->dt == DT_BYTES ?
	    "string" : (f->dt == DT_FP32 || f->dt == DT_FP64 ||
	    f->dt == DT_FP16) ? "numeric" : "integer");
	return -1;
 range:
	snprintf(f->err, f->errsz, "input '%s': value out of range for %s",
	    f->name, dtype_kserve_name(f->dt));
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

/* 0 if n bytes at p are exactly count length-prefixed BYTES elements. */
static int
bytes_check(const uint8_t *p, uint64_t n, uint64_t count)
{
	uint64_t	off = 0;
	uint32_t	l;

	for (uint64_t i = 0; i < count; i++) {
		if (n - off < 4)
			return -1;
		l = le32_get(p + off);
		off += 4;
		if (l > n - off)
			return -1;
		off += l;
	}
	return off == n ? 0 : -1;
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

json_t *
tensorjson_parse_body(const char *body, size_t len, const char *hdrlen,
    const uint8_t **bin, size_t *binlen, char *err, size_t errsz)
{
	json_error_t	 je;
	json_t		*j;
	size_t		 jlen = len, k;

	*bin = NULL;
	*binlen = 0;
	if (hdrlen != NULL) {
		jlen = 0;
		for (k = 0; hdrlen[k] != '\0'; k++) {
			if (hdrlen[k] < '0' || hdrlen[k] > '9' ||
			    k >= HDRLEN_DIGITS) {
				snprintf(err, errsz, "%s must be a decimal "
				    "byte count", TENSORJSON_HDR);
				return NULL;
			}
			jlen = jlen * 10 + (size_t)(hdrlen[k] - '0');
		}
		if (k == 0) {
			snprintf(err, errsz, "%s must be a decimal byte count",
			    TENSORJSON_HDR);
			return NULL;
		}
		if (jlen > len) {
			snprintf(err, errsz, "%s is %zu but the body has only "
			    "%zu bytes", TENSORJSON_HDR, jlen, len);
			return NULL;
		}
		*bin = (const uint8_t *)body + jlen;
		*binlen = len - jlen;
	}
	if (jlen == 0) {
		snprintf(err, errsz, "the request body is empty; expected a "
		    "JSON object");
		return NULL;
	}
	j = json_loadb(body, jlen, JSON_REJECT_DUPLICATES, &je);
	if (j == NULL) {
		snprintf(err, errsz, "the request %s is not valid JSON: %s at "
		    "line %d column %d", hdrlen ? "header" : "body", je.text,
		    je.line, je.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(err, errsz, "the request %s must be a JSON object",
		    hdrlen ? "header" : "body");
		return NULL;
	}
	return j;
}

/* Encodes input i of the request: checks it against the model, takes its
 * data from JSON or from the binary part at *bin (advanced past it).
 * seen[] marks the model's inputs already given; *total counts elements
 * and *bytes IPC bytes so far. */
static int
encode_input(const struct ipc_meta *meta, json_t *in, size_t i, bool *seen,
    uint64_t *total, const uint8_t **bin, size_t *binleft, struct wbuf *out,
    char *err, size_t errsz)
{
	const struct ipc_tensor_desc	*d;
	struct ipc_tensor_desc		 td;
	const char			*name, *dtname;
	json_t				*shape, *data, *x, *params, *bds;
	struct fill			 f;
	uint64_t			 count, nbytes;
	size_t				 k, esz;

	if (!json_is_object(in) ||
	    (name = json_string_value(json_object_get(in, "name"))) == NULL) {
		snprintf(err, errsz, "inputs[%zu]: 'name' must be a string", i);
		return -1;
	}
	if ((d = meta_find(meta->inputs, meta->n_inputs, name)) == NULL) {
		snprintf(err, errsz, "unknown input '%.64s'; the model's inputs "
		    "are: %s%s", name, meta->inputs[0].name,
		    meta->n_inputs > 1 ? ", ..." : "");
		return -1;
	}
	if (seen[d - meta->inputs]) {
		snprintf(err, errsz, "input '%s' appears twice", d->name);
		return -1;
	}
	seen[d - meta->inputs] = true;
	dtname = json_string_value(json_object_get(in, "datatype"));
	if (dtname == NULL || dtype_from_kserve(dtname) != d->dtype) {
		snprintf(err, errsz, "input '%s': expected datatype %s, got "
		    "%.16s", d->name, dtype_kserve_name(d->dtype),
		    dtname ? dtname : "none");
		return -1;
	}
	memset(&td, 0, sizeof(td));
	snprintf(td.name, sizeof(td.name), "%s", d->name);
	td.dtype = d->dtype;
	td.ndim = d->ndim;
	esz = dtype_size(td.dtype);
	{
		char	want[128], got[128];

		shape = json_object_get(in, "shape");
		shape_str(d->dims, d->ndim, want, sizeof(want));
		if (!json_is_array(shape) ||
		    json_array_size(shape) != (size_t)d->ndim) {
			snprintf(err, errsz, "input '%s': expected shape %s "
			    "(rank %d)", d->name, want, d->ndim);
			return -1;
		}
		json_array_foreach(shape, k, x) {
			if (!json_is_integer(x) || json_integer_value(x) < 0) {
				snprintf(err, errsz, "input '%s': shape must "
				    "hold non-negative integers", d->name);
				return -1;
			}
			td.dims[k] = json_integer_value(x);
		}
		shape_str(td.dims, td.ndim, got, sizeof(got));
		for (k = 0; k < (size_t)d->ndim; k++) {
			if (d->dims[k] != -1 && d->dims[k] != td.dims[k]) {
				snprintf(err, errsz, "input '%s': expected "
				    "shape %s, got %s", d->name, want, got);
				return -1;
			}
		}
		if (tensor_count(td.dims, td.ndim, esz, IPC_MAX_PAYLOAD,
		    &count) == -1 || count > TENSORJSON_MAX_ELEMENTS - *total ||
		    out->len > IPC_MAX_PAYLOAD ||
		    count * esz > IPC_MAX_PAYLOAD - out->len) {
			snprintf(err, errsz, "input '%s': shape %s is too "
			    "large", d->name, got);
			return -1;
		}
	}
	*total += count;
	params = json_object_get(in, "parameters");
	if (params != NULL && !json_is_object(params)) {
		snprintf(err, errsz, "input '%s': 'parameters' must be an "
		    "object", d->name);
		return -1;
	}
	if (json_object_get(params, "shared_memory_region") != NULL) {
		snprintf(err, errsz, "input '%s': shared memory is not "
		    "supported; send the data in JSON or binary", d->name);
		return -1;
	}
	bds = json_object_get(params, "binary_data_size");
	data = json_object_get(in, "data");
	if (bds != NULL) {
		json_int_t	 sz;
		const uint8_t	*p = *bin;

		if (data != NULL) {
			snprintf(err, errsz, "input '%s': has both 'data' and "
			    "binary_data_size", d->name);
			return -1;
		}
		if (!json_is_integer(bds) || (sz = json_integer_value(bds)) <
		    0) {
			snprintf(err, errsz, "input '%s': binary_data_size must "
			    "be a non-negative integer", d->name);
			return -1;
		}
		if ((uint64_t)sz > *binleft) {
			snprintf(err, errsz, "input '%s': binary_data_size %lld "
			    "exceeds the %zu bytes left after the JSON header",
			    d->name, (long long)sz, *binleft);
			return -1;
		}
		nbytes = (uint64_t)sz;
		if (nbytes > IPC_MAX_PAYLOAD - out->len) {
			snprintf(err, errsz, "input '%s': binary_data_size %llu "
			    "is too large", d->name, (unsigned long long)nbytes);
			return -1;
		}
		if (esz != 0 && nbytes != count * esz) {
			snprintf(err, errsz, "input '%s': binary_data_size is "
			    "%llu, shape and datatype %s need %llu bytes",
			    d->name, (unsigned long long)nbytes,
			    dtype_kserve_name(td.dtype),
			    (unsigned long long)(count * esz));
			return -1;
		}
		if (esz == 0 && bytes_check(p, nbytes, count) == -1) {
			snprintf(err, errsz, "input '%s': binary BYTES data is "
			    "not %llu length-prefixed elements in %llu bytes",
			    d->name, (unsigned long long)count,
			    (unsigned long long)nbytes);
			return -1;
		}
		if (td.dtype == DT_BOOL) {
			for (uint64_t b = 0; b < nbytes; b++) {
				if (p[b] > 1) {
					snprintf(err, errsz, "input '%s': "
					    "binary BOOL bytes must be 0 or 1",
					    d->name);
					return -1;
				}
			}
		}
		ipc_put_tensor(out, &td, p, nbytes);
		*bin += nbytes;
		*binleft -= (size_t)nbytes;
		return 0;
	}
	if (!json_is_array(data)) {
		snprintf(err, errsz, "input '%s': 'data' must be an array "
		    "(or parameters.binary_data_size given)", d->name);
		return -1;
	}
	/* BYTES: nbytes is known only once written; patched below. */
	ipc_put_tensor_header(out, &td, count * esz);
	memset(&f, 0, sizeof(f));
	f.dt = td.dtype;
	f.w = out;
	if (esz != 0)
		f.out = wbuf_reserve(out, (size_t)(count * esz));
	f.left = count;
	f.err = err;
	f.errsz = errsz;
	f.name = d->name;
	k = out->len;
	if (fill_walk(&f, data, 0) == -1)
		return -1;
	if (f.left != 0) {
		char	got[128];

		shape_str(td.dims, td.ndim, got, sizeof(got));
		snprintf(err, errsz, "input '%s': shape %s needs %llu elements, "
		    "data has %llu", d->name, got, (unsigned long long)count,
		    (unsigned long long)(count - f.left));
		return -1;
	}
	if (esz == 0)
		le64_put(out->data + k - 8, (uint64_t)(out->len - k));
	return 0;
}

/* The "outputs" array: names checked against the model, each at most
 * once, and how each wants its data. */
static int
encode_outputs(const struct ipc_meta *meta, json_t *outputs,
    struct wbuf *out, struct tensorjson_outspec *spec, char *err,
    size_t errsz)
{
	json_t	*o, *params, *b;
	size_t	 i;

	if (outputs != NULL && !json_is_array(outputs)) {
		snprintf(err, errsz, "'outputs' must be an array");
		return -1;
	}
	if (json_array_size(outputs) > meta->n_outputs ||
	    json_array_size(outputs) > IPC_MAX_TENSORS) {
		snprintf(err, errsz, "the model has %u output(s), the request "
		    "asks for %zu", meta->n_outputs, json_array_size(outputs));
		return -1;
	}
	wbuf_u32(out, (uint32_t)json_array_size(outputs));
	spec->n = (uint32_t)json_array_size(outputs);
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
		for (size_t j = 0; j < i; j++) {
			if (strcmp(name, json_string_value(json_object_get(
			    json_array_get(outputs, j), "name"))) == 0) {
				snprintf(err, errsz, "output '%.64s' is "
				    "requested twice", name);
				return -1;
			}
		}
		spec->binary[i] = -1;
		params = json_object_get(o, "parameters");
		if (params != NULL && !json_is_object(params)) {
			snprintf(err, errsz, "output '%.64s': 'parameters' must "
			    "be an object", name);
			return -1;
		}
		if (json_object_get(params, "classification") != NULL ||
		    json_object_get(params, "shared_memory_region") != NULL) {
			snprintf(err, errsz, "output '%.64s': classification "
			    "and shared memory are not supported", name);
			return -1;
		}
		if ((b = json_object_get(params, "binary_data")) != NULL) {
			if (!json_is_boolean(b)) {
				snprintf(err, errsz, "output '%.64s': "
				    "binary_data must be a boolean", name);
				return -1;
			}
			spec->binary[i] = json_is_true(b) ? 1 : 0;
		}
		wbuf_str16(out, name);
	}
	return 0;
}

int
tensorjson_encode_infer(const struct ipc_meta *meta, json_t *req,
    const uint8_t *bin, size_t binlen, struct wbuf *out,
    struct tensorjson_outspec *specp, char *err, size_t errsz)
{
	struct tensorjson_outspec	 spec0;
	struct tensorjson_outspec	*spec = specp ? specp : &spec0;
	json_t				*inputs = json_object_get(req, "inputs");
	json_t				*params, *b, *in;
	bool				 seen[IPC_MAX_TENSORS] = { false };
	uint64_t			 total = 0;
	size_t				 i;

	memset(spec, 0, sizeof(*spec));
	params = json_object_get(req, "parameters");
	if (params != NULL && !json_is_object(params)) {
		snprintf(err, errsz, "'parameters' must be an object");
		return -1;
	}
	if ((b = json_object_get(params, "binary_data_output")) != NULL) {
		if (!json_is_boolean(b)) {
			snprintf(err, errsz, "binary_data_output must be a "
			    "boolean");
			return -1;
		}
		spec->binary_all = json_is_true(b);
	}
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
	json_array_foreach(inputs, i, in)
		if (encode_input(meta, in, i, seen, &total, &bin, &binlen, out,
		    err, errsz) == -1)
			return -1;
	for (uint32_t m = 0; m < meta->n_inputs; m++) {
		if (!seen[m]) {
			snprintf(err, errsz, "missing input '%s'",
			    meta->inputs[m].name);
			return -1;
		}
	}
	if (binlen != 0) {
		snprintf(err, errsz, "the body has %zu bytes of binary data "
		    "beyond the inputs' binary_data_size", binlen);
		return -1;
	}
	return encode_outputs(meta, json_object_get(req, "outputs"), out,
	    spec, err, errsz);
}

int
tensorjson_encode_request(const struct ipc_meta *meta, json_t *req,
    struct wbuf *out, char *err, size_t errsz)
{
	return tensorjson_encode_infer(meta, req, NULL, 0, out, NULL, err,
	    errsz);
}

/* --- tensors -> JSON --- */

/* One element as JSON; NULL if JSON cannot hold it exactly. */
static json_t *
tensor_value(enum dtype dt, const uint8_t *p)
{
	switch (dt) {
	case DT_FP32: {
		float	x;

		memcpy(&x, p, 4);
		return isfinite(x) ? json_real(x) : json_null();
	}
	case DT_FP16: {
		float	x = fp16_to_float(le16_get(p));

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
		return json_integer((json_int_t)le64_get(p));
	case DT_UINT64:
		if (le64_get(p) > (uint64_t)INT64_MAX)
			return NULL;
		return json_integer((json_int_t)le64_get(p));
	default:
		return json_null();
	}
}

/* An output tensor as its response object: data in JSON, or only
 * parameters.binary_data_size when binary. */
static json_t *
output_json(const struct ipc_tensor *t, bool binary, char *err,
    size_t errsz)
{
	size_t	 esz = dtype_size(t->desc.dtype);
	json_t	*shape = json_array(), *data, *v, *o;

	for (int k = 0; k < t->desc.ndim; k++)
		json_array_append_new(shape, json_integer(t->desc.dims[k]));
	o = json_pack("{s:s, s:s, s:o}", "name", t->desc.name, "datatype",
	    dtype_kserve_name(t->desc.dtype), "shape", shape);
	if (binary) {
		json_object_set_new(o, "parameters", json_pack("{s:I}",
		    "binary_data_size", (json_int_t)t->nbytes));
		return o;
	}
	data = json_array();
	json_object_set_new(o, "data", data);
	if (esz == 0) {			/* BYTES, framing checked */
		for (uint64_t off = 0; off < t->nbytes; ) {
			uint32_t	l = le32_get(t->data + off);

			v = json_stringn((const char *)t->data + off + 4, l);
			if (v == NULL) {
				snprintf(err, errsz, "output '%s' holds bytes "
				    "that are not UTF-8; ask for it with "
				    "binary_data", t->desc.name);
				json_decref(o);
				return NULL;
			}
			json_array_append_new(data, v);
			off += 4 + (uint64_t)l;
		}
		return o;
	}
	for (uint64_t off = 0; off < t->nbytes; off += esz) {
		if ((v = tensor_value(t->desc.dtype, t->data + off)) == NULL) {
			snprintf(err, errsz, "output '%s' holds a value JSON "
			    "cannot carry; ask for it with binary_data",
			    t->desc.name);
			json_decref(o);
			return NULL;
		}
		json_array_append_new(data, v);
	}
	return o;
}

/* Decodes an INFER_OK tensor list into t[IPC_MAX_TENSORS]: the count, or
 * -1 with err if it is malformed (BYTES framing included). */
static int
decode_list(const uint8_t *payload, size_t len, struct ipc_tensor *t,
    char *err, size_t errsz)
{
	struct rbuf	rb;
	uint64_t	count;
	int		n;

	rbuf_init(&rb, payload, len);
	if ((n = ipc_get_tensors(&rb, t, IPC_MAX_TENSORS)) == -1 ||
	    rbuf_left(&rb) != 0)
		goto bad;
	for (int i = 0; i < n; i++) {
		if (dtype_size(t[i].desc.dtype) != 0)
			continue;
		if (tensor_count(t[i].desc.dims, t[i].desc.ndim, 0,
		    IPC_MAX_PAYLOAD, &count) == -1 ||
		    bytes_check(t[i].data, t[i].nbytes, count) == -1)
			goto bad;
	}
	return n;
 bad:
	snprintf(err, errsz, "the runtime returned a malformed result");
	return -1;
}

int
tensorjson_encode_response(const uint8_t *payload, size_t len,
    const struct tensorjson_outspec *spec, json_t *head, struct wbuf *body,
    size_t *hdr_len, char *err, size_t errsz)
{
	struct ipc_tensor	*t;
	bool			 binary[IPC_MAX_TENSORS], any = false;
	json_t			*outs, *o;
	char			*s;
	int			 n, ret = -1;

	*hdr_len = 0;
	t = xcalloc(IPC_MAX_TENSORS, sizeof(*t));
	if ((n = decode_list(payload, len, t, err, errsz)) == -1)
		goto out;
	if (spec->n != 0 && (uint32_t)n != spec->n) {
		snprintf(err, errsz, "the runtime returned %d outputs for %u "
		    "requested", n, spec->n);
		goto out;
	}
	outs = json_array();
	json_object_set_new(head, "outputs", outs);
	for (int i = 0; i < n; i++) {
		binary[i] = spec->n != 0 && spec->binary[i] != -1 ?
		    spec->binary[i] == 1 : spec->binary_all;
		any |= binary[i];
		if ((o = output_json(&t[i], binary[i], err, errsz)) == NULL)
			goto out;
		json_array_append_new(outs, o);
	}
	if ((s = json_dumps(head, JSON_COMPACT | JSON_REAL_PRECISION(9))) ==
	    NULL) {
		snprintf(err, errsz, "cannot encode the response");
		goto out;
	}
	wbuf_put(body, s, strlen(s));
	if (any)
		*hdr_len = strlen(s);
	free(s);
	for (int i = 0; i < n; i++)
		if (binary[i])
			wbuf_put(body, t[i].data, (size_t)t[i].nbytes);
	ret = 0;
 out:
	free(t);
	return ret;
}

json_t *
tensorjson_decode_outputs(const uint8_t *payload, size_t len, char *err,
    size_t errsz)
{
	struct ipc_tensor	*t;
	json_t			*outs, *o;
	int			 n;

	t = xcalloc(IPC_MAX_TENSORS, sizeof(*t));
	if ((n = decode_list(payload, len, t, err, errsz)) == -1) {
		free(t);
		return NULL;
	}
	outs = json_array();
	for (int i = 0; i < n; i++) {
		if ((o = output_json(&t[i], false, err, errsz)) == NULL) {
			json_decref(outs);
			outs = NULL;
			break;
		}
		json_array_append_new(outs, o);
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
