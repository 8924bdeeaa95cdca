/* runtime/onnx/onnx.h - ONNX models in maas-runtime: load, describe, run.
 *
 * onnx_load() parses a serialized ModelProto with protobuf-c, checks it
 * (supported operators, topological order, references, types), reads the
 * constants, folds nodes whose inputs are all constant, and infers every
 * shape with dynamic dims (dim_param or missing) as -1.  onnx_run() infers
 * concrete shapes from the request, plans activations into one grow-only
 * arena (re-planned only when input shapes change) and runs the nodes;
 * after the first request of a given shape it allocates nothing.
 *
 * Error messages, written to err (errlen > 0 bytes, always terminated),
 * name the problem for the operator or the tenant ("unsupported
 * operators: Conv, LSTM", "input 'x': expected shape [-1,784], got
 * [2,783]"); they never contain tensor contents.
 *
 * A model is used by one thread at a time (OpenBLAS threads run inside
 * the kernels). */
#ifndef RUNTIME_ONNX_ONNX_H
#define RUNTIME_ONNX_ONNX_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ipc.h"

#define ONNX_MAX_FILE		(2ULL << 30)	/* largest model accepted */
#define ONNX_OPSET_MIN		7	/* numpy broadcasting from here */
#define ONNX_OPSET_MAX		21	/* newest opset whose ops we know */

enum onnx_status {
	ONNX_OK = 0,
	ONNX_EINPUT = -1,	/* the request does not fit the model */
	ONNX_ETOOBIG = -2	/* it would need more memory than allowed */
};

struct onnx_model;

/* Parses and checks the model in buf (read only during the call).
 * Returns a model, freed by the caller with onnx_free(), or NULL with a
 * message in err.  External data is refused. */
struct onnx_model	*onnx_load(const void *buf, size_t len, char *err,
			    size_t errlen);

/* Finds an external data file: the whole file named by location (relative
 * to the model's directory, checked by the callee), mapped read-only for
 * the model's life, its size in *len; NULL with a message in err. */
typedef const void	*onnx_extern_fn(void *arg, const char *location,
			    size_t *len, char *err, size_t errlen);

struct onnx_source {
	const void	*buf;		/* the serialized ModelProto */
	size_t		 len;
	/* buf outlives the model (a file mapping): weights stay in it, and
	 * processes mapping the same file share their pages.  Else they
	 * are copied. */
	bool		 borrow;
	onnx_extern_fn	*ext;		/* NULL: external data is refused */
	void		*ext_arg;
};
/* onnx_load() from a source. */
struct onnx_model	*onnx_load_source(const struct onnx_source *,
			    char *err, size_t errlen);
void			 onnx_free(struct onnx_model *);

/* Fills *meta (format ONNX, inputs that are not initializers, outputs,
 * mem_bytes); the caller releases it with ipc_meta_release(). */
void		 onnx_meta(const struct onnx_model *, struct ipc_meta *);
int64_t		 onnx_opset(const struct onnx_model *);
/* Resident bytes: constants plus the activation arena. */
uint64_t	 onnx_mem_bytes(const struct onnx_model *);

/* Runs the model on n tensors (borrowed during the call; data may be
 * unaligned).  Inputs are matched by name and validated: every input
 * exactly once, dtype, rank, fixed dims, and dynamic dims that share a
 * dim_param agree.  Returns ONNX_OK, or ONNX_EINPUT / ONNX_ETOOBIG with a
 * message in err. */
enum onnx_status onnx_run(struct onnx_model *, const struct ipc_tensor *in,
		    size_t n, char *err, size_t errlen);
/* Runs once on zero-filled inputs with every dynamic dim set to dyn: the
 * warm-up before sandboxing, and a self-test for tests and fuzzers. */
enum onnx_status onnx_run_dummy(struct onnx_model *, int64_t dyn,
		    char *err, size_t errlen);

size_t		 onnx_n_outputs(const struct onnx_model *);
/* Index of the output named by the len bytes at name, or -1. */
int		 onnx_output_index(const struct onnx_model *, const char *name,
		    size_t len);
/* After ONNX_OK: output i with concrete dims in *desc; the data is
 * borrowed until the next run. */
const void	*onnx_output(const struct onnx_model *, size_t i,
		    struct ipc_tensor_desc *desc, uint64_t *nbytes);

/* ONNX TensorProto.DataType to ours (DT_INVALID if none) and its name. */
enum dtype	 onnx_dtype(int onnx_type);
const char	*onnx_dtype_name(int onnx_type);
#endif
