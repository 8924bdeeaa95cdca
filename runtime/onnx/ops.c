/* runtime/onnx/ops.c - the operators maas-runtime can run.
 *
 * Each operator has three parts: attrs() reads its attributes once at
 * load, infer() computes the output shape from the input shapes, and
 * run() calls a kernel.  infer() runs at load with dynamic dims as -1 and
 * again, with concrete dims, whenever a request brings new input shapes;
 * it must therefore accept -1 anywhere and check whatever it can.  run()
 * only ever sees shapes infer() accepted. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tensor.h"
#include "runtime/gemm.h"
#include "runtime/kernels.h"
#include "runtime/onnx/graph.h"

#define A_INT		ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT
#define A_FLOAT		ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT
#define A_STRING	ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING
#define A_TENSOR	ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR
#define A_INTS		ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS
#define A_FLOATS	ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS

static const Onnx__AttributeProto *attr_find(const Onnx__NodeProto *,
		    const char *, int, const struct onnx_node *, char *,
		    size_t, int *);
static bool	bcast_to(int64_t, int64_t);
static void	run_gemm(struct onnx_model *, struct onnx_node *);
static void	gemm_k0(float *, size_t, size_t, const float *, size_t,
		    size_t, float);
static void	run_matmul(struct onnx_model *, struct onnx_node *);

/* --- helpers --- */

/* The attribute called name, NULL if absent; -1 in *bad if it exists with
 * another type than want. */
static const Onnx__AttributeProto *
attr_find(const Onnx__NodeProto *p, const char *name, int want,
    const struct onnx_node *n, char *err, size_t errlen, int *bad)
{
	*bad = 0;
	for (size_t i = 0; i < p->n_attribute; i++) {
		const Onnx__AttributeProto	*a = p->attribute[i];

		if (a->name == NULL || strcmp(a->name, name) != 0)
			continue;
		if ((int)a->type != want) {
			onnx_node_err(err, errlen, n,
			    "attribute '%s' has the wrong type", name);
			*bad = -1;
			return NULL;
		}
		return a;
	}
	return NULL;
}

int
onnx_attr_int(const Onnx__NodeProto *p, const char *name, int64_t def,
    int64_t *out, const struct onnx_node *n, char *err, size_t errlen)
{
	const Onnx__AttributeProto	*a;
	int				 bad;

	a = attr_find(p, name, A_INT, n, err, errlen, &bad);
	*out = a != NULL ? a->i : def;
	return bad;
}

int
onnx_attr_float(const Onnx__NodeProto *p, const char *name, float def,
    float *out, const struct onnx_node *n, char *err, size_t errlen)
{
	const Onnx__AttributeProto	*a;
	int				 bad;

	a = attr_find(p, name, A_FLOAT, n, err, errlen, &bad);
	*out = a != NULL ? a->f : def;
	return bad;
}

int
onnx_attr_ints(const Onnx__NodeProto *p, const char *name,
    const int64_t **out, size_t *n, const struct onnx_node *node, char *err,
    size_t errlen)
{
	const Onnx__AttributeProto	*a;
	int				 bad;

	a = attr_find(p, name, A_INTS, node, err, errlen, &bad);
	*out = a != NULL ? a->ints : NULL;
	*n = a != NULL ? a->n_ints : 0;
	return bad;
}

int
onnx_attr_str(const Onnx__NodeProto *p, const char *name, const char *def,
    char *buf, size_t len, const struct onnx_node *n, char *err,
    size_t errlen)
{
	const Onnx__AttributeProto	*a;
	int				 bad;
	size_t				 k;

	a = attr_find(p, name, A_STRING, n, err, errlen, &bad);
	if (a == NULL) {
		snprintf(buf, len, "%s", def);
		return bad;
	}
	k = a->s.len < len - 1 ? a->s.len : len - 1;
	if (k > 0)
		memcpy(buf, a->s.data, k);
	buf[k] = '\0';
	return 0;
}

