/* tests/conformance/onnx_conformance.c - runs the ONNX backend node tests
 * (Debian's libonnx-testdata) through the runtime's ONNX code.
 *
 * For every test directory: load model.onnx; a model refused as
 * unsupported (an operator, attribute or data type we do not have) is
 * skipped; otherwise every test_data_set_N is run on its input_K.pb and
 * its outputs compared with output_K.pb (floats within rtol 1e-3 and
 * atol 1e-5, NaN equal to NaN; integers and booleans exactly).
 *
 * Prints one line per failure and "conformance: N passed, N failed, N
 * skipped".  Exits non-zero if a test failed, or if a test listed in the
 * baseline (the tests that passed before) did not pass: the passed count
 * only ever goes up.  -w rewrites the baseline with today's passes.
 *
 * usage: onnx_conformance [-v] [-w] [-d datadir] [-b baseline] [test...] */
#include <cblas.h>
#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ipc.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "runtime/onnx/graph.h"
#include "runtime/onnx/onnx.h"

#define DATADIR		"/usr/share/libonnx-testdata/data/node"
#define BASELINE	"tests/conformance/baseline.txt"
#define MAX_FILE	(64u << 20)
#define RTOL		1e-3
#define ATOL		1e-5

enum result { R_PASS, R_FAIL, R_SKIP };

static bool	verbose;

