/* runtime/onnx/ops_elem.c - element-wise operators and reductions: unary
 * math, the broadcasting binary and comparison operators, Where, Cast,
 * Clip, Reduce*, LayerNormalization.
 *
 * FP32 Add/Sub/Mul/Div of the hot paths go through kernel_binary(); every
 * other combination walks the broadcast output once with an odometer and
 * computes in double (floats) or int64 (INT32, INT64, BOOL), which is
 * exact for the shape arithmetic that uses them. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/tensor.h"
#include "runtime/kernels.h"
#include "runtime/onnx/graph.h"

enum ew_op {
	EW_ADD, EW_SUB, EW_MUL, EW_DIV, EW_POW, EW_MIN, EW_MAX, EW_MOD,
	EW_EQ, EW_LT, EW_GT, EW_LE, EW_GE, EW_AND, EW_OR, EW_XOR, EW_WHERE,
	EW_SUM, EW_MEAN
};

enum un_op {
	UN_RELU, UN_SIGMOID, UN_TANH, UN_ERF, UN_SQRT, UN_EXP, UN_LOG,
	UN_ABS, UN_NEG, UN_RECIP, UN_FLOOR, UN_CEIL, UN_LEAKY, UN_ELU,
	UN_SELU, UN_HSIG, UN_SOFTSIGN, UN_SOFTPLUS, UN_SIN, UN_COS, UN_NOT,
	UN_SIGN, UN_GELU, UN_GELU_TANH, UN_ROUND, UN_HSWISH, UN_CLIP
};

enum red_op { RED_SUM, RED_MEAN, RED_MAX, RED_MIN, RED_PROD, RED_SUMSQ,
	RED_L1, RED_L2, RED_LOGSUM };

static double	ld(const struct onnx_value *, size_t);
static int64_t	ldi(const struct onnx_value *, size_t);
static void	st(struct onnx_value *, size_t, double);
static void	sti(struct onnx_value *, size_t, int64_t);
static void	strides(size_t *, const struct onnx_value *, int,
		    const int64_t *);

/* --- element access --- */

static double
ld(const struct onnx_value *v, size_t i)
{
	switch (v->dtype) {
	case DT_FP32:
		return ((const float *)v->data)[i];
	case DT_INT64:
		return (double)((const int64_t *)v->data)[i];
	case DT_INT32:
		return ((const int32_t *)v->data)[i];
	default:
		return ((const uint8_t *)v->data)[i];
	}
}

static int64_t
ldi(const struct onnx_value *v, size_t i)
{
	switch (v->dtype) {
	case DT_FP32: {
		float	f = ((const float *)v->data)[i];

		/* Truncate as numpy does, without undefined casts. */
		if (isnan(f))
			return 0;
		if (f >= 9.2e18f)
			return INT64_MAX;
		if (f <= -9.2e18f)
			return INT64_MIN;
		return (int64_t)f;
	}
	case DT_INT64:
		return ((const int64_t *)v->data)[i];
	case DT_INT32:
		return ((const int32_t *)v->data)[i];
	default:
		return ((const uint8_t *)v->data)[i];
	}
}

static void
st(struct onnx_value *v, size_t i, double x)
{
	switch (v->dtype) {
	case DT_FP32:
		((float *)v->data)[i] = (float)x;
		break;
	case DT_BOOL:
		((uint8_t *)v->data)[i] = x != 0.0;
		break;
	default:
		sti(v, i, isnan(x) ? 0 : x >= 9.2e18 ? INT64_MAX :
		    x <= -9.2e18 ? INT64_MIN : (int64_t)x);
		break;
	}
}

static void
sti(struct onnx_value *v, size_t i, int64_t x)
{
	switch (v->dtype) {
	case DT_FP32:
		((float *)v->data)[i] = (float)x;
		break;
	case DT_INT64:
		((int64_t *)v->data)[i] = x;
		break;
	case DT_INT32:
		((int32_t *)v->data)[i] = (int32_t)(uint32_t)x;
		break;
	default:
		((uint8_t *)v->data)[i] = x != 0;
		break;
	}
}

/* Element strides of x right-aligned against nd dims of shape ys; 0
 * where x broadcasts. */
static void
strides(size_t *s, const struct onnx_value *x, int nd, const int64_t *ys)
{
	size_t	k = 1;

	for (int i = nd - 1; i >= 0; i--) {
		int	j = i - (nd - x->ndim);

		if (j < 0 || x->shape[j] == 1 || ys[i] == 1)
			s[i] = 0;
		else {
			s[i] = k;
			k *= (size_t)x->shape[j];
		}
	}
}

/* --- broadcasting n-ary --- */

