/* runtime/onnx/ops_shape.c - operators that move data without computing:
 * Shape, Size, Gather, Concat, Slice, Split, Squeeze, Unsqueeze,
 * Transpose, Expand, ConstantOfShape.  They work on any element type.
 *
 * Operands that ONNX moved from attributes to inputs over the opsets
 * (Squeeze/Unsqueeze axes and Split's split at 13, Slice's starts and
 * ends at 10) are read from whichever the node has.  Inputs that decide
 * an output shape must be known: constants, or values computed while
 * planning (then infer() at load answers -1 dims). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/onnx/graph.h"

#define ESZ(v)	dtype_size((v)->dtype)

static int	ints_in(struct onnx_model *, struct onnx_node *, int,
		    const int64_t **, size_t *, int64_t *, size_t, char *,
		    size_t);

/* The integer list of input i (or the node's INTS attribute when input i
 * is absent) into buf; 1 if it is not known yet (a plan-time value at
 * load), 0 when *vals is set, -1 with a message. */
static int
ints_in(struct onnx_model *m, struct onnx_node *n, int i,
    const int64_t **vals, size_t *cnt, int64_t *buf, size_t cap, char *err,
    size_t errlen)
{
	const struct onnx_value	*v;

	if (!ONNX_HAS_IN(n, i)) {
		*vals = n->ints;
		*cnt = n->n_ints;
		return 0;
	}
	v = ONNX_IN(m, n, i);
	if (onnx_want(m, n, i, ONNX_T_INT, err, errlen) == -1)
		return -1;
	if (!v->known) {
		if (v->kind == ONNX_V_PLAN)
			return 1;
		onnx_node_err(err, errlen, n, "input '%s' must be a constant "
		    "or computed from shapes", v->name);
		return -1;
	}
	if (v->count > cap) {
		onnx_node_err(err, errlen, n, "input '%s' has more than %zu "
		    "values", v->name, cap);
		return -1;
	}
	for (size_t k = 0; k < v->count; k++)
		buf[k] = onnx_int_at(v, k);
	*vals = buf;
	*cnt = v->count;
	return 0;
}

static int
attrs_axes(struct onnx_model *m, struct onnx_node *n, Onnx__NodeProto *p,
    char *err, size_t errlen)
{
	(void)m;
	return onnx_attr_ints(p, strcmp(n->op->name, "Split") == 0 ? "split" :
	    strcmp(n->op->name, "Transpose") == 0 ? "perm" : "axes",
	    &n->ints, &n->n_ints, n, err, errlen) == -1 ||
	    onnx_attr_int(p, "axis", 0, &n->axis, n, err, errlen) == -1 ||
	    onnx_attr_int(p, "start", 0, &n->i1, n, err, errlen) == -1 ||
	    onnx_attr_int(p, "end", INT64_MAX, &n->i2, n, err, errlen) == -1 ||
	    onnx_attr_int(p, "num_outputs", 0, &n->i3, n, err, errlen) == -1 ?
	    -1 : 0;
}

/* --- Shape, Size --- */

static int64_t
clampi(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static int
infer_shape(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);
	int64_t			 s, e;

	(void)err;
	(void)errlen;
	y->dtype = DT_INT64;
	if (strcmp(n->op->name, "Size") == 0) {
		y->ndim = 0;
		return 0;
	}
	s = n->i1 < 0 ? n->i1 + x->ndim : n->i1;
	e = n->i2 < 0 ? n->i2 + x->ndim : n->i2;
	s = clampi(s, 0, x->ndim);
	e = clampi(e, 0, x->ndim);
	y->ndim = 1;
	y->shape[0] = e > s ? e - s : 0;
	n->axis = s;
	return 0;
}

static void
run_shape(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);
	int64_t			*yp = y->data;

	if (y->ndim == 0) {
		yp[0] = onnx_dims_prod(x->shape, 0, x->ndim);
		return;
	}
	for (size_t i = 0; i < y->count; i++)
		yp[i] = x->shape[n->axis + (int64_t)i];
}

