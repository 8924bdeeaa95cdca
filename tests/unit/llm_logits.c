/* tests/unit/llm_logits.c - a test helper (not a test): runs a GGUF model
 * with runtime/llm/model.c and prints what it computes, for comparison
 * with the numpy reference (tests/integration/llm_ref.py).
 *
 *   llm_logits MODEL [--threads N] [--prefill N] TOKEN...
 *	prefills the first N tokens (default: all), prints the logits of
 *	the last of them, then decodes the others one step at a time and
 *	prints the logits after each: one line "logits POS v0 v1 ..." each.
 *   llm_logits MODEL --embed TOKEN...
 *	prints "embed v0 v1 ...".
 * Also prints "hparams n_vocab n_ctx n_embd n_layer n_head n_head_kv n_ff"
 * and "mem BYTES" first.  Exit 1 with the loader's message on stderr if
 * the model is refused. */
#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/llm/gguf.h"
#include "runtime/llm/model.h"

static void
print_vec(const char *tag, int pos, const float *v, int n)
{
	printf("%s", tag);
	if (pos >= 0)
		printf(" %d", pos);
	for (int i = 0; i < n; i++)
		printf(" %.9g", (double)v[i]);
	printf("\n");
}

/* A whole decimal number from lo to hi, or exit 2 naming what. */
static long
num_arg(const char *what, const char *s, long lo, long hi)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "llm_logits: %s '%s' is not a number from %ld "
		    "to %ld\n", what, s, lo, hi);
		exit(2);
	}
	return v;
}

int
main(int argc, char *argv[])
{
	struct gguf		*g;
	struct llm_model	*m;
	struct llm_kv		*kv;
	const struct llm_hparams *hp;
	int32_t			*tok;
	float			*out;
	char			 err[512];
	int			 n = 0, npre = -1, i;
	int			 embed = 0, threads = 1;

	if (argc < 3) {
		fprintf(stderr, "usage: llm_logits MODEL [--prefill N | "
		    "--embed] TOKEN...\n");
		return 2;
	}
	openblas_set_num_threads(1);
	if ((tok = calloc((size_t)argc, sizeof(*tok))) == NULL)
		return 1;
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--prefill") == 0 && i + 1 < argc)
			npre = (int)num_arg("--prefill", argv[++i], 0,
			    INT32_MAX);
		else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			threads = (int)num_arg("--threads", argv[++i], 1, 16);
		else if (strcmp(argv[i], "--embed") == 0)
			embed = 1;
		else
			tok[n++] = (int32_t)num_arg("token", argv[i], 0,
			    INT32_MAX);
	}
	if (npre < 0 || npre > n)
		npre = n;
	if (gguf_open(argv[1], 1ULL << 32, &g, err, sizeof(err)) == -1 ||
	    llm_model_load(g, &m, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (llm_model_set_threads(m, threads) == -1) {
		fprintf(stderr, "cannot use %d threads\n", threads);
		return 1;
	}
	hp = llm_model_hparams(m);
	printf("hparams %d %d %d %d %d %d %d\n", hp->n_vocab, hp->n_ctx,
	    hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_ff);
	printf("mem %llu\n", (unsigned long long)llm_model_mem_bytes(m));
	if ((kv = llm_kv_new(m, hp->n_ctx)) == NULL)
		return 1;
	if ((out = calloc((size_t)hp->n_vocab + (size_t)hp->n_embd,
	    sizeof(float))) == NULL)
		return 1;
	if (embed) {
		if (llm_embed(m, kv, tok, n, out) == -1) {
			fprintf(stderr, "llm_embed failed\n");
			return 1;
		}
		print_vec("embed", -1, out, hp->n_embd);
	} else {
		if (npre > 0) {
			if (llm_prefill(m, kv, tok, npre, out) == -1) {
				fprintf(stderr, "llm_prefill failed\n");
				return 1;
			}
			print_vec("logits", npre - 1, out, hp->n_vocab);
		}
		for (i = npre; i < n; i++) {
			if (llm_decode(m, &kv, &tok[i], 1, out) == -1) {
				fprintf(stderr, "llm_decode failed\n");
				return 1;
			}
			print_vec("logits", i, out, hp->n_vocab);
		}
	}
	free(out);
	free(tok);
	llm_kv_free(kv);
	llm_model_free(m);
	gguf_close(g);
	return 0;
}
