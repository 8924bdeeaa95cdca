/* runtime/onnx/tensor.c - TensorProtos of the element types beyond FP32
 * and INT64 (which onnx_tensor_read() in load.c handles, with external
 * data), and FP16 conversion.
 *
 * INT32 stays INT32, BOOL becomes one byte of 0 or 1, and FLOAT16 is
 * widened to FP32 here: the runtime computes in FP32 only.  ONNX stores
 * all three either in raw_data (little-endian, 4, 1 and 2 bytes) or one per
 * int32_data element. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "runtime/onnx/graph.h"

static int	tensor_other(struct onnx_value *, Onnx__TensorProto *,
		    enum dtype, const char *, char *, size_t);

int
onnx_dims_bounded(const int64_t *dims, int nd, uint64_t *count)
{
	uint64_t	n = 1;
	bool		empty = false;

	for (int i = 0; i < nd; i++) {
		if (dims[i] < 0)
			return -1;
		if (dims[i] == 0) {
			empty = true;
			continue;
		}
		if (n > (uint64_t)(ONNX_MAX_ELEMS / dims[i]))
			return -1;
		n *= (uint64_t)dims[i];
	}
	*count = empty ? 0 : n;
	return 0;
}

float
onnx_half_to_float(uint16_t h)
{
	uint32_t	sign = (uint32_t)(h >> 15) << 31;
	uint32_t	exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	float		f;

	if (exp == 0x1f)		/* inf, NaN */
		bits = sign | 0x7f800000U | (man << 13);
	else if (exp != 0)		/* normal */
		bits = sign | ((exp + 112) << 23) | (man << 13);
	else if (man == 0)		/* zero */
		bits = sign;
	else {				/* subnormal: man * 2^-24 */
		f = ldexpf((float)man, -24);
		return sign ? -f : f;
	}
	memcpy(&f, &bits, sizeof(f));
	return f;
}

uint16_t
onnx_float_to_half(float f)
{
	uint32_t	x, sign, man;
	int32_t		exp;
	uint16_t	h;

	memcpy(&x, &f, sizeof(x));
	sign = (x >> 16) & 0x8000;
	exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
	man = x & 0x7fffff;
	if (((x >> 23) & 0xff) == 0xff)		/* inf, NaN */
		return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
	if (exp >= 0x1f)
		return (uint16_t)(sign | 0x7c00);
	if (exp <= 0) {
		if (exp < -10)
			return (uint16_t)sign;
		man |= 0x800000;
		/* Shift into a subnormal, rounding to nearest even. */
		{
			uint32_t	shift = (uint32_t)(14 - exp);
			uint32_t	half = 1U << (shift - 1);
			uint32_t	r = man >> shift;
			uint32_t	rest = man & ((1U << shift) - 1);

			if (rest > half || (rest == half && (r & 1)))
				r++;
			return (uint16_t)(sign | r);
		}
	}
	h = (uint16_t)(sign | ((uint32_t)exp << 10) | (man >> 13));
	if ((man & 0x1fff) > 0x1000 || ((man & 0x1fff) == 0x1000 && (h & 1)))
		h++;	/* may carry into the exponent, which is right */
	return h;
}

static int
tensor_other(struct onnx_value *v, Onnx__TensorProto *t, enum dtype dt,
    const char *label, char *err, size_t errlen)
{
	size_t		wsz = dt == DT_FP16 ? 2 : dt == DT_BOOL ? 1 : 4;
	uint64_t	count;
	const uint8_t	*raw = NULL;

	if ((t->has_data_location && t->data_location ==
	    ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
	    t->n_external_data > 0 || t->segment != NULL) {
		snprintf(err, errlen, "%s: external or segmented %s data is "
		    "not supported", label, onnx_dtype_name(t->data_type));
		return -1;
	}
	if (t->n_dims > TENSOR_MAX_DIMS) {
		snprintf(err, errlen, "%s: rank %zu is above %d", label,
		    t->n_dims, TENSOR_MAX_DIMS);
		return -1;
	}
	v->ndim = (int)t->n_dims;
	for (int i = 0; i < v->ndim; i++)
		if ((v->dims[i] = t->dims[i]) < 0) {
			snprintf(err, errlen, "%s: dimension %d is %lld",
			    label, i, (long long)v->dims[i]);
			return -1;
		}
	if (onnx_dims_bounded(v->dims, v->ndim, &count) == -1) {
		snprintf(err, errlen, "%s: more than %d elements", label,
		    ONNX_MAX_ELEMS);
		return -1;
	}
	if (t->has_raw_data) {
		if (t->raw_data.len != count * wsz) {
			snprintf(err, errlen, "%s: raw_data holds %zu bytes, "
			    "expected %llu", label, t->raw_data.len,
			    (unsigned long long)(count * wsz));
			return -1;
		}
		raw = t->raw_data.data;
	} else if (t->n_int32_data != count) {
		snprintf(err, errlen, "%s: holds %zu values, expected %llu",
		    label, t->n_int32_data, (unsigned long long)count);
		return -1;
	}
	v->dtype = dt == DT_FP16 ? DT_FP32 : dt;
	v->own = xmalloc(count ? count * dtype_size(v->dtype) : 1);
	for (size_t i = 0; i < count; i++) {
		int32_t		iv;
		uint16_t	hv;

		switch (dt) {
		case DT_INT32:
			if (raw != NULL)
				memcpy(&iv, raw + 4 * i, 4);
			else
				iv = t->int32_data[i];
			((int32_t *)v->own)[i] = iv;
			break;
		case DT_BOOL:
			iv = raw != NULL ? raw[i] : t->int32_data[i];
			((uint8_t *)v->own)[i] = iv != 0;
			break;
		default:	/* DT_FP16 */
			if (raw != NULL)
				memcpy(&hv, raw + 2 * i, 2);
			else
				hv = (uint16_t)t->int32_data[i];
			((float *)v->own)[i] = onnx_half_to_float(hv);
			break;
		}
	}
	v->data = v->own;
	v->count = count;
	memcpy(v->shape, v->dims, sizeof(v->shape));
	return 0;
}

int
onnx_tensor_load(struct onnx_value *v, Onnx__TensorProto *t,
    const char *label, char *err, size_t errlen)
{
	enum dtype	dt = onnx_dtype(t->data_type);

	if (dt == DT_INT32 || dt == DT_BOOL || dt == DT_FP16)
		return tensor_other(v, t, dt, label, err, errlen);
	if (dt != DT_FP32 && dt != DT_INT64) {
		snprintf(err, errlen, "%s: data type %s is not supported "
		    "(only FLOAT, FLOAT16, INT64, INT32 and BOOL)", label,
		    onnx_dtype_name(t->data_type));
		return -1;
	}
	return onnx_tensor_read(v, t, label, err, errlen);
}