int
onnx_want(const struct onnx_model *m, const struct onnx_node *n, int i,
    unsigned mask, char *err, size_t errlen)
{
	const struct onnx_value	*v;

	if (!ONNX_HAS_IN(n, i))
		return 0;
	v = ONNX_IN(m, n, i);
	if ((1u << v->dtype) & mask)
		return 0;
	onnx_node_err(err, errlen, n, "input '%s' has data type %s, which "
	    "is not supported here", v->name, dtype_kserve_name(v->dtype));
	return -1;
}

bool
onnx_ints_known(const struct onnx_model *m, const struct onnx_node *n,
    int i)
{
	return ONNX_HAS_IN(n, i) && ONNX_IN(m, n, i)->known;
}

int64_t
onnx_int_at(const struct onnx_value *v, size_t k)
{
	if (v->dtype == DT_INT32)
		return ((const int32_t *)v->data)[k];
	return ((const int64_t *)v->data)[k];
}

/* Numpy broadcasting of one dim pair, where -1 is "not known yet". */
int
onnx_bcast_dim(int64_t a, int64_t b, int64_t *out)
{
	if (a == b || b == 1)
		*out = a;
	else if (a == 1)
		*out = b;
	else if (a == -1)
		*out = b;
	else if (b == -1)
		*out = a;
	else
		return -1;
	return 0;
}

/* Whether a dim c broadcasts to y without growing y (unidirectional). */
static bool
bcast_to(int64_t c, int64_t y)
{
	return c == 1 || c == y || c == -1 || y == -1;
}

/* Product of dims[from..to), -1 if one of them is dynamic.  No overflow:
 * onnx_shape_check() bounds the product of the known dims of every
 * shape. */
int64_t
onnx_dims_prod(const int64_t *dims, int from, int to)
{
	int64_t	p = 1;

	for (int i = from; i < to; i++) {
		if (dims[i] < 0)
			return -1;
		p *= dims[i];
	}
	return p;
}

/* Maps axis from [-lim_neg, lim) to [0, lim). */
int
onnx_axis_norm(int64_t axis, int lim_neg, int lim, int64_t *out)
{
	if (axis < -lim_neg || axis >= lim)
		return -1;
	*out = axis < 0 ? axis + lim_neg : axis;
	return 0;
}

/* --- shared by the operator files --- */

int
onnx_infer_same(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);

	(void)err;
	(void)errlen;
	y->dtype = x->dtype;
	y->ndim = x->ndim;
	memcpy(y->shape, x->shape, sizeof(y->shape));
	return 0;
}

void
onnx_run_copy(struct onnx_model *m, struct onnx_node *n)
{
	struct onnx_value	*y = ONNX_OUT(m, n);

	memcpy(y->data, ONNX_IN(m, n, 0)->data,
	    y->count * dtype_size(y->dtype));
}

/* --- Gemm --- */

static int
attrs_gemm(struct onnx_model *m, struct onnx_node *n,
    Onnx__NodeProto *p, char *err, size_t errlen)
{
	int64_t	ta, tb;

	(void)m;
	if (onnx_attr_float(p, "alpha", 1.0f, &n->alpha, n, err, errlen) == -1 ||
	    onnx_attr_float(p, "beta", 1.0f, &n->beta, n, err, errlen) == -1 ||
	    onnx_attr_int(p, "transA", 0, &ta, n, err, errlen) == -1 ||
	    onnx_attr_int(p, "transB", 0, &tb, n, err, errlen) == -1)
		return -1;
	n->flags = (ta ? KERNEL_TRANS_A : 0) | (tb ? KERNEL_TRANS_B : 0);
	return 0;
}

