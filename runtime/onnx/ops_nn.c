/* runtime/onnx/ops_nn.c - convolution, pooling, normalisation and the
 * recurrent layers.
 *
 * Conv is im2col + sgemm, with the unfolding in the node's scratch
 * buffer (planned in the arena like any activation, so a request
 * allocates nothing).  1-D and 2-D convolutions whose last dim has
 * stride 1, nearly all of those in exported CNNs, unfold "wide"
 * (conv_wide()): the input planes are copied once with their padding
 * made real, so that each row of the unfolding is one contiguous run of
 * that copy, and the product computes a few garbage columns per output
 * row that the copy to the output drops.  Their work goes in tasks over
 * the replica's threads (kernel_par_tasks()), each with its own slot of
 * the scratch and OpenBLAS on one thread: a task is several images side
 * by side in one product (a batch: CNNs have few output channels, and
 * one sgemm per image is too narrow to be efficient), or a block of
 * output rows of one image (a large image, or one image worth two
 * threads); a small image stays whole on one thread.  The copy out adds
 * the bias and, where exec.c fused them into the Conv, applies the Relu
 * after it and the 2x2 MaxPool after that, so that neither the Relu nor
 * the Conv's full output ever takes a pass over memory.  Other Convs go
 * image by image (conv_each()) or, batched, in chunks whose unfolding
 * takes about CONV_CHUNK floats (conv_batch()); a 1x1 convolution with
 * stride 1 and no padding needs no unfolding and no scratch.
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

/* Floats a task of the wide Conv unfolds and multiplies (256 KiB, in
 * the L2 cache with room for the weights and the product). */
#define CONV_TASK	((size_t)1 << 16)
/* Multiply-adds below which a single image stays on one thread: waking
 * another costs more than it saves. */
#define CONV_PAR_MIN	((size_t)1 << 19)
/* Bound on any part of the wide Conv's scratch, in floats; a larger
 * Conv takes the general path. */
#define CONV_WIDE_MAX	((size_t)1 << 28)

/* Bound on every kernel, stride, dilation and pad attribute: keeps the
 * window arithmetic far from int64 overflow. */
#define NN_MAX_ATTR	(1 << 20)

enum nn_autopad { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID };

/* How the wide Conv (conv_wide()) cuts its work into tasks, each task a
 * block of nb images, or of rpt output rows of one image, unfolded and
 * multiplied in the scratch of the thread that runs it. */
struct conv_tiles {
	size_t	N, C, M, G;	/* images, channels in and out, groups */
	size_t	cg, mg;		/* channels in and out per group */
	size_t	hp, wp;		/* padded input plane */
	size_t	oh, ow;		/* output plane, computed oh by wp wide */
	size_t	rows;		/* cg * kernel taps: rows of the unfolding */
	size_t	nb;		/* images per task */
	size_t	rpt;		/* output rows per task */
	size_t	ntr;		/* tasks per image: ceil(oh / rpt) */
	size_t	ntasks;
	size_t	xpn;		/* floats per thread: padded planes, */
	size_t	coln;		/* the unfolding */
	size_t	slot;		/* and the product after them */
};

/* One run of a wide Conv, as conv_task() reads it. */
struct conv_job {
	struct conv_tiles	 t;
	const struct kernel_win	*kw;
	const float		*x, *w, *b;	/* b may be NULL */
	float			*y;		/* or the MaxPool's output */
	float			*scratch;	/* t.slot floats per thread */
	bool			 relu;
	bool			 pool;		/* 2x2 max pool, stride 2 */
};

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
static bool	conv_tiles(struct conv_tiles *, const struct onnx_value *,
		    const struct onnx_value *, const struct kernel_win *,
		    size_t, size_t, bool);
static void	conv_task(void *, size_t, int);
static void	conv_wide(struct onnx_model *, struct onnx_node *,
		    const struct kernel_win *, float *, bool);
static void	conv_each(struct onnx_model *, struct onnx_node *,
		    const struct kernel_win *);
