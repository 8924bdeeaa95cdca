/* runtime/onnx/ops_rnn.c - the recurrent layers RNN, GRU and LSTM.
 *
 * Each direction first multiplies the whole input sequence with its input
 * weights in one sgemm (every time step at once, biases folded in), then
 * walks the steps: one sgemm of the hidden state with the recurrence
 * weights, then the gate arithmetic row by row.  Everything a step needs
 * lives in the node's scratch buffer, planned in the arena:
 *
 *   scratch (seq + 4, batch * G * H), G gates of H units:
 *     rows [0, seq)	xw: X W^T + biases, rows of X's (time, batch)
 *     row seq		gates of one step: h R^T
 *     row seq + 1	h, the hidden state (batch, H)
 *     row seq + 2	c, the LSTM cell state (batch, H)
 *     row seq + 3	GRU: r * h (batch, H)
 *
 * Node fields: axis gates (1 RNN, 3 GRU, 4 LSTM); i0 hidden_size (0:
 * from R); i1 direction (enum rnn_dir); i2 layout; i3
 * linear_before_reset (GRU) or input_forget (LSTM); flags RNN_CLIP with
 * the threshold in eps; act[] the activations of each direction.
 *
 * Gate orders are ONNX's: GRU z, r, h; LSTM i, o, f, c; peepholes i, o,
 * f.  sequence_lens shortens a batch entry: its later outputs are zero
 * and its final state is the one after its last step (values outside
 * [0, seq] are clamped, as a request cannot fail once planned). */
#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/tensor.h"
#include "runtime/kernels.h"
#include "runtime/onnx/graph.h"

#define A_FLOATS	ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS
#define A_STRINGS	ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS

#define RNN_CLIP	0x1		/* flags: clip the gate inputs */
#define RNN_MAX_HIDDEN	(1 << 24)

enum rnn_dir { DIR_FORWARD, DIR_REVERSE, DIR_BIDI };

enum rnn_act {
	ACT_RELU, ACT_TANH, ACT_SIGMOID, ACT_AFFINE, ACT_LEAKY, ACT_THRESH,
	ACT_SCALED_TANH, ACT_HARD_SIGMOID, ACT_ELU, ACT_SOFTSIGN,
	ACT_SOFTPLUS
};

/* The activations ONNX names for the recurrent layers: how many of
 * activation_alpha and activation_beta each consumes, and their
 * defaults. */
static const struct {
	const char	*name;
	int		 n_alpha, n_beta;
	float		 alpha, beta;
} acts[] = {
	[ACT_RELU] = { "Relu", 0, 0, 0.0f, 0.0f },
	[ACT_TANH] = { "Tanh", 0, 0, 0.0f, 0.0f },
	[ACT_SIGMOID] = { "Sigmoid", 0, 0, 0.0f, 0.0f },
	[ACT_AFFINE] = { "Affine", 1, 1, 1.0f, 0.0f },
	[ACT_LEAKY] = { "LeakyRelu", 1, 0, 0.01f, 0.0f },
	[ACT_THRESH] = { "ThresholdedRelu", 1, 0, 1.0f, 0.0f },
	[ACT_SCALED_TANH] = { "ScaledTanh", 1, 1, 1.0f, 1.0f },
	[ACT_HARD_SIGMOID] = { "HardSigmoid", 1, 1, 0.2f, 0.5f },
	[ACT_ELU] = { "Elu", 1, 0, 1.0f, 0.0f },
	[ACT_SOFTSIGN] = { "Softsign", 0, 0, 0.0f, 0.0f },
	[ACT_SOFTPLUS] = { "Softplus", 0, 0, 0.0f, 0.0f },
};

static const Onnx__AttributeProto *attr_get(const Onnx__NodeProto *,
		    const char *, int, const struct onnx_node *, char *,
		    size_t, int *);
static int	attrs_acts(struct onnx_node *, Onnx__NodeProto *, int, int,
		    char *, size_t);
static int	rnn_dims(const struct onnx_model *, const struct onnx_node *,
		    int, int, const int64_t *, char *, size_t);
static float	act(const struct onnx_node *, int, float);
static float	clip(const struct onnx_node *, float);
static void	run_dir(struct onnx_model *, struct onnx_node *, int);