static int
infer_gemm(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*a = ONNX_IN(m, n, 0), *b = ONNX_IN(m, n, 1);
	const struct onnx_value	*c = ONNX_HAS_IN(n, 2) ? ONNX_IN(m, n, 2) :
				    NULL;
	struct onnx_value	*y = ONNX_OUT(m, n);
	bool			 ta = n->flags & KERNEL_TRANS_A;
	bool			 tb = n->flags & KERNEL_TRANS_B;
	int64_t			 M, N, K, Kb, cm, cn;
	char			 sa[128], sb[128];

	if (onnx_want(m, n, 0, ONNX_T_F32, err, errlen) == -1 ||
	    onnx_want(m, n, 1, ONNX_T_F32, err, errlen) == -1 ||
	    onnx_want(m, n, 2, ONNX_T_F32, err, errlen) == -1)
		return -1;
	y->dtype = DT_FP32;

	onnx_fmt_shape(sa, sizeof(sa), a->shape, a->ndim);
	onnx_fmt_shape(sb, sizeof(sb), b->shape, b->ndim);
	if (a->ndim != 2 || b->ndim != 2) {
		onnx_node_err(err, errlen, n, "A and B must be 2-D, got %s "
		    "and %s", sa, sb);
		return -1;
	}
	M = a->shape[ta ? 1 : 0];
	K = a->shape[ta ? 0 : 1];
	Kb = b->shape[tb ? 1 : 0];
	N = b->shape[tb ? 0 : 1];
	if (K != -1 && Kb != -1 && K != Kb) {
		onnx_node_err(err, errlen, n, "inner dimensions differ: A is "
		    "%s (transA=%d), B is %s (transB=%d)", sa, ta, sb, tb);
		return -1;
	}
	if (c != NULL) {
		cm = c->ndim == 2 ? c->shape[0] : 1;
		cn = c->ndim >= 1 ? c->shape[c->ndim - 1] : 1;
		if (c->ndim > 2 || !bcast_to(cm, M) || !bcast_to(cn, N)) {
			onnx_fmt_shape(sa, sizeof(sa), c->shape, c->ndim);
			onnx_node_err(err, errlen, n, "C of shape %s does not "
			    "broadcast to [%lld,%lld]", sa, (long long)M,
			    (long long)N);
			return -1;
		}
	}
	y->ndim = 2;
	y->shape[0] = M;
	y->shape[1] = N;
	return 0;
}

static void
run_gemm(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*a = ONNX_IN(m, n, 0), *b = ONNX_IN(m, n, 1);
	const struct onnx_value	*c = ONNX_HAS_IN(n, 2) ? ONNX_IN(m, n, 2) :
				    NULL;
	struct onnx_value	*y = ONNX_OUT(m, n);
	size_t			 K = (size_t)a->shape[n->flags &
				    KERNEL_TRANS_A ? 0 : 1];
	size_t			 cm = 1, cn = 1;

	if (c != NULL && c->ndim == 2)
		cm = (size_t)c->shape[0];
	if (c != NULL && c->ndim >= 1)
		cn = (size_t)c->shape[c->ndim - 1];
	if (K != 0 && n->pack != NULL) {
		/* As kernel_gemm(): with beta 0, C is not read at all.  A
		 * fused Relu (n->relu) is applied as y is written. */
		gemm_run_act(y->data, a->data, K, n->pack,
		    (size_t)y->shape[0], (size_t)y->shape[1], K, n->alpha,
		    c != NULL && n->beta != 0.0f ? c->data : NULL, cm, cn,
		    n->beta, n->relu);
		return;
	}
	if (K == 0)
		gemm_k0(y->data, (size_t)y->shape[0], (size_t)y->shape[1],
		    c != NULL && n->beta != 0.0f ? c->data : NULL, cm, cn,
		    n->beta);
	else
		kernel_gemm(y->data, a->data, b->data, c != NULL ? c->data :
		    NULL, (size_t)y->shape[0], (size_t)y->shape[1], K,
		    n->flags, n->alpha, n->beta, cm, cn);
	if (n->relu)
		kernel_relu(y->data, y->data, y->count);
}

/* An empty inner dimension (K = 0; BLAS refuses its leading dims):
 * every product is an empty sum, so y (rows, cols) is beta times the
 * broadcast c (cm, cn), or zeros. */
static void
gemm_k0(float *y, size_t rows, size_t cols, const float *c, size_t cm,
    size_t cn, float beta)
{
	for (size_t i = 0; i < rows; i++)
		for (size_t j = 0; j < cols; j++)
			y[i * cols + j] = c == NULL ? 0.0f : beta *
			    c[(cm == 1 ? 0 : i * cn) + (cn == 1 ? 0 : j)];
}

/* --- MatMul --- */

/* Lifts both operands to one rank r >= 2 (1-D a is (1, k), 1-D b is
 * (k, 1), batch dims padded with 1 in front), as numpy matmul does. */
