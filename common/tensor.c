/* common/tensor.c - see tensor.h. */
#include <string.h>

#include "common/tensor.h"

static const struct {
	const char	*name;
	size_t		 size;
} dtype_info[DT_MAX] = {
	[DT_INVALID] = { "INVALID", 0 },
	[DT_FP32] = { "FP32", 4 },
	[DT_FP16] = { "FP16", 2 },
	[DT_FP64] = { "FP64", 8 },
	[DT_INT8] = { "INT8", 1 },
	[DT_INT16] = { "INT16", 2 },
	[DT_INT32] = { "INT32", 4 },
	[DT_INT64] = { "INT64", 8 },
	[DT_UINT8] = { "UINT8", 1 },
	[DT_UINT16] = { "UINT16", 2 },
	[DT_UINT32] = { "UINT32", 4 },
	[DT_UINT64] = { "UINT64", 8 },
	[DT_BOOL] = { "BOOL", 1 },
	[DT_BYTES] = { "BYTES", 0 },
};

bool
dtype_valid(int dt)
{
	return dt > DT_INVALID && dt < DT_MAX;
}

size_t
dtype_size(enum dtype dt)
{
	return dtype_valid((int)dt) ? dtype_info[dt].size : 0;
}

const char *
dtype_kserve_name(enum dtype dt)
{
	return dtype_valid((int)dt) ? dtype_info[dt].name : "INVALID";
}

enum dtype
dtype_from_kserve(const char *s)
{
	for (int i = DT_INVALID + 1; i < DT_MAX; i++)
		if (strcmp(s, dtype_info[i].name) == 0)
			return (enum dtype)i;
	return DT_INVALID;
}

int
tensor_count(const int64_t *dims, int ndim, size_t elem_size,
    uint64_t max_bytes, uint64_t *count)
{
	uint64_t	n = 1;

	if (ndim < 0 || ndim > TENSOR_MAX_DIMS)
		return -1;
	/* A zero dimension makes the tensor empty whatever the others are:
	 * the count must not depend on the order of the dimensions. */
	for (int i = 0; i < ndim; i++) {
		if (dims[i] < 0)
			return -1;
		if (dims[i] == 0) {
			*count = 0;
			return 0;
		}
	}
	for (int i = 0; i < ndim; i++) {
		if (dims[i] < 0)
			return -1;
		if (dims[i] != 0 && n > UINT64_MAX / (uint64_t)dims[i])
			return -1;
		n *= (uint64_t)dims[i];
	}
	if (elem_size != 0 && n > max_bytes / elem_size)
		return -1;
	*count = n;
	return 0;
}