static int
attrs_ew(struct onnx_model *m, struct onnx_node *n, Onnx__NodeProto *p,
    char *err, size_t errlen)
{
	static const struct {
		const char	*name;
		enum ew_op	 op;
	} t[] = {
		{ "Add", EW_ADD }, { "Sub", EW_SUB }, { "Mul", EW_MUL },
		{ "Div", EW_DIV }, { "Pow", EW_POW }, { "Min", EW_MIN },
		{ "Max", EW_MAX }, { "Mod", EW_MOD }, { "Equal", EW_EQ },
		{ "Less", EW_LT }, { "Greater", EW_GT },
		{ "LessOrEqual", EW_LE }, { "GreaterOrEqual", EW_GE },
		{ "And", EW_AND }, { "Or", EW_OR }, { "Xor", EW_XOR },
		{ "Where", EW_WHERE }, { "Sum", EW_SUM }, { "Mean", EW_MEAN },
	};

	(void)m;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(t[i].name, n->op->name) == 0)
			n->i0 = t[i].op;
	if (n->i0 == EW_MOD &&
	    onnx_attr_int(p, "fmod", 0, &n->i1, n, err, errlen) == -1)
		return -1;
	return 0;
}

static int
infer_ew(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	struct onnx_value	*y = ONNX_OUT(m, n);
	const struct onnx_value	*a;
	enum ew_op		 op = (enum ew_op)n->i0;
	int			 nd = 0, first = op == EW_WHERE ? 1 : 0;
	unsigned		 mask;
	char			 sa[128], sb[128];

	switch (op) {
	case EW_AND: case EW_OR: case EW_XOR:
		mask = ONNX_T_BOOL;
		break;
	case EW_EQ:
		mask = ONNX_T_ANY;
		break;
	case EW_WHERE:
		if (onnx_want(m, n, 0, ONNX_T_BOOL, err, errlen) == -1)
			return -1;
		mask = ONNX_T_ANY;
		break;
	default:
		mask = ONNX_T_NUM;
		break;
	}
	a = ONNX_IN(m, n, first);
	for (int i = first; i < n->n_in; i++) {
		const struct onnx_value	*b = ONNX_IN(m, n, i);

		if (onnx_want(m, n, i, mask, err, errlen) == -1)
			return -1;
		/* Pow's exponent may have its own numeric type. */
		if (b->dtype != a->dtype && !(op == EW_POW && i == 1)) {
			onnx_node_err(err, errlen, n, "inputs have different "
			    "data types %s and %s", dtype_kserve_name(a->dtype),
			    dtype_kserve_name(b->dtype));
			return -1;
		}
	}
	for (int i = 0; i < n->n_in; i++)
		if (ONNX_IN(m, n, i)->ndim > nd)
			nd = ONNX_IN(m, n, i)->ndim;
	for (int d = 0; d < nd; d++)
		y->shape[d] = 1;
	for (int i = 0; i < n->n_in; i++) {
		const struct onnx_value	*b = ONNX_IN(m, n, i);

		for (int d = 0; d < b->ndim; d++) {
			int	k = d + nd - b->ndim;

			if (onnx_bcast_dim(y->shape[k], b->shape[d],
			    &y->shape[k]) == 0)
				continue;
			onnx_fmt_shape(sa, sizeof(sa), ONNX_IN(m, n, 0)->shape,
			    ONNX_IN(m, n, 0)->ndim);
			onnx_fmt_shape(sb, sizeof(sb), b->shape, b->ndim);
			onnx_node_err(err, errlen, n, "cannot broadcast %s "
			    "with %s", sa, sb);
			return -1;
		}
	}
	y->ndim = nd;
	if (op >= EW_EQ && op <= EW_XOR)
		y->dtype = DT_BOOL;
	else
		y->dtype = a->dtype;
	return 0;
}

static double
ew_f(enum ew_op op, double a, double b, int64_t fmod_)
{
	switch (op) {
	case EW_ADD: case EW_SUM: case EW_MEAN: return a + b;
	case EW_SUB: return a - b;
	case EW_MUL: return a * b;
	case EW_DIV: return a / b;
	case EW_POW: return pow(a, b);
	case EW_MIN: return isnan(a) || isnan(b) ? NAN : a < b ? a : b;
	case EW_MAX: return isnan(a) || isnan(b) ? NAN : a > b ? a : b;
	case EW_MOD:
		if (fmod_)
			return fmod(a, b);
		return a - b * floor(a / b);
	case EW_EQ: return a == b;
	case EW_LT: return a < b;
	case EW_GT: return a > b;
	case EW_LE: return a <= b;
	case EW_GE: return a >= b;
	default: return 0;
	}
}