static int
matmul_lift(const struct onnx_value *a, const struct onnx_value *b,
    int64_t *as, int64_t *bs)
{
	int	an = a->ndim < 2 ? 2 : a->ndim, bn = b->ndim < 2 ? 2 : b->ndim;
	int	r = an > bn ? an : bn;

	for (int i = 0; i < r; i++)
		as[i] = bs[i] = 1;
	if (a->ndim == 1)
		as[r - 1] = a->shape[0];
	else
		memcpy(as + r - a->ndim, a->shape, a->ndim * sizeof(*as));
	if (b->ndim == 1)
		bs[r - 2] = b->shape[0];
	else
		memcpy(bs + r - b->ndim, b->shape, b->ndim * sizeof(*bs));
	return r;
}

static int
infer_matmul(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*a = ONNX_IN(m, n, 0), *b = ONNX_IN(m, n, 1);
	struct onnx_value	*y = ONNX_OUT(m, n);
	int64_t			 as[TENSOR_MAX_DIMS], bs[TENSOR_MAX_DIMS];
	int64_t			 ys[TENSOR_MAX_DIMS];
	char			 sa[128], sb[128];
	int			 r, nd = 0;

	if (onnx_want(m, n, 0, ONNX_T_F32, err, errlen) == -1 ||
	    onnx_want(m, n, 1, ONNX_T_F32, err, errlen) == -1)
		return -1;
	y->dtype = DT_FP32;

	onnx_fmt_shape(sa, sizeof(sa), a->shape, a->ndim);
	onnx_fmt_shape(sb, sizeof(sb), b->shape, b->ndim);
	if (a->ndim == 0 || b->ndim == 0) {
		onnx_node_err(err, errlen, n, "operands must have rank >= 1, "
		    "got %s and %s", sa, sb);
		return -1;
	}
	r = matmul_lift(a, b, as, bs);
	if (as[r - 1] != -1 && bs[r - 2] != -1 && as[r - 1] != bs[r - 2]) {
		onnx_node_err(err, errlen, n, "inner dimensions differ: %s "
		    "times %s", sa, sb);
		return -1;
	}
	for (int i = 0; i < r - 2; i++)
		if (onnx_bcast_dim(as[i], bs[i], &ys[nd++]) == -1) {
			onnx_node_err(err, errlen, n, "cannot broadcast batch "
			    "dimensions of %s and %s", sa, sb);
			return -1;
		}
	if (a->ndim >= 2)
		ys[nd++] = as[r - 2];
	if (b->ndim >= 2)
		ys[nd++] = bs[r - 1];
	y->ndim = nd;
	memcpy(y->shape, ys, nd * sizeof(*ys));
	return 0;
}

/* Operand or product v of a MatMul (rank r, batch dims against the
 * product's ys) as a view: where it lies, or, through the fused
 * Transpose node tr (exec.c), where that Transpose's input holds its
 * elements (out: where its output is to hold them). */
static void
matmul_view(struct onnx_model *m, const struct onnx_value *v, int tr,
    bool out, int r, const int64_t *ys, struct kernel_mat *mt)
{
	size_t	st[TENSOR_MAX_DIMS], cs[TENSOR_MAX_DIMS], s = 1;
	size_t	rows = (size_t)v->shape[r - 2], cols = (size_t)v->shape[r - 1];
	int	perm[TENSOR_MAX_DIMS];

	if (tr < 0) {
		for (int d = r - 1; d >= 0; d--) {
			st[d] = s;
			s *= (size_t)v->shape[d];
		}
		mt->base = v->data;
	} else {
		const struct onnx_node	*t = &m->nodes[tr];
		const struct onnx_value	*x = out ? &m->vals[t->out[0]] :
					    ONNX_IN(m, t, 0);

		/* exec.c checked the perm; the shapes agree with it. */
		(void)onnx_perm(t, r, perm);
		for (int d = r - 1; d >= 0; d--) {
			cs[d] = s;
			s *= (size_t)x->shape[d];
		}
		/* In: v's dim d is x's dim perm[d].  Out: v's dim perm[d]
		 * is x's dim d. */
		for (int d = 0; d < r; d++) {
			if (out)
				st[perm[d]] = cs[d];
			else
				st[d] = cs[perm[d]];
		}
		mt->base = out ? v->data : x->data;
	}
	/* Rows contiguous, or columns (a transposed operand); a dim of 1
	 * has no stride to speak of, and BLAS wants ld at least the
	 * stored row's length. */
	mt->trans = cols > 1 && st[r - 1] != 1;
	mt->ld = mt->trans ? st[r - 1] : st[r - 2];
	if (mt->ld < (mt->trans ? rows : cols))
		mt->ld = mt->trans ? rows : cols;
	if (mt->ld == 0)
		mt->ld = 1;
	for (int d = 0; d < r - 2; d++)
		mt->bstride[d] = v->shape[d] == 1 && ys[d] != 1 ? 0 : st[d];
}