/* --- attributes --- */

/* As ops.c's lookup, for the list types it has no helper for. */
static const Onnx__AttributeProto *
attr_get(const Onnx__NodeProto *p, const char *name, int type,
    const struct onnx_node *n, char *err, size_t errlen, int *bad)
{
	*bad = 0;
	for (size_t i = 0; i < p->n_attribute; i++) {
		const Onnx__AttributeProto	*a = p->attribute[i];

		if (a->name == NULL || strcmp(a->name, name) != 0)
			continue;
		if ((int)a->type != type) {
			onnx_node_err(err, errlen, n, "attribute '%s' has the "
			    "wrong type", name);
			*bad = -1;
			return NULL;
		}
		return a;
	}
	return NULL;
}

/* The activations, `per` for each of `dirs` directions: the defaults
 * (Sigmoid then Tanh) unless listed. */
static int
attrs_acts(struct onnx_node *n, Onnx__NodeProto *p, int per, int dirs,
    char *err, size_t errlen)
{
	const Onnx__AttributeProto	*as, *aa, *ab;
	size_t				 ia = 0, ib = 0;
	int				 bad;

	n->n_act = per * dirs;
	for (int i = 0; i < n->n_act; i++)
		n->act[i] = per == 1 || i % per != 0 ? ACT_TANH : ACT_SIGMOID;
	if ((as = attr_get(p, "activations", A_STRINGS, n, err, errlen,
	    &bad)) == NULL && bad)
		return -1;
	if ((aa = attr_get(p, "activation_alpha", A_FLOATS, n, err, errlen,
	    &bad)) == NULL && bad)
		return -1;
	if ((ab = attr_get(p, "activation_beta", A_FLOATS, n, err, errlen,
	    &bad)) == NULL && bad)
		return -1;
	if (as != NULL && as->n_strings != (size_t)n->n_act &&
	    as->n_strings != (size_t)per) {
		onnx_node_err(err, errlen, n, "%zu activations given, %d "
		    "expected", as->n_strings, n->n_act);
		return -1;
	}
	for (int i = 0; i < n->n_act; i++) {
		const ProtobufCBinaryData	*s;
		size_t				 k, len;

		if (as != NULL) {
			s = &as->strings[(size_t)i % as->n_strings];
			len = s->len;
			for (k = 0; k < sizeof(acts) / sizeof(acts[0]); k++)
				if (strlen(acts[k].name) == len &&
				    strncasecmp(acts[k].name,
				    (const char *)s->data, len) == 0)
					break;
			if (k == sizeof(acts) / sizeof(acts[0])) {
				onnx_node_err(err, errlen, n, "activation "
				    "'%.*s' is not supported", (int)(len < 40 ?
				    len : 40), (const char *)s->data);
				return -1;
			}
			n->act[i] = (unsigned char)k;
		}
		/* Listed values are consumed in order by the functions
		 * that take them; the others keep their defaults. */
		n->act_alpha[i] = acts[n->act[i]].alpha;
		n->act_beta[i] = acts[n->act[i]].beta;
		if (acts[n->act[i]].n_alpha && aa != NULL &&
		    ia < aa->n_floats)
			n->act_alpha[i] = aa->floats[ia++];
		if (acts[n->act[i]].n_beta && ab != NULL &&
		    ib < ab->n_floats)
			n->act_beta[i] = ab->floats[ib++];
	}
	return 0;
}