static int64_t
ew_i(enum ew_op op, int64_t a, int64_t b, int64_t fmod_)
{
	uint64_t	ua = (uint64_t)a, ub = (uint64_t)b;

	switch (op) {
	/* Wrap around as the hardware does; never undefined. */
	case EW_ADD: case EW_SUM: case EW_MEAN: return (int64_t)(ua + ub);
	case EW_SUB: return (int64_t)(ua - ub);
	case EW_MUL: return (int64_t)(ua * ub);
	case EW_DIV:
		if (b == 0 || (a == INT64_MIN && b == -1))
			return 0;
		/* Integer Div truncates, as numpy and C. */
		return a / b;
	case EW_POW: {
		int64_t	r = 1;

		for (int64_t k = 0; k < b && k < 64; k++)
			r = (int64_t)((uint64_t)r * ua);
		return b < 0 ? 0 : r;
	}
	case EW_MIN: return a < b ? a : b;
	case EW_MAX: return a > b ? a : b;
	case EW_MOD: {
		int64_t	r;

		if (b == 0 || b == -1)
			return 0;
		r = a % b;
		/* fmod: the sign of a, as C; else of b, as Python. */
		return fmod_ ? r : r != 0 && ((r < 0) != (b < 0)) ? r + b : r;
	}
	case EW_EQ: return a == b;
	case EW_LT: return a < b;
	case EW_GT: return a > b;
	case EW_LE: return a <= b;
	case EW_GE: return a >= b;
	case EW_AND: return a && b;
	case EW_OR: return a || b;
	case EW_XOR: return (a != 0) != (b != 0);
	default: return 0;
	}
}

static void
run_ew(struct onnx_model *m, struct onnx_node *n)
{
	struct onnx_value	*y = ONNX_OUT(m, n);
	enum ew_op		 op = (enum ew_op)n->i0;
	const struct onnx_value	*x[3];
	size_t			 s[3][TENSOR_MAX_DIMS], off[3] = { 0 };
	size_t			 idx[TENSOR_MAX_DIMS] = { 0 };
	int			 nd = y->ndim, k = n->n_in > 3 ? 2 : n->n_in;
	bool			 fl;

	if (m->fused && n->gelu >= 0) {
		/* The last Mul of x / 2 * (1 + erf(x / sqrt(2))). */
		kernel_gelu(y->data, m->vals[n->gelu].data, y->count);
		return;
	}
	if (y->dtype == DT_FP32 && op <= EW_DIV && n->n_in == 2) {
		static const enum kernel_binop kb[] = { KERNEL_ADD,
		    KERNEL_SUB, KERNEL_MUL, KERNEL_DIV };
		const struct onnx_value	*a = ONNX_IN(m, n, 0);
		const struct onnx_value	*b = ONNX_IN(m, n, 1);

		kernel_binary(kb[op], y->data, y->shape, nd, a->data,
		    a->shape, a->ndim, b->data, b->shape, b->ndim);
		return;
	}
	/* Variadic Sum, Mean, Min, Max fold pairwise into y. */
	for (int j = 0; j < 3; j++)
		x[j] = ONNX_IN(m, n, j < n->n_in ? j : 0);
	for (int t = 1; t < (n->n_in > 2 ? n->n_in : 2); t++) {
		if (n->n_in == 1) {
			/* A single operand: a broadcasting copy. */
			x[1] = x[0];
		} else if (op != EW_WHERE && n->n_in > 2) {
			x[0] = t == 1 ? ONNX_IN(m, n, 0) : y;
			x[1] = ONNX_IN(m, n, t);
			k = 2;
		}
		fl = x[op == EW_WHERE ? 1 : 0]->dtype == DT_FP32;
		for (int j = 0; j < k; j++)
			strides(s[j], x[j], nd, y->shape);
		memset(idx, 0, sizeof(idx));
		memset(off, 0, sizeof(off));
		for (size_t i = 0; i < y->count; i++) {
			if (op == EW_WHERE) {
				bool	c = ((const uint8_t *)x[0]->data)[off[0]];
				const struct onnx_value	*src = c ? x[1] : x[2];
				size_t	o = c ? off[1] : off[2];

				if (fl)
					((float *)y->data)[i] =
					    ((const float *)src->data)[o];
				else
					sti(y, i, ldi(src, o));
			} else if (n->n_in == 1)
				st(y, i, ld(x[0], off[0]));
			else if (fl)
				st(y, i, ew_f(op, ld(x[0], off[0]),
				    ld(x[1], off[1]), n->i1));
			else if (op == EW_POW && x[1]->dtype == DT_FP32)
				sti(y, i, (int64_t)pow((double)ldi(x[0],
				    off[0]), ld(x[1], off[1])));
			else
				sti(y, i, ew_i(op, ldi(x[0], off[0]),
				    ldi(x[1], off[1]), n->i1));
			for (int d = nd - 1; d >= 0; d--) {
				for (int j = 0; j < k; j++)
					off[j] += s[j][d];
				if (++idx[d] < (size_t)y->shape[d])
					break;
				for (int j = 0; j < k; j++)
					off[j] -= s[j][d] * (size_t)y->shape[d];
				idx[d] = 0;
			}
		}
		if (op == EW_WHERE)
			break;
	}
	if (op == EW_MEAN && n->n_in > 1)
		for (size_t i = 0; i < y->count; i++)
			((float *)y->data)[i] /= (float)n->n_in;
}

