/* runtime/onnx/graph.h - the executable graph, private to runtime/onnx.
 *
 * load.c builds it from the protobuf, ops*.c know each operator (its
 * attributes, shape inference and kernel call), exec.c plans and runs it.
 * Values are numbered: initializers first, then graph inputs, then node
 * outputs in node order (which is topological), then scratch buffers.
 *
 * A node runs at one of three times: at load when its inputs are constant
 * (folding), while planning a new input shape when its inputs are
 * constants or other plan-time values and its output is small (the shape
 * subgraphs Shape -> Gather -> Concat -> Reshape of exported models), or
 * per request.  Plan-time outputs live in buffers sized at load, so a new
 * shape allocates nothing but, perhaps, a larger arena. */
#ifndef RUNTIME_ONNX_GRAPH_H
#define RUNTIME_ONNX_GRAPH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"

#include "common/tensor.h"
#include "runtime/arena.h"
#include "runtime/onnx/onnx.h"
#include "runtime/onnx/weights.h"

#define ONNX_MAX_ELEMS		INT32_MAX	/* per tensor: a BLAS int */
#define ONNX_PLAN_MAX		4096	/* elements of a plan-time value */
#define ONNX_MAX_SP		3	/* spatial dims of Conv and pools */
#define ONNX_MAX_ACT		6	/* activations of a recurrent node */
#ifdef MAAS_FUZZ
#define ONNX_MAX_ARENA		(16ULL << 20)	/* keep fuzz runs fast */
#define ONNX_FOLD_MAX		(1ULL << 20)
#else
#define ONNX_MAX_ARENA		(16ULL << 30)	/* activations per request */
#define ONNX_FOLD_MAX		(64ULL << 20)	/* largest folded constant */
#endif

/* Element types a value may hold; bit masks for the type checks. */
#define ONNX_T_F32	(1u << DT_FP32)
#define ONNX_T_I64	(1u << DT_INT64)
#define ONNX_T_I32	(1u << DT_INT32)
#define ONNX_T_BOOL	(1u << DT_BOOL)
#define ONNX_T_INT	(ONNX_T_I64 | ONNX_T_I32)
#define ONNX_T_NUM	(ONNX_T_F32 | ONNX_T_INT)
#define ONNX_T_ANY	(ONNX_T_NUM | ONNX_T_BOOL)

enum onnx_vkind {
	ONNX_V_CONST,		/* initializer, Constant or folded node */
	ONNX_V_INPUT,		/* graph input, copied into the arena */
	ONNX_V_ACT,		/* node output or scratch, in the arena */
	ONNX_V_PLAN		/* computed while planning, in own */
};

enum onnx_when {
	ONNX_AT_RUN,		/* per request */
	ONNX_AT_LOAD,		/* folded: every output is constant */
	ONNX_AT_PLAN		/* per new input shape */
};

struct onnx_value {
	const char	*name;		/* borrowed from the proto; "" scratch */
	enum dtype	 dtype;		/* FP32, INT64, INT32 or BOOL */
	enum dtype	 wire;		/* inputs: dtype of request data */
	enum onnx_vkind	 kind;
	bool		 known;		/* data holds the current values */
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
	/* exec.c, from the first plan on: the value whose arena memory
	 * this one shares (a Reshape's input, a fused MatMul's output),
	 * or -1. */
	int		 alias;
	/* exec.c, inputs: no value shares this one's arena memory, so a
	 * request's elements may be read where its frame holds them. */
	bool		 borrow;
};