static int
attrs_rnn(struct onnx_model *m, struct onnx_node *n, Onnx__NodeProto *p,
    char *err, size_t errlen)
{
	const char	*op = n->op->name;
	char		 dir[24];
	float		 clip;
	int		 bad, per;

	(void)m;
	n->axis = strcmp(op, "GRU") == 0 ? 3 : strcmp(op, "LSTM") == 0 ? 4 :
	    1;
	per = n->axis == 1 ? 1 : n->axis == 3 ? 2 : 3;
	if (onnx_attr_int(p, "hidden_size", 0, &n->i0, n, err, errlen) ==
	    -1 || onnx_attr_str(p, "direction", "forward", dir, sizeof(dir),
	    n, err, errlen) == -1 ||
	    onnx_attr_int(p, "layout", 0, &n->i2, n, err, errlen) == -1 ||
	    onnx_attr_int(p, n->axis == 3 ? "linear_before_reset" :
	    "input_forget", 0, &n->i3, n, err, errlen) == -1 ||
	    onnx_attr_float(p, "clip", 0.0f, &clip, n, err, errlen) == -1)
		return -1;
	n->flags = 0;
	if (attr_get(p, "clip", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT,
	    n, err, errlen, &bad) != NULL) {
		if (!(clip > 0.0f)) {
			onnx_node_err(err, errlen, n, "clip must be "
			    "positive");
			return -1;
		}
		n->flags |= RNN_CLIP;
		n->eps = clip;
	}
	if (n->i0 < 0 || n->i0 > RNN_MAX_HIDDEN) {
		onnx_node_err(err, errlen, n, "hidden_size is %lld, not in "
		    "[1, %d]", (long long)n->i0, RNN_MAX_HIDDEN);
		return -1;
	}
	if (strcmp(dir, "forward") == 0)
		n->i1 = DIR_FORWARD;
	else if (strcmp(dir, "reverse") == 0)
		n->i1 = DIR_REVERSE;
	else if (strcmp(dir, "bidirectional") == 0)
		n->i1 = DIR_BIDI;
	else {
		onnx_node_err(err, errlen, n, "direction '%s' is not "
		    "supported", dir);
		return -1;
	}
	if (n->i2 != 0 && n->i2 != 1) {
		onnx_node_err(err, errlen, n, "layout must be 0 or 1");
		return -1;
	}
	if (n->i3 != 0 && n->i3 != 1) {
		onnx_node_err(err, errlen, n, "%s must be 0 or 1",
		    n->axis == 3 ? "linear_before_reset" : "input_forget");
		return -1;
	}
	return attrs_acts(n, p, per, n->i1 == DIR_BIDI ? 2 : 1, err,
	    errlen);
}

/* --- shapes --- */

/* Whether input i, if present, has the given rank and dims (-1 in
 * want or in the value matches anything). */
static int
rnn_dims(const struct onnx_model *m, const struct onnx_node *n, int i,
    int nd, const int64_t *want, char *err, size_t errlen)
{
	const struct onnx_value	*v;
	char			 got[128], exp[128];
	bool			 ok;

	if (!ONNX_HAS_IN(n, i))
		return 0;
	v = ONNX_IN(m, n, i);
	ok = v->ndim == nd;
	for (int d = 0; ok && d < nd; d++)
		ok = want[d] == -1 || v->shape[d] == -1 ||
		    v->shape[d] == want[d];
	if (ok)
		return 0;
	onnx_fmt_shape(got, sizeof(got), v->shape, v->ndim);
	onnx_fmt_shape(exp, sizeof(exp), want, nd);
	onnx_node_err(err, errlen, n, "input '%s' is %s, expected %s (-1: "
	    "any)", v->name, got, exp);
	return -1;
}