static struct onnx_node *conv_pool(struct onnx_model *, struct onnx_node *);
static bool	conv_pool2(struct onnx_model *, struct onnx_node *,
		    struct onnx_node *, struct kernel_win *);

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
	if (sp <= 2 && n->stride[sp - 1] == 1 &&
	    onnx_dims_prod(x->shape, 0, x->ndim) > 0 &&
	    onnx_dims_prod(w->shape, 0, w->ndim) > 0 &&
	    onnx_dims_prod(y->shape, 0, y->ndim) > 0) {
		struct conv_tiles	t;
		struct kernel_win	kw;
		int			nthr = kernel_par_threads();

		win_fill(&kw, n, x->shape + 2, y->shape + 2, w->shape + 2, sp);
		if (conv_tiles(&t, x, w, &kw, (size_t)G, (size_t)nthr,
		    conv_pool(m, n) != NULL)) {
			/* (threads, 1, 1, floats per thread): rank 4 marks
			 * the wide path for run_conv(). */
			col->ndim = 4;
			col->shape[0] = nthr;
			col->shape[1] = col->shape[2] = 1;
			col->shape[3] = (int64_t)t.slot;
			return 0;
		}
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

/* The sizes a Conv's loops run over: N images of C channels in G groups
 * (cg in, mg out each), M output channels, kk weights per channel and
 * window, pin input and p output pixels per channel. */
struct conv_dims {
	size_t	N, C, M, G, cg, mg, kk, pin, p;
};

static struct conv_dims
conv_dims(const struct onnx_model *m, const struct onnx_node *n)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0), *w = ONNX_IN(m, n, 1);
	const struct onnx_value	*y = ONNX_OUT(m, n);
	struct conv_dims	 d;

	d.N = (size_t)x->shape[0];
	d.C = (size_t)x->shape[1];
	d.M = (size_t)y->shape[1];
	d.G = (size_t)n->i3;
	d.cg = d.C / d.G;
	d.mg = d.M / d.G;
	d.kk = (size_t)onnx_dims_prod(w->shape, 2, w->ndim);
	d.pin = (size_t)onnx_dims_prod(x->shape, 2, x->ndim);
	d.p = (size_t)onnx_dims_prod(y->shape, 2, y->ndim);
	return d;
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
	struct conv_dims	 d = conv_dims(m, n);
	size_t			 N = d.N, C = d.C, M = d.M, G = d.G;
	size_t			 cg = d.cg, mg = d.mg, kk = d.kk, pin = d.pin;
	size_t			 p = d.p;
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

/* Rounds a count of floats up to a cache line. */
#define CONV_LINE(f)	(((f) + 15) & ~(size_t)15)

/* The wide Conv's tiling of x by w over the window kw, for nthr threads,
 * in blocks of an even number of rows if even (a 2x2 pool follows);
 * false if kw is not a window it computes (its first dim must be
 * trivial and its last have stride 1) or a part would be too large. */
static bool
conv_tiles(struct conv_tiles *t, const struct onnx_value *x,
    const struct onnx_value *w, const struct kernel_win *kw, size_t G,
    size_t nthr, bool even)
{
	size_t	taps, plane, per, work;

	if (kw->in[0] != 1 || kw->kern[0] != 1 || kw->pad[0] != 0 ||
	    kw->pad_end[0] != 0 || kw->stride[2] != 1)
		return false;
	t->N = (size_t)x->shape[0];
	t->C = (size_t)x->shape[1];
	t->M = (size_t)w->shape[0];
	t->G = G;
	t->cg = t->C / G;
	t->mg = t->M / G;
	t->hp = (size_t)(kw->pad[1] + kw->in[1] + kw->pad_end[1]);
	t->wp = (size_t)(kw->pad[2] + kw->in[2] + kw->pad_end[2]);
	t->oh = (size_t)kw->out[1];
	t->ow = (size_t)kw->out[2];
	taps = (size_t)(kw->kern[1] * kw->kern[2]);
	/* Every tap of every output lies in the padded plane: the output
	 * sizes came from these pads (win_infer()). */
	if (t->ow + (size_t)((kw->kern[2] - 1) * kw->dil[2]) != t->wp ||
	    (t->oh - 1) * (size_t)kw->stride[1] + (size_t)((kw->kern[1] -
	    1) * kw->dil[1]) >= t->hp)
		return false;
	if (t->wp > CONV_WIDE_MAX / t->hp)
		return false;
	plane = t->hp * t->wp;
	if (t->cg > CONV_WIDE_MAX / plane || taps > CONV_WIDE_MAX / t->cg)
		return false;
	t->rows = t->cg * taps;
	if (t->rows + t->mg > CONV_WIDE_MAX / (t->oh * t->wp))
		return false;
	/* Floats unfolded and multiplied per image. */
	per = (t->rows + t->mg) * t->oh * t->wp;
	t->nb = 1;
	t->rpt = t->oh;
	if (t->N > 1 && per < CONV_TASK) {
		/* Images side by side: one product wide enough to be
		 * worth it, and enough tasks to share. */
		t->nb = CONV_TASK / per;
		if (nthr > 1 && t->nb > t->N / (2 * nthr))
			t->nb = t->N / (2 * nthr);
		if (t->nb < 1)
			t->nb = 1;
		if (t->nb > t->N)
			t->nb = t->N;
	} else if (per > CONV_TASK) {
		/* A large image goes a block of rows at a time. */
		t->rpt = CONV_TASK / ((t->rows + t->mg) * t->wp);
		if (t->rpt < 1)
			t->rpt = 1;
	}
	work = t->M * t->rows * t->oh * t->wp;
	if (t->N < nthr && nthr > 1 && work >= CONV_PAR_MIN &&
	    t->rpt > (t->oh + nthr - 1) / nthr)
		t->rpt = (t->oh + nthr - 1) / nthr;
	if (even && t->rpt % 2 != 0)
		t->rpt = t->rpt + 1 < t->oh ? t->rpt + 1 : t->oh;
	t->ntr = (t->oh + t->rpt - 1) / t->rpt;
	t->ntasks = (t->N + t->nb - 1) / t->nb * t->ntr;
	t->xpn = CONV_LINE(t->cg * plane + kernel_wide_slack(kw));
	t->coln = CONV_LINE(t->rows * t->nb * t->rpt * t->wp);
	t->slot = CONV_LINE(t->xpn + t->coln + t->mg * t->nb * t->rpt *
	    t->wp);
	return true;
}