static void
run_matmul(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*a = ONNX_IN(m, n, 0), *b = ONNX_IN(m, n, 1);
	struct onnx_value	*y = ONNX_OUT(m, n);
	int64_t			 as[TENSOR_MAX_DIMS], bs[TENSOR_MAX_DIMS];
	int64_t			 ys[TENSOR_MAX_DIMS];
	int			 r;

	r = matmul_lift(a, b, as, bs);
	if (as[r - 1] == 0) {
		/* K = 0: zeros, or the bias exec.c folded in. */
		gemm_k0(y->data, y->count / (size_t)bs[r - 1],
		    (size_t)bs[r - 1], m->fused && n->bias >= 0 ?
		    m->vals[n->bias].data : NULL, 1, (size_t)bs[r - 1], 1.0f);
		return;
	}
	if (m->fused && (n->tr[0] >= 0 || n->tr[1] >= 0 || n->tr_out >= 0)) {
		/* Operands or product seen through a fused Transpose: all
		 * of rank r (exec.c), no bias. */
		struct kernel_mat	va, vb, vy;

		matmul_view(m, a, n->tr[0], false, r, y->shape, &va);
		matmul_view(m, b, n->tr[1], false, r, y->shape, &vb);
		matmul_view(m, y, n->tr_out, true, r, y->shape, &vy);
		kernel_matmul_views(&vy, &va, &vb, y->shape, r - 2,
		    (size_t)y->shape[r - 2], (size_t)y->shape[r - 1],
		    (size_t)as[r - 1], n->scale);
		return;
	}
	if (n->pack != NULL) {
		/* b is a constant (k, n): a's rows, whatever its batch dims,
		 * are the rows of one product.  exec.c has run fuse() (the
		 * plan comes first), so scale and bias are set. */
		size_t	K = (size_t)b->shape[0], N = (size_t)b->shape[1];

		gemm_run(y->data, a->data, K, n->pack, y->count / N, N, K,
		    n->scale, n->bias >= 0 ? m->vals[n->bias].data : NULL, 1,
		    N, 1.0f);
		return;
	}
	/* The kernel wants the un-squeezed output; its layout is the same. */
	for (int i = 0; i < r - 2; i++)
		ys[i] = as[i] > bs[i] ? as[i] : bs[i];
	ys[r - 2] = as[r - 2];
	ys[r - 1] = bs[r - 1];
	/* exec.c may have folded a bias Add or a scaling Mul into this
	 * node. */
	if (m->fused && (n->bias >= 0 || n->scale != 1.0f))
		kernel_matmul_fused(y->data, ys, a->data, as, b->data, bs, r,
		    n->scale, n->bias >= 0 ? m->vals[n->bias].data : NULL);
	else
		kernel_matmul(y->data, ys, a->data, as, b->data, bs, r);
}

/* --- weights packed at load --- */

/* Products with fewer weights than this keep cblas_sgemm: packing would
 * gain little and the test models' weights stay in their files. */
#define ONNX_PACK_MIN	1024

/* Packed copies are private to each runtime, while the weights in the
 * model file's mapping are shared by every replica of the model (issue 4).
 * Packing pays most for small models, whose products are short and
 * dominated by OpenBLAS's per-call packing; a model with more weights
 * than this keeps them shared and goes through cblas_sgemm, which packs
 * per call but amortises it over large products. */
#define ONNX_PACK_MAX_BYTES	((size_t)32 << 20)

