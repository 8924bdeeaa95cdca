/* bench/llm-kernels/llmspeed.c - times runtime/llm/model.c directly, with
 * no daemon, IPC or sampler in the way: the quickest loop for work on the
 * forward pass.  Not a test and never installed; bench/llm is the
 * end-to-end benchmark.
 *
 *   llmspeed MODEL [--threads N] [--prompt N] [--steps N] [--reps N]
 *	[--batch B,...] [--chunk N] [--no-bw] [--huge]
 *
 * Prints, each the best of --reps runs (a shared machine reads low at
 * random, never high):
 *   bandwidth  bytes/s of N threads summing a 1 GiB float array;
 *   prefill    tokens/s of one --prompt-token prefill (default 512), in
 *              calls of --chunk tokens (default: one call), as
 *              maas-runtime's engine cuts prompts;
 *   decode B   aggregate tokens/s of B sequences decoding --steps steps
 *              (default 64) together after a 16-token prefill each, and
 *              the bandwidth limit: B x read bandwidth / weight bytes
 *              read per step;
 *   sample     microseconds of one sampler_sample() at temperature 1
 *              over the whole vocabulary (the API's defaults: no top_k,
 *              top_p 1), on the logits of the last decode step, the best
 *              of 200 draws: a decoding sequence pays it every step.
 * Each also prints tokens per second of the process's CPU time ("cpu"):
 * with --threads 1 on a loaded machine, that is the speed without the
 * time other processes took the core (but with their share of the
 * memory bus).
 * --huge reads the file into anonymous memory advised for transparent
 * huge pages instead of mapping it: the effect of TLB misses on the
 * weight stream.
 * Threads: the model's pool and OpenBLAS both get --threads (default 2),
 * as maas-runtime sets them. */
#include <cblas.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "runtime/llm/gguf.h"
#include "runtime/llm/model.h"
#include "runtime/llm/sampler.h"

#define BW_BYTES	((size_t)1 << 30)
#define MAX_BATCH	64

struct bw_arg {
	const float	*p;
	size_t		 n;
	double		 sum;
};

static double	clock_s(clockid_t);
static double	now(void);
static long	num_arg(const char *, const char *, long, long);
static void	*bw_sum(void *);
static double	bandwidth(int, int);
static uint64_t	step_bytes(const struct gguf *);
static uint8_t	*read_huge(const char *, size_t *);
static void	 sample_time(const float *, int);

static double
clock_s(clockid_t c)
{
	struct timespec	ts;

	clock_gettime(c, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double
now(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

static long
num_arg(const char *what, const char *s, long lo, long hi)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || (*end != '\0' && *end != ',') ||
	    v < lo || v > hi) {
		fprintf(stderr, "llmspeed: %s '%s' is not a number from %ld "
		    "to %ld\n", what, s, lo, hi);
		exit(2);
	}
	return v;
}

static void *
bw_sum(void *arg)
{
	typedef float	v8f __attribute__((vector_size(32)));
	struct bw_arg	*a = arg;
	v8f		 acc[8] = { { 0 } }, v;

	/* Eight independent vector sums, so the loop waits on memory, not
	 * on the latency of adds. */
	for (size_t i = 0; i + 64 <= a->n; i += 64)
		for (int j = 0; j < 8; j++) {
			memcpy(&v, a->p + i + 8 * j, sizeof(v));
			acc[j] += v;
		}
	a->sum = 0.0;
	for (int j = 0; j < 8; j++)
		for (int k = 0; k < 8; k++)
			a->sum += acc[j][k];
	return NULL;
}

/* Best bytes/s over reps of nthr threads each summing its part. */
static double
bandwidth(int nthr, int reps)
{
	size_t		 n = BW_BYTES / sizeof(float);
	float		*p;
	pthread_t	 tid[16];
	struct bw_arg	 a[16];
	double		 best = 0.0, sink = 0.0;

	if ((p = malloc(BW_BYTES)) == NULL)
		return 0.0;
	for (size_t i = 0; i < n; i++)
		p[i] = (float)(i & 7);
	for (int r = 0; r < reps; r++) {
		double	t0 = now(), dt;

		for (int i = 0; i < nthr; i++) {
			a[i].p = p + n / (size_t)nthr * (size_t)i;
			a[i].n = n / (size_t)nthr;
			pthread_create(&tid[i], NULL, bw_sum, &a[i]);
		}
		for (int i = 0; i < nthr; i++) {
			pthread_join(tid[i], NULL);
			sink += a[i].sum;
		}
		dt = now() - t0;
		if (BW_BYTES / dt > best)
			best = BW_BYTES / dt;
	}
	free(p);
	if (sink == 1.0)	/* keep the sums alive */
		printf("#\n");
	return best;
}

/* Weight bytes one decode step reads: every 2-D tensor but the token
 * embedding (one row of it is read), the output matrix counted once
 * even when it is the embedding (tied). */
static uint64_t
step_bytes(const struct gguf *g)
{
	uint64_t	b = 0;
	bool		tied = gguf_tensor(g, "output.weight") == NULL;

	for (size_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);

		if (t->ndim < 2)
			continue;
		if (strcmp(t->name, "token_embd.weight") == 0 && !tied)
			continue;
		b += t->nbytes;
	}
	return b;
}