/* Task c of a wide Conv on thread thr's scratch: per group, each image
 * of the task padded and unfolded (its rows r0..r1 of outputs, wp wide)
 * into the columns of one product, then each image's plane of each
 * output channel to its place in y, with the bias and the Relu. */
static void
conv_task(void *arg, size_t c, int thr)
{
	const struct conv_job	*j = arg;
	const struct conv_tiles	*t = &j->t;
	float			*xp = j->scratch + (size_t)thr * t->slot;
	float			*col = xp + t->xpn, *prod = col + t->coln;
	size_t			 i0 = c / t->ntr * t->nb;
	size_t			 r0 = c % t->ntr * t->rpt;
	size_t			 r1 = r0 + t->rpt > t->oh ? t->oh : r0 + t->rpt;
	size_t			 k = t->N - i0 < t->nb ? t->N - i0 : t->nb;
	size_t			 cols = (r1 - r0) * t->wp, ld = k * cols;
	size_t			 pin = (size_t)(j->kw->in[1] * j->kw->in[2]);
	size_t			 pout = t->oh * t->ow;
	size_t			 ph = t->oh / 2, pw = t->ow / 2;

	for (size_t g = 0; g < t->G; g++) {
		for (size_t i = 0; i < k; i++) {
			kernel_pad_planes(xp, j->x + ((i0 + i) * t->C + g *
			    t->cg) * pin, t->cg, j->kw);
			kernel_im2col_wide(col + i * cols, ld, xp, t->cg,
			    j->kw, r0, r1);
		}
		kernel_gemm(prod, j->w + g * t->mg * t->rows, col, NULL,
		    t->mg, ld, t->rows, 0, 1.0f, 0.0f, 1, 1);
		for (size_t i = 0; i < k; i++)
			for (size_t o = 0; o < t->mg; o++) {
				size_t		 ch = g * t->mg + o;
				const float	*src = prod + o * ld + i * cols;
				float		 bias = j->b != NULL ?
						    j->b[ch] : 0.0f;

				/* r0 is even when pooling: the block
				 * holds whole windows, but for an odd
				 * last row, which no window takes. */
				if (j->pool)
					kernel_plane_bias_pool(j->y +
					    ((i0 + i) * t->M + ch) * ph * pw +
					    r0 / 2 * pw, pw, src, t->wp, bias,
					    r1 - r0, t->ow, j->relu);
				else
					kernel_plane_bias(j->y + ((i0 + i) *
					    t->M + ch) * pout + r0 * t->ow,
					    t->ow, src, t->wp, bias, r1 - r0,
					    t->ow, j->relu);
			}
	}
}

/* A 1-D or 2-D Conv whose last dim has stride 1, the common case:
 * unfolded "wide" (kernel_im2col_wide()), each row of the unfolding
 * being one or a few runs of a padded copy of the input, at the cost of
 * computing the wp - ow columns on the right of each output row that
 * the copy to y drops.  Tasks (conv_tiles()) spread over the threads. */