/* --- Gather --- */

static int
infer_gather(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0), *ix = ONNX_IN(m, n, 1);
	struct onnx_value	*y = ONNX_OUT(m, n);
	int64_t			 ax;
	int			 nd = 0;

	if (onnx_want(m, n, 1, ONNX_T_INT, err, errlen) == -1)
		return -1;
	if (onnx_axis_norm(n->axis, x->ndim, x->ndim, &ax) == -1 ||
	    x->ndim - 1 + ix->ndim > TENSOR_MAX_DIMS) {
		onnx_node_err(err, errlen, n, "axis %lld is out of range for "
		    "rank %d", (long long)n->axis, x->ndim);
		return -1;
	}
	/* run_gather() maps bad indices to row 0, which an empty axis
	 * does not have. */
	if (x->shape[ax] == 0 && onnx_dims_prod(ix->shape, 0, ix->ndim) > 0) {
		onnx_node_err(err, errlen, n, "indices are out of range of "
		    "an empty axis %lld", (long long)ax);
		return -1;
	}
	y->dtype = x->dtype;
	for (int d = 0; d < ax; d++)
		y->shape[nd++] = x->shape[d];
	for (int d = 0; d < ix->ndim; d++)
		y->shape[nd++] = ix->shape[d];
	for (int d = (int)ax + 1; d < x->ndim; d++)
		y->shape[nd++] = x->shape[d];
	y->ndim = nd;
	n->i0 = ax;
	return 0;
}

static void
run_gather(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0), *ix = ONNX_IN(m, n, 1);
	struct onnx_value	*y = ONNX_OUT(m, n);
	int			 ax = (int)n->i0;
	size_t			 outer = (size_t)onnx_dims_prod(x->shape, 0, ax);
	size_t			 dim = (size_t)x->shape[ax];
	size_t			 inner = (size_t)onnx_dims_prod(x->shape,
				    ax + 1, x->ndim) * ESZ(x);
	const char		*xp = x->data;
	char			*yp = y->data;

	for (size_t o = 0; o < outer; o++)
		for (size_t k = 0; k < ix->count; k++) {
			int64_t	i = onnx_int_at(ix, k);

			/* Out-of-range indices read row 0 rather than
			 * memory we do not own: ONNX leaves them undefined. */
			if (i < 0)
				i += (int64_t)dim;
			if (i < 0 || (size_t)i >= dim)
				i = 0;
			memcpy(yp, xp + (o * dim + (size_t)i) * inner, inner);
			yp += inner;
		}
}

/* --- Concat --- */

static int
infer_concat(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);
	int64_t			 ax, sum = 0;

	if (onnx_axis_norm(n->axis, x->ndim, x->ndim, &ax) == -1) {
		onnx_node_err(err, errlen, n, "axis %lld is out of range for "
		    "rank %d", (long long)n->axis, x->ndim);
		return -1;
	}
	y->dtype = x->dtype;
	y->ndim = x->ndim;
	memcpy(y->shape, x->shape, sizeof(y->shape));
	for (int i = 0; i < n->n_in; i++) {
		const struct onnx_value	*v = ONNX_IN(m, n, i);

		if (v->dtype != x->dtype || v->ndim != x->ndim) {
			onnx_node_err(err, errlen, n, "inputs differ in data "
			    "type or rank");
			return -1;
		}
		for (int d = 0; d < x->ndim; d++) {
			if (d == ax || v->shape[d] == -1)
				continue;
			if (y->shape[d] == -1)
				y->shape[d] = v->shape[d];
			else if (y->shape[d] != v->shape[d]) {
				onnx_node_err(err, errlen, n, "inputs differ "
				    "in dimension %d", d);
				return -1;
			}
		}
		if (sum != -1)
			sum = v->shape[ax] == -1 ? -1 : sum + v->shape[ax];
	}
	y->shape[ax] = sum;
	n->i0 = ax;
	return 0;
}