/* --- unary --- */

static int
attrs_un(struct onnx_model *m, struct onnx_node *n, Onnx__NodeProto *p,
    char *err, size_t errlen)
{
	static const struct {
		const char	*name;
		enum un_op	 op;
		float		 alpha, beta;
	} t[] = {
		{ "Relu", UN_RELU, 0, 0 }, { "Sigmoid", UN_SIGMOID, 0, 0 },
		{ "Tanh", UN_TANH, 0, 0 }, { "Erf", UN_ERF, 0, 0 },
		{ "Sqrt", UN_SQRT, 0, 0 }, { "Exp", UN_EXP, 0, 0 },
		{ "Log", UN_LOG, 0, 0 }, { "Abs", UN_ABS, 0, 0 },
		{ "Neg", UN_NEG, 0, 0 }, { "Reciprocal", UN_RECIP, 0, 0 },
		{ "Floor", UN_FLOOR, 0, 0 }, { "Ceil", UN_CEIL, 0, 0 },
		{ "LeakyRelu", UN_LEAKY, 0.01f, 0 }, { "Elu", UN_ELU, 1, 0 },
		{ "Selu", UN_SELU, 1.67326319217681884765625f,
		    1.05070102214813232421875f },
		{ "HardSigmoid", UN_HSIG, 0.2f, 0.5f },
		{ "Softsign", UN_SOFTSIGN, 0, 0 },
		{ "Softplus", UN_SOFTPLUS, 0, 0 }, { "Sin", UN_SIN, 0, 0 },
		{ "Cos", UN_COS, 0, 0 }, { "Not", UN_NOT, 0, 0 },
		{ "Sign", UN_SIGN, 0, 0 }, { "Gelu", UN_GELU, 0, 0 },
		{ "Round", UN_ROUND, 0, 0 }, { "HardSwish", UN_HSWISH, 0, 0 },
		{ "Clip", UN_CLIP, 0, 0 },
	};
	char	approx[16];

	(void)m;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(t[i].name, n->op->name) == 0) {
			n->i0 = t[i].op;
			n->alpha = t[i].alpha;
			n->beta = t[i].beta;
		}
	if (n->i0 == UN_CLIP) {
		/* Before opset 11 the bounds were attributes. */
		n->alpha = -INFINITY;
		n->beta = INFINITY;
		return onnx_attr_float(p, "min", -INFINITY, &n->alpha, n, err,
		    errlen) == -1 || onnx_attr_float(p, "max", INFINITY,
		    &n->beta, n, err, errlen) == -1 ? -1 : 0;
	}
	if (n->i0 == UN_GELU) {
		if (onnx_attr_str(p, "approximate", "none", approx,
		    sizeof(approx), n, err, errlen) == -1)
			return -1;
		if (strcmp(approx, "tanh") == 0)
			n->i0 = UN_GELU_TANH;
		else if (strcmp(approx, "none") != 0) {
			onnx_node_err(err, errlen, n, "approximate '%s' is "
			    "not supported", approx);
			return -1;
		}
	}
	if (onnx_attr_float(p, "alpha", n->alpha, &n->alpha, n, err,
	    errlen) == -1 || onnx_attr_float(p, n->i0 == UN_SELU ? "gamma" :
	    "beta", n->beta, &n->beta, n, err, errlen) == -1)
		return -1;
	return 0;
}

static int
infer_un(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	unsigned	mask = ONNX_T_F32;

	switch ((enum un_op)n->i0) {
	case UN_ABS: case UN_NEG: case UN_SIGN: case UN_RELU: case UN_CLIP:
		mask = ONNX_T_NUM;
		break;
	case UN_NOT:
		mask = ONNX_T_BOOL;
		break;
	default:
		break;
	}
	if (onnx_want(m, n, 0, mask, err, errlen) == -1 ||
	    onnx_want(m, n, 1, (1u << ONNX_IN(m, n, 0)->dtype), err,
	    errlen) == -1 || onnx_want(m, n, 2, (1u << ONNX_IN(m, n,
	    0)->dtype), err, errlen) == -1)
		return -1;
	return onnx_infer_same(m, n, err, errlen);
}

