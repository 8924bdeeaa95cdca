/* common/tensor.h - element types shared by the IPC codec, the gateway's
 * KServe handlers and the runtime.  Values are part of the IPC protocol:
 * never renumber. */
#ifndef COMMON_TENSOR_H
#define COMMON_TENSOR_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TENSOR_MAX_DIMS		8

enum dtype {
	DT_INVALID = 0,
	DT_FP32 = 1,
	DT_FP16 = 2,
	DT_FP64 = 3,
	DT_INT8 = 4,
	DT_INT16 = 5,
	DT_INT32 = 6,
	DT_INT64 = 7,
	DT_UINT8 = 8,
	DT_UINT16 = 9,
	DT_UINT32 = 10,
	DT_UINT64 = 11,
	DT_BOOL = 12,
	DT_BYTES = 13,		/* variable-size strings; size 0 here */
	DT_MAX
};

/* Bytes per element, 0 for DT_INVALID, DT_BYTES or out-of-range values. */
size_t		 dtype_size(enum dtype);
/* KServe v2 datatype names: "FP32", "INT64", "BOOL", "BYTES", ... */
const char	*dtype_kserve_name(enum dtype);
enum dtype	 dtype_from_kserve(const char *);	/* DT_INVALID if unknown */
bool		 dtype_valid(int);

/* Element count of dims[0..ndim) into *count; -1 on a negative dim or if
 * the count times elem_size would exceed max_bytes (overflow-safe). */
int		 tensor_count(const int64_t *dims, int ndim, size_t elem_size,
		    uint64_t max_bytes, uint64_t *count);
#endif