static void
run_concat(struct onnx_model *m, struct onnx_node *n)
{
	struct onnx_value	*y = ONNX_OUT(m, n);
	int			 ax = (int)n->i0;
	size_t			 outer = (size_t)onnx_dims_prod(y->shape, 0, ax);
	size_t			 inner = (size_t)onnx_dims_prod(y->shape,
				    ax + 1, y->ndim) * ESZ(y);
	char			*yp = y->data;

	for (size_t o = 0; o < outer; o++)
		for (int i = 0; i < n->n_in; i++) {
			const struct onnx_value	*x = ONNX_IN(m, n, i);
			size_t	len = (size_t)x->shape[ax] * inner;

			memcpy(yp, (const char *)x->data + o * len, len);
			yp += len;
		}
}

/* --- Squeeze, Unsqueeze --- */

static int
infer_squeeze(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);
	bool			 unsq = strcmp(n->op->name, "Unsqueeze") == 0;
	const int64_t		*ax;
	int64_t			 buf[TENSOR_MAX_DIMS], a;
	size_t			 na;
	unsigned		 mask = 0;
	int			 r, nd, k = 0;

	if ((r = ints_in(m, n, 1, &ax, &na, buf, TENSOR_MAX_DIMS, err,
	    errlen)) == -1)
		return -1;
	y->dtype = x->dtype;
	if (r == 1) {
		y->ndim = unsq ? x->ndim + (int)ONNX_IN(m, n, 1)->count :
		    x->ndim - (int)ONNX_IN(m, n, 1)->count;
		for (int d = 0; d < y->ndim; d++)
			y->shape[d] = -1;
		return y->ndim < 0 || y->ndim > TENSOR_MAX_DIMS ? -1 : 0;
	}
	nd = unsq ? x->ndim + (int)na : x->ndim;
	if (nd > TENSOR_MAX_DIMS) {
		onnx_node_err(err, errlen, n, "rank %d is above %d", nd,
		    TENSOR_MAX_DIMS);
		return -1;
	}
	for (size_t i = 0; i < na; i++) {
		if (onnx_axis_norm(ax[i], nd, nd, &a) == -1 ||
		    (mask & (1u << a))) {
			onnx_node_err(err, errlen, n, "axis %lld is out of "
			    "range or repeated", (long long)ax[i]);
			return -1;
		}
		if (!unsq && x->shape[a] != 1 && x->shape[a] != -1) {
			onnx_node_err(err, errlen, n, "dimension %lld is not "
			    "1", (long long)a);
			return -1;
		}
		mask |= 1u << a;
	}
	if (unsq) {
		for (int d = 0; d < nd; d++)
			y->shape[d] = mask & (1u << d) ? 1 : x->shape[k++];
		y->ndim = nd;
		return 0;
	}
	for (int d = 0; d < x->ndim; d++)
		if (na > 0 ? !(mask & (1u << d)) : x->shape[d] != 1)
			y->shape[k++] = x->shape[d];
	y->ndim = k;
	return 0;
}

/* --- Transpose --- */

static int
infer_transpose(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);
	unsigned		 mask = 0;

	y->dtype = x->dtype;
	y->ndim = x->ndim;
	if (n->n_ints != 0 && n->n_ints != (size_t)x->ndim) {
		onnx_node_err(err, errlen, n, "perm has %zu values for rank "
		    "%d", n->n_ints, x->ndim);
		return -1;
	}
	for (int d = 0; d < x->ndim; d++) {
		int64_t	p = n->n_ints ? n->ints[d] : x->ndim - 1 - d;

		if (p < 0 || p >= x->ndim || (mask & (1u << p))) {
			onnx_node_err(err, errlen, n, "perm is not a "
			    "permutation");
			return -1;
		}
		mask |= 1u << p;
		y->shape[d] = x->shape[p];
	}
	return 0;
}

