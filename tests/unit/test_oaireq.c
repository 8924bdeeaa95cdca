/* tests/unit/test_oaireq.c - OpenAI request validation (gateway/oaireq.c):
 * valid requests produce exactly the GENERATE request the runtime decodes
 * (through the real IPC codec), every bad parameter is refused with the
 * parameter named, and the response pieces have OpenAI's shapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/oaireq.h"

/* Parses text as kind; returns 0/-1 with q filled or e set. */
static int
parse(const char *text, enum oai_kind kind, struct oai_req *q,
    struct oai_error *e)
{
	json_error_t	 je;
	json_t		*j = json_loads(text, 0, &je);
	int		 r;

	if (j == NULL)
		fail_msg("bad test JSON: %s: %s", je.text, text);
	r = oai_req_parse(q, kind, j, e);
	json_decref(j);	/* q keeps its own reference */
	return r;
}

/* Expects text to be refused, naming param with code. */
static void
refused(const char *text, enum oai_kind kind, const char *param,
    const char *code)
{
	struct oai_req		q;
	struct oai_error	e;

	if (parse(text, kind, &q, &e) != -1)
		fail_msg("accepted: %s", text);
	if (strcmp(e.param, param) != 0)
		fail_msg("param '%s', expected '%s' for %s (%s)", e.param,
		    param, text, e.message);
	if (code != NULL && strcmp(e.code, code) != 0)
		fail_msg("code '%s', expected '%s' for %s", e.code, code, text);
	assert_true(strlen(e.message) > 0);
}

static void
test_chat_valid(void **state)
{
	struct oai_req		 q;
	struct oai_error	 e;
	struct ipc_gen_req	 g, back;
	struct wbuf		 w;
	struct rbuf		 rb;

	(void)state;
	assert_int_equal(parse("{\"model\":\"m\",\"messages\":["
	    "{\"role\":\"developer\",\"content\":\"be brief\"},"
	    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
	    "{\"type\":\"text\",\"text\":\"bc\"}]},"
	    "{\"role\":\"assistant\",\"content\":null},"
	    "{\"role\":\"user\",\"content\":\"hi\"}],"
	    "\"max_completion_tokens\":7,\"max_tokens\":9,\"temperature\":0.5,"
	    "\"top_p\":0.9,\"top_k\":40,\"min_p\":0.05,\"seed\":42,"
	    "\"presence_penalty\":-2,\"frequency_penalty\":2,"
	    "\"stop\":[\"x\",\"yy\"],\"logit_bias\":{\"5\":-100,\"17\":3.5},"
	    "\"logprobs\":true,\"top_logprobs\":3,\"n\":1,\"user\":\"u1\","
	    "\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
	    OAI_CHAT, &q, &e), 0);
	assert_string_equal(q.model, "m");
	assert_int_equal(q.n_msgs, 4);
	assert_int_equal(q.roles[0].n, 6);
	assert_memory_equal(q.roles[0].p, "system", 6);	/* developer */
	assert_int_equal(q.contents[1].n, 3);
	assert_memory_equal(q.contents[1].p, "abc", 3);	/* parts joined */
	assert_int_equal(q.contents[2].n, 0);
	assert_true(q.has_max_tokens);
	assert_int_equal(q.max_tokens, 7);	/* the newer name wins */
	assert_true(q.stream && q.include_usage && q.logprobs);
	assert_int_equal(q.top_logprobs, 3);
	assert_int_equal(q.n_stop, 2);
	assert_int_equal(q.n_bias, 2);

	/* Through the real codec, as the runtime will see it. */
	oai_req_gen(&q, "ten_1", 0, 999, &g);
	wbuf_init(&w);
	ipc_gen_req_encode(&w, &g);
	rbuf_init(&rb, w.data, w.len);
	assert_int_equal(ipc_gen_req_decode(&rb, &back), 0);
	assert_int_equal(back.mode, IPC_GEN_CHAT);
	assert_int_equal(back.n_msgs, 4);
	assert_memory_equal(back.contents[3].p, "hi", 2);
	assert_int_equal(back.max_tokens, 7);
	assert_int_equal(back.seed, 42);	/* given: not the default */
	assert_int_equal(back.top_k, 40);
	assert_true(back.temperature == 0.5f);
	assert_true(back.presence_penalty == -2.0f);
	assert_int_equal(back.n_stop, 2);
	assert_memory_equal(back.stop[1].p, "yy", 2);
	assert_int_equal(back.n_bias, 2);
	assert_true(back.bias_val[0] == -100.0f || back.bias_val[1] ==
	    -100.0f);
	assert_int_equal(back.top_logprobs, 3);
	assert_int_equal(back.tenant.n, 5);
	ipc_gen_req_release(&back);
	wbuf_release(&w);
	/* bytes + per-message overhead: an upper bound of the tokens. */
	assert_true(oai_req_prompt_bound(&q) >= 8 + 4);
	oai_req_release(&q);
	oai_req_release(&q);	/* twice is harmless */
}