static int
infer_rnn(struct onnx_model *m, struct onnx_node *n, char *err,
    size_t errlen)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0), *r = ONNX_IN(m, n, 2);
	struct onnx_value	*s = &m->vals[n->scratch];
	int64_t			 G = n->axis, H = n->i0, dirs, seq, batch;
	int64_t			 w3[3], w2[2];
	bool			 lstm = G == 4;

	for (int i = 0; i < n->n_in; i++)
		if (onnx_want(m, n, i, i == 4 ? ONNX_T_INT : ONNX_T_F32, err,
		    errlen) == -1)
			return -1;
	if (x->ndim != 3) {
		onnx_node_err(err, errlen, n, "X must be 3-D, got rank %d",
		    x->ndim);
		return -1;
	}
	if (H == 0 && r->ndim == 3)
		H = r->shape[2];
	dirs = n->i1 == DIR_BIDI ? 2 : 1;
	seq = x->shape[n->i2 ? 1 : 0];
	batch = x->shape[n->i2 ? 0 : 1];
	w3[0] = dirs;
	w3[1] = H == -1 ? -1 : G * H;
	w3[2] = x->shape[2];
	if (rnn_dims(m, n, 1, 3, w3, err, errlen) == -1)
		return -1;
	w3[2] = H;
	if (rnn_dims(m, n, 2, 3, w3, err, errlen) == -1)
		return -1;
	if (H == -1) {
		onnx_node_err(err, errlen, n, "hidden_size is not given and "
		    "R's shape is not known");
		return -1;
	}
	w2[0] = dirs;
	w2[1] = 2 * G * H;
	if (rnn_dims(m, n, 3, 2, w2, err, errlen) == -1)
		return -1;
	w2[0] = batch;
	if (rnn_dims(m, n, 4, 1, w2, err, errlen) == -1)
		return -1;
	w3[0] = n->i2 ? batch : dirs;
	w3[1] = n->i2 ? dirs : batch;
	w3[2] = H;
	if (rnn_dims(m, n, 5, 3, w3, err, errlen) == -1 ||
	    (lstm && rnn_dims(m, n, 6, 3, w3, err, errlen) == -1))
		return -1;
	w2[0] = dirs;
	w2[1] = 3 * H;
	if (lstm && rnn_dims(m, n, 7, 2, w2, err, errlen) == -1)
		return -1;
	n->i0 = H;

	for (int j = 0; j < n->n_out; j++) {
		struct onnx_value	*y;

		if (!ONNX_HAS_OUT(n, j))
			continue;
		y = ONNX_OUTI(m, n, j);
		y->dtype = DT_FP32;
		if (j == 0) {
			/* Y: (seq, dirs, batch, H), or (batch, seq, dirs,
			 * H) in layout 1. */
			y->ndim = 4;
			y->shape[0] = n->i2 ? batch : seq;
			y->shape[1] = n->i2 ? seq : dirs;
			y->shape[2] = n->i2 ? dirs : batch;
			y->shape[3] = H;
		} else {
			y->ndim = 3;
			memcpy(y->shape, w3, sizeof(w3));
		}
	}
	s->dtype = DT_FP32;
	s->ndim = 2;
	s->shape[0] = seq == -1 ? -1 : seq + 4;
	s->shape[1] = batch == -1 ? -1 : batch * G * H;
	return 0;
}

/* --- running --- */

static float
act(const struct onnx_node *n, int i, float x)
{
	float	a = n->act_alpha[i], b = n->act_beta[i];

	switch (n->act[i]) {
	case ACT_RELU:
		return x > 0.0f ? x : 0.0f;
	case ACT_TANH:
		return tanhf(x);
	case ACT_SIGMOID:
		return x >= 0.0f ? 1.0f / (1.0f + expf(-x)) :
		    expf(x) / (1.0f + expf(x));
	case ACT_AFFINE:
		return a * x + b;
	case ACT_LEAKY:
		return x >= 0.0f ? x : a * x;
	case ACT_THRESH:
		return x > a ? x : 0.0f;
	case ACT_SCALED_TANH:
		return a * tanhf(b * x);
	case ACT_HARD_SIGMOID:
		x = a * x + b;
		return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x;
	case ACT_ELU:
		return x >= 0.0f ? x : a * (expf(x) - 1.0f);
	case ACT_SOFTSIGN:
		return x / (1.0f + fabsf(x));
	default:
		return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x));
	}
}

/* A gate's input, clipped if the node says so. */
static float
clip(const struct onnx_node *n, float x)
{
	if (!(n->flags & RNN_CLIP))
		return x;
	return x < -n->eps ? -n->eps : x > n->eps ? n->eps : x;
}

