/* tests/fuzz/fuzz_onnx.c - libFuzzer target for the ONNX loader of
 * maas-runtime on arbitrary bytes.  A model that loads is described and
 * run twice on zeros (batch 1, then 3, as the warm-up and a request would),
 * and its outputs are read in full.  As in maas-runtime, weights are used
 * in place in the input (which outlives the model), and external data
 * named "w.bin" is a fixed 4 KiB buffer (any other name is refused), so
 * that offsets and lengths from the input are checked against it. */
#include <assert.h>
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ipc.h"
#include "common/log.h"
#include "runtime/onnx/onnx.h"

static const void *ext(void *, const char *, size_t *, char *, size_t);

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init("fuzz_onnx", false);
	openblas_set_num_threads(1);
	return 0;
}

static void
run(struct onnx_model *m, int64_t dyn)
{
	struct ipc_tensor_desc	 d;
	const uint8_t		*p;
	uint64_t		 nb;
	char			 err[512];
	uint8_t			 sum = 0;

	err[0] = '\0';
	if (onnx_run_dummy(m, dyn, err, sizeof(err)) != ONNX_OK) {
		assert(err[0] != '\0');
		return;
	}
	for (size_t i = 0; i < onnx_n_outputs(m); i++) {
		p = onnx_output(m, i, &d, &nb);
		assert(d.ndim >= 0 && d.ndim <= TENSOR_MAX_DIMS);
		for (uint64_t k = 0; k < nb; k++)
			sum ^= p[k];
	}
	(void)sum;
}

static const void *
ext(void *arg, const char *location, size_t *len, char *err, size_t errlen)
{
	static float	w[1024];

	(void)arg;
	if (strcmp(location, "w.bin") != 0) {
		snprintf(err, errlen, "no external data '%s'", location);
		return NULL;
	}
	*len = sizeof(w);
	return w;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct onnx_source	 src = { .buf = data, .len = size,
				    .borrow = true, .ext = ext };
	struct onnx_model	*m;
	struct ipc_meta		 meta;
	char			 err[1024];

	err[0] = '\0';
	if ((m = onnx_load_source(&src, err, sizeof(err))) == NULL) {
		assert(err[0] != '\0');
		return 0;
	}
	onnx_meta(m, &meta);
	ipc_meta_release(&meta);
	run(m, 1);
	run(m, 3);
	onnx_free(m);
	return 0;
}