static void
test_defaults(void **state)
{
	struct oai_req		q;
	struct oai_error	e;
	struct ipc_gen_req	g;

	(void)state;
	assert_int_equal(parse("{\"model\":\"m\",\"prompt\":[\"once\"],"
	    "\"temperature\":null,\"stop\":null,\"echo\":false,"
	    "\"suffix\":\"\",\"best_of\":1,\"logprobs\":2}", OAI_COMPLETION,
	    &q, &e), 0);
	oai_req_gen(&q, "t", 0, 1234, &g);
	assert_int_equal(g.mode, IPC_GEN_COMPLETION);
	assert_int_equal(g.prompt.n, 4);
	assert_true(g.temperature == 1.0f && g.top_p == 1.0f);
	assert_int_equal(g.max_tokens, 0);	/* up to the context */
	assert_int_equal(g.seed, 1234);		/* none given */
	assert_true(g.logprobs);
	assert_int_equal(g.top_logprobs, 2);
	assert_false(q.stream);
	oai_req_release(&q);

	assert_int_equal(parse("{\"model\":\"e\",\"input\":[\"a\",\"bb\"],"
	    "\"encoding_format\":\"base64\"}", OAI_EMBEDDING, &q, &e), 0);
	assert_int_equal(q.n_inputs, 2);
	assert_true(q.base64);
	oai_req_gen(&q, "t", 1, 0, &g);
	assert_int_equal(g.mode, IPC_GEN_EMBEDDING);
	assert_int_equal(g.prompt.n, 2);
	oai_req_release(&q);
}