bool
onnx_perm(const struct onnx_node *n, int r, int *perm)
{
	unsigned	mask = 0;

	if (r < 1 || r > TENSOR_MAX_DIMS ||
	    (n->n_ints != 0 && n->n_ints != (size_t)r))
		return false;
	for (int d = 0; d < r; d++) {
		int64_t	p = n->n_ints ? n->ints[d] : r - 1 - d;

		if (p < 0 || p >= r || (mask & (1u << p)))
			return false;
		mask |= 1u << p;
		perm[d] = (int)p;
	}
	return true;
}

static void
run_transpose(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);
	size_t			 xs[TENSOR_MAX_DIMS], s[TENSOR_MAX_DIMS];
	size_t			 ys[TENSOR_MAX_DIMS];
	size_t			 idx[TENSOR_MAX_DIMS] = { 0 }, off = 0, k = 1;
	size_t			 esz = ESZ(x), len, rows = 1;
	int			 nd = x->ndim, cd = 0;
	const char		*xp = x->data;
	char			*yp = y->data;

	for (int d = nd - 1; d >= 0; d--) {
		xs[d] = k;
		k *= (size_t)x->shape[d];
	}
	/* Output dims with their input strides; size-1 dims dropped and
	 * neighbours that stay neighbours in the input merged, so that the
	 * heads split [N,S,H,D] -> [N,H,S,D] is rows of D contiguous
	 * elements. */
	for (int d = 0; d < nd; d++) {
		size_t	st = xs[n->n_ints ? n->ints[d] : nd - 1 - d];
		size_t	sz = (size_t)y->shape[d];

		if (sz == 1)
			continue;
		if (cd > 0 && s[cd - 1] == st * sz) {
			ys[cd - 1] *= sz;
			s[cd - 1] = st;
			continue;
		}
		ys[cd] = sz;
		s[cd++] = st;
	}
	if (cd == 0) {
		memcpy(yp, xp, y->count * esz);
		return;
	}
	len = ys[cd - 1];
	for (int d = 0; d < cd - 1; d++)
		rows *= ys[d];
	for (size_t r = 0; r < rows; r++) {
		if (s[cd - 1] == 1)
			memcpy(yp, xp + off * esz, len * esz);
		else if (esz == sizeof(float)) {
			const uint32_t	*src = (const uint32_t *)(const void *)
			    (xp + off * esz);
			uint32_t	*dst = (uint32_t *)(void *)yp;

			for (size_t i = 0; i < len; i++)
				dst[i] = src[i * s[cd - 1]];
		} else
			for (size_t i = 0; i < len; i++)
				memcpy(yp + i * esz, xp + (off + i *
				    s[cd - 1]) * esz, esz);
		yp += len * esz;
		for (int d = cd - 2; d >= 0; d--) {
			off += s[d];
			if (++idx[d] < ys[d])
				break;
			off -= s[d] * ys[d];
			idx[d] = 0;
		}
	}
}

/* --- Slice --- */