/* Whether n is a product with a constant 2-D FP32 weight the packed
 * kernel can take; its (K, N) and whether it is stored transposed. */
static bool
pack_dims(const struct onnx_model *m, const struct onnx_node *n, size_t *K,
    size_t *N, bool *tb)
{
	const struct onnx_value	*b;

	if (n->when != ONNX_AT_RUN || (n->op->run != run_gemm &&
	    n->op->run != run_matmul) || !ONNX_HAS_IN(n, 1))
		return false;
	*tb = false;
	if (n->op->run == run_gemm) {
		if (n->flags & KERNEL_TRANS_A)
			return false;
		*tb = (n->flags & KERNEL_TRANS_B) != 0;
	}
	b = ONNX_IN(m, n, 1);
	if (b->kind != ONNX_V_CONST || !b->known || b->dtype != DT_FP32 ||
	    b->ndim != 2)
		return false;
	*K = (size_t)b->shape[*tb ? 1 : 0];
	*N = (size_t)b->shape[*tb ? 0 : 1];
	/* Narrow products would mostly multiply padding. */
	return *K * *N >= ONNX_PACK_MIN && gemm_pack_floats(*K, *N) <=
	    2 * *K * *N;
}

void
onnx_pack_weights(struct onnx_model *m)
{
	size_t	total = 0, K, N;
	bool	tb;

	if (!gemm_fast())
		return;
	for (size_t i = 0; i < m->n_nodes; i++)
		if (pack_dims(m, &m->nodes[i], &K, &N, &tb))
			total += gemm_pack_floats(K, N) * sizeof(float);
	if (total > ONNX_PACK_MAX_BYTES)
		return;
	for (size_t i = 0; i < m->n_nodes; i++) {
		struct onnx_node	*n = &m->nodes[i];
		size_t			 floats;

		if (n->pack != NULL || !pack_dims(m, n, &K, &N, &tb))
			continue;
		floats = gemm_pack_floats(K, N);
		/* Not xmalloc: under --mem-limit-mb a model that leaves no
		 * room for the packed copy still runs, on cblas_sgemm. */
		if ((n->pack = malloc(floats * sizeof(float))) == NULL)
			continue;
		gemm_pack(n->pack, ONNX_IN(m, n, 1)->data, K, N, tb);
		m->const_bytes += floats * sizeof(float);
	}
}

/* --- Softmax --- */

int
onnx_attrs_softmax(struct onnx_model *m, struct onnx_node *n,
    Onnx__NodeProto *p, char *err, size_t errlen)
{
	/* Softmax-13 normalises one axis (default -1); before, the input
	 * was coerced to 2-D at axis (default 1). */
	return onnx_attr_int(p, "axis", m->opset >= 13 ? -1 : 1, &n->axis, n, err,
	    errlen);
}

int
onnx_infer_softmax(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	int64_t			 ax;

	if (onnx_want(m, n, 0, ONNX_T_F32, err, errlen) == -1)
		return -1;
	if (onnx_axis_norm(n->axis, x->ndim, x->ndim, &ax) == -1) {
		onnx_node_err(err, errlen, n, "axis %lld is out of range for "
		    "rank %d", (long long)n->axis, x->ndim);
		return -1;
	}
	return onnx_infer_same(m, n, err, errlen);
}

void
onnx_softmax_dims(const struct onnx_model *m, const struct onnx_node *n,
    size_t *outer, size_t *len, size_t *inner)
{
	const struct onnx_value	*y = ONNX_OUT(m, n);
	int64_t			 ax = 0;

	(void)onnx_axis_norm(n->axis, y->ndim, y->ndim, &ax);
	*outer = (size_t)onnx_dims_prod(y->shape, 0, (int)ax);
	*inner = 1;
	if (m->opset >= 13) {
		*len = (size_t)y->shape[ax];
		*inner = (size_t)onnx_dims_prod(y->shape, (int)ax + 1,
		    y->ndim);
	} else
		*len = (size_t)onnx_dims_prod(y->shape, (int)ax, y->ndim);
}

static void
run_softmax(struct onnx_model *m, struct onnx_node *n)
{
	size_t	outer, len, inner;

	onnx_softmax_dims(m, n, &outer, &len, &inner);
	kernel_softmax(ONNX_OUT(m, n)->data, ONNX_IN(m, n, 0)->data, outer,
	    len, inner);
}