static uint8_t *
slurp(const char *path, size_t *len)
{
	FILE	*f;
	uint8_t	*buf;
	long	 n;

	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == -1 || (n = ftell(f)) < 0 ||
	    (unsigned long)n > MAX_FILE || fseek(f, 0, SEEK_SET) == -1) {
		fclose(f);
		return NULL;
	}
	buf = xmalloc((size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* A TensorProto file into v (dtype ours, FP16 widened); the proto is kept
 * in *pp for v's data.  -1 on any problem. */
static int
read_pb(const char *path, struct onnx_value *v, Onnx__TensorProto **pp,
    int *onnx_type, char *err, size_t errlen)
{
	uint8_t	*buf;
	size_t	 len;

	memset(v, 0, sizeof(*v));
	*pp = NULL;
	if ((buf = slurp(path, &len)) == NULL) {
		snprintf(err, errlen, "cannot read %s", path);
		return -1;
	}
	*pp = onnx__tensor_proto__unpack(NULL, len, buf);
	free(buf);
	if (*pp == NULL) {
		snprintf(err, errlen, "cannot parse %s", path);
		return -1;
	}
	*onnx_type = (*pp)->data_type;
	return onnx_tensor_load(v, *pp, path, err, errlen);
}

static void
value_free(struct onnx_value *v, Onnx__TensorProto *p)
{
	free(v->own);
	if (p != NULL)
		onnx__tensor_proto__free_unpacked(p, NULL);
}

static bool
close_enough(double got, double want)
{
	if (isnan(want))
		return isnan(got);
	if (isinf(want))
		return got == want;
	return fabs(got - want) <= ATOL + RTOL * fabs(want);
}

static double
elem(enum dtype dt, const void *p, size_t i)
{
	switch (dt) {
	case DT_FP32:
		return ((const float *)p)[i];
	case DT_INT64:
		return (double)((const int64_t *)p)[i];
	case DT_INT32:
		return ((const int32_t *)p)[i];
	default:
		return ((const uint8_t *)p)[i];
	}
}

/* Runs one data set; 0 if every output matches. */
static int
run_set(struct onnx_model *m, const char *dir, char *err, size_t errlen)
{
	struct ipc_meta		 meta;
	struct ipc_tensor	 in[IPC_MAX_TENSORS];
	struct onnx_value	 iv[IPC_MAX_TENSORS], ov;
	Onnx__TensorProto	*ip[IPC_MAX_TENSORS], *op = NULL;
	void			*half[IPC_MAX_TENSORS];
	char			 path[4096];
	size_t			 n = 0;
	int			 ret = -1, t;

	onnx_meta(m, &meta);
	memset(half, 0, sizeof(half));
	for (n = 0; n < meta.n_inputs; n++) {
		struct ipc_tensor_desc	*d = &in[n].desc;

		snprintf(path, sizeof(path), "%s/input_%zu.pb", dir, n);
		if (read_pb(path, &iv[n], &ip[n], &t, err, errlen) == -1) {
			n++;
			goto out;
		}
		memset(&in[n], 0, sizeof(in[n]));
		memcpy(d->name, meta.inputs[n].name, sizeof(d->name));
		d->dtype = meta.inputs[n].dtype;
		d->ndim = iv[n].ndim;
		memcpy(d->dims, iv[n].dims, sizeof(d->dims));
		in[n].data = iv[n].data;
		in[n].nbytes = iv[n].count * dtype_size(iv[n].dtype);
		if (d->dtype == DT_FP16) {
			uint16_t	*h = xcalloc(iv[n].count + 1, 2);

			for (size_t k = 0; k < iv[n].count; k++)
				h[k] = onnx_float_to_half(
				    ((float *)iv[n].data)[k]);
			half[n] = h;
			in[n].data = (const uint8_t *)h;
			in[n].nbytes = iv[n].count * 2;
		}
	}
	if (onnx_run(m, in, n, err, errlen) != ONNX_OK)
		goto out;
	for (size_t k = 0; k < meta.n_outputs; k++) {
		struct ipc_tensor_desc	 d;
		const void		*got;
		uint64_t		 nb;

		snprintf(path, sizeof(path), "%s/output_%zu.pb", dir, k);
		if (read_pb(path, &ov, &op, &t, err, errlen) == -1)
			goto out;
		got = onnx_output(m, k, &d, &nb);
		if (d.dtype != ov.dtype || d.ndim != ov.ndim ||
		    memcmp(d.dims, ov.dims, ov.ndim * sizeof(int64_t)) != 0) {
			char	a[128], b[128];

			onnx_fmt_shape(a, sizeof(a), d.dims, d.ndim);
			onnx_fmt_shape(b, sizeof(b), ov.dims, ov.ndim);
			snprintf(err, errlen, "output %zu: got %s %s, want %s "
			    "%s", k, dtype_kserve_name(d.dtype), a,
			    dtype_kserve_name(ov.dtype), b);
			goto out;
		}
		for (size_t i = 0; i < ov.count; i++) {
			double	g = elem(d.dtype, got, i);
			double	w = elem(ov.dtype, ov.data, i);

			if (ov.dtype != DT_FP32 ? g == w : close_enough(g, w))
				continue;
			snprintf(err, errlen, "output %zu element %zu: got "
			    "%.9g, want %.9g", k, i, g, w);
			goto out;
		}
		value_free(&ov, op);
		op = NULL;
	}
	ret = 0;
 out:
	if (op != NULL)
		value_free(&ov, op);
	for (size_t k = 0; k < n; k++) {
		value_free(&iv[k], ip[k]);
		free(half[k]);
	}
	ipc_meta_release(&meta);
	return ret;
}

static enum result
run_test(const char *datadir, const char *name)
{
	struct onnx_model	*m;
	uint8_t			*buf;
	size_t			 len;
	char			 path[4096], err[1024];
	enum result		 r = R_PASS;
	int			 sets = 0;

	snprintf(path, sizeof(path), "%s/%s/model.onnx", datadir, name);
	if ((buf = slurp(path, &len)) == NULL) {
		printf("FAIL %s: cannot read model.onnx\n", name);
		return R_FAIL;
	}
	m = onnx_load(buf, len, err, sizeof(err));
	free(buf);
	if (m == NULL) {
		if (strstr(err, "unsupported") != NULL ||
		    strstr(err, "not supported") != NULL) {
			if (verbose)
				printf("skip %s: %s\n", name, err);
			return R_SKIP;
		}
		printf("FAIL %s: load: %s\n", name, err);
		return R_FAIL;
	}
	for (int i = 0; r == R_PASS; i++) {
		snprintf(path, sizeof(path), "%s/%s/test_data_set_%d",
		    datadir, name, i);
		if (access(path, F_OK) == -1)
			break;
		sets++;
		if (run_set(m, path, err, sizeof(err)) == 0)
			continue;
		/* A request refused for a feature we lack (empty tensors)
		 * is a skip, like a model refused at load. */
		if (strstr(err, "not supported") != NULL) {
			if (verbose)
				printf("skip %s: set %d: %s\n", name, i, err);
			r = R_SKIP;
		} else {
			printf("FAIL %s: set %d: %s\n", name, i, err);
			r = R_FAIL;
		}
	}
	onnx_free(m);
	if (r == R_PASS && sets == 0) {
		printf("FAIL %s: no test data\n", name);
		r = R_FAIL;
	}
	return r;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
main(int argc, char **argv)
{
	const char	*datadir = DATADIR, *baseline = BASELINE;
	char		**names = NULL, **base = NULL, line[512];
	size_t		 n_names = 0, n_base = 0, cap = 0;
	size_t		 np = 0, nf = 0, ns = 0, nreg = 0;
	bool		 write = false;
	enum result	*res;
	DIR		*d;
	struct dirent	*e;
	FILE		*f;
	int		 ch;

	log_init("onnx_conformance", false);
	openblas_set_num_threads(1);
	while ((ch = getopt(argc, argv, "b:d:vw")) != -1) {
		switch (ch) {
		case 'b': baseline = optarg; break;
		case 'd': datadir = optarg; break;
		case 'v': verbose = true; break;
		case 'w': write = true; break;
		default:
			fprintf(stderr, "usage: onnx_conformance [-v] [-w] "
			    "[-d datadir] [-b baseline] [test...]\n");
			return 2;
		}
	}
	if (optind < argc) {
		names = argv + optind;
		n_names = (size_t)(argc - optind);
	} else {
		if ((d = opendir(datadir)) == NULL) {
			fprintf(stderr, "cannot open %s\n", datadir);
			return 2;
		}
		while ((e = readdir(d)) != NULL) {
			if (strncmp(e->d_name, "test_", 5) != 0)
				continue;
			if (n_names == cap) {
				cap = cap ? 2 * cap : 1024;
				names = xreallocarray(names, cap,
				    sizeof(*names));
			}
			names[n_names++] = xstrdup(e->d_name);
		}
		closedir(d);
		qsort(names, n_names, sizeof(*names), cmp_str);
	}
	res = xcalloc(n_names + 1, sizeof(*res));
	for (size_t i = 0; i < n_names; i++) {
		res[i] = run_test(datadir, names[i]);
		np += res[i] == R_PASS;
		nf += res[i] == R_FAIL;
		ns += res[i] == R_SKIP;
	}
	if (!write && (f = fopen(baseline, "r")) != NULL) {
		cap = 0;
		while (fgets(line, sizeof(line), f) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			if (line[0] == '\0' || line[0] == '#')
				continue;
			if (n_base == cap) {
				cap = cap ? 2 * cap : 1024;
				base = xreallocarray(base, cap, sizeof(*base));
			}
			base[n_base++] = xstrdup(line);
		}
		fclose(f);
		for (size_t b = 0; b < n_base; b++) {
			size_t	i;

			for (i = 0; i < n_names; i++)
				if (strcmp(names[i], base[b]) == 0)
					break;
			if (i < n_names && res[i] == R_PASS)
				continue;
			if (i == n_names && optind < argc)
				continue;	/* not asked for */
			printf("REGRESSION %s: in the baseline, did not "
			    "pass\n", base[b]);
			nreg++;
		}
	}
	if (write) {
		if ((f = fopen(baseline, "w")) == NULL) {
			fprintf(stderr, "cannot write %s\n", baseline);
			return 2;
		}
		fprintf(f, "# ONNX node tests that pass (tests/conformance/"
		    "onnx_conformance -w)\n");
		for (size_t i = 0; i < n_names; i++)
			if (res[i] == R_PASS)
				fprintf(f, "%s\n", names[i]);
		fclose(f);
	}
	printf("conformance: %zu passed, %zu failed, %zu skipped\n", np, nf,
	    ns);
	for (size_t b = 0; b < n_base; b++)
		free(base[b]);
	free(base);
	if (optind == argc) {
		for (size_t i = 0; i < n_names; i++)
			free(names[i]);
		free(names);
	}
	free(res);
	return nf > 0 || nreg > 0 ? 1 : 0;
}