static double
un_f(enum un_op op, double x, double a, double b)
{
	switch (op) {
	case UN_RELU: return x > 0 ? x : 0;
	case UN_SIGMOID: return 1 / (1 + exp(-x));
	case UN_TANH: return tanh(x);
	case UN_ERF: return erf(x);
	case UN_SQRT: return sqrt(x);
	case UN_EXP: return exp(x);
	case UN_LOG: return log(x);
	case UN_ABS: return fabs(x);
	case UN_NEG: return -x;
	case UN_RECIP: return 1 / x;
	case UN_FLOOR: return floor(x);
	case UN_CEIL: return ceil(x);
	case UN_LEAKY: return x >= 0 ? x : a * x;
	case UN_ELU: return x >= 0 ? x : a * (exp(x) - 1);
	case UN_SELU: return b * (x > 0 ? x : a * (exp(x) - 1));
	case UN_HSIG: return fmax(0, fmin(1, a * x + b));
	case UN_SOFTSIGN: return x / (1 + fabs(x));
	case UN_SOFTPLUS: return x > 30 ? x : log1p(exp(x));
	case UN_SIN: return sin(x);
	case UN_COS: return cos(x);
	case UN_NOT: return x == 0;
	case UN_SIGN: return x > 0 ? 1 : x < 0 ? -1 : 0;
	case UN_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
	case UN_GELU_TANH:
		return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) *
		    (x + 0.044715 * x * x * x)));
	case UN_ROUND: return nearbyint(x);
	case UN_HSWISH: return x * fmax(0, fmin(1, x / 6 + 0.5));
	case UN_CLIP: return x < a ? a : x > b ? b : x;
	}
	return x;
}

static void
run_un(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);
	enum un_op		 op = (enum un_op)n->i0;
	double			 a = n->alpha, b = n->beta;

	if (op == UN_CLIP && ONNX_HAS_IN(n, 1))
		a = ld(ONNX_IN(m, n, 1), 0);
	if (op == UN_CLIP && ONNX_HAS_IN(n, 2))
		b = ld(ONNX_IN(m, n, 2), 0);
	switch (x->dtype == DT_FP32 ? op : UN_SIGN + 100) {
	case UN_RELU:
		kernel_relu(y->data, x->data, y->count);
		return;
	case UN_SIGMOID:
		kernel_sigmoid(y->data, x->data, y->count);
		return;
	case UN_TANH:
		kernel_tanh(y->data, x->data, y->count);
		return;
	case UN_ERF:
		kernel_erf(y->data, x->data, y->count);
		return;
	case UN_GELU:
		kernel_gelu(y->data, x->data, y->count);
		return;
	default:
		break;
	}
	if (x->dtype == DT_FP32) {
		const float	*xp = x->data;
		float		*yp = y->data;

		if (op == UN_CLIP && isnan(a))
			a = -INFINITY;
		for (size_t i = 0; i < y->count; i++)
			yp[i] = isnan(xp[i]) && op == UN_CLIP ? xp[i] :
			    (float)un_f(op, xp[i], a, b);
		return;
	}
	for (size_t i = 0; i < y->count; i++) {
		int64_t	v = ldi(x, i), r;

		switch (op) {
		case UN_ABS: r = v < 0 ? (int64_t)(0 - (uint64_t)v) : v; break;
		case UN_NEG: r = (int64_t)(0 - (uint64_t)v); break;
		case UN_SIGN: r = v > 0 ? 1 : v < 0 ? -1 : 0; break;
		case UN_RELU: r = v > 0 ? v : 0; break;
		case UN_NOT: r = v == 0; break;
		case UN_CLIP: {
			int64_t	lo = ONNX_HAS_IN(n, 1) ?
			    ldi(ONNX_IN(m, n, 1), 0) : INT64_MIN;
			int64_t	hi = ONNX_HAS_IN(n, 2) ?
			    ldi(ONNX_IN(m, n, 2), 0) : INT64_MAX;

			r = v < lo ? lo : v > hi ? hi : v;
			break;
		}
		default: r = v; break;
		}
		sti(y, i, r);
	}
}

/* --- Identity, Dropout (inference: identity, mask all true) --- */

