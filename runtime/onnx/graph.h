/* runtime/onnx/graph.h - the executable graph, private to runtime/onnx.
 *
 * load.c builds it from the protobuf, ops.c knows each operator (its
 * attributes, shape inference and kernel call), exec.c plans and runs it.
 * Values are numbered: initializers and constants first, then graph
 * inputs, then node outputs in node order, which is topological. */
#ifndef RUNTIME_ONNX_GRAPH_H
#define RUNTIME_ONNX_GRAPH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"

#include "common/tensor.h"
#include "runtime/arena.h"
#include "runtime/onnx/onnx.h"

#define ONNX_MAX_IN		3		/* inputs of our widest op */
#define ONNX_MAX_ELEMS		INT32_MAX	/* per tensor: a BLAS int */
#ifdef MAAS_FUZZ
#define ONNX_MAX_ARENA		(16ULL << 20)	/* keep fuzz runs fast */
#define ONNX_FOLD_MAX		(1ULL << 20)
#else
#define ONNX_MAX_ARENA		(16ULL << 30)	/* activations per request */
#define ONNX_FOLD_MAX		(64ULL << 20)	/* largest folded constant */
#endif

enum onnx_vkind {
	ONNX_V_CONST,		/* initializer, Constant or folded node */
	ONNX_V_INPUT,		/* graph input, copied into the arena */
	ONNX_V_ACT		/* node output, lives in the arena */
};

struct onnx_value {
	const char	*name;		/* borrowed from the proto */
	enum dtype	 dtype;		/* DT_FP32, or DT_INT64 (shapes) */
	enum onnx_vkind	 kind;
	int		 ndim;
	int64_t		 dims[TENSOR_MAX_DIMS];	/* at load; -1 dynamic */
	int		 sym[TENSOR_MAX_DIMS];	/* inputs: dim_param id or 0 */
	int64_t		 shape[TENSOR_MAX_DIMS];/* current plan, concrete */
	size_t		 count;		/* elements in shape */
	void		*data;		/* current plan: the elements */
	void		*own;		/* constant data we allocated */
	size_t		 off;		/* arena offset (inputs, activations) */
	size_t		 size;		/* arena bytes, ARENA_ALIGN multiple */
	int		 def;		/* producing node; -1 if none */
	int		 last;		/* last reader; n_nodes: output */
};

struct onnx_node {
	const struct onnx_op	*op;
	const char		*name;	/* borrowed; "" if unnamed */
	int			 idx;	/* position in the graph */
	int			 n_in;
	int			 in[ONNX_MAX_IN]; /* value ids; -1 absent */
	int			 out;	/* value id */
	bool			 folded;	/* computed at load */
	/* Attributes, parsed at load. */
	float			 alpha, beta;	/* Gemm */
	int			 flags;		/* Gemm: KERNEL_TRANS_* */
	int64_t			 axis;		/* Softmax, Flatten */
	bool			 allowzero;	/* Reshape */
};

struct onnx_op {
	const char	*name;
	int		 min_in, max_in;
	unsigned	 i64_in;	/* bit i: input i is INT64, constant */
	/* Parses node attributes; a Constant also fills its output. */
	int		(*attrs)(struct onnx_model *, struct onnx_node *,
			    Onnx__NodeProto *, char *, size_t);
	/* Output shape from input shapes (which may hold -1 at load). */
	int		(*infer)(struct onnx_model *, struct onnx_node *,
			    char *, size_t);
	void		(*run)(struct onnx_model *, struct onnx_node *);
};

struct onnx_model {
	Onnx__ModelProto	*proto;		/* owned; names, weights */
	int64_t			 opset;		/* default domain */
	struct onnx_value	*vals;		/* n_vals, owned */
	size_t			 n_vals;
	struct onnx_node	*nodes;		/* n_nodes, owned */
	size_t			 n_nodes;
	int			*inputs;	/* n_inputs value ids, owned */
	size_t			 n_inputs;
	int			*outputs;	/* n_outputs value ids, owned */
	size_t			 n_outputs;
	const char		**syms;		/* n_syms dim_params (proto) */
	size_t			 n_syms;
	uint64_t		 const_bytes;	/* constants in memory */
	struct arena		 arena;		/* activations */
	int			*live;		/* planner scratch, n_vals */
	int64_t			*symval;	/* binding: dim_param sizes */
	int			*symsrc;	/* binding: input that set it */
	const struct ipc_tensor	**bound;	/* inputs of a run, n_inputs */
	bool			 planned;	/* shapes and offsets current */
};

#define ONNX_IN(m, n, i)	(&(m)->vals[(n)->in[i]])
#define ONNX_OUT(m, n)		(&(m)->vals[(n)->out])

/* ops.c */
const struct onnx_op	*onnx_op_find(const char *domain, const char *name);

/* load.c: reads a TensorProto into v (dtype, dims, data); label names it
 * in messages. */
int	onnx_tensor_read(struct onnx_value *, Onnx__TensorProto *,
	    const char *label, char *err, size_t errlen);

/* exec.c: checks a shape infer() produced (dims -1 or positive, known
 * dims multiply to at most ONNX_MAX_ELEMS) and sets v->count when it is
 * concrete; ONNX_EINPUT or ONNX_ETOOBIG with a message. */
enum onnx_status onnx_shape_check(struct onnx_value *,
		    const struct onnx_node *, char *err, size_t errlen);
/* exec.c: message helpers.  "[-1,784]"; "node 'gemm1' (Gemm)" or
 * "node #3 (Gemm)"; onnx_node_err() prefixes the label and ": ";
 * onnx_err_clean() turns control bytes a hostile name may carry into '?'. */
void	onnx_fmt_shape(char *buf, size_t len, const int64_t *dims, int nd);
void	onnx_node_label(char *buf, size_t len, const struct onnx_node *);
void	onnx_err_clean(char *err);
void	onnx_node_err(char *err, size_t errlen, const struct onnx_node *,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#endif