static int
attrs_slice(struct onnx_model *m, struct onnx_node *n, Onnx__NodeProto *p,
    char *err, size_t errlen)
{
	const int64_t	*e, *a;
	size_t		 ne, na;

	(void)m;
	/* Before opset 10: starts, ends, axes attributes.  ints holds the
	 * starts; floats is unused; the others are kept in the proto. */
	if (onnx_attr_ints(p, "starts", &n->ints, &n->n_ints, n, err,
	    errlen) == -1 || onnx_attr_ints(p, "ends", &e, &ne, n, err,
	    errlen) == -1 || onnx_attr_ints(p, "axes", &a, &na, n, err,
	    errlen) == -1)
		return -1;
	if (n->n_in == 1 && (ne != n->n_ints || (na && na != ne) ||
	    ne == 0 || ne > TENSOR_MAX_DIMS)) {
		onnx_node_err(err, errlen, n, "starts, ends and axes differ "
		    "in length");
		return -1;
	}
	/* Both lists fit in the conv arrays, unused by Slice. */
	for (size_t i = 0; n->n_in == 1 && i < ne; i++) {
		n->pad[i % 6] = 0;
		if (i < ONNX_MAX_SP)
			n->kern[i] = e[i];
	}
	n->i3 = (int64_t)na;
	n->floats = NULL;
	n->n_floats = ne;
	if (n->n_in == 1 && ne > ONNX_MAX_SP) {
		onnx_node_err(err, errlen, n, "attribute slicing of more than "
		    "%d axes is not supported", ONNX_MAX_SP);
		return -1;
	}
	for (size_t i = 0; n->n_in == 1 && i < na; i++)
		n->dil[i] = a[i];
	return 0;
}

/* The begin, step and length of every axis of x's slice; 1 if not
 * known yet. */
static int
slice_plan(struct onnx_model *m, struct onnx_node *n, int64_t *beg,
    int64_t *step, int64_t *len, char *err, size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	const int64_t		*st, *en, *ax = NULL, *sp = NULL;
	int64_t			 b0[TENSOR_MAX_DIMS], b1[TENSOR_MAX_DIMS];
	int64_t			 b2[TENSOR_MAX_DIMS], b3[TENSOR_MAX_DIMS];
	size_t			 ns, ne, na = 0, nsp = 0;
	int			 r;

	for (int d = 0; d < x->ndim; d++) {
		beg[d] = 0;
		step[d] = 1;
		len[d] = x->shape[d];
	}
	if (n->n_in == 1) {
		st = n->ints;
		ns = n->n_ints;
		en = n->kern;
		ne = n->n_floats;
		if (n->i3) {
			ax = n->dil;
			na = (size_t)n->i3;
		}
	} else {
		if ((r = ints_in(m, n, 1, &st, &ns, b0, TENSOR_MAX_DIMS, err,
		    errlen)) != 0 || (r = ints_in(m, n, 2, &en, &ne, b1,
		    TENSOR_MAX_DIMS, err, errlen)) != 0)
			return r;
		if (ONNX_HAS_IN(n, 3) && (r = ints_in(m, n, 3, &ax, &na, b2,
		    TENSOR_MAX_DIMS, err, errlen)) != 0)
			return r;
		if (ONNX_HAS_IN(n, 4) && (r = ints_in(m, n, 4, &sp, &nsp, b3,
		    TENSOR_MAX_DIMS, err, errlen)) != 0)
			return r;
	}
	if (ns != ne || (ax != NULL && na != ns) || (sp != NULL &&
	    nsp != ns)) {
		onnx_node_err(err, errlen, n, "starts, ends, axes and steps "
		    "differ in length");
		return -1;
	}
	for (size_t i = 0; i < ns; i++) {
		int64_t	a = ax != NULL ? ax[i] : (int64_t)i, s, e, dim, k;

		if (onnx_axis_norm(a, x->ndim, x->ndim, &a) == -1) {
			onnx_node_err(err, errlen, n, "axis %lld is out of "
			    "range", (long long)a);
			return -1;
		}
		k = sp != NULL ? sp[i] : 1;
		if (k == 0) {
			onnx_node_err(err, errlen, n, "step is 0");
			return -1;
		}
		if ((dim = x->shape[a]) == -1) {
			len[a] = -1;
			continue;
		}
		s = st[i];
		e = en[i];
		if (s < 0)
			s += dim;
		if (e < 0 && e > INT64_MIN + dim)
			e += dim;
		if (k > 0) {
			s = clampi(s, 0, dim);
			e = clampi(e, 0, dim);
			len[a] = e > s ? (e - s + k - 1) / k : 0;
		} else {
			s = clampi(s, 0, dim - 1);
			e = clampi(e, -1, dim - 1);
			len[a] = s > e ? (s - e + (-k) - 1) / (-k) : 0;
		}
		beg[a] = s;
		step[a] = k;
	}
	return 0;
}

