/* tools/genmodel.c - maas-genmodel: seeded random ONNX models for tests.
 *
 *   maas-genmodel mlp --layers 784,512,512,10 --seed 42
 *	[--softmax | --no-softmax] [--opset 13] -o FILE
 *
 * writes an MLP (ir_version 8): FLOAT input "input" [N, layers[0]] with
 * dim_param N, Gemm(transB=1) + Relu per hidden layer, a last Gemm, then
 * Softmax unless --no-softmax, FLOAT output "output" [N, layers[-1]].
 * Weights are Kaiming-uniform, U(-sqrt(6/fan_in), sqrt(6/fan_in)); biases
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from a splitmix64 stream seeded by
 * --seed, so the same arguments always give the same bytes. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "tools/genutil.h"
#include "tools/onnxb.h"

#define GM_MAX_LAYERS	64
#define GM_MAX_WIDTH	65536
#define GM_MAX_PARAMS	(256LL << 20)	/* 1 GiB of FP32 weights */

struct mlp_opts {
	int64_t		 layers[GM_MAX_LAYERS];	/* widths, input first */
	int		 n_layers;
	uint64_t	 seed;
	int		 softmax;	/* bool, for getopt's flag */
	int64_t		 opset;
	const char	*out;
};

static void	usage(void) __attribute__((noreturn));
static void	parse_layers(const char *, struct mlp_opts *);
static Onnx__ModelProto *build_mlp(const struct mlp_opts *);

static void
usage(void)
{
	fprintf(stderr, "usage: maas-genmodel mlp --layers N,N[,N...] "
	    "--seed S [--softmax | --no-softmax] [--opset V] -o FILE\n");
	exit(1);
}

static void
parse_layers(const char *arg, struct mlp_opts *o)
{
	char		*s = xstrdup(arg), *p = s, *tok;
	long long	 params = 0;

	o->n_layers = 0;
	while ((tok = strsep(&p, ",")) != NULL) {
		if (o->n_layers == GM_MAX_LAYERS)
			fatalx("--layers: more than %d widths", GM_MAX_LAYERS);
		o->layers[o->n_layers++] = gen_num_arg("--layers", tok, 1,
		    GM_MAX_WIDTH);
	}
	free(s);
	if (o->n_layers < 2)
		fatalx("--layers: need an input and an output width");
	for (int i = 1; i < o->n_layers; i++)
		params += (o->layers[i - 1] + 1) * o->layers[i];
	if (params > GM_MAX_PARAMS)
		fatalx("--layers: %lld parameters, more than %lld", params,
		    GM_MAX_PARAMS);
}

static Onnx__ModelProto *
build_mlp(const struct mlp_opts *o)
{
	Onnx__ModelProto	*m;
	Onnx__NodeProto		*n;
	uint64_t		 rng = o->seed;
	int64_t			 io[2] = { ONNXB_DYN, 0 };
	char			 prev[32], w[32], b[32], y[32];
	int			 last = o->n_layers - 1;

	m = onnxb_model(8, o->opset, "mlp");
	m->producer_name = xstrdup("maas-genmodel");
	m->producer_version = xstrdup("1");
	io[1] = o->layers[0];
	onnxb_input(m, "input", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, io,
	    "N");
	snprintf(prev, sizeof(prev), "input");
	for (int l = 1; l <= last; l++) {
		int64_t	 fan_in = o->layers[l - 1], fan_out = o->layers[l];
		int64_t	 wd[2] = { fan_out, fan_in };
		size_t	 nw = (size_t)(fan_out * fan_in);
		float	*wv = xcalloc(nw, sizeof(float));
		float	*bv = xcalloc((size_t)fan_out, sizeof(float));
		float	 wb = sqrtf(6.0f / (float)fan_in);
		float	 bb = 1.0f / sqrtf((float)fan_in);
		const char *in[4] = { prev, w, b, NULL };

		for (size_t i = 0; i < nw; i++)
			wv[i] = gen_uniform(&rng, wb);
		for (int64_t i = 0; i < fan_out; i++)
			bv[i] = gen_uniform(&rng, bb);
		snprintf(w, sizeof(w), "fc%d.weight", l);
		snprintf(b, sizeof(b), "fc%d.bias", l);
		onnxb_init_f32(m, w, 2, wd, wv);
		onnxb_init_f32(m, b, 1, &fan_out, bv);
		free(wv);
		free(bv);

		if (l == last && !o->softmax)
			snprintf(y, sizeof(y), "output");
		else
			snprintf(y, sizeof(y), "fc%d", l);
		n = onnxb_node(m, "Gemm", y, in, y);
		onnxb_attr_int(n, "transB", 1);
		snprintf(prev, sizeof(prev), "%s", y);
		if (l < last) {
			const char *rin[2] = { prev, NULL };

			snprintf(y, sizeof(y), "relu%d", l);
			onnxb_node(m, "Relu", y, rin, y);
			snprintf(prev, sizeof(prev), "%s", y);
		}
	}
	if (o->softmax) {
		const char *sin[2] = { prev, NULL };

		onnxb_node(m, "Softmax", "softmax", sin, "output");
	}
	io[1] = o->layers[last];
	onnxb_output(m, "output", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, io,
	    "N");
	return m;
}

int
main(int argc, char *argv[])
{
	static struct mlp_opts	 o = { .softmax = 1, .opset = 13 };
	static const struct option longopts[] = {
		{ "layers", required_argument, NULL, 'l' },
		{ "seed", required_argument, NULL, 's' },
		{ "softmax", no_argument, &o.softmax, 1 },
		{ "no-softmax", no_argument, &o.softmax, 0 },
		{ "opset", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 }
	};
	Onnx__ModelProto	*m;
	bool			 seeded = false;
	int			 ch;

	log_init("maas-genmodel", false);
	if (argc < 2 || strcmp(argv[1], "mlp") != 0)
		usage();
	optind = 2;
	while ((ch = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
		switch (ch) {
		case 0:
			break;
		case 'l':
			parse_layers(optarg, &o);
			break;
		case 's':
			o.seed = (uint64_t)gen_num_arg("--seed", optarg, 0,
			    INT64_MAX);
			seeded = true;
			break;
		case 'p':
			o.opset = gen_num_arg("--opset", optarg, 7, 21);
			break;
		case 'o':
			o.out = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || o.n_layers == 0 || !seeded || o.out == NULL)
		usage();
	m = build_mlp(&o);
	/* Aligned weights are served from the file's pages, shared by every
	 * replica, instead of copied. */
	if (onnxb_align(m, 64) == -1)
		log_warnx("cannot align the weights of '%s'", o.out);
	if (onnxb_write(m, o.out) == -1)
		fatal("cannot write '%s'", o.out);
	onnxb_free(m);
	return 0;
}