static int
infer_dropout(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	/* Inference only: training_mode must be a constant false. */
	if (ONNX_HAS_IN(n, 2) && (!ONNX_IN(m, n, 2)->known ||
	    ONNX_IN(m, n, 2)->dtype != DT_BOOL ||
	    *(const uint8_t *)ONNX_IN(m, n, 2)->data != 0)) {
		onnx_node_err(err, errlen, n, "training_mode is not "
		    "supported");
		return -1;
	}
	if (onnx_infer_same(m, n, err, errlen) == -1)
		return -1;
	if (ONNX_HAS_OUT(n, 1)) {
		struct onnx_value	*mk = ONNX_OUTI(m, n, 1);

		mk->dtype = DT_BOOL;
		mk->ndim = ONNX_OUT(m, n)->ndim;
		memcpy(mk->shape, ONNX_OUT(m, n)->shape, sizeof(mk->shape));
	}
	return 0;
}

static void
run_dropout(struct onnx_model *m, struct onnx_node *n)
{
	onnx_run_copy(m, n);
	if (ONNX_HAS_OUT(n, 1))
		memset(ONNX_OUTI(m, n, 1)->data, 1, ONNX_OUTI(m, n, 1)->count);
}

/* --- Cast --- */

static int
attrs_cast(struct onnx_model *m, struct onnx_node *n, Onnx__NodeProto *p,
    char *err, size_t errlen)
{
	enum dtype	dt;

	(void)m;
	if (onnx_attr_int(p, "to", 0, &n->i0, n, err, errlen) == -1)
		return -1;
	dt = n->i0 > 0 && n->i0 < 64 ? onnx_dtype((int)n->i0) : DT_INVALID;
	if (dt == DT_INVALID || ((1u << dt) & ONNX_T_ANY) == 0) {
		onnx_node_err(err, errlen, n, "cast to %s is not supported",
		    onnx_dtype_name((int)n->i0));
		return -1;
	}
	n->i1 = dt;
	return 0;
}

static int
infer_cast(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	if (onnx_want(m, n, 0, ONNX_T_ANY, err, errlen) == -1 ||
	    onnx_infer_same(m, n, err, errlen) == -1)
		return -1;
	ONNX_OUT(m, n)->dtype = (enum dtype)n->i1;
	return 0;
}

static void
run_cast(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);

	if (x->dtype == y->dtype) {
		onnx_run_copy(m, n);
		return;
	}
	for (size_t i = 0; i < y->count; i++) {
		if (x->dtype == DT_FP32)
			st(y, i, ld(x, i));
		else
			sti(y, i, ldi(x, i));
	}
}

/* --- reductions --- */

static int
attrs_red(struct onnx_model *m, struct onnx_node *n, Onnx__NodeProto *p,
    char *err, size_t errlen)
{
	static const char *const names[] = { "ReduceSum", "ReduceMean",
	    "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare",
	    "ReduceL1", "ReduceL2", "ReduceLogSum" };

	(void)m;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(names[i], n->op->name) == 0)
			n->i0 = (int64_t)i;
	return onnx_attr_int(p, "keepdims", 1, &n->i1, n, err, errlen) ==
	    -1 || onnx_attr_int(p, "noop_with_empty_axes", 0, &n->i2, n, err,
	    errlen) == -1 || onnx_attr_ints(p, "axes", &n->ints, &n->n_ints,
	    n, err, errlen) == -1 ? -1 : 0;
}

/* Which axes of x are reduced, as a bit mask; -1 with a message. */
static int
red_axes(struct onnx_model *m, struct onnx_node *n, unsigned *mask,
    char *err, size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	size_t			 na = n->n_ints;
	int64_t			 ax;

	*mask = 0;
	if (ONNX_HAS_IN(n, 1)) {
		const struct onnx_value	*a = ONNX_IN(m, n, 1);

		if (onnx_want(m, n, 1, ONNX_T_I64, err, errlen) == -1)
			return -1;
		if (!a->known && a->kind == ONNX_V_PLAN)
			return 1;	/* known when planning */
		if (!a->known) {
			onnx_node_err(err, errlen, n, "axes must be a "
			    "constant");
			return -1;
		}
		na = a->count;
	}
	for (size_t i = 0; i < na; i++) {
		int64_t	v = ONNX_HAS_IN(n, 1) ? onnx_int_at(ONNX_IN(m, n, 1),
		    i) : n->ints[i];

		if (onnx_axis_norm(v, x->ndim, x->ndim, &ax) == -1) {
			onnx_node_err(err, errlen, n, "axis %lld is out of "
			    "range for rank %d", (long long)v, x->ndim);
			return -1;
		}
		*mask |= 1u << ax;
	}
	if (na == 0 && !n->i2)
		*mask = (1u << x->ndim) - 1;
	return 0;
}