struct onnx_node {
	const struct onnx_op	*op;
	const char		*name;	/* borrowed; "" if unnamed */
	int			 idx;	/* position in the graph */
	int			 n_in;
	int			*in;	/* n_in value ids; -1 absent */
	int			 n_out;
	int			*out;	/* n_out value ids; -1 absent */
	int			 scratch;	/* value id, or -1 */
	enum onnx_when		 when;
	/* Attributes, parsed at load; each op documents its use. */
	float			 alpha, beta, eps;
	int			 flags;
	int64_t			 axis;
	int64_t			 i0, i1, i2, i3;
	bool			 allowzero;
	const int64_t		*ints;	/* borrowed from the proto */
	size_t			 n_ints;
	const float		*floats;	/* borrowed from the proto */
	size_t			 n_floats;
	int			 nsp;		/* Conv, pools: spatial dims */
	int64_t			 kern[ONNX_MAX_SP];
	int64_t			 stride[ONNX_MAX_SP];
	int64_t			 dil[ONNX_MAX_SP];
	int64_t			 pad[2 * ONNX_MAX_SP];	/* begins, ends */
	/* RNN, GRU, LSTM: activation functions, each direction's in
	 * turn, with their alpha and beta. */
	int			 n_act;
	unsigned char		 act[ONNX_MAX_ACT];
	float			 act_alpha[ONNX_MAX_ACT];
	float			 act_beta[ONNX_MAX_ACT];
	/* exec.c, from the first plan on: a MatMul's bias, the constant
	 * of the Add that follows it (value id, or -1), and the scalar of
	 * a Mul that follows it (1 if none); that Add or Mul is `fused`
	 * and does not run.  The last Mul of an erf GELU computes all of
	 * it from the value gelu (-1 if none); the nodes before it are
	 * fused. */
	int			 bias;
	float			 scale;
	int			 gelu;
	bool			 fused;
	/* exec.c: a Conv or Gemm applies the Relu that alone reads its
	 * output (that Relu is fused); a Conv also writes the output of the
	 * MaxPool that alone reads that, node pool (fused), or -1. */
	bool			 relu;
	int			 pool;
	/* exec.c: a MatMul reads operand k through the Transpose node
	 * tr[k] (-1: none) that alone feeds it, and writes its product in
	 * the layout of the Transpose node tr_out (or -1) that alone reads
	 * it; those Transposes are fused, their outputs views. */
	int			 tr[2];
	int			 tr_out;
	/* ops.c, at load: the constant B of a Gemm or MatMul that runs per
	 * request, packed for gemm_run() (owned), or NULL. */
	float			*pack;
};

#define ONNX_OP_SHAPE_ONLY	0x1	/* reads input shapes, not data */
#define ONNX_OP_SCRATCH		0x2	/* infer() sizes a scratch buffer */
/* run() copes with an empty input (a dim of 0) whose output is not
 * empty, reading no element of it (Concat, ReduceSum, MatMul with K 0);
 * other operators refuse such an input while planning. */
#define ONNX_OP_EMPTY_OK	0x4
#define ONNX_VARIADIC		64	/* max_in of Concat, Sum, Max... */

struct onnx_op {
	const char	*name;
	int		 min_in, max_in;
	int		 min_out, max_out;
	unsigned	 flags;		/* ONNX_OP_* */
	/* Attributes it understands, space-separated: any other one
	 * refuses the model at load. */
	const char	*known;
	/* Parses node attributes; a Constant also fills its output. */
	int		(*attrs)(struct onnx_model *, struct onnx_node *,
			    Onnx__NodeProto *, char *, size_t);
	/* Output dtypes and shapes from the inputs (dims may be -1 at load;
	 * data only where known).  Checks input dtypes. */
	int		(*infer)(struct onnx_model *, struct onnx_node *,
			    char *, size_t);
	void		(*run)(struct onnx_model *, struct onnx_node *);
};

/* A table of operators (ops*.c each export one). */
struct onnx_optab {
	const struct onnx_op	*ops;
	size_t			 n;
};

struct onnx_model {
	Onnx__ModelProto	*proto;		/* owned; names, weights */
	struct weights		 weights;	/* raw_data outside proto */
	int64_t			 opset;		/* default domain */
	struct onnx_value	*vals;		/* n_vals, owned */
	size_t			 n_vals;
	struct onnx_node	*nodes;		/* n_nodes, owned */
	size_t			 n_nodes;
	int			*ids;		/* nodes' in and out, owned */
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
	bool			 fused;		/* exec.c: aliases and fusions */
};

#define ONNX_IN(m, n, i)	(&(m)->vals[(n)->in[i]])
#define ONNX_OUT(m, n)		(&(m)->vals[(n)->out[0]])
#define ONNX_OUTI(m, n, i)	(&(m)->vals[(n)->out[i]])
#define ONNX_HAS_IN(n, i)	((i) < (n)->n_in && (n)->in[i] >= 0)
#define ONNX_HAS_OUT(n, i)	((i) < (n)->n_out && (n)->out[i] >= 0)

/* ops.c */
const struct onnx_op	*onnx_op_find(const char *domain, const char *name);
extern const struct onnx_optab	onnx_ops_core, onnx_ops_elem,
				onnx_ops_shape, onnx_ops_nn, onnx_ops_rnn;

/* ops.c: packs the constant B of every Gemm and MatMul that runs per
 * request, when the CPU runs runtime/gemm.c, and counts it in
 * const_bytes. */
void	onnx_pack_weights(struct onnx_model *);

/* ops.c: helpers shared by the operator files.  The attr_* return -1
 * with a message if the attribute has another type. */
