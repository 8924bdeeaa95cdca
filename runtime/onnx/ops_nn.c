/* runtime/onnx/ops_nn.c - convolution, pooling, normalisation and the
 * recurrent layers.
 *
 * Conv is im2col + sgemm: each group unfolds its input into the node's
 * scratch buffer (planned in the arena like any activation, so a request
 * allocates nothing) and multiplies the weights with it on OpenBLAS,
 * which uses the replica's threads.  A batch unfolds several images side
 * by side, so that each group is one sgemm wide enough to be worth the
 * threads rather than one small sgemm per image (CNNs have few output
 * channels); the result is then scattered to NCHW with the bias added.
 * The images go in chunks whose unfolding takes about CONV_CHUNK floats,
 * so that the sgemm reads it from cache.  Batch 1, and images too large
 * to chunk, go image by image.  A 1x1 convolution with stride 1 and no
 * padding needs no unfolding and no scratch.
 *
 * Conv and the pools share the window attributes, kept in the node:
 *   nsp		spatial dims the attributes name, 0 if none does
 *   kern		kernel_shape, 0 where absent (Conv reads W)
 *   stride, dil	strides and dilations, 1 where absent
 *   pad		begins in [0, ONNX_MAX_SP), ends after; for
 *			auto_pad SAME_* rewritten by infer() per shape
 *   i0			auto_pad (enum nn_autopad)
 *   i1			ceil_mode (pools)
 *   i2			count_include_pad (AveragePool), storage_order
 *			(MaxPool)
 *   i3			group (Conv) */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/tensor.h"
#include "runtime/kernels.h"
#include "runtime/onnx/graph.h"

/* Floats of unfolded input a chunk of a batch aims at (1 MiB, within
 * the L2 caches of current CPUs). */
#define CONV_CHUNK	((int64_t)1 << 18)

/* Bound on every kernel, stride, dilation and pad attribute: keeps the
 * window arithmetic far from int64 overflow. */
#define NN_MAX_ATTR	(1 << 20)

enum nn_autopad { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID };

static int	attrs_win(struct onnx_model *, struct onnx_node *,
		    Onnx__NodeProto *, char *, size_t);
static int	win_list(struct onnx_node *, const char *, const int64_t *,
		    size_t, int64_t *, int64_t, int64_t, char *, size_t);
static int	win_infer(struct onnx_node *, const struct onnx_value *,
		    const int64_t *, int64_t *, char *, size_t);
static void	win_fill(struct kernel_win *, const struct onnx_node *,
		    const int64_t *, const int64_t *, const int64_t *, int);
static int	want_rank(const struct onnx_model *, const struct onnx_node *,
		    int, char *, size_t);
static void	conv_batch(struct onnx_model *, struct onnx_node *,
		    const struct kernel_win *);

/* --- window attributes --- */

/* Copies an INTS attribute of len values into dst after checking each
 * is in [lo, NN_MAX_ATTR], and checks len against the spatial rank the
 * other window attributes gave. */
static int
win_list(struct onnx_node *n, const char *name, const int64_t *v,
    size_t len, int64_t *dst, int64_t lo, int64_t per, char *err,
    size_t errlen)
{
	size_t	sp = len / (size_t)per;

	if (len == 0)
		return 0;
	if (len % (size_t)per != 0 || sp > ONNX_MAX_SP) {
		onnx_node_err(err, errlen, n, "%s has %zu values; windows "
		    "of more than %d spatial dims are not supported", name,
		    len, ONNX_MAX_SP);
		return -1;
	}
	if (n->nsp != 0 && (size_t)n->nsp != sp) {
		onnx_node_err(err, errlen, n, "%s names %zu spatial dims, "
		    "another window attribute %d", name, sp, n->nsp);
		return -1;
	}
	n->nsp = (int)sp;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < lo || v[i] > NN_MAX_ATTR) {
			onnx_node_err(err, errlen, n, "%s[%zu] is %lld, not "
			    "in [%lld, %d]", name, i, (long long)v[i],
			    (long long)lo, NN_MAX_ATTR);
			return -1;
		}
		/* pads: begins, then ends at ONNX_MAX_SP. */
		dst[i < sp ? i : ONNX_MAX_SP + i - sp] = v[i];
	}
	return 0;
}

