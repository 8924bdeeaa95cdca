/* runtime/llm/gguf.h - a GGUF (v2/v3) file, mapped read-only.
 *
 * The whole file is untrusted: every count, string length, array length,
 * tensor dimension, type and offset is bounds-checked against the mapping
 * before use, and every allocation the parser makes is bounded by the
 * counts it has already checked against the file size.  Strings and tensor
 * data point into the mapping (nothing is copied), so replicas of the same
 * file share its pages.  Little-endian files only. */
#ifndef RUNTIME_LLM_GGUF_H
#define RUNTIME_LLM_GGUF_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GGUF_MAX_DIMS		4
#define GGUF_NAME_MAX		64	/* tensor name bytes, GGUF's limit */

/* Metadata value types, numbered as in the GGUF specification. */
enum gguf_type {
	GGUF_T_U8 = 0, GGUF_T_I8, GGUF_T_U16, GGUF_T_I16, GGUF_T_U32,
	GGUF_T_I32, GGUF_T_F32, GGUF_T_BOOL, GGUF_T_STRING, GGUF_T_ARRAY,
	GGUF_T_U64, GGUF_T_I64, GGUF_T_F64
};

/* Tensor element types, numbered as in ggml. */
enum ggml_type {
	GGML_T_F32 = 0, GGML_T_F16 = 1, GGML_T_Q4_0 = 2, GGML_T_Q4_1 = 3,
	GGML_T_Q8_0 = 8, GGML_T_Q4_K = 12, GGML_T_Q5_K = 13, GGML_T_Q6_K = 14,
	GGML_T_BF16 = 30
};

/* A string inside the mapping: not NUL-terminated. */
struct gguf_str {
	const char	*p;
	uint64_t	 n;
};

/* An array value.  For strings, use gguf_arr_str(); for numbers, data
 * points at n packed little-endian elements of type (maybe unaligned). */
struct gguf_arr {
	enum gguf_type	 type;
	uint64_t	 n;
	const void	*data;
	const uint64_t	*str_off;	/* strings: offsets into the map */
};

struct gguf_tensor {
	char		 name[GGUF_NAME_MAX + 1];
	enum ggml_type	 type;
	int		 ndim;
	uint64_t	 ne[GGUF_MAX_DIMS];	/* ne[0] is the fastest dim */
	const void	*data;			/* in the mapping, aligned */
	uint64_t	 nbytes;
};

struct gguf;

/* Maps and parses the file at path (at most max_bytes).  0, or -1 with a
 * message naming what is wrong ("tensor 'blk.0.attn_q.weight': data runs
 * past the end of the file"). */
int	gguf_open(const char *path, uint64_t max_bytes, struct gguf **out,
	    char *err, size_t errlen);
/* Same over a mapping the caller owns and keeps alive. */
int	gguf_parse(const uint8_t *data, size_t len, struct gguf **out,
	    char *err, size_t errlen);
void	gguf_close(struct gguf *);
uint32_t gguf_version(const struct gguf *);

/* Typed lookups: false when the key is absent or of another type (integer
 * getters accept any integer type whose value fits). */
bool	gguf_get_u32(const struct gguf *, const char *key, uint32_t *);
bool	gguf_get_f32(const struct gguf *, const char *key, float *);
bool	gguf_get_bool(const struct gguf *, const char *key, bool *);
bool	gguf_get_str(const struct gguf *, const char *key, struct gguf_str *);
bool	gguf_get_arr(const struct gguf *, const char *key, struct gguf_arr *);
bool	gguf_arr_str(const struct gguf_arr *, uint64_t i, struct gguf_str *);
/* "general.architecture" == s? */
bool	gguf_str_eq(const struct gguf_str *, const char *s);

size_t	gguf_n_tensors(const struct gguf *);
const struct gguf_tensor *gguf_tensor_at(const struct gguf *, size_t i);
const struct gguf_tensor *gguf_tensor(const struct gguf *, const char *name);
/* Bytes of n elements of t (a multiple of the block size); 0 if t is not a
 * type maas supports or n is not a whole number of blocks. */
uint64_t ggml_nbytes(enum ggml_type t, uint64_t n);
const char *ggml_type_name(enum ggml_type);
#endif