/* --- Flatten --- */

static int
attrs_flatten(struct onnx_model *m, struct onnx_node *n,
    Onnx__NodeProto *p, char *err, size_t errlen)
{
	(void)m;
	return onnx_attr_int(p, "axis", 1, &n->axis, n, err, errlen);
}

static int
infer_flatten(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);
	int64_t			 ax;

	if (onnx_axis_norm(n->axis, x->ndim, x->ndim + 1, &ax) == -1) {
		onnx_node_err(err, errlen, n, "axis %lld is out of range for "
		    "rank %d", (long long)n->axis, x->ndim);
		return -1;
	}
	y->dtype = x->dtype;
	y->ndim = 2;
	y->shape[0] = onnx_dims_prod(x->shape, 0, (int)ax);
	y->shape[1] = onnx_dims_prod(x->shape, (int)ax, x->ndim);
	return 0;
}

/* --- Reshape --- */

static int
attrs_reshape(struct onnx_model *m, struct onnx_node *n,
    Onnx__NodeProto *p, char *err, size_t errlen)
{
	int64_t	az;

	(void)m;
	if (onnx_attr_int(p, "allowzero", 0, &az, n, err, errlen) == -1)
		return -1;
	n->allowzero = az != 0;
	return 0;
}

static int
infer_reshape(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0), *s = ONNX_IN(m, n, 1);
	struct onnx_value	*y = ONNX_OUT(m, n);
	const int64_t		*sv = s->data;
	int64_t			 total = 1, rest = 1, d;
	int			 neg = -1, nd;
	bool			 cancel = true;
	char			 sx[128], sy[128];

	if (onnx_want(m, n, 1, ONNX_T_I64, err, errlen) == -1)
		return -1;
	y->dtype = x->dtype;
	if (!s->known && s->kind != ONNX_V_PLAN) {
		onnx_node_err(err, errlen, n, "shape '%s' must be a constant "
		    "or computed from shapes", s->name);
		return -1;
	}
	if (s->ndim != 1 || s->shape[0] == -1 ||
	    s->shape[0] > TENSOR_MAX_DIMS) {
		onnx_node_err(err, errlen, n, "shape must be 1-D with at most "
		    "%d values", TENSOR_MAX_DIMS);
		return -1;
	}
	nd = (int)s->shape[0];
	if (!s->known) {
		/* Computed from the request's shapes, when planning. */
		y->ndim = nd;
		for (int i = 0; i < nd; i++)
			y->shape[i] = -1;
		return 0;
	}
	for (int i = 0; i < nd; i++) {
		d = sv[i];
		if (d == 0 && !n->allowzero) {
			if (i >= x->ndim) {
				onnx_node_err(err, errlen, n, "shape[%d] is 0 "
				    "but the input has rank %d", i, x->ndim);
				return -1;
			}
			d = x->shape[i];
		} else if (d == -1) {
			if (neg != -1) {
				onnx_node_err(err, errlen, n, "shape has more "
				    "than one -1");
				return -1;
			}
			neg = i;
		} else if (d < -1 || d > ONNX_MAX_ELEMS) {
			onnx_node_err(err, errlen, n, "shape[%d] is %lld", i,
			    (long long)d);
			return -1;
		}
		y->shape[i] = d;
	}
	/* A dynamic input dim kept in place by a 0 is on both sides and
	 * cancels out; any other leaves the -1 to the request's shapes. */
	for (int i = 0; i < x->ndim; i++) {
		if (x->shape[i] != -1)
			total *= x->shape[i];
		else if (i >= nd || sv[i] != 0 || n->allowzero)
			cancel = false;
	}
	for (int i = 0; i < nd; i++) {
		if (i == neg || y->shape[i] == -1)
			continue;
		if (rest > ONNX_MAX_ELEMS / (y->shape[i] ? y->shape[i] : 1)) {
			onnx_node_err(err, errlen, n, "shape is too large");
			return -1;
		}
		rest *= y->shape[i];
	}
	y->ndim = nd;
	if (!cancel)
		return 0;
	if (neg != -1 && rest != 0 && total % rest == 0)
		y->shape[neg] = total / rest;
	else if (neg != -1 || total != rest) {
		onnx_fmt_shape(sx, sizeof(sx), x->shape, x->ndim);
		onnx_fmt_shape(sy, sizeof(sy), sv, nd);
		onnx_node_err(err, errlen, n, "cannot reshape %s to %s", sx,
		    sy);
		return -1;
	}
	return 0;
}