static int
infer_red(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);
	unsigned		 mask;
	int			 nd = 0, r;

	if (onnx_want(m, n, 0, ONNX_T_F32, err, errlen) == -1 ||
	    (r = red_axes(m, n, &mask, err, errlen)) == -1)
		return -1;
	y->dtype = x->dtype;
	if (r == 1) {
		/* Axes from a request value: dims known when planning. */
		y->ndim = x->ndim - (n->i1 ? 0 : (int)ONNX_IN(m, n, 1)->count);
		if (y->ndim < 0)
			y->ndim = 0;
		for (int d = 0; d < y->ndim; d++)
			y->shape[d] = -1;
		return 0;
	}
	for (int d = 0; d < x->ndim; d++) {
		if (!(mask & (1u << d)))
			y->shape[nd++] = x->shape[d];
		else if (n->i1)
			y->shape[nd++] = 1;
	}
	y->ndim = nd;
	return 0;
}

static void
run_red(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);
	const float		*xp = x->data;
	float			*yp = y->data;
	enum red_op		 op = (enum red_op)n->i0;
	size_t			 s[TENSOR_MAX_DIMS], idx[TENSOR_MAX_DIMS];
	size_t			 k = 1, off = 0, per;
	unsigned		 mask = 0;
	char			 err[8];

	(void)red_axes(m, n, &mask, err, sizeof(err));
	/* Output strides over x's dims; 0 on reduced axes. */
	for (int d = x->ndim - 1; d >= 0; d--) {
		s[d] = mask & (1u << d) ? 0 : k;
		if (!(mask & (1u << d)))
			k *= (size_t)x->shape[d];
		idx[d] = 0;
	}
	per = y->count ? x->count / y->count : 1;
	for (size_t i = 0; i < y->count; i++)
		yp[i] = op == RED_MAX ? -INFINITY : op == RED_MIN ? INFINITY :
		    op == RED_PROD ? 1.0f : 0.0f;
	for (size_t i = 0; i < x->count; i++) {
		float	v = xp[i];

		switch (op) {
		case RED_SUM: case RED_MEAN: case RED_LOGSUM:
			yp[off] += v;
			break;
		case RED_MAX:
			if (v > yp[off] || isnan(v))
				yp[off] = v;
			break;
		case RED_MIN:
			if (v < yp[off] || isnan(v))
				yp[off] = v;
			break;
		case RED_PROD:
			yp[off] *= v;
			break;
		case RED_SUMSQ: case RED_L2:
			yp[off] += v * v;
			break;
		case RED_L1:
			yp[off] += fabsf(v);
			break;
		}
		for (int d = x->ndim - 1; d >= 0; d--) {
			off += s[d];
			if (++idx[d] < (size_t)x->shape[d])
				break;
			off -= s[d] * (size_t)x->shape[d];
			idx[d] = 0;
		}
	}
	for (size_t i = 0; i < y->count; i++) {
		if (op == RED_MEAN)
			yp[i] /= (float)per;
		else if (op == RED_L2)
			yp[i] = sqrtf(yp[i]);
		else if (op == RED_LOGSUM)
			yp[i] = logf(yp[i]);
	}
}

/* --- LayerNormalization --- */

static int
attrs_ln(struct onnx_model *m, struct onnx_node *n, Onnx__NodeProto *p,
    char *err, size_t errlen)
{
	(void)m;
	return onnx_attr_int(p, "axis", -1, &n->axis, n, err, errlen) == -1 ||
	    onnx_attr_float(p, "epsilon", 1e-5f, &n->eps, n, err, errlen) ==
	    -1 || onnx_attr_int(p, "stash_type", 1, &n->i0, n, err, errlen) ==
	    -1 ? -1 : 0;
}

static int
infer_ln(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	int64_t			 ax, inner;

	if (onnx_want(m, n, 0, ONNX_T_F32, err, errlen) == -1 ||
	    onnx_want(m, n, 1, ONNX_T_F32, err, errlen) == -1 ||
	    onnx_want(m, n, 2, ONNX_T_F32, err, errlen) == -1)
		return -1;
	if (onnx_axis_norm(n->axis, x->ndim, x->ndim, &ax) == -1) {
		onnx_node_err(err, errlen, n, "axis %lld is out of range for "
		    "rank %d", (long long)n->axis, x->ndim);
		return -1;
	}
	inner = onnx_dims_prod(x->shape, (int)ax, x->ndim);
	for (int i = 1; i < 3; i++) {
		const struct onnx_value	*s;

		if (!ONNX_HAS_IN(n, i))
			continue;
		s = ONNX_IN(m, n, i);
		if (inner != -1 && onnx_dims_prod(s->shape, 0, s->ndim) !=
		    -1 && onnx_dims_prod(s->shape, 0, s->ndim) != inner) {
			onnx_node_err(err, errlen, n, "scale and bias must "
			    "have the normalised shape");
			return -1;
		}
	}
	n->i3 = ax;
	(void)onnx_infer_same(m, n, err, errlen);
	for (int j = 1; j < n->n_out; j++) {
		struct onnx_value	*o;

		if (!ONNX_HAS_OUT(n, j))
			continue;
		o = ONNX_OUTI(m, n, j);
		o->dtype = DT_FP32;
		o->ndim = x->ndim;
		for (int d = 0; d < x->ndim; d++)
			o->shape[d] = d < ax ? x->shape[d] : 1;
	}
	return 0;
}