static void
test_chat_refused(void **state)
{
	char	big[64 + 10 * 400];
	size_t	n;

	(void)state;
	refused("{\"messages\":[]}", OAI_CHAT, "model",
	    "missing_required_parameter");
	refused("{\"model\":7,\"messages\":[]}", OAI_CHAT, "model",
	    "invalid_type");
	refused("{\"model\":\"\",\"messages\":[]}", OAI_CHAT, "model", NULL);
	refused("{\"model\":\"m\"}", OAI_CHAT, "messages",
	    "missing_required_parameter");
	refused("{\"model\":\"m\",\"messages\":[]}", OAI_CHAT, "messages",
	    NULL);
	refused("{\"model\":\"m\",\"messages\":{}}", OAI_CHAT, "messages",
	    "invalid_type");
	refused("{\"model\":\"m\",\"messages\":[1]}", OAI_CHAT, "messages[0]",
	    NULL);
	refused("{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}",
	    OAI_CHAT, "messages[0].role", "missing_required_parameter");
	refused("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
	    "\"content\":\"x\"},{\"role\":\"wizard\",\"content\":\"x\"}]}",
	    OAI_CHAT, "messages[1].role", "invalid_value");
	refused("{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}",
	    OAI_CHAT, "messages[0].content", NULL);
	refused("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
	    "\"content\":5}]}", OAI_CHAT, "messages[0].content",
	    "invalid_type");
	refused("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
	    "\"content\":[{\"type\":\"image_url\",\"image_url\":{}}]}]}",
	    OAI_CHAT, "messages[0].content[0]", "unsupported_value");
#define M "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	refused(M "\"max_tokens\":0}", OAI_CHAT, "max_tokens",
	    "invalid_value");
	refused(M "\"max_tokens\":1.5}", OAI_CHAT, "max_tokens",
	    "invalid_type");
	refused(M "\"max_completion_tokens\":-1}", OAI_CHAT,
	    "max_completion_tokens", NULL);
	refused(M "\"temperature\":2.01}", OAI_CHAT, "temperature",
	    "invalid_value");
	refused(M "\"temperature\":\"hot\"}", OAI_CHAT, "temperature",
	    "invalid_type");
	refused(M "\"top_p\":1.5}", OAI_CHAT, "top_p", NULL);
	refused(M "\"top_k\":-3}", OAI_CHAT, "top_k", NULL);
	refused(M "\"min_p\":-0.1}", OAI_CHAT, "min_p", NULL);
	refused(M "\"n\":2}", OAI_CHAT, "n", "unsupported_value");
	refused(M "\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", OAI_CHAT,
	    "stop", "array_above_max_length");
	refused(M "\"stop\":[\"a\",3]}", OAI_CHAT, "stop[1]", "invalid_type");
	refused(M "\"stop\":\"\"}", OAI_CHAT, "stop", "invalid_value");
	refused(M "\"stop\":5}", OAI_CHAT, "stop", "invalid_type");
	refused(M "\"presence_penalty\":-2.5}", OAI_CHAT, "presence_penalty",
	    NULL);
	refused(M "\"frequency_penalty\":3}", OAI_CHAT, "frequency_penalty",
	    NULL);
	refused(M "\"logit_bias\":{\"12\":101}}", OAI_CHAT, "logit_bias.12",
	    "invalid_value");
	refused(M "\"logit_bias\":{\"x1\":1}}", OAI_CHAT, "logit_bias.x1",
	    NULL);
	refused(M "\"logit_bias\":{\"-1\":1}}", OAI_CHAT, "logit_bias.-1",
	    NULL);
	refused(M "\"logit_bias\":{\"99999999999\":1}}", OAI_CHAT,
	    "logit_bias.99999999999", NULL);
	refused(M "\"logit_bias\":[1]}", OAI_CHAT, "logit_bias",
	    "invalid_type");
	refused(M "\"seed\":\"7\"}", OAI_CHAT, "seed", "invalid_type");
	refused(M "\"logprobs\":1}", OAI_CHAT, "logprobs", "invalid_type");
	refused(M "\"top_logprobs\":3}", OAI_CHAT, "top_logprobs",
	    "invalid_value");
	refused(M "\"logprobs\":true,\"top_logprobs\":21}", OAI_CHAT,
	    "top_logprobs", "invalid_value");
	refused(M "\"stream\":\"yes\"}", OAI_CHAT, "stream", "invalid_type");
	refused(M "\"stream_options\":{\"include_usage\":true}}", OAI_CHAT,
	    "stream_options", "invalid_value");
	refused(M "\"stream\":true,\"stream_options\":{\"include_usage\":1}}",
	    OAI_CHAT, "stream_options.include_usage", "invalid_type");
	refused(M "\"tools\":[{\"type\":\"function\"}]}", OAI_CHAT, "tools",
	    "unsupported_value");
	refused(M "\"response_format\":{\"type\":\"json_object\"}}",
	    OAI_CHAT, "response_format", NULL);
	refused(M "\"user\":5}", OAI_CHAT, "user", "invalid_type");
#undef M
	/* 301 logit_bias entries: one over the limit. */
	n = (size_t)snprintf(big, sizeof(big), "{\"model\":\"m\",\"prompt\":"
	    "\"x\",\"logit_bias\":{");
	for (int i = 0; i <= 300; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%s\"%d\":1",
		    i ? "," : "", i);
	snprintf(big + n, sizeof(big) - n, "}}");
	refused(big, OAI_COMPLETION, "logit_bias", "invalid_value");
}