static int
attrs_win(struct onnx_model *m, struct onnx_node *n, Onnx__NodeProto *p,
    char *err, size_t errlen)
{
	const int64_t	*ks, *st, *dl, *pd;
	size_t		 nk, ns, nd, np;
	char		 ap[16];
	bool		 conv = strcmp(n->op->name, "Conv") == 0;
	bool		 avg = strcmp(n->op->name, "AveragePool") == 0;

	(void)m;
	for (int d = 0; d < ONNX_MAX_SP; d++) {
		n->kern[d] = 0;
		n->stride[d] = n->dil[d] = 1;
		n->pad[d] = n->pad[ONNX_MAX_SP + d] = 0;
	}
	n->nsp = 0;
	if (onnx_attr_ints(p, "kernel_shape", &ks, &nk, n, err, errlen) ==
	    -1 || onnx_attr_ints(p, "strides", &st, &ns, n, err, errlen) ==
	    -1 || onnx_attr_ints(p, "dilations", &dl, &nd, n, err, errlen) ==
	    -1 || onnx_attr_ints(p, "pads", &pd, &np, n, err, errlen) == -1 ||
	    onnx_attr_str(p, "auto_pad", "NOTSET", ap, sizeof(ap), n, err,
	    errlen) == -1 ||
	    onnx_attr_int(p, "ceil_mode", 0, &n->i1, n, err, errlen) == -1 ||
	    onnx_attr_int(p, avg ? "count_include_pad" : "storage_order", 0,
	    &n->i2, n, err, errlen) == -1 ||
	    onnx_attr_int(p, "group", 1, &n->i3, n, err, errlen) == -1)
		return -1;
	if (win_list(n, "kernel_shape", ks, nk, n->kern, 1, 1, err,
	    errlen) == -1 ||
	    win_list(n, "strides", st, ns, n->stride, 1, 1, err, errlen) ==
	    -1 ||
	    win_list(n, "dilations", dl, nd, n->dil, 1, 1, err, errlen) ==
	    -1 ||
	    win_list(n, "pads", pd, np, n->pad, 0, 2, err, errlen) == -1)
		return -1;
	if (!conv && nk == 0) {
		onnx_node_err(err, errlen, n, "kernel_shape is required");
		return -1;
	}
	if (strcmp(ap, "NOTSET") == 0 || ap[0] == '\0')
		n->i0 = PAD_NOTSET;
	else if (strcmp(ap, "SAME_UPPER") == 0)
		n->i0 = PAD_SAME_UPPER;
	else if (strcmp(ap, "SAME_LOWER") == 0)
		n->i0 = PAD_SAME_LOWER;
	else if (strcmp(ap, "VALID") == 0)
		n->i0 = PAD_VALID;
	else {
		onnx_node_err(err, errlen, n, "auto_pad '%s' is not "
		    "supported", ap);
		return -1;
	}
	if (n->i1 != 0 && n->i1 != 1) {
		onnx_node_err(err, errlen, n, "ceil_mode must be 0 or 1");
		return -1;
	}
	if (n->i2 != 0 && n->i2 != 1) {
		onnx_node_err(err, errlen, n, "%s must be 0 or 1", avg ?
		    "count_include_pad" : "storage_order");
		return -1;
	}
	if (n->i3 < 1 || n->i3 > NN_MAX_ATTR) {
		onnx_node_err(err, errlen, n, "group is %lld",
		    (long long)n->i3);
		return -1;
	}
	return 0;
}