/* The file at path in memory advised for huge pages, or NULL. */
static uint8_t *
read_huge(const char *path, size_t *len)
{
	FILE	*f = fopen(path, "rb");
	uint8_t	*p = NULL;
	long	 n;
	size_t	 cap;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 ||
	    fseek(f, 0, SEEK_SET) != 0)
		goto out;
	cap = ((size_t)n + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
	if ((p = aligned_alloc(2u << 20, cap)) == NULL)
		goto out;
	(void)madvise(p, cap, MADV_HUGEPAGE);
	if (fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		p = NULL;
		goto out;
	}
	*len = (size_t)n;
 out:
	if (f != NULL)
		fclose(f);
	return p;
}

static void
sample_time(const float *logits, int n_vocab)
{
	struct sampler_params	 p = { .temperature = 1.0f, .top_p = 1.0f,
				    .seed = 1 };
	struct sampler		*s = sampler_new(&p, n_vocab);
	float			*x = malloc((size_t)n_vocab * sizeof(*x));
	double			 best = 1e9;

	if (x == NULL)
		return;
	for (int i = 0; i < 200; i++) {
		double	t0;

		memcpy(x, logits, (size_t)n_vocab * sizeof(*x));
		t0 = now();
		(void)sampler_sample(s, x, NULL, NULL);
		t0 = now() - t0;
		if (t0 < best)
			best = t0;
	}
	printf("sample %d tokens: %.1f us\n", n_vocab, best * 1e6);
	sampler_free(s);
	free(x);
}

