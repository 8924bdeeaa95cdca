/* tests/fuzz/fuzz_batch.c - libFuzzer target for the scheduler's batching
 * parsers (scheduler/batch.c): batch_split() reads a runtime's INFER_OK
 * tensor list (an untrusted peer), batch_rows() and batch_compatible() an
 * INFER payload.  A payload batch_rows() accepts must be compatible with
 * itself, and two copies concatenated must hold twice its rows with the
 * same signature and split back into the original tensors. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"
#include "scheduler/batch.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct wbuf	*parts[2];
	struct wbuf		 in, out, split;
	uint64_t		 sig, sig2;
	uint32_t		 total, first, rows, n;

	if (size < 3)
		return 0;
	total = data[0] % 9 + 1;
	first = data[1] % total;
	rows = data[2] % (total - first) + 1;
	data += 3;
	size -= 3;
	wbuf_init(&split);
	(void)batch_split(&split, data, size, total, first, rows);
	if ((n = batch_rows(data, size, &sig)) == 0 || n > 1000000) {
		wbuf_release(&split);
		return 0;
	}
	assert(batch_compatible(data, size, data, size));
	wbuf_init(&in);
	wbuf_init(&out);
	wbuf_put(&in, data, size);
	parts[0] = parts[1] = &in;
	assert(batch_concat(&out, parts, 2, 2 * n, 1U << 30) == 0);
	assert(batch_rows(out.data, out.len, &sig2) == 2 * n);
	assert(sig2 == sig);
	assert(batch_compatible(out.data, out.len, data, size));
	wbuf_release(&in);
	wbuf_release(&out);
	wbuf_release(&split);
	return 0;
}