/* Input i is FP32 with rank 3 to 2 + ONNX_MAX_SP: (N, C, spatial...). */
static int
want_rank(const struct onnx_model *m, const struct onnx_node *n, int i,
    char *err, size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, i);
	char			 s[128];

	if (onnx_want(m, n, i, ONNX_T_F32, err, errlen) == -1)
		return -1;
	if (x->ndim < 3 || x->ndim > 2 + ONNX_MAX_SP) {
		onnx_fmt_shape(s, sizeof(s), x->shape, x->ndim);
		onnx_node_err(err, errlen, n, "input '%s' is %s; only 1-D to "
		    "%d-D windows over (N, C, ...) are supported", x->name, s,
		    ONNX_MAX_SP);
		return -1;
	}
	if (n->nsp != 0 && n->nsp != x->ndim - 2) {
		onnx_node_err(err, errlen, n, "the attributes name %d spatial "
		    "dims, input '%s' has %d", n->nsp, x->name, x->ndim - 2);
		return -1;
	}
	return 0;
}

/* Output spatial dims (-1 where unknown) of a window k[] over x's; sets
 * the pads of auto_pad SAME_*. */
static int
win_infer(struct onnx_node *n, const struct onnx_value *x, const int64_t *k,
    int64_t *out, char *err, size_t errlen)
{
	int	sp = x->ndim - 2;

	for (int d = 0; d < sp; d++) {
		int64_t	in = x->shape[2 + d], s = n->stride[d];
		int64_t	ek, tot, span, o;
		int64_t	*pb = &n->pad[d], *pe = &n->pad[ONNX_MAX_SP + d];

		if (in == -1 || k[d] == -1) {
			out[d] = -1;
			continue;
		}
		ek = (k[d] - 1) * n->dil[d] + 1;
		if (n->i0 == PAD_SAME_UPPER || n->i0 == PAD_SAME_LOWER) {
			o = (in + s - 1) / s;
			tot = (o - 1) * s + ek - in;
			if (tot < 0)
				tot = 0;
			*pb = n->i0 == PAD_SAME_UPPER ? tot / 2 :
			    tot - tot / 2;
			*pe = tot - *pb;
			out[d] = o;
			continue;
		}
		if (n->i0 == PAD_VALID)
			*pb = *pe = 0;
		span = in + *pb + *pe - ek;
		if (span < 0) {
			onnx_node_err(err, errlen, n, "the window (%lld wide "
			    "with dilation) is larger than the padded input "
			    "(%lld) in spatial dim %d", (long long)ek,
			    (long long)(in + *pb + *pe), d);
			return -1;
		}
		if (n->i1) {
			o = (span + s - 1) / s + 1;
			/* The last window must start inside the input or
			 * its leading padding. */
			if ((o - 1) * s >= in + *pb)
				o--;
		} else
			o = span / s + 1;
		out[d] = o;
	}
	return 0;
}

/* The kernel's view of the window, its sp spatial dims placed last. */
static void
win_fill(struct kernel_win *w, const struct onnx_node *n, const int64_t *in,
    const int64_t *out, const int64_t *k, int sp)
{
	for (int d = 0; d < 3; d++) {
		int	s = d - (3 - sp);	/* the operator's dim */

		w->in[d] = s < 0 ? 1 : in[s];
		w->out[d] = s < 0 ? 1 : out[s];
		w->kern[d] = s < 0 ? 1 : k[s];
		w->stride[d] = s < 0 ? 1 : n->stride[s];
		w->dil[d] = s < 0 ? 1 : n->dil[s];
		w->pad[d] = s < 0 ? 0 : n->pad[s];
		w->pad_end[d] = s < 0 ? 0 : n->pad[ONNX_MAX_SP + s];
	}
}

/* --- Conv --- */