int	onnx_attr_int(const Onnx__NodeProto *, const char *, int64_t,
	    int64_t *, const struct onnx_node *, char *, size_t);
int	onnx_attr_float(const Onnx__NodeProto *, const char *, float,
	    float *, const struct onnx_node *, char *, size_t);
/* INTS: *out borrowed from the proto, *n 0 if absent. */
int	onnx_attr_ints(const Onnx__NodeProto *, const char *,
	    const int64_t **, size_t *, const struct onnx_node *, char *,
	    size_t);
/* STRING: copied into buf (NUL-terminated), def if absent. */
int	onnx_attr_str(const Onnx__NodeProto *, const char *, const char *,
	    char *, size_t, const struct onnx_node *, char *, size_t);
/* Input i's dtype is in mask; else a message naming both. */
int	onnx_want(const struct onnx_model *, const struct onnx_node *, int i,
	    unsigned mask, char *, size_t);
int	onnx_bcast_dim(int64_t, int64_t, int64_t *);
int64_t	onnx_dims_prod(const int64_t *, int, int);
/* A Transpose's perm for rank r (its attribute, or the dims reversed
 * when it has none) into perm[r]; false if it is no permutation of r
 * dims. */
bool	onnx_perm(const struct onnx_node *, int r, int *perm);
int	onnx_axis_norm(int64_t, int, int, int64_t *);
/* Integer input i as int64 values (INT64 or INT32); NULL if not known
 * yet (a plan-time value at load). */
bool	onnx_ints_known(const struct onnx_model *, const struct onnx_node *,
	    int i);
int64_t	onnx_int_at(const struct onnx_value *, size_t);
int	onnx_infer_same(struct onnx_model *, struct onnx_node *, char *,
	    size_t);
void	onnx_run_copy(struct onnx_model *, struct onnx_node *);
/* Softmax and LogSoftmax: the axis attribute (default by opset), its
 * check, and the (outer, len, inner) view of the output the kernels take
 * (opset < 13 coerces to 2-D at axis). */
int	onnx_attrs_softmax(struct onnx_model *, struct onnx_node *,
	    Onnx__NodeProto *, char *, size_t);
int	onnx_infer_softmax(struct onnx_model *, struct onnx_node *, char *,
	    size_t);
void	onnx_softmax_dims(const struct onnx_model *, const struct onnx_node *,
	    size_t *outer, size_t *len, size_t *inner);

/* load.c: reads a TensorProto into v (dtype, dims, data); label names it
 * in messages. */
int	onnx_tensor_read(struct onnx_value *, Onnx__TensorProto *,
	    const char *label, char *err, size_t errlen);
/* load.c: as onnx_tensor_read, and also INT32, BOOL and FLOAT16 (which
 * becomes FP32); the conformance runner reads test data with it. */
int	onnx_tensor_load(struct onnx_value *, Onnx__TensorProto *,
	    const char *label, char *err, size_t errlen);
/* tensor.c: the element count of dims[0..nd) into *count; -1 if a dim
 * is negative or the dims other than 0 multiply to more than
 * ONNX_MAX_ELEMS (the kernels multiply them even for an empty tensor). */
int	onnx_dims_bounded(const int64_t *, int, uint64_t *);
/* FP16 bits to float and back (round to nearest even). */
float		onnx_half_to_float(uint16_t);
uint16_t	onnx_float_to_half(float);

/* exec.c: checks a shape infer() produced (dims -1 or positive, known
 * dims multiply to at most ONNX_MAX_ELEMS) and sets v->count when it is
 * concrete; ONNX_EINPUT or ONNX_ETOOBIG with a message. */
enum onnx_status onnx_shape_check(struct onnx_value *,
		    const struct onnx_node *, char *err, size_t errlen);
/* exec.c: whether n runs, from its concrete shapes: 1 if every output
 * is empty (nothing to write, it does not run), 0 if it runs, -1 with a
 * message if it has an empty input its operator cannot take. */
int	onnx_empty_check(const struct onnx_model *, const struct onnx_node *,
	    char *err, size_t errlen);
/* exec.c: message helpers.  "[-1,784]"; "node 'gemm1' (Gemm)" or
 * "node #3 (Gemm)"; onnx_node_err() prefixes the label and ": ";
 * onnx_err_clean() turns control bytes a hostile name may carry into '?'. */
void	onnx_fmt_shape(char *buf, size_t len, const int64_t *dims, int nd);
void	onnx_node_label(char *buf, size_t len, const struct onnx_node *);
void	onnx_err_clean(char *err);
void	onnx_node_err(char *err, size_t errlen, const struct onnx_node *,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#endif