int
main(int argc, char *argv[])
{
	struct gguf		*g;
	struct llm_model	*m;
	struct llm_kv		*kv[MAX_BATCH];
	const struct llm_hparams *hp;
	int32_t			*tok;
	float			*logits;
	char			 err[512];
	int			 ntok, chunk = 0, threads = 2, prompt = 512, steps = 64;
	int			 reps = 3, batch[16] = { 1, 4, 8 }, nb = 3;
	int			 do_bw = 1, huge = 0;
	uint8_t			*file = NULL;
	size_t			 flen = 0;
	double			 bw = 0.0, best, bcpu;
	uint64_t		 sb;

	if (argc < 2) {
		fprintf(stderr, "usage: llmspeed MODEL [--threads N] "
		    "[--prompt N] [--steps N] [--reps N] [--batch B,...] "
		    "[--no-bw]\n");
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		const char	*a = argv[i], *v = i + 1 < argc ? argv[i + 1] :
				    "";

		if (strcmp(a, "--threads") == 0)
			threads = (int)num_arg(a, v, 1, 16), i++;
		else if (strcmp(a, "--prompt") == 0)
			prompt = (int)num_arg(a, v, 1, 1 << 20), i++;
		else if (strcmp(a, "--steps") == 0)
			steps = (int)num_arg(a, v, 1, 1 << 20), i++;
		else if (strcmp(a, "--reps") == 0)
			reps = (int)num_arg(a, v, 1, 1000), i++;
		else if (strcmp(a, "--chunk") == 0)
			chunk = (int)num_arg(a, v, 1, 1 << 20), i++;
		else if (strcmp(a, "--no-bw") == 0)
			do_bw = 0;
		else if (strcmp(a, "--huge") == 0)
			huge = 1;
		else if (strcmp(a, "--batch") == 0) {
			const char	*s = v;

			for (nb = 0; nb < 16 && *s != '\0'; nb++) {
				batch[nb] = (int)num_arg(a, s, 1, MAX_BATCH);
				s = strchr(s, ',');
				s = s == NULL ? "" : s + 1;
			}
			i++;
		} else {
			fprintf(stderr, "llmspeed: unknown option '%s'\n", a);
			return 2;
		}
	}
	openblas_set_num_threads(threads);
	if (huge && (file = read_huge(argv[1], &flen)) == NULL) {
		fprintf(stderr, "llmspeed: cannot read '%s'\n", argv[1]);
		return 1;
	}
	if ((huge ? gguf_parse(file, flen, &g, err, sizeof(err)) :
	    gguf_open(argv[1], UINT64_MAX, &g, err, sizeof(err))) == -1 ||
	    llm_model_load(g, &m, err, sizeof(err)) == -1) {
		fprintf(stderr, "llmspeed: %s\n", err);
		return 1;
	}
	if (llm_model_set_threads(m, threads) == -1) {
		fprintf(stderr, "llmspeed: cannot start %d threads\n",
		    threads);
		return 1;
	}
	hp = llm_model_hparams(m);
	if (prompt + 1 > hp->n_ctx || 16 + steps > hp->n_ctx) {
		fprintf(stderr, "llmspeed: context %d is too short\n",
		    hp->n_ctx);
		return 2;
	}
	sb = step_bytes(g);
	ntok = prompt + steps + MAX_BATCH + 16;
	tok = calloc((size_t)ntok, sizeof(*tok));
	logits = calloc((size_t)MAX_BATCH * (size_t)hp->n_vocab,
	    sizeof(*logits));
	if (tok == NULL || logits == NULL)
		return 1;
	for (int i = 0; i < ntok; i++)
		tok[i] = (int32_t)((i * 7919 + 13) % hp->n_vocab);
	for (int i = 0; i < MAX_BATCH; i++)
		if ((kv[i] = llm_kv_new(m, hp->n_ctx)) == NULL)
			return 1;
	if (do_bw) {
		bw = bandwidth(threads, 5);
		printf("bandwidth %d threads: %.1f GB/s\n", threads, bw / 1e9);
	}
	printf("weights read per decode step: %.1f MB\n", (double)sb / 1e6);

	best = bcpu = 0.0;
	for (int r = 0; r < reps + 1; r++) {	/* the first warms up */
		double	t0, c0, dt, dc;

		llm_kv_truncate(kv[0], 0);
		t0 = now();
		c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
		for (int i = 0, k; i < prompt; i += k) {
			k = chunk > 0 && chunk < prompt - i ? chunk :
			    prompt - i;
			if (llm_prefill(m, kv[0], tok + i, k, i + k ==
			    prompt ? logits : NULL) == -1)
				return 1;
		}
		dt = now() - t0;
		dc = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
		if (r > 0 && prompt / dt > best)
			best = prompt / dt;
		if (r > 0 && prompt / dc > bcpu)
			bcpu = prompt / dc;
	}
	printf("prefill %d: %.1f tok/s (cpu %.1f)\n", prompt, best, bcpu);

	for (int bi = 0; bi < nb; bi++) {
		int	B = batch[bi];

		best = bcpu = 0.0;
		for (int r = 0; r < reps; r++) {
			double	t0, c0, dt, dc;

			for (int s = 0; s < B; s++) {
				llm_kv_truncate(kv[s], 0);
				if (llm_prefill(m, kv[s], tok + s, 16,
				    NULL) == -1)
					return 1;
			}
			t0 = now();
			c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
			for (int st = 0; st < steps; st++)
				if (llm_decode(m, kv, tok + st, B,
				    logits) == -1)
					return 1;
			dt = now() - t0;
			dc = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
			if ((double)B * steps / dt > best)
				best = (double)B * steps / dt;
			if ((double)B * steps / dc > bcpu)
				bcpu = (double)B * steps / dc;
		}
		printf("decode %d: %.1f tok/s (cpu %.1f)", B, best, bcpu);
		if (bw > 0.0)
			printf("  (limit %.1f, %.2f of it)", B * bw / (double)sb,
			    best / (B * bw / (double)sb));
		printf("\n");
	}
	sample_time(logits, hp->n_vocab);
	for (int i = 0; i < MAX_BATCH; i++)
		llm_kv_free(kv[i]);
	free(tok);
	free(logits);
	llm_model_free(m);
	gguf_close(g);
	free(file);
	return 0;
}