static int
infer_slice(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);
	int64_t			 beg[TENSOR_MAX_DIMS], step[TENSOR_MAX_DIMS];
	int			 r;

	y->dtype = x->dtype;
	y->ndim = x->ndim;
	if ((r = slice_plan(m, n, beg, step, y->shape, err, errlen)) == -1)
		return -1;
	if (r == 1)
		for (int d = 0; d < y->ndim; d++)
			y->shape[d] = -1;
	return 0;
}

static void
run_slice(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);
	int64_t			 beg[TENSOR_MAX_DIMS], step[TENSOR_MAX_DIMS];
	int64_t			 len[TENSOR_MAX_DIMS], xs[TENSOR_MAX_DIMS];
	size_t			 idx[TENSOR_MAX_DIMS] = { 0 }, esz = ESZ(x);
	int64_t			 off = 0, k = 1;
	int			 nd = x->ndim;
	char			 err[8];

	(void)slice_plan(m, n, beg, step, len, err, sizeof(err));
	for (int d = nd - 1; d >= 0; d--) {
		xs[d] = k;
		k *= x->shape[d];
		off += beg[d] * xs[d];
	}
	for (size_t i = 0; i < y->count; i++) {
		memcpy((char *)y->data + i * esz, (const char *)x->data +
		    (size_t)off * esz, esz);
		for (int d = nd - 1; d >= 0; d--) {
			off += step[d] * xs[d];
			if (++idx[d] < (size_t)y->shape[d])
				break;
			off -= step[d] * xs[d] * y->shape[d];
			idx[d] = 0;
		}
	}
}

/* --- Split --- */

static int
split_sizes(struct onnx_model *m, struct onnx_node *n, int64_t *sz,
    char *err, size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	const int64_t		*sp;
	int64_t			 buf[64], ax, dim, sum = 0;
	size_t			 ns;
	int			 r;

	if (onnx_axis_norm(n->axis, x->ndim, x->ndim, &ax) == -1) {
		onnx_node_err(err, errlen, n, "axis %lld is out of range for "
		    "rank %d", (long long)n->axis, x->ndim);
		return -1;
	}
	n->i0 = ax;
	dim = x->shape[ax];
	if ((r = ints_in(m, n, 1, &sp, &ns, buf, 64, err, errlen)) != 0)
		return r;
	if (ns == 0) {
		/* Equal parts; the last one smaller (opset 18). */
		int64_t	part;

		if (dim == -1)
			return 1;
		part = (dim + n->n_out - 1) / n->n_out;
		for (int j = 0; j < n->n_out; j++) {
			sz[j] = dim - sum < part ? dim - sum : part;
			sum += sz[j];
		}
		return 0;
	}
	if (ns != (size_t)n->n_out) {
		onnx_node_err(err, errlen, n, "split has %zu values for %d "
		    "outputs", ns, n->n_out);
		return -1;
	}
	for (size_t j = 0; j < ns; j++) {
		if (sp[j] < 0 || sp[j] > ONNX_MAX_ELEMS) {
			onnx_node_err(err, errlen, n, "split[%zu] is %lld", j,
			    (long long)sp[j]);
			return -1;
		}
		sz[j] = sp[j];
		sum += sp[j];
	}
	if (dim != -1 && sum != dim) {
		onnx_node_err(err, errlen, n, "split sums to %lld, dimension "
		    "is %lld", (long long)sum, (long long)dim);
		return -1;
	}
	return 0;
}