static void
conv_wide(struct onnx_model *m, struct onnx_node *n,
    const struct kernel_win *kw, float *y, bool pool)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0), *w = ONNX_IN(m, n, 1);
	struct onnx_value	*col = &m->vals[n->scratch];
	struct conv_job		 j;
	size_t			 nthr = (size_t)col->shape[0];

	(void)conv_tiles(&j.t, x, w, kw, (size_t)n->i3, nthr,
	    conv_pool(m, n) != NULL);
	j.kw = kw;
	j.x = x->data;
	j.w = w->data;
	j.b = ONNX_HAS_IN(n, 2) ? ONNX_IN(m, n, 2)->data : NULL;
	j.y = y;
	j.scratch = col->data;
	j.relu = n->relu;
	j.pool = pool;
	/* The scratch holds nthr slots: more threads than that (the
	 * count changed since the plan) run the tasks here. */
	if ((size_t)kernel_par_threads() <= nthr) {
		kernel_par_tasks(conv_task, &j, j.t.ntasks);
		return;
	}
	for (size_t c = 0; c < j.t.ntasks; c++)
		conv_task(&j, c, 0);
}

/* The MaxPool whose output the Conv writes (exec.c's fusion), or NULL.
 * A Conv folded at load runs before the fusions. */
static struct onnx_node *
conv_pool(struct onnx_model *m, struct onnx_node *n)
{
	return m->fused && n->pool >= 0 ? &m->nodes[n->pool] : NULL;
}

/* Fills pw with pool node p's window over the Conv's output; true if it
 * is the 2x2 window of stride 2 without padding that the wide Conv
 * pools as it copies out (its output then floor(out / 2)). */
static bool
conv_pool2(struct onnx_model *m, struct onnx_node *n, struct onnx_node *p,
    struct kernel_win *pw)
{
	const struct onnx_value	*y = ONNX_OUT(m, n), *py = ONNX_OUT(m, p);

	win_fill(pw, p, y->shape + 2, py->shape + 2, p->kern, y->ndim - 2);
	if (y->ndim != 4)
		return false;
	for (int d = 1; d < 3; d++)
		if (pw->kern[d] != 2 || pw->stride[d] != 2 ||
		    pw->dil[d] != 1 || pw->pad[d] != 0 ||
		    pw->out[d] != pw->in[d] / 2)
			return false;
	return true;
}

static void
run_conv(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0), *w = ONNX_IN(m, n, 1);
	struct onnx_value	*y = ONNX_OUT(m, n);
	struct onnx_value	*col = &m->vals[n->scratch];
	struct onnx_node	*p;
	struct kernel_win	 kw, pw;
	int			 sp = x->ndim - 2;

	win_fill(&kw, n, x->shape + 2, y->shape + 2, w->shape + 2, sp);
	if ((p = conv_pool(m, n)) != NULL && col->ndim == 4 &&
	    conv_pool2(m, n, p, &pw)) {
		conv_wide(m, n, &kw, ONNX_OUT(m, p)->data, true);
		return;
	}
	if (col->ndim == 4)
		conv_wide(m, n, &kw, y->data, false);
	else if (col->ndim == 3) {
		conv_batch(m, n, &kw);
		if (n->relu)
			kernel_relu(y->data, y->data, y->count);
	} else
		conv_each(m, n, &kw);
	/* Any other MaxPool: from the Conv's output, which the plan
	 * keeps. */
	if (p != NULL) {
		(void)conv_pool2(m, n, p, &pw);
		kernel_maxpool(ONNX_OUT(m, p)->data, NULL, y->data, (size_t)(
		    y->shape[0] * y->shape[1]), &pw, false);
	}
}

/* Image by image, group by group: the unit Conv (straight on x), and the
 * general unfolding where the wide one does not apply. */