static int
infer_conv(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0), *w = ONNX_IN(m, n, 1);
	struct onnx_value	*y = ONNX_OUT(m, n);
	struct onnx_value	*col = &m->vals[n->scratch];
	int64_t			 k[ONNX_MAX_SP], C, M, Cw, G = n->i3;
	int64_t			 rows, p, N, nb;
	int			 sp;
	bool			 unit = true;

	if (want_rank(m, n, 0, err, errlen) == -1 ||
	    onnx_want(m, n, 1, ONNX_T_F32, err, errlen) == -1 ||
	    onnx_want(m, n, 2, ONNX_T_F32, err, errlen) == -1)
		return -1;
	sp = x->ndim - 2;
	if (w->ndim != x->ndim) {
		onnx_node_err(err, errlen, n, "W has rank %d, X has rank %d",
		    w->ndim, x->ndim);
		return -1;
	}
	for (int d = 0; d < sp; d++) {
		k[d] = w->shape[2 + d];
		if (n->kern[d] != 0 && k[d] != -1 && k[d] != n->kern[d]) {
			onnx_node_err(err, errlen, n, "kernel_shape[%d] is "
			    "%lld but W has %lld", d, (long long)n->kern[d],
			    (long long)k[d]);
			return -1;
		}
		if (n->kern[d] != 0)
			k[d] = n->kern[d];
		unit = unit && k[d] == 1 && n->stride[d] == 1 &&
		    n->pad[d] == 0 && n->pad[ONNX_MAX_SP + d] == 0;
	}
	C = x->shape[1];
	M = w->shape[0];
	Cw = w->shape[1];
	if (C != -1 && Cw != -1 && C != Cw * G) {
		onnx_node_err(err, errlen, n, "X has %lld channels, W takes "
		    "%lld groups of %lld", (long long)C, (long long)G,
		    (long long)Cw);
		return -1;
	}
	if (M != -1 && M % G != 0) {
		onnx_node_err(err, errlen, n, "%lld output channels do not "
		    "split into %lld groups", (long long)M, (long long)G);
		return -1;
	}
	if (ONNX_HAS_IN(n, 2)) {
		const struct onnx_value	*b = ONNX_IN(m, n, 2);

		if (b->ndim != 1 || (b->shape[0] != -1 && M != -1 &&
		    b->shape[0] != M)) {
			onnx_node_err(err, errlen, n, "B must be 1-D with "
			    "one bias per output channel (%lld)",
			    (long long)M);
			return -1;
		}
	}
	y->dtype = DT_FP32;
	y->ndim = x->ndim;
	y->shape[0] = x->shape[0];
	y->shape[1] = M;
	if (win_infer(n, x, k, y->shape + 2, err, errlen) == -1)
		return -1;
	/* The unfolded input of one image and group: (Cw * prod(k),
	 * prod(out)).  Both factors are bounded (by W's and Y's sizes).
	 * A batch takes (Cw * prod(k) + M / G, NB, prod(out)) for chunks
	 * of NB images: the unfolded images side by side, then the
	 * sgemm's result. */
	col->dtype = DT_FP32;
	if (unit && n->i0 != PAD_SAME_UPPER && n->i0 != PAD_SAME_LOWER) {
		col->ndim = 0;
		return 0;
	}
	rows = onnx_dims_prod(w->shape, 1, w->ndim);
	p = onnx_dims_prod(y->shape, 2, y->ndim);
	N = x->shape[0];
	if (rows > 0 && p > 0 && M > 0 && N > 1 && rows <= CONV_CHUNK / p &&
	    M / G <= CONV_CHUNK / p) {
		nb = CONV_CHUNK / (rows * p);
		col->ndim = 3;
		col->shape[0] = rows + M / G;
		col->shape[1] = nb < N ? nb : N;
		col->shape[2] = p;
		if (nb >= 2)
			return 0;
	}
	col->ndim = 2;
	col->shape[0] = rows;
	col->shape[1] = p;
	return 0;
}

/* A batch whose scratch infer_conv() sized (rows + mg, NB, p): per chunk
 * of NB images and group, the images unfolded side by side into the
 * first rows (rows NB * p floats apart), one sgemm into the last mg,
 * then each image's (mg, p) block to its place in y with the bias
 * added. */