static int
infer_split(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	int64_t			 sz[ONNX_VARIADIC];
	int			 r;

	if ((r = split_sizes(m, n, sz, err, errlen)) == -1)
		return -1;
	for (int j = 0; j < n->n_out; j++) {
		struct onnx_value	*y;

		if (!ONNX_HAS_OUT(n, j))
			continue;
		y = ONNX_OUTI(m, n, j);
		y->dtype = x->dtype;
		y->ndim = x->ndim;
		memcpy(y->shape, x->shape, sizeof(y->shape));
		y->shape[n->i0] = r == 1 ? -1 : sz[j];
	}
	return 0;
}

static void
run_split(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	int64_t			 sz[ONNX_VARIADIC];
	int			 ax = (int)n->i0;
	size_t			 outer = (size_t)onnx_dims_prod(x->shape, 0, ax);
	size_t			 inner = (size_t)onnx_dims_prod(x->shape,
				    ax + 1, x->ndim) * ESZ(x);
	size_t			 row = (size_t)x->shape[ax] * inner, at = 0;
	char			 err[8];

	(void)split_sizes(m, n, sz, err, sizeof(err));
	for (int j = 0; j < n->n_out; j++) {
		size_t	len = (size_t)sz[j] * inner;

		if (ONNX_HAS_OUT(n, j))
			for (size_t o = 0; o < outer; o++)
				memcpy((char *)ONNX_OUTI(m, n, j)->data +
				    o * len, (const char *)x->data + o * row +
				    at, len);
		at += len;
	}
}

/* --- Expand, ConstantOfShape --- */

static int
infer_expand(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);
	const int64_t		*sv;
	int64_t			 buf[TENSOR_MAX_DIMS];
	size_t			 ns;
	int			 r, nd;

	if ((r = ints_in(m, n, 1, &sv, &ns, buf, TENSOR_MAX_DIMS, err,
	    errlen)) == -1)
		return -1;
	y->dtype = x->dtype;
	if (r == 1) {
		ns = ONNX_IN(m, n, 1)->count;
		y->ndim = (int)ns > x->ndim ? (int)ns : x->ndim;
		for (int d = 0; d < y->ndim; d++)
			y->shape[d] = -1;
		return 0;
	}
	nd = (int)ns > x->ndim ? (int)ns : x->ndim;
	for (int d = 0; d < nd; d++) {
		int	i = d - (nd - x->ndim), j = d - (nd - (int)ns);
		int64_t	a = i < 0 ? 1 : x->shape[i], b = j < 0 ? 1 : sv[j];

		if (b < 0 || onnx_bcast_dim(a, b, &y->shape[d]) == -1) {
			onnx_node_err(err, errlen, n, "cannot expand to the "
			    "shape given");
			return -1;
		}
	}
	y->ndim = nd;
	return 0;
}

static void
run_expand(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);
	size_t			 s[TENSOR_MAX_DIMS], idx[TENSOR_MAX_DIMS] = { 0 };
	size_t			 k = 1, off = 0, esz = ESZ(x);
	int			 nd = y->ndim;

	for (int d = nd - 1; d >= 0; d--) {
		int	i = d - (nd - x->ndim);

		if (i < 0 || x->shape[i] == 1)
			s[d] = 0;
		else {
			s[d] = k;
			k *= (size_t)x->shape[i];
		}
	}
	for (size_t i = 0; i < y->count; i++) {
		memcpy((char *)y->data + i * esz, (const char *)x->data +
		    off * esz, esz);
		for (int d = nd - 1; d >= 0; d--) {
			off += s[d];
			if (++idx[d] < (size_t)y->shape[d])
				break;
			off -= s[d] * (size_t)y->shape[d];
			idx[d] = 0;
		}
	}
}