/* One direction d of the layer over the whole sequence. */
static void
run_dir(struct onnx_model *m, struct onnx_node *n, int d)
{
	const struct onnx_value	*x = ONNX_IN(m, n, 0);
	const struct onnx_value	*sl = ONNX_HAS_IN(n, 4) ? ONNX_IN(m, n, 4) :
				    NULL;
	const float		*w = ONNX_IN(m, n, 1)->data;
	const float		*r = ONNX_IN(m, n, 2)->data;
	const float		*bias = ONNX_HAS_IN(n, 3) ? ONNX_IN(m, n,
				    3)->data : NULL;
	const float		*h0 = ONNX_HAS_IN(n, 5) ? ONNX_IN(m, n,
				    5)->data : NULL;
	const float		*c0 = ONNX_HAS_IN(n, 6) ? ONNX_IN(m, n,
				    6)->data : NULL;
	const float		*pp = ONNX_HAS_IN(n, 7) ? ONNX_IN(m, n,
				    7)->data : NULL;
	float			*yv = ONNX_HAS_OUT(n, 0) ? ONNX_OUT(m, n)->data :
				    NULL;
	float			*scr = m->vals[n->scratch].data;
	size_t			 G = (size_t)n->axis, H = (size_t)n->i0;
	size_t			 GH = G * H, in = (size_t)x->shape[2];
	bool			 lay = n->i2 != 0, gru = G == 3, lstm = G == 4;
	bool			 lbr = gru && n->i3, ifg = lstm && n->i3;
	size_t			 seq = (size_t)x->shape[lay ? 1 : 0];
	size_t			 batch = (size_t)x->shape[lay ? 0 : 1];
	size_t			 dirs = n->i1 == DIR_BIDI ? 2 : 1;
	bool			 rev = n->i1 == DIR_REVERSE || d == 1;
	size_t			 row = batch * GH;
	float			*xw = scr, *gates = scr + seq * row;
	float			*h = gates + row, *c = h + row, *rh = c + row;
	const float		*fa = NULL;
	int			 a0 = d * (n->n_act / (int)dirs);

	w += (size_t)d * GH * in;
	r += (size_t)d * GH * H;
	if (bias != NULL) {
		/* xw gets Wb + Rb, except GRU's Rbh under
		 * linear_before_reset, which r multiplies. */
		bias += (size_t)d * 2 * GH;
		for (size_t j = 0; j < GH; j++)
			gates[j] = bias[j] + (lbr && j >= 2 * H ? 0.0f :
			    bias[GH + j]);
		fa = gates;
	}
	if (pp != NULL)
		pp += (size_t)d * 3 * H;
	/* All steps at once: xw (seq * batch, GH) = X W^T + bias, rows in
	 * X's own (time, batch) or (batch, time) order. */
	kernel_gemm(xw, x->data, w, fa, seq * batch, GH, in, KERNEL_TRANS_B,
	    1.0f, 1.0f, 1, GH);
	/* Rows sequence_lens has finished still pass through the GRU's
	 * second sgemm: keep them finite. */
	memset(rh, 0, batch * H * sizeof(*rh));
	for (size_t b = 0; b < batch; b++) {
		size_t	o = lay ? (b * dirs + (size_t)d) * H :
			    ((size_t)d * batch + b) * H;

		for (size_t k = 0; k < H; k++) {
			h[b * H + k] = h0 != NULL ? h0[o + k] : 0.0f;
			c[b * H + k] = c0 != NULL ? c0[o + k] : 0.0f;
		}
	}
	for (size_t s = 0; s < seq; s++) {
		/* gates (batch, GH) = h R^T; GRU without
		 * linear_before_reset waits for r to do its h part. */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
		    (blasint)batch, (blasint)(gru && !lbr ? 2 * H : GH),
		    (blasint)H, 1.0f, h, (blasint)H, r, (blasint)H, 0.0f,
		    gates, (blasint)GH);
		for (int phase = 0; phase < (gru && !lbr ? 2 : 1); phase++) {
			if (phase == 1)
				cblas_sgemm(CblasRowMajor, CblasNoTrans,
				    CblasTrans, (blasint)batch, (blasint)H,
				    (blasint)H, 1.0f, rh, (blasint)H,
				    r + 2 * H * H, (blasint)H, 0.0f,
				    gates + 2 * H, (blasint)GH);
			for (size_t b = 0; b < batch; b++) {
				size_t		 len = seq, t;
				const float	*xr;
				float		*g = gates + b * GH;
				float		*hb = h + b * H, *cb = c + b * H;

				if (sl != NULL) {
					int64_t	v = onnx_int_at(sl, b);

					len = v < 0 ? 0 : (size_t)v > seq ?
					    seq : (size_t)v;
				}
				if (s >= len)
					continue;
				t = rev ? len - 1 - s : s;
				xr = xw + (lay ? b * seq + t : t * batch + b) *
				    GH;
				if (G == 1) {
					for (size_t k = 0; k < H; k++)
						hb[k] = act(n, a0, clip(n,
						    xr[k] + g[k]));
				} else if (gru && !lbr && phase == 0) {
					/* z and r now, r * h for the
					 * second sgemm. */
					for (size_t k = 0; k < 2 * H; k++)
						g[k] = act(n, a0, clip(n,
						    xr[k] + g[k]));
					for (size_t k = 0; k < H; k++)
						rh[b * H + k] = g[H + k] *
						    hb[k];
					continue;
				} else if (gru) {
					const float	*rbh = bias != NULL ?
							    bias + GH + 2 * H :
							    NULL;

					for (size_t k = 0; k < H; k++) {
						float	z, rr, hh, gh;

						if (lbr) {
							z = act(n, a0, clip(n,
							    xr[k] + g[k]));
							rr = act(n, a0, clip(n,
							    xr[H + k] +
							    g[H + k]));
							gh = rr * (g[2 * H + k]
							    + (rbh != NULL ?
							    rbh[k] : 0.0f));
						} else {
							z = g[k];
							gh = g[2 * H + k];
						}
						hh = act(n, a0 + 1, clip(n,
						    xr[2 * H + k] + gh));
						hb[k] = (1.0f - z) * hh +
						    z * hb[k];
					}
				} else {
					for (size_t k = 0; k < H; k++) {
						float	gi, go, gf, gc, ci;

						gi = xr[k] + g[k];
						go = xr[H + k] + g[H + k];
						gf = xr[2 * H + k] +
						    g[2 * H + k];
						gc = xr[3 * H + k] +
						    g[3 * H + k];
						if (pp != NULL) {
							gi += pp[k] * cb[k];
							gf += pp[2 * H + k] *
							    cb[k];
						}
						gi = act(n, a0, clip(n, gi));
						gf = ifg ? 1.0f - gi :
						    act(n, a0, clip(n, gf));
						ci = act(n, a0 + 1, clip(n,
						    gc));
						cb[k] = gf * cb[k] + gi * ci;
						if (pp != NULL)
							go += pp[H + k] *
							    cb[k];
						go = act(n, a0, clip(n, go));
						hb[k] = go * act(n, a0 + 2,
						    cb[k]);
					}
				}
				if (yv != NULL)
					memcpy(yv + (lay ? (b * seq + t) *
					    dirs + (size_t)d : (t * dirs +
					    (size_t)d) * batch + b) * H, hb,
					    H * sizeof(*hb));
			}
		}
	}
	for (int j = 1; j < (lstm ? 3 : 2); j++) {
		float	*o;

		if (!ONNX_HAS_OUT(n, j))
			continue;
		o = ONNX_OUTI(m, n, j)->data;
		for (size_t b = 0; b < batch; b++)
			memcpy(o + (lay ? b * dirs + (size_t)d :
			    (size_t)d * batch + b) * H, j == 1 ? h + b * H :
			    c + b * H, H * sizeof(*h));
	}
}