static void
conv_batch(struct onnx_model *m, struct onnx_node *n,
    const struct kernel_win *kw)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0), *w = ONNX_IN(m, n, 1);
	const float		*b = ONNX_HAS_IN(n, 2) ? ONNX_IN(m, n, 2)->data :
				    NULL;
	struct onnx_value	*y = ONNX_OUT(m, n);
	float			*col = m->vals[n->scratch].data;
	size_t			 N = (size_t)x->shape[0];
	size_t			 C = (size_t)x->shape[1];
	size_t			 M = (size_t)y->shape[1], G = (size_t)n->i3;
	size_t			 cg = C / G, mg = M / G;
	size_t			 kk = (size_t)onnx_dims_prod(w->shape, 2,
				    w->ndim);
	size_t			 pin = (size_t)onnx_dims_prod(x->shape, 2,
				    x->ndim);
	size_t			 p = (size_t)onnx_dims_prod(y->shape, 2,
				    y->ndim);
	size_t			 nb = (size_t)m->vals[n->scratch].shape[1];
	float			*prod = col + cg * kk * nb * p;

	for (size_t i0 = 0; i0 < N; i0 += nb) {
		size_t	k = N - i0 < nb ? N - i0 : nb;
		size_t	ld = k * p;	/* the last chunk may be short */

		for (size_t g = 0; g < G; g++) {
			for (size_t i = 0; i < k; i++)
				kernel_im2col(col + i * p, ld,
				    (const float *)x->data + ((i0 + i) * C +
				    g * cg) * pin, cg, kw);
			kernel_gemm(prod, (const float *)w->data +
			    g * mg * cg * kk, col, NULL, mg, ld, cg * kk, 0,
			    1.0f, 0.0f, 1, 1);
			for (size_t i = 0; i < k; i++)
				kernel_bias_rows((float *)y->data + ((i0 + i) *
				    M + g * mg) * p, p, prod + i * p, ld,
				    b != NULL ? b + g * mg : NULL, mg, p);
		}
	}
}

static void
run_conv(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0), *w = ONNX_IN(m, n, 1);
	const float		*b = ONNX_HAS_IN(n, 2) ? ONNX_IN(m, n, 2)->data :
				    NULL;
	struct onnx_value	*y = ONNX_OUT(m, n);
	struct onnx_value	*col = &m->vals[n->scratch];
	struct kernel_win	 kw;
	int			 sp = x->ndim - 2;
	size_t			 N = (size_t)x->shape[0];
	size_t			 C = (size_t)x->shape[1];
	size_t			 M = (size_t)y->shape[1], G = (size_t)n->i3;
	size_t			 cg = C / G, mg = M / G;
	size_t			 kk = (size_t)onnx_dims_prod(w->shape, 2,
				    w->ndim);
	size_t			 pin = (size_t)onnx_dims_prod(x->shape, 2,
				    x->ndim);
	size_t			 p = (size_t)onnx_dims_prod(y->shape, 2,
				    y->ndim);

	win_fill(&kw, n, x->shape + 2, y->shape + 2, w->shape + 2, sp);
	if (col->ndim == 3) {
		conv_batch(m, n, &kw);
		return;
	}
	for (size_t i = 0; i < N; i++) {
		for (size_t g = 0; g < G; g++) {
			const float	*xg = (const float *)x->data +
					    (i * C + g * cg) * pin;
			const float	*src = xg;

			if (col->ndim != 0) {
				kernel_im2col(col->data, (size_t)p, xg, cg,
				    &kw);
				src = col->data;
			}
			/* y (mg, p) = W_g (mg, cg * kk) src (cg * kk, p)
			 * + the group's biases, broadcast along p. */
			kernel_gemm((float *)y->data + (i * M + g * mg) * p,
			    (const float *)w->data + g * mg * cg * kk, src,
			    b != NULL ? b + g * mg : NULL, mg, p, cg * kk, 0,
			    1.0f, 1.0f, mg, 1);
		}
	}
}

/* --- MaxPool, AveragePool --- */