static void
run_ln(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);
	const float		*sc = ONNX_IN(m, n, 1)->data;
	const float		*bi = ONNX_HAS_IN(n, 2) ? ONNX_IN(m, n, 2)->data :
				    NULL;
	size_t			 inner = (size_t)onnx_dims_prod(x->shape,
				    (int)n->i3, x->ndim);
	size_t			 outer = x->count / inner;

	kernel_layernorm(y->data, x->data, sc, bi, outer, inner, n->eps,
	    ONNX_HAS_OUT(n, 1) ? ONNX_OUTI(m, n, 1)->data : NULL,
	    ONNX_HAS_OUT(n, 2) ? ONNX_OUTI(m, n, 2)->data : NULL);
}

/* --- the table --- */

/* An empty operand broadcasts to an empty output, and reductions of
 * nothing start from their identity: both take empty inputs. */
#define EW(name, lo, hi, known) \
	{ name, lo, hi, 1, 1, ONNX_OP_EMPTY_OK, known, attrs_ew, infer_ew, \
	    run_ew }
#define UN(name, known) \
	{ name, 1, 1, 1, 1, 0, known, attrs_un, infer_un, run_un }
#define RED(name) \
	{ name, 1, 2, 1, 1, ONNX_OP_EMPTY_OK, \
	    "axes keepdims noop_with_empty_axes", \
	    attrs_red, infer_red, run_red }

static const struct onnx_op elem_ops[] = {
	UN("Abs", ""), EW("Add", 2, 2, ""), EW("And", 2, 2, ""),
	{ "Cast", 1, 1, 1, 1, ONNX_OP_EMPTY_OK, "to saturate", attrs_cast, infer_cast,
	    run_cast },
	UN("Ceil", ""),
	{ "Clip", 1, 3, 1, 1, 0, "min max", attrs_un, infer_un, run_un },
	UN("Cos", ""), EW("Div", 2, 2, ""),
	{ "Dropout", 1, 3, 1, 2, 0, "ratio seed is_test", NULL,
	    infer_dropout, run_dropout },
	UN("Elu", "alpha"), EW("Equal", 2, 2, ""), UN("Erf", ""),
	UN("Exp", ""), UN("Floor", ""), UN("Gelu", "approximate"),
	EW("Greater", 2, 2, ""), EW("GreaterOrEqual", 2, 2, ""),
	UN("HardSigmoid", "alpha beta"), UN("HardSwish", ""),
	{ "Identity", 1, 1, 1, 1, 0, "", NULL, onnx_infer_same,
	    onnx_run_copy },
	{ "LayerNormalization", 2, 3, 1, 3, 0, "axis epsilon stash_type",
	    attrs_ln, infer_ln, run_ln },
	UN("LeakyRelu", "alpha"), EW("Less", 2, 2, ""),
	EW("LessOrEqual", 2, 2, ""), UN("Log", ""),
	EW("Max", 1, ONNX_VARIADIC, ""), EW("Mean", 1, ONNX_VARIADIC, ""),
	EW("Min", 1, ONNX_VARIADIC, ""), EW("Mod", 2, 2, "fmod"),
	EW("Mul", 2, 2, ""), UN("Neg", ""), UN("Not", ""),
	EW("Or", 2, 2, ""), EW("Pow", 2, 2, ""), UN("Reciprocal", ""),
	RED("ReduceL1"), RED("ReduceL2"), RED("ReduceLogSum"),
	RED("ReduceMax"), RED("ReduceMean"), RED("ReduceMin"),
	RED("ReduceProd"), RED("ReduceSum"), RED("ReduceSumSquare"),
	UN("Relu", ""), UN("Round", ""), UN("Selu", "alpha gamma"),
	UN("Sigmoid", ""), UN("Sign", ""), UN("Sin", ""),
	UN("Softplus", ""), UN("Softsign", ""), UN("Sqrt", ""),
	EW("Sub", 2, 2, ""), EW("Sum", 1, ONNX_VARIADIC, ""),
	UN("Tanh", ""), EW("Where", 3, 3, ""), EW("Xor", 2, 2, ""),
};
const struct onnx_optab onnx_ops_elem = {
	elem_ops, sizeof(elem_ops) / sizeof(elem_ops[0])
};