static void
run_rnn(struct onnx_model *m, struct onnx_node *n)
{
	/* Entries sequence_lens cuts short leave zeros in Y. */
	if (ONNX_HAS_OUT(n, 0) && ONNX_HAS_IN(n, 4))
		memset(ONNX_OUT(m, n)->data, 0, ONNX_OUT(m, n)->count *
		    sizeof(float));
	for (int d = 0; d < (n->i1 == DIR_BIDI ? 2 : 1); d++)
		run_dir(m, n, d);
}

/* --- the table --- */

static const struct onnx_op rnn_ops[] = {
	{ "GRU", 3, 6, 0, 2, ONNX_OP_SCRATCH, "activation_alpha "
	    "activation_beta activations clip direction hidden_size layout "
	    "linear_before_reset", attrs_rnn, infer_rnn, run_rnn },
	{ "LSTM", 3, 8, 0, 3, ONNX_OP_SCRATCH, "activation_alpha "
	    "activation_beta activations clip direction hidden_size "
	    "input_forget layout", attrs_rnn, infer_rnn, run_rnn },
	{ "RNN", 3, 6, 0, 2, ONNX_OP_SCRATCH, "activation_alpha "
	    "activation_beta activations clip direction hidden_size layout",
	    attrs_rnn, infer_rnn, run_rnn },
};
const struct onnx_optab onnx_ops_rnn = {
	rnn_ops, sizeof(rnn_ops) / sizeof(rnn_ops[0])
};