static int
infer_pool(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);

	if (want_rank(m, n, 0, err, errlen) == -1)
		return -1;
	y->dtype = DT_FP32;
	y->ndim = x->ndim;
	y->shape[0] = x->shape[0];
	y->shape[1] = x->shape[1];
	if (win_infer(n, x, n->kern, y->shape + 2, err, errlen) == -1)
		return -1;
	if (ONNX_HAS_OUT(n, 1)) {
		struct onnx_value	*ix = ONNX_OUTI(m, n, 1);

		if (n->i2 != 0 && x->ndim != 4) {
			onnx_node_err(err, errlen, n, "storage_order 1 is only "
			    "supported for 2-D pooling");
			return -1;
		}
		ix->dtype = DT_INT64;
		ix->ndim = y->ndim;
		memcpy(ix->shape, y->shape, sizeof(ix->shape));
	}
	return 0;
}

static void
run_maxpool(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);
	struct kernel_win	 kw;

	win_fill(&kw, n, x->shape + 2, y->shape + 2, n->kern, x->ndim - 2);
	kernel_maxpool(y->data, ONNX_HAS_OUT(n, 1) ? ONNX_OUTI(m, n,
	    1)->data : NULL, x->data, (size_t)(x->shape[0] * x->shape[1]),
	    &kw, n->i2 != 0);
}

static void
run_avgpool(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);
	struct kernel_win	 kw;

	win_fill(&kw, n, x->shape + 2, y->shape + 2, n->kern, x->ndim - 2);
	kernel_avgpool(y->data, x->data, (size_t)(x->shape[0] *
	    x->shape[1]), &kw, n->i2 != 0);
}

/* --- GlobalAveragePool, GlobalMaxPool --- */

static int
infer_global(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	struct onnx_value	*y = ONNX_OUT(m, n);

	if (onnx_want(m, n, 0, ONNX_T_F32, err, errlen) == -1)
		return -1;
	if (x->ndim < 3) {
		onnx_node_err(err, errlen, n, "input must be (N, C, spatial "
		    "...), got rank %d", x->ndim);
		return -1;
	}
	y->dtype = DT_FP32;
	y->ndim = x->ndim;
	for (int d = 0; d < x->ndim; d++)
		y->shape[d] = d < 2 ? x->shape[d] : 1;
	return 0;
}

static void
run_global(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	float			*y = ONNX_OUT(m, n)->data;
	size_t			 planes = (size_t)(x->shape[0] * x->shape[1]);
	size_t			 len = x->count / planes;
	bool			 max = strcmp(n->op->name, "GlobalMaxPool") ==
				    0;

	for (size_t c = 0; c < planes; c++) {
		const float	*xp = (const float *)x->data + c * len;
		double		 sum = 0.0;
		float		 mx = xp[0];

		if (max) {
			for (size_t i = 1; i < len; i++)
				if (xp[i] > mx)
					mx = xp[i];
			y[c] = mx;
			continue;
		}
		for (size_t i = 0; i < len; i++)
			sum += xp[i];
		y[c] = (float)(sum / (double)len);
	}
}

/* --- BatchNormalization (inference) --- */

static int
attrs_bn(struct onnx_model *m, struct onnx_node *n, Onnx__NodeProto *p,
    char *err, size_t errlen)
{
	int64_t	train, spatial;

	(void)m;
	if (onnx_attr_float(p, "epsilon", 1e-5f, &n->eps, n, err, errlen) ==
	    -1 || onnx_attr_int(p, "training_mode", 0, &train, n, err,
	    errlen) == -1 || onnx_attr_int(p, "spatial", 1, &spatial, n, err,
	    errlen) == -1)
		return -1;
	/* Models exported for inference have neither; training updates
	 * running statistics, which a served model never does. */
	if (train != 0) {
		onnx_node_err(err, errlen, n, "training_mode is not "
		    "supported");
		return -1;
	}
	if (spatial != 1) {
		onnx_node_err(err, errlen, n, "spatial=0 is not supported");
		return -1;
	}
	for (size_t j = 1; j < p->n_output; j++)
		if (p->output[j] != NULL && p->output[j][0] != '\0') {
			onnx_node_err(err, errlen, n, "the training outputs "
			    "(running and saved statistics) are not "
			    "supported");
			return -1;
		}
	return 0;
}