static int
attrs_cos(struct onnx_model *m, struct onnx_node *n, Onnx__NodeProto *p,
    char *err, size_t errlen)
{
	struct onnx_value	 tmp;

	(void)m;
	/* The fill value: a one-element tensor, FP32 0 by default. */
	n->i0 = DT_FP32;
	n->i1 = 0;
	for (size_t i = 0; i < p->n_attribute; i++) {
		Onnx__AttributeProto	*a = p->attribute[i];

		if (a->name == NULL || strcmp(a->name, "value") != 0)
			continue;
		memset(&tmp, 0, sizeof(tmp));
		if (a->t == NULL || onnx_tensor_load(&tmp, a->t, "value", err,
		    errlen) == -1 || tmp.count != 1) {
			free(tmp.own);
			onnx_node_err(err, errlen, n, "value must be a "
			    "one-element tensor of a supported type");
			return -1;
		}
		n->i0 = tmp.dtype;
		memcpy(&n->i1, tmp.data, dtype_size(tmp.dtype));
		free(tmp.own);
	}
	return 0;
}

static int
infer_cos(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	struct onnx_value	*y = ONNX_OUT(m, n);
	const int64_t		*sv;
	int64_t			 buf[TENSOR_MAX_DIMS];
	size_t			 ns;
	int			 r;

	if ((r = ints_in(m, n, 0, &sv, &ns, buf, TENSOR_MAX_DIMS, err,
	    errlen)) == -1)
		return -1;
	y->dtype = (enum dtype)n->i0;
	y->ndim = (int)ONNX_IN(m, n, 0)->count;
	for (int d = 0; d < y->ndim; d++) {
		y->shape[d] = r == 1 ? -1 : sv[d];
		if (r == 0 && sv[d] < 0) {
			onnx_node_err(err, errlen, n, "dimension %d is %lld",
			    d, (long long)sv[d]);
			return -1;
		}
	}
	return 0;
}

static void
run_cos(struct onnx_model *m, struct onnx_node *n)
{
	struct onnx_value	*y = ONNX_OUT(m, n);
	size_t			 esz = ESZ(y);

	for (size_t i = 0; i < y->count; i++)
		memcpy((char *)y->data + i * esz, &n->i1, esz);
}

/* --- the table --- */

/* Every one reads no element of an empty input (all copy by output
 * element or by row), so each takes one. */
#define EOK	ONNX_OP_EMPTY_OK

static const struct onnx_op shape_ops[] = {
	{ "Concat", 1, ONNX_VARIADIC, 1, 1, EOK, "axis", attrs_axes,
	    infer_concat, run_concat },
	{ "ConstantOfShape", 1, 1, 1, 1, EOK, "value", attrs_cos, infer_cos,
	    run_cos },
	{ "Expand", 2, 2, 1, 1, EOK, "", NULL, infer_expand, run_expand },
	{ "Gather", 2, 2, 1, 1, EOK, "axis", attrs_axes, infer_gather,
	    run_gather },
	{ "Shape", 1, 1, 1, 1, ONNX_OP_SHAPE_ONLY, "start end", attrs_axes,
	    infer_shape, run_shape },
	{ "Size", 1, 1, 1, 1, ONNX_OP_SHAPE_ONLY, "", NULL, infer_shape,
	    run_shape },
	{ "Slice", 1, 5, 1, 1, EOK, "starts ends axes", attrs_slice,
	    infer_slice, run_slice },
	{ "Split", 1, 2, 1, ONNX_VARIADIC, EOK, "axis split num_outputs",
	    attrs_axes, infer_split, run_split },
	{ "Squeeze", 1, 2, 1, 1, EOK, "axes", attrs_axes, infer_squeeze,
	    onnx_run_copy },
	{ "Transpose", 1, 1, 1, 1, EOK, "perm", attrs_axes, infer_transpose,
	    run_transpose },
	{ "Unsqueeze", 1, 2, 1, 1, EOK, "axes", attrs_axes, infer_squeeze,
	    onnx_run_copy },
};
const struct onnx_optab onnx_ops_shape = {
	shape_ops, sizeof(shape_ops) / sizeof(shape_ops[0])
};