static void
test_completion_embedding_refused(void **state)
{
	(void)state;
	refused("{\"model\":\"m\"}", OAI_COMPLETION, "prompt",
	    "missing_required_parameter");
	refused("{\"model\":\"m\",\"prompt\":[1,2,3]}", OAI_COMPLETION,
	    "prompt", "unsupported_value");
	refused("{\"model\":\"m\",\"prompt\":[\"a\",\"b\"]}", OAI_COMPLETION,
	    "prompt", "unsupported_value");
	refused("{\"model\":\"m\",\"prompt\":{}}", OAI_COMPLETION, "prompt",
	    "invalid_type");
	refused("{\"model\":\"m\",\"prompt\":\"x\",\"echo\":true}",
	    OAI_COMPLETION, "echo", NULL);
	refused("{\"model\":\"m\",\"prompt\":\"x\",\"logprobs\":true}",
	    OAI_COMPLETION, "logprobs", "invalid_type");
	refused("{\"model\":\"m\",\"prompt\":\"x\",\"logprobs\":21}",
	    OAI_COMPLETION, "logprobs", "invalid_value");
	refused("{\"model\":\"m\",\"prompt\":\"x\",\"best_of\":3}",
	    OAI_COMPLETION, "best_of", NULL);
	refused("{\"model\":\"m\",\"prompt\":\"x\",\"suffix\":\"y\"}",
	    OAI_COMPLETION, "suffix", NULL);
	refused("{\"model\":\"m\"}", OAI_EMBEDDING, "input",
	    "missing_required_parameter");
	refused("{\"model\":\"m\",\"input\":\"\"}", OAI_EMBEDDING, "input",
	    "invalid_value");
	refused("{\"model\":\"m\",\"input\":[]}", OAI_EMBEDDING, "input",
	    NULL);
	refused("{\"model\":\"m\",\"input\":[\"a\",7]}", OAI_EMBEDDING,
	    "input[1]", "unsupported_value");
	refused("{\"model\":\"m\",\"input\":[\"a\",{}]}", OAI_EMBEDDING,
	    "input[1]", "invalid_type");
	refused("{\"model\":\"m\",\"input\":\"a\",\"encoding_format\":\"hex\"}",
	    OAI_EMBEDDING, "encoding_format", "invalid_value");
	refused("{\"model\":\"m\",\"input\":\"a\",\"dimensions\":8}",
	    OAI_EMBEDDING, "dimensions", NULL);
}

static void
test_response_pieces(void **state)
{
	json_t			*u, *lp, *s;
	struct ipc_gen_token	 t;
	char			*out;

	(void)state;
	u = oai_usage(10, 5, 4);
	out = json_dumps(u, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(out, "{\"completion_tokens\":5,"
	    "\"prompt_tokens\":10,\"prompt_tokens_details\":"
	    "{\"cached_tokens\":4},\"total_tokens\":15}");
	free(out);
	json_decref(u);
	assert_string_equal(oai_finish_name(IPC_FINISH_LENGTH), "length");
	assert_string_equal(oai_finish_name(IPC_FINISH_STOP), "stop");

	/* A token piece that is half of a UTF-8 character. */
	s = oai_string_lossy("a\xe2\x82", 3);
	assert_non_null(s);
	assert_string_equal(json_string_value(s), "a\xef\xbf\xbd\xef\xbf\xbd");
	json_decref(s);
	assert_true(oai_utf8_valid("\xe2\x82\xac", 3));
	assert_false(oai_utf8_valid("\xed\xa0\x80", 3));	/* surrogate */
	assert_false(oai_utf8_valid("\xc0\xaf", 2));		/* overlong */

	memset(&t, 0, sizeof(t));
	t.id = 3;
	t.lp.token.p = "\xe2\x82";
	t.lp.token.n = 2;
	t.lp.logprob = -0.5f;
	t.n_top = 1;
	t.top[0].token.p = "ok";
	t.top[0].token.n = 2;
	t.top[0].logprob = -1.0f;
	lp = oai_chat_logprob(&t);
	out = json_dumps(lp, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(out, "{\"bytes\":[226,130],\"logprob\":-0.5,"
	    "\"token\":\"\xef\xbf\xbd\xef\xbf\xbd\",\"top_logprobs\":"
	    "[{\"bytes\":[111,107],\"logprob\":-1.0,\"token\":\"ok\"}]}");
	free(out);
	json_decref(lp);

	lp = oai_completion_logprobs_new();
	oai_completion_logprob(lp, &t, 7);
	out = json_dumps(lp, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(out, "{\"text_offset\":[7],\"token_logprobs\":"
	    "[-0.5],\"tokens\":[\"\xef\xbf\xbd\xef\xbf\xbd\"],"
	    "\"top_logprobs\":[{\"ok\":-1.0}]}");
	free(out);
	json_decref(lp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chat_valid),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_chat_refused),
		cmocka_unit_test(test_completion_embedding_refused),
		cmocka_unit_test(test_response_pieces),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