static int
infer_bn(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	int64_t			 C;

	for (int i = 0; i < 5; i++)
		if (onnx_want(m, n, i, ONNX_T_F32, err, errlen) == -1)
			return -1;
	if (x->ndim < 2) {
		onnx_node_err(err, errlen, n, "input must be (N, C, ...), "
		    "got rank %d", x->ndim);
		return -1;
	}
	C = x->shape[1];
	for (int i = 1; i < 5; i++) {
		const struct onnx_value	*v = ONNX_IN(m, n, i);

		if (v->ndim != 1 || (C != -1 && v->shape[0] != -1 &&
		    v->shape[0] != C)) {
			onnx_node_err(err, errlen, n, "input '%s' must be 1-D "
			    "with one value per channel (%lld)", v->name,
			    (long long)C);
			return -1;
		}
	}
	return onnx_infer_same(m, n, err, errlen);
}

static void
run_bn(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	const float		*sc = ONNX_IN(m, n, 1)->data;
	const float		*bi = ONNX_IN(m, n, 2)->data;
	const float		*mean = ONNX_IN(m, n, 3)->data;
	const float		*var = ONNX_IN(m, n, 4)->data;
	float			*y = ONNX_OUT(m, n)->data;
	size_t			 N = (size_t)x->shape[0];
	size_t			 C = (size_t)x->shape[1];
	size_t			 len = x->count / (N * C);

	for (size_t i = 0; i < N; i++) {
		for (size_t c = 0; c < C; c++) {
			const float	*xp = (const float *)x->data +
					    (i * C + c) * len;
			float		*yp = y + (i * C + c) * len;
			float		 a, b;

			/* y = (x - mean) / sqrt(var + eps) * scale + B,
			 * folded into y = a x + b. */
			a = sc[c] / sqrtf(var[c] + n->eps);
			b = bi[c] - mean[c] * a;
			for (size_t k = 0; k < len; k++)
				yp[k] = a * xp[k] + b;
		}
	}
}

/* --- LogSoftmax --- */

/* The attribute, its check and the axis view are Softmax's (ops.c). */
static void
run_logsoftmax(struct onnx_model *m, struct onnx_node *n)
{
	size_t	outer, len, inner;

	onnx_softmax_dims(m, n, &outer, &len, &inner);
	kernel_logsoftmax(ONNX_OUT(m, n)->data, ONNX_IN(m, n, 0)->data, outer,
	    len, inner);
}

/* --- the table --- */

static const struct onnx_op nn_ops[] = {
	{ "AveragePool", 1, 1, 1, 1, 0, "auto_pad ceil_mode "
	    "count_include_pad dilations kernel_shape pads strides",
	    attrs_win, infer_pool, run_avgpool },
	{ "BatchNormalization", 5, 5, 1, 5, 0, "epsilon momentum spatial "
	    "is_test consumed_inputs training_mode", attrs_bn, infer_bn,
	    run_bn },
	{ "Conv", 2, 3, 1, 1, ONNX_OP_SCRATCH, "auto_pad dilations group "
	    "kernel_shape pads strides", attrs_win, infer_conv, run_conv },
	{ "GlobalAveragePool", 1, 1, 1, 1, 0, "", NULL, infer_global,
	    run_global },
	{ "GlobalMaxPool", 1, 1, 1, 1, 0, "", NULL, infer_global,
	    run_global },
	{ "LogSoftmax", 1, 1, 1, 1, 0, "axis", onnx_attrs_softmax,
	    onnx_infer_softmax, run_logsoftmax },
	{ "MaxPool", 1, 1, 1, 2, 0, "auto_pad ceil_mode dilations "
	    "kernel_shape pads storage_order strides", attrs_win, infer_pool,
	    run_maxpool },
};
const struct onnx_optab onnx_ops_nn = {
	nn_ops, sizeof(nn_ops) / sizeof(nn_ops[0])
};
