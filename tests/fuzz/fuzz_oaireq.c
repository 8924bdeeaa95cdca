/* tests/fuzz/fuzz_oaireq.c - a tenant's OpenAI request body: the first
 * byte picks the endpoint (chat, completions, embeddings), the rest is
 * parsed with the gateway's JSON flags and validated; an accepted request
 * goes through the GENERATE codec and back.  The same bytes are also
 * turned into a JSON string the way a runtime's token pieces are. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "gateway/oaireq.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t		 je;
	json_t			*j, *s;
	struct oai_req		 q;
	struct oai_error	 e;
	struct ipc_gen_req	 g, back;
	struct wbuf		 w;
	struct rbuf		 rb;
	enum oai_kind		 kind;

	if (size == 0)
		return 0;
	s = oai_string_lossy((const char *)data, size);
	if (s == NULL)
		abort();	/* lossy conversion must always succeed */
	json_decref(s);
	kind = (enum oai_kind)(OAI_CHAT + data[0] % 3);
	j = json_loadb((const char *)data + 1, size - 1,
	    JSON_REJECT_DUPLICATES, &je);
	if (j == NULL)
		return 0;
	if (oai_req_parse(&q, kind, j, &e) == 0) {
		for (uint32_t i = 0; i < (q.n_inputs ? q.n_inputs : 1); i++) {
			oai_req_gen(&q, "ten", i, 1, &g);
			wbuf_init(&w);
			ipc_gen_req_encode(&w, &g);
			rbuf_init(&rb, w.data, w.len);
			if (ipc_gen_req_decode(&rb, &back) == -1)
				abort();	/* we encoded it */
			ipc_gen_req_release(&back);
			wbuf_release(&w);
		}
		(void)oai_req_prompt_bound(&q);
		oai_req_release(&q);
	}
	json_decref(j);
	return 0;
}
