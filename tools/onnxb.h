/* tools/onnxb.h - builds ONNX models in memory with protobuf-c, for
 * maas-genmodel and the runtime's tests and fuzz seeds.
 *
 * Every part is allocated with xmalloc and hangs off the model, so one
 * onnxb_free() releases all of it (protobuf-c's free_unpacked with the
 * default allocator, which is malloc/free).  Strings passed in are copied.
 * Tensors are stored as little-endian raw_data, so the same inputs always
 * pack to the same bytes. */
#ifndef TOOLS_ONNXB_H
#define TOOLS_ONNXB_H
#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"

#define ONNXB_DYN	(-1)	/* a dim given as dim_param (the sym) */
#define ONNXB_UNSET	(-2)	/* a dim with neither value nor param */
#define ONNXB_NOSHAPE	(-1)	/* ndim: a value info without shape */

/* A model with an empty graph; caller frees with onnxb_free(). */
Onnx__ModelProto	*onnxb_model(int64_t ir_version, int64_t opset,
			    const char *graph_name);
void			 onnxb_free(Onnx__ModelProto *);

/* Appends a node; inputs is NULL-terminated ("" for an omitted optional
 * input).  The node is owned by the model. */
Onnx__NodeProto	*onnxb_node(Onnx__ModelProto *, const char *op_type,
		    const char *name, const char *const *inputs,
		    const char *output);
void		 onnxb_attr_int(Onnx__NodeProto *, const char *, int64_t);
void		 onnxb_attr_float(Onnx__NodeProto *, const char *, float);
void		 onnxb_attr_ints(Onnx__NodeProto *, const char *, size_t n,
		    const int64_t *);
void		 onnxb_attr_str(Onnx__NodeProto *, const char *,
		    const char *);
/* A TENSOR attribute "value" holding an INT64 vector (for Constant). */
void		 onnxb_attr_value_i64(Onnx__NodeProto *, size_t n,
		    const int64_t *);

/* Graph inputs and outputs of ONNX elem_type; dims are sizes, ONNXB_DYN
 * (dim_param sym) or ONNXB_UNSET. */
void	onnxb_input(Onnx__ModelProto *, const char *name, int elem_type,
	    int ndim, const int64_t *dims, const char *sym);
void	onnxb_output(Onnx__ModelProto *, const char *name, int elem_type,
	    int ndim, const int64_t *dims, const char *sym);

/* Initializers; data holds product(dims) values. */
Onnx__TensorProto *onnxb_init_f32(Onnx__ModelProto *, const char *name,
		    int ndim, const int64_t *dims, const float *data);
Onnx__TensorProto *onnxb_init_i64(Onnx__ModelProto *, const char *name,
		    int ndim, const int64_t *dims, const int64_t *data);

/* Pads doc_strings so that every initializer's raw_data starts at a
 * multiple of align (2..64) in the packed model, which lets maas-runtime
 * use the weights in place in the file's mapping.  0, or -1 if it cannot
 * (no node before the first initializer). */
int	onnxb_align(Onnx__ModelProto *, size_t align);

/* The serialized model; caller frees. */
uint8_t	*onnxb_pack(const Onnx__ModelProto *, size_t *len);
/* Writes the serialized model to path: 0, or -1 with errno set. */
int	 onnxb_write(const Onnx__ModelProto *, const char *path);
#endif