/* --- Constant --- */

static int
attrs_constant(struct onnx_model *m, struct onnx_node *n,
    Onnx__NodeProto *p, char *err, size_t errlen)
{
	struct onnx_value	*y = ONNX_OUT(m, n);
	const char		*label = y->name;

	for (size_t i = 0; i < p->n_attribute; i++) {
		Onnx__AttributeProto	*a = p->attribute[i];
		const char		*an = a->name ? a->name : "";

		y->ndim = 0;
		if (strcmp(an, "value") == 0 && a->type == A_TENSOR &&
		    a->t != NULL)
			return onnx_tensor_load(y, a->t, label, err, errlen);
		if (strcmp(an, "value_float") == 0 && a->type == A_FLOAT) {
			y->dtype = DT_FP32;
			y->data = &a->f;
		} else if (strcmp(an, "value_int") == 0 && a->type == A_INT) {
			y->dtype = DT_INT64;
			y->data = &a->i;
		} else if (strcmp(an, "value_floats") == 0 &&
		    a->type == A_FLOATS && a->n_floats > 0) {
			y->dtype = DT_FP32;
			y->ndim = 1;
			y->dims[0] = (int64_t)a->n_floats;
			y->data = a->floats;
		} else if (strcmp(an, "value_ints") == 0 &&
		    a->type == A_INTS) {
			y->dtype = DT_INT64;
			y->ndim = 1;
			y->dims[0] = (int64_t)a->n_ints;
			y->data = a->ints;
		} else
			continue;
		if (y->ndim == 1 && y->dims[0] > ONNX_MAX_ELEMS)
			break;
		y->count = y->ndim == 1 ? (size_t)y->dims[0] : 1;
		return 0;
	}
	onnx_node_err(err, errlen, n, "no supported value attribute");
	return -1;
}

/* --- the table --- */

static const struct onnx_op core_ops[] = {
	{ "Constant", 0, 0, 1, 1, 0, "value value_float value_floats "
	    "value_int value_ints", attrs_constant, NULL, NULL },
	{ "Flatten", 1, 1, 1, 1, ONNX_OP_EMPTY_OK, "axis", attrs_flatten,
	    infer_flatten, onnx_run_copy },
	{ "Gemm", 2, 3, 1, 1, ONNX_OP_EMPTY_OK, "alpha beta transA transB",
	    attrs_gemm, infer_gemm, run_gemm },
	{ "MatMul", 2, 2, 1, 1, ONNX_OP_EMPTY_OK, "", NULL, infer_matmul,
	    run_matmul },
	{ "Reshape", 2, 2, 1, 1, ONNX_OP_EMPTY_OK, "allowzero", attrs_reshape,
	    infer_reshape, onnx_run_copy },
	{ "Softmax", 1, 1, 1, 1, 0, "axis", onnx_attrs_softmax,
	    onnx_infer_softmax, run_softmax },
};
const struct onnx_optab onnx_ops_core = {
	core_ops, sizeof(core_ops) / sizeof(core_ops[0])
};

const struct onnx_op *
onnx_op_find(const char *domain, const char *name)
{
	static const struct onnx_optab	*tabs[] = {
		&onnx_ops_core, &onnx_ops_elem, &onnx_ops_shape, &onnx_ops_nn,
		&onnx_ops_rnn
	};

	if (domain != NULL && *domain != '\0' &&
	    strcmp(domain, "ai.onnx") != 0)
		return NULL;
	for (size_t t = 0; t < sizeof(tabs) / sizeof(tabs[0]); t++)
		for (size_t i = 0; i < tabs[t]->n; i++)
			if (strcmp(tabs[t]->ops[i].name, name) == 0)
				return &tabs[t]->ops[i];
	return NULL;
}