static void
conv_each(struct onnx_model *m, struct onnx_node *n,
    const struct kernel_win *kw)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0), *w = ONNX_IN(m, n, 1);
	const float		*b = ONNX_HAS_IN(n, 2) ? ONNX_IN(m, n, 2)->data :
				    NULL;
	struct onnx_value	*y = ONNX_OUT(m, n);
	struct onnx_value	*col = &m->vals[n->scratch];
	struct conv_dims	 d = conv_dims(m, n);
	size_t			 N = d.N, C = d.C, M = d.M, G = d.G;
	size_t			 cg = d.cg, mg = d.mg, kk = d.kk, pin = d.pin;
	size_t			 p = d.p;

	for (size_t i = 0; i < N; i++) {
		for (size_t g = 0; g < G; g++) {
			const float	*xg = (const float *)x->data +
					    (i * C + g * cg) * pin;
			const float	*src = xg;

			if (col->ndim != 0) {
				kernel_im2col(col->data, (size_t)p, xg, cg,
				    kw);
				src = col->data;
			}
			/* y (mg, p) = W_g (mg, cg * kk) src (cg * kk, p)
			 * + the group's biases, broadcast along p. */
			kernel_gemm((float *)y->data + (i * M + g * mg) * p,
			    (const float *)w->data + g * mg * cg * kk, src,
			    b != NULL ? b + g * mg : NULL, mg, p, cg * kk, 0,
			    1.0f, 1.0f, mg, 1);
		}
		/* Image by image, while its output is in cache. */
		if (n->relu)
			kernel_relu((float *)y->data + i * M * p,
			    (float *)y->data + i * M * p, M * p);
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

/* --- BatchNormalization --- */

/* Inference normalises with the running statistics given as inputs.
 * training_mode=1 (opset 14) normalises with the statistics of the batch
 * instead (mean and population variance over every axis but the channel)
 * and outputs the running statistics updated with momentum:
 * running = input * momentum + batch * (1 - momentum).  i0 is 1 in
 * training mode; alpha is the momentum. */
static int
attrs_bn(struct onnx_model *m, struct onnx_node *n, Onnx__NodeProto *p,
    char *err, size_t errlen)
{
	int64_t	train, spatial;

	(void)m;
	if (onnx_attr_float(p, "epsilon", 1e-5f, &n->eps, n, err, errlen) ==
	    -1 || onnx_attr_int(p, "training_mode", 0, &train, n, err,
	    errlen) == -1 || onnx_attr_int(p, "spatial", 1, &spatial, n, err,
	    errlen) == -1 || onnx_attr_float(p, "momentum", 0.9f, &n->alpha,
	    n, err, errlen) == -1)
		return -1;
	if (spatial != 1) {
		onnx_node_err(err, errlen, n, "spatial=0 is not supported");
		return -1;
	}
	n->i0 = train != 0;
	if (n->i0 && p->n_output > 3) {
		onnx_node_err(err, errlen, n, "the saved statistics outputs "
		    "of opsets before 14 are not supported");
		return -1;
	}
	if (n->i0)
		return 0;
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
	/* Training: running mean and variance, one per channel. */
	for (int j = 1; j < n->n_out; j++) {
		struct onnx_value	*o;

		if (!ONNX_HAS_OUT(n, j))
			continue;
		o = ONNX_OUTI(m, n, j);
		o->dtype = DT_FP32;
		o->ndim = 1;
		o->shape[0] = C;
	}
	return onnx_infer_same(m, n, err, errlen);
}

/* Training mode: each channel's batch mean and population variance (in
 * double, two passes) normalise it, and go to the statistics outputs. */
static void
run_bn_train(struct onnx_model *m, struct onnx_node *n)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	const float		*sc = ONNX_IN(m, n, 1)->data;
	const float		*bi = ONNX_IN(m, n, 2)->data;
	const float		*rmean = ONNX_IN(m, n, 3)->data;
	const float		*rvar = ONNX_IN(m, n, 4)->data;
	float			*y = ONNX_OUT(m, n)->data;
	float			*out[3] = { NULL };
	size_t			 N = (size_t)x->shape[0];
	size_t			 C = (size_t)x->shape[1];
	size_t			 len = x->count / (N * C);
	float			 mom = n->alpha;

	for (int j = 1; j < n->n_out && j < 3; j++)
		if (ONNX_HAS_OUT(n, j))
			out[j] = ONNX_OUTI(m, n, j)->data;
	for (size_t c = 0; c < C; c++) {
		double	sum = 0, sq = 0, mean, var;
		float	a, b;

		for (size_t i = 0; i < N; i++) {
			const float	*xp = (const float *)x->data +
					    (i * C + c) * len;

			for (size_t k = 0; k < len; k++)
				sum += xp[k];
		}
		mean = sum / (double)(N * len);
		for (size_t i = 0; i < N; i++) {
			const float	*xp = (const float *)x->data +
					    (i * C + c) * len;

			for (size_t k = 0; k < len; k++)
				sq += (xp[k] - mean) * (xp[k] - mean);
		}
		var = sq / (double)(N * len);
		a = (float)(sc[c] / sqrt(var + n->eps));
		b = (float)(bi[c] - mean * a);
		for (size_t i = 0; i < N; i++) {
			const float	*xp = (const float *)x->data +
					    (i * C + c) * len;
			float		*yp = y + (i * C + c) * len;

			for (size_t k = 0; k < len; k++)
				yp[k] = a * xp[k] + b;
		}
		if (out[1] != NULL)
			out[1][c] = (float)(rmean[c] * mom + mean * (1 - mom));
		if (out[2] != NULL)
			out[2][c] = (float)(rvar[c] * mom + var * (1 - mom));
	}
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

	if (n->i0) {
		run_bn_train(m, n);
		return;
	}
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
