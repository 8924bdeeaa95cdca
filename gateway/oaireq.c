/* gateway/oaireq.c - see oaireq.h.
 *
 * Parameters that are absent or JSON null take their OpenAI defaults.
 * Fields maas does not implement are refused when they would change the
 * answer (n > 1, echo, suffix, best_of, tools, token-array prompts) rather
 * than silently ignored; fields that change nothing (user, metadata,
 * store, parallel_tool_calls without tools) are accepted. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "gateway/oaireq.h"

/* Template overhead per chat message and per request, in tokens: the
 * role markers and separators of ChatML, Llama-2 and Llama-3 are well
 * under this. */
#define MSG_OVERHEAD		16
#define REQ_OVERHEAD		16
#define BIAS_MIN		-100.0
#define BIAS_MAX		100.0

static int	fail(struct oai_error *, const char *code, const char *param,
		    const char *fmt, ...)
		    __attribute__((format(printf, 4, 5)));
static json_t	*field(json_t *body, const char *name);
static int	get_number(json_t *body, const char *name, double lo,
		    double hi, float *out, struct oai_error *);
static int	get_uint(json_t *body, const char *name, uint64_t lo,
		    uint64_t hi, bool *has, uint64_t *out, struct oai_error *);
static int	get_bool(json_t *body, const char *name, bool *out,
		    struct oai_error *);
static int	parse_model(struct oai_req *, struct oai_error *);
static int	parse_messages(struct oai_req *, struct oai_error *);
static int	parse_content(struct oai_req *, json_t *content, uint32_t i,
		    bool may_be_null, struct ipc_str *out,
		    struct oai_error *);
static int	parse_prompt(struct oai_req *, struct oai_error *);
static int	parse_inputs(struct oai_req *, struct oai_error *);
static int	parse_sampling(struct oai_req *, struct oai_error *);
static int	parse_stop(struct oai_req *, struct oai_error *);
static int	parse_bias(struct oai_req *, struct oai_error *);
static int	parse_stream(struct oai_req *, struct oai_error *);
static int	refuse_unsupported(struct oai_req *, struct oai_error *);
static size_t	utf8_seq(const unsigned char *, size_t);

static int
fail(struct oai_error *e, const char *code, const char *param,
    const char *fmt, ...)
{
	va_list	ap;

	e->code = code;
	snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return -1;
}

/* A field of the body; JSON null counts as absent. */
static json_t *
field(json_t *body, const char *name)
{
	json_t	*v = json_object_get(body, name);

	return json_is_null(v) ? NULL : v;
}

static int
get_number(json_t *body, const char *name, double lo, double hi,
    float *out, struct oai_error *e)
{
	json_t	*v = field(body, name);
	double	 d;

	if (v == NULL)
		return 0;
	if (!json_is_number(v))
		return fail(e, "invalid_type", name, "Invalid type for '%s': "
		    "expected a number.", name);
	d = json_number_value(v);
	if (!isfinite(d) || d < lo || d > hi)
		return fail(e, "invalid_value", name, "Invalid '%s': expected "
		    "a value between %g and %g, but got %g instead.", name, lo,
		    hi, d);
	*out = (float)d;
	return 0;
}

static int
get_uint(json_t *body, const char *name, uint64_t lo, uint64_t hi,
    bool *has, uint64_t *out, struct oai_error *e)
{
	json_t		*v = field(body, name);
	json_int_t	 n;

	if (v == NULL)
		return 0;
	if (!json_is_integer(v))
		return fail(e, "invalid_type", name, "Invalid type for '%s': "
		    "expected an integer.", name);
	n = json_integer_value(v);
	if (n < 0 || (uint64_t)n < lo || (uint64_t)n > hi)
		return fail(e, "invalid_value", name, "Invalid '%s': expected "
		    "an integer between %llu and %llu, but got %lld instead.",
		    name, (unsigned long long)lo, (unsigned long long)hi,
		    (long long)n);
	if (has != NULL)
		*has = true;
	*out = (uint64_t)n;
	return 0;
}

static int
get_bool(json_t *body, const char *name, bool *out, struct oai_error *e)
{
	json_t	*v = field(body, name);

	if (v == NULL)
		return 0;
	if (!json_is_boolean(v))
		return fail(e, "invalid_type", name, "Invalid type for '%s': "
		    "expected a boolean.", name);
	*out = json_is_true(v);
	return 0;
}

static int
parse_model(struct oai_req *q, struct oai_error *e)
{
	json_t	*v = field(q->body, "model");
	size_t	 n;

	if (v == NULL)
		return fail(e, "missing_required_parameter", "model",
		    "Missing required parameter: 'model'.");
	if (!json_is_string(v))
		return fail(e, "invalid_type", "model", "Invalid type for "
		    "'model': expected a string.");
	n = json_string_length(v);
	if (n == 0 || n >= OAI_MODEL_MAX ||
	    strlen(json_string_value(v)) != n)
		return fail(e, "invalid_value", "model", "Invalid 'model': "
		    "expected a name of 1 to %d bytes.", OAI_MODEL_MAX - 1);
	q->model = json_string_value(v);
	return 0;
}

/* content: a string, or an array of {"type":"text","text":...} parts
 * (joined; other part types are refused), or null for an assistant
 * message. */
static int
parse_content(struct oai_req *q, json_t *content, uint32_t i,
    bool may_be_null, struct ipc_str *out, struct oai_error *e)
{
	char	 param[OAI_PARAM_MAX];
	json_t	*part, *type, *text;
	size_t	 j, total = 0, off = 0;
	char	*buf;

	snprintf(param, sizeof(param), "messages[%u].content", i);
	if (content == NULL || json_is_null(content)) {
		if (!may_be_null)
			return fail(e, "missing_required_parameter", param,
			    "Missing required parameter: '%s'.", param);
		out->p = "";
		out->n = 0;
		return 0;
	}
	if (json_is_string(content)) {
		out->p = json_string_value(content);
		out->n = (uint32_t)json_string_length(content);
		return 0;
	}
	if (!json_is_array(content))
		return fail(e, "invalid_type", param, "Invalid type for '%s': "
		    "expected a string or an array of content parts.", param);
	json_array_foreach(content, j, part) {
		snprintf(param, sizeof(param), "messages[%u].content[%zu]", i,
		    j);
		if (!json_is_object(part))
			return fail(e, "invalid_type", param, "Invalid type "
			    "for '%s': expected an object.", param);
		type = json_object_get(part, "type");
		if (!json_is_string(type) ||
		    strcmp(json_string_value(type), "text") != 0)
			return fail(e, "unsupported_value", param, "Invalid "
			    "'%s': only content parts of type 'text' are "
			    "supported.", param);
		text = json_object_get(part, "text");
		if (!json_is_string(text))
			return fail(e, "invalid_type", param, "Invalid type "
			    "for '%s.text': expected a string.", param);
		total += json_string_length(text);
	}
	if (total > UINT32_MAX)
		return fail(e, "invalid_value", param, "'%s' is too long.",
		    param);
	buf = xmalloc(total + 1);
	json_array_foreach(content, j, part) {
		text = json_object_get(part, "text");
		memcpy(buf + off, json_string_value(text),
		    json_string_length(text));
		off += json_string_length(text);
	}
	buf[off] = '\0';
	q->owned[q->n_owned++] = buf;
	out->p = buf;
	out->n = (uint32_t)off;
	return 0;
}

static int
parse_messages(struct oai_req *q, struct oai_error *e)
{
	static const char *const roles[] = { "system", "user", "assistant",
	    "developer", "tool" };
	json_t		*msgs = field(q->body, "messages"), *m, *role;
	char		 param[OAI_PARAM_MAX];
	size_t		 n, i, k;
	const char	*r;

	if (msgs == NULL)
		return fail(e, "missing_required_parameter", "messages",
		    "Missing required parameter: 'messages'.");
	if (!json_is_array(msgs))
		return fail(e, "invalid_type", "messages", "Invalid type for "
		    "'messages': expected an array.");
	n = json_array_size(msgs);
	if (n == 0)
		return fail(e, "empty_array", "messages", "Invalid "
		    "'messages': empty array. Expected an array with minimum "
		    "length 1, but got an empty array instead.");
	if (n > IPC_IMSG_MAX)
		return fail(e, "array_above_max_length", "messages", "Invalid "
		    "'messages': array too long. Expected an array with "
		    "maximum length %d, but got an array with length %zu "
		    "instead.", IPC_IMSG_MAX, n);
	q->n_msgs = (uint32_t)n;
	q->roles = xcalloc(n, sizeof(*q->roles));
	q->contents = xcalloc(n, sizeof(*q->contents));
	q->owned = xcalloc(n, sizeof(*q->owned));
	json_array_foreach(msgs, i, m) {
		snprintf(param, sizeof(param), "messages[%zu]", i);
		if (!json_is_object(m))
			return fail(e, "invalid_type", param, "Invalid type "
			    "for '%s': expected an object.", param);
		snprintf(param, sizeof(param), "messages[%zu].role", i);
		role = json_object_get(m, "role");
		if (role == NULL || json_is_null(role))
			return fail(e, "missing_required_parameter", param,
			    "Missing required parameter: '%s'.", param);
		if (!json_is_string(role))
			return fail(e, "invalid_type", param, "Invalid type "
			    "for '%s': expected a string.", param);
		r = json_string_value(role);
		for (k = 0; k < sizeof(roles) / sizeof(roles[0]); k++)
			if (strcmp(r, roles[k]) == 0)
				break;
		if (k == sizeof(roles) / sizeof(roles[0]))
			return fail(e, "invalid_value", param, "Invalid value "
			    "for '%s': expected one of 'system', 'user', "
			    "'assistant', 'developer' or 'tool'.", param);
		/* The templates maas applies know no "developer": it is
		 * what newer OpenAI models call the system message. */
		if (strcmp(r, "developer") == 0)
			r = "system";
		q->roles[i].p = r;
		q->roles[i].n = (uint32_t)strlen(r);
		if (parse_content(q, json_object_get(m, "content"),
		    (uint32_t)i, strcmp(r, "assistant") == 0,
		    &q->contents[i], e) == -1)
			return -1;
	}
	return 0;
}

/* prompt: a string or an array holding exactly one string. */
static int
parse_prompt(struct oai_req *q, struct oai_error *e)
{
	json_t	*v = field(q->body, "prompt");

	if (v == NULL)
		return fail(e, "missing_required_parameter", "prompt",
		    "Missing required parameter: 'prompt'.");
	if (json_is_array(v)) {
		if (json_array_size(v) != 1)
			return fail(e, "unsupported_value", "prompt", "Invalid "
			    "'prompt': maas takes one prompt per request.");
		v = json_array_get(v, 0);
		if (json_is_array(v) || json_is_integer(v))
			return fail(e, "unsupported_value", "prompt", "Invalid "
			    "'prompt': token arrays are not supported; send "
			    "text.");
	}
	if (!json_is_string(v))
		return fail(e, "invalid_type", "prompt", "Invalid type for "
		    "'prompt': expected a string.");
	q->prompt.p = json_string_value(v);
	q->prompt.n = (uint32_t)json_string_length(v);
	return 0;
}

/* input: a non-empty string or an array of up to OAI_INPUTS_MAX of them;
 * encoding_format: "float" or "base64". */
static int
parse_inputs(struct oai_req *q, struct oai_error *e)
{
	json_t		*v = field(q->body, "input"), *s, *fmt;
	char		 param[OAI_PARAM_MAX];
	size_t		 i, n;
	const char	*f;

	if (v == NULL)
		return fail(e, "missing_required_parameter", "input",
		    "Missing required parameter: 'input'.");
	if (json_is_string(v))
		n = 1;
	else if (json_is_array(v)) {
		n = json_array_size(v);
		if (n == 0)
			return fail(e, "empty_array", "input", "Invalid "
			    "'input': expected a non-empty array.");
		if (n > OAI_INPUTS_MAX)
			return fail(e, "array_above_max_length", "input",
			    "Invalid 'input': at most %d inputs per request, "
			    "got %zu.", OAI_INPUTS_MAX, n);
	} else
		return fail(e, "invalid_type", "input", "Invalid type for "
		    "'input': expected a string or an array of strings.");
	q->inputs = xcalloc(n, sizeof(*q->inputs));
	q->n_inputs = (uint32_t)n;
	for (i = 0; i < n; i++) {
		s = json_is_string(v) ? v : json_array_get(v, i);
		if (json_is_string(v))
			snprintf(param, sizeof(param), "input");
		else
			snprintf(param, sizeof(param), "input[%zu]", i);
		if (json_is_array(s) || json_is_integer(s))
			return fail(e, "unsupported_value", param, "Invalid "
			    "'%s': token arrays are not supported; send "
			    "text.", param);
		if (!json_is_string(s))
			return fail(e, "invalid_type", param, "Invalid type "
			    "for '%s': expected a string.", param);
		if (json_string_length(s) == 0)
			return fail(e, "invalid_value", param, "Invalid '%s': "
			    "an input must not be empty.", param);
		q->inputs[i].p = json_string_value(s);
		q->inputs[i].n = (uint32_t)json_string_length(s);
	}
	if ((fmt = field(q->body, "encoding_format")) != NULL) {
		if (!json_is_string(fmt))
			return fail(e, "invalid_type", "encoding_format",
			    "Invalid type for 'encoding_format': expected a "
			    "string.");
		f = json_string_value(fmt);
		if (strcmp(f, "base64") == 0)
			q->base64 = true;
		else if (strcmp(f, "float") != 0)
			return fail(e, "invalid_value", "encoding_format",
			    "Invalid 'encoding_format': expected 'float' or "
			    "'base64'.");
	}
	if (field(q->body, "dimensions") != NULL)
		return fail(e, "unsupported_value", "dimensions", "Invalid "
		    "'dimensions': this model's embeddings have a fixed "
		    "size; leave it out.");
	return 0;
}

static int
parse_stop(struct oai_req *q, struct oai_error *e)
{
	json_t	*v = field(q->body, "stop"), *s;
	char	 param[OAI_PARAM_MAX];
	size_t	 i, n;

	if (v == NULL)
		return 0;
	if (json_is_string(v))
		n = 1;
	else if (json_is_array(v)) {
		n = json_array_size(v);
		if (n > IPC_STOP_MAX)
			return fail(e, "array_above_max_length", "stop",
			    "Invalid 'stop': array too long. Expected an "
			    "array with maximum length %d, but got an array "
			    "with length %zu instead.", IPC_STOP_MAX, n);
	} else
		return fail(e, "invalid_type", "stop", "Invalid type for "
		    "'stop': expected a string or an array of strings.");
	for (i = 0; i < n; i++) {
		s = json_is_string(v) ? v : json_array_get(v, i);
		if (json_is_string(v))
			snprintf(param, sizeof(param), "stop");
		else
			snprintf(param, sizeof(param), "stop[%zu]", i);
		if (!json_is_string(s))
			return fail(e, "invalid_type", param, "Invalid type "
			    "for '%s': expected a string.", param);
		if (json_string_length(s) == 0 ||
		    json_string_length(s) > IPC_STOP_LEN)
			return fail(e, "invalid_value", param, "Invalid '%s': "
			    "a stop sequence has 1 to %d bytes.", param,
			    IPC_STOP_LEN);
		q->stop[q->n_stop].p = json_string_value(s);
		q->stop[q->n_stop].n = (uint32_t)json_string_length(s);
		q->n_stop++;
	}
	return 0;
}

/* logit_bias: {"<token id>": -100..100, ...}, at most IPC_BIAS_MAX. */
static int
parse_bias(struct oai_req *q, struct oai_error *e)
{
	json_t		*v = field(q->body, "logit_bias"), *b;
	const char	*k;
	char		 param[OAI_PARAM_MAX], *end;
	size_t		 n;
	long		 id;
	double		 d;

	if (v == NULL)
		return 0;
	if (!json_is_object(v))
		return fail(e, "invalid_type", "logit_bias", "Invalid type "
		    "for 'logit_bias': expected an object.");
	n = json_object_size(v);
	if (n > IPC_BIAS_MAX)
		return fail(e, "invalid_value", "logit_bias", "Invalid "
		    "'logit_bias': at most %d entries, got %zu.",
		    IPC_BIAS_MAX, n);
	q->bias_tok = xcalloc(n + 1, sizeof(*q->bias_tok));
	q->bias_val = xcalloc(n + 1, sizeof(*q->bias_val));
	json_object_foreach(v, k, b) {
		snprintf(param, sizeof(param), "logit_bias.%.40s", k);
		errno = 0;
		id = strtol(k, &end, 10);
		if (*k < '0' || *k > '9' || *end != '\0' || errno != 0 ||
		    id > INT32_MAX)
			return fail(e, "invalid_value", param, "Invalid "
			    "'logit_bias': keys are token ids (decimal "
			    "integers).");
		if (!json_is_number(b))
			return fail(e, "invalid_type", param, "Invalid type "
			    "for '%s': expected a number.", param);
		d = json_number_value(b);
		if (!isfinite(d) || d < BIAS_MIN || d > BIAS_MAX)
			return fail(e, "invalid_value", param, "Invalid '%s': "
			    "expected a value between -100 and 100.", param);
		q->bias_tok[q->n_bias] = (int32_t)id;
		q->bias_val[q->n_bias] = (float)d;
		q->n_bias++;
	}
	return 0;
}

static int
parse_sampling(struct oai_req *q, struct oai_error *e)
{
	uint64_t	 u, mt = 0, mct = 0;
	bool		 has_mt = false, has_mct = false, has;
	json_t		*lp;

	if (get_uint(q->body, "max_tokens", 1, OAI_MAX_TOKENS_MAX, &has_mt,
	    &mt, e) == -1 || get_uint(q->body, "max_completion_tokens", 1,
	    OAI_MAX_TOKENS_MAX, &has_mct, &mct, e) == -1)
		return -1;
	if (has_mt || has_mct) {
		q->has_max_tokens = true;
		q->max_tokens = (uint32_t)(has_mct ? mct : mt);
	}
	if (get_number(q->body, "temperature", 0, 2, &q->temperature, e) ==
	    -1 || get_number(q->body, "top_p", 0, 1, &q->top_p, e) == -1 ||
	    get_number(q->body, "min_p", 0, 1, &q->min_p, e) == -1 ||
	    get_number(q->body, "presence_penalty", -2, 2,
	    &q->presence_penalty, e) == -1 ||
	    get_number(q->body, "frequency_penalty", -2, 2,
	    &q->frequency_penalty, e) == -1)
		return -1;
	u = 0;
	if (get_uint(q->body, "top_k", 0, OAI_TOP_K_MAX, NULL, &u, e) == -1)
		return -1;
	q->top_k = (uint32_t)u;
	u = 1;
	if (get_uint(q->body, "n", 0, INT32_MAX, NULL, &u, e) == -1)
		return -1;
	if (u != 1)
		return fail(e, "unsupported_value", "n", "Invalid 'n': maas "
		    "returns one choice per request; n must be 1.");
	if (field(q->body, "seed") != NULL) {
		json_t	*s = field(q->body, "seed");

		if (!json_is_integer(s))
			return fail(e, "invalid_type", "seed", "Invalid type "
			    "for 'seed': expected an integer.");
		q->has_seed = true;
		q->seed = (uint64_t)json_integer_value(s);
	}
	lp = field(q->body, "logprobs");
	if (q->kind == OAI_CHAT) {
		if (get_bool(q->body, "logprobs", &q->logprobs, e) == -1)
			return -1;
		u = 0;
		has = false;
		if (get_uint(q->body, "top_logprobs", 0, IPC_TOP_MAX, &has, &u,
		    e) == -1)
			return -1;
		if (has && !q->logprobs)
			return fail(e, "invalid_value", "top_logprobs",
			    "Invalid 'top_logprobs': 'logprobs' must be set "
			    "to true when 'top_logprobs' is used.");
		q->top_logprobs = (uint8_t)u;
	} else if (lp != NULL) {
		/* Completions: logprobs is how many alternatives to list. */
		if (json_is_boolean(lp))
			return fail(e, "invalid_type", "logprobs", "Invalid "
			    "type for 'logprobs': expected an integer.");
		if (get_uint(q->body, "logprobs", 0, IPC_TOP_MAX, NULL, &u,
		    e) == -1)
			return -1;
		q->logprobs = true;
		q->top_logprobs = (uint8_t)u;
	}
	if (parse_stop(q, e) == -1 || parse_bias(q, e) == -1)
		return -1;
	return 0;
}

static int
parse_stream(struct oai_req *q, struct oai_error *e)
{
	json_t	*so;

	if (get_bool(q->body, "stream", &q->stream, e) == -1)
		return -1;
	if ((so = field(q->body, "stream_options")) == NULL)
		return 0;
	if (!q->stream)
		return fail(e, "invalid_value", "stream_options", "Invalid "
		    "'stream_options': only allowed when 'stream' is true.");
	if (!json_is_object(so))
		return fail(e, "invalid_type", "stream_options", "Invalid "
		    "type for 'stream_options': expected an object.");
	if (get_bool(so, "include_usage", &q->include_usage, e) == -1) {
		snprintf(e->param, sizeof(e->param),
		    "stream_options.include_usage");
		return -1;
	}
	return 0;
}

static int
refuse_unsupported(struct oai_req *q, struct oai_error *e)
{
	json_t	*v;

	if ((v = field(q->body, "tools")) != NULL &&
	    (!json_is_array(v) || json_array_size(v) > 0))
		return fail(e, "unsupported_value", "tools", "Invalid "
		    "'tools': tool calling is not supported by maas.");
	if ((v = field(q->body, "functions")) != NULL &&
	    (!json_is_array(v) || json_array_size(v) > 0))
		return fail(e, "unsupported_value", "functions", "Invalid "
		    "'functions': function calling is not supported.");
	if ((v = field(q->body, "echo")) != NULL && !json_is_false(v))
		return fail(e, "unsupported_value", "echo", "Invalid 'echo': "
		    "echoing the prompt is not supported.");
	if ((v = field(q->body, "suffix")) != NULL &&
	    !(json_is_string(v) && json_string_length(v) == 0))
		return fail(e, "unsupported_value", "suffix", "Invalid "
		    "'suffix': insertion is not supported.");
	if ((v = field(q->body, "best_of")) != NULL &&
	    !(json_is_integer(v) && json_integer_value(v) == 1))
		return fail(e, "unsupported_value", "best_of", "Invalid "
		    "'best_of': must be 1.");
	if ((v = field(q->body, "response_format")) != NULL) {
		json_t	*t = json_object_get(v, "type");

		if (!json_is_string(t) ||
		    strcmp(json_string_value(t), "text") != 0)
			return fail(e, "unsupported_value",
			    "response_format", "Invalid 'response_format': "
			    "only {\"type\": \"text\"} is supported.");
	}
	if ((v = field(q->body, "user")) != NULL && !json_is_string(v))
		return fail(e, "invalid_type", "user", "Invalid type for "
		    "'user': expected a string.");
	return 0;
}

int
oai_req_parse(struct oai_req *q, enum oai_kind kind, json_t *body,
    struct oai_error *e)
{
	memset(q, 0, sizeof(*q));
	memset(e, 0, sizeof(*e));
	q->kind = kind;
	q->temperature = 1.0f;
	q->top_p = 1.0f;
	if (!json_is_object(body))
		return fail(e, "invalid_type", NULL, "The request body must be "
		    "a JSON object.");
	q->body = json_incref(body);
	if (parse_model(q, e) == -1)
		goto bad;
	switch (kind) {
	case OAI_CHAT:
		if (parse_messages(q, e) == -1)
			goto bad;
		break;
	case OAI_COMPLETION:
		if (parse_prompt(q, e) == -1)
			goto bad;
		break;
	case OAI_EMBEDDING:
		if (parse_inputs(q, e) == -1)
			goto bad;
		return 0;
	}
	if (parse_sampling(q, e) == -1 || parse_stream(q, e) == -1 ||
	    refuse_unsupported(q, e) == -1)
		goto bad;
	return 0;
 bad:
	oai_req_release(q);
	return -1;
}

void
oai_req_release(struct oai_req *q)
{
	if (q == NULL)
		return;
	for (uint32_t i = 0; i < q->n_owned; i++)
		free(q->owned[i]);
	free(q->owned);
	free(q->roles);
	free(q->contents);
	free(q->inputs);
	free(q->bias_tok);
	free(q->bias_val);
	json_decref(q->body);
	memset(q, 0, sizeof(*q));
}

void
oai_req_gen(const struct oai_req *q, const char *tenant, uint32_t input,
    uint64_t seed, struct ipc_gen_req *g)
{
	memset(g, 0, sizeof(*g));
	g->tenant.p = tenant;
	g->tenant.n = (uint32_t)strlen(tenant);
	switch (q->kind) {
	case OAI_CHAT:
		g->mode = IPC_GEN_CHAT;
		g->n_msgs = q->n_msgs;
		g->roles = q->roles;
		g->contents = q->contents;
		break;
	case OAI_COMPLETION:
		g->mode = IPC_GEN_COMPLETION;
		g->prompt = q->prompt;
		break;
	case OAI_EMBEDDING:
		g->mode = IPC_GEN_EMBEDDING;
		if (input < q->n_inputs)
			g->prompt = q->inputs[input];
		return;
	}
	g->max_tokens = q->has_max_tokens ? q->max_tokens : 0;
	g->temperature = q->temperature;
	g->top_p = q->top_p;
	g->min_p = q->min_p;
	g->presence_penalty = q->presence_penalty;
	g->frequency_penalty = q->frequency_penalty;
	g->top_k = q->top_k;
	g->seed = q->has_seed ? q->seed : seed;
	g->logprobs = q->logprobs;
	g->top_logprobs = q->top_logprobs;
	g->n_stop = q->n_stop;
	memcpy(g->stop, q->stop, sizeof(g->stop));
	g->n_bias = q->n_bias;
	g->bias_tok = q->bias_tok;
	g->bias_val = q->bias_val;
}

uint64_t
oai_req_prompt_bound(const struct oai_req *q)
{
	uint64_t	n = REQ_OVERHEAD;

	switch (q->kind) {
	case OAI_CHAT:
		for (uint32_t i = 0; i < q->n_msgs; i++)
			n += q->contents[i].n + MSG_OVERHEAD;
		break;
	case OAI_COMPLETION:
		n += q->prompt.n;
		break;
	case OAI_EMBEDDING:
		for (uint32_t i = 0; i < q->n_inputs; i++)
			n += q->inputs[i].n + REQ_OVERHEAD;
		break;
	}
	return n;
}

/* --- response pieces --- */

json_t *
oai_usage(uint32_t prompt, uint32_t completion, uint32_t cached)
{
	return json_pack("{s:I, s:I, s:I, s:{s:I}}",
	    "prompt_tokens", (json_int_t)prompt,
	    "completion_tokens", (json_int_t)completion,
	    "total_tokens", (json_int_t)prompt + (json_int_t)completion,
	    "prompt_tokens_details", "cached_tokens", (json_int_t)cached);
}

const char *
oai_finish_name(enum ipc_finish f)
{
	return f == IPC_FINISH_LENGTH ? "length" : "stop";
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	size_t		len, i;
	uint32_t	cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

bool
oai_utf8_valid(const char *p, size_t n)
{
	const unsigned char	*u = (const unsigned char *)p;
	size_t			 i = 0, k;

	while (i < n) {
		if ((k = utf8_seq(u + i, n - i)) == 0)
			return false;
		i += k;
	}
	return true;
}

json_t *
oai_string_lossy(const char *p, size_t n)
{
	const unsigned char	*u = (const unsigned char *)p;
	char			*buf;
	size_t			 i = 0, o = 0, k;
	json_t			*s;

	if (oai_utf8_valid(p, n))
		return json_stringn(p, n);
	buf = xmalloc(n * 3 + 1);	/* each bad byte grows to 3 */
	while (i < n) {
		if ((k = utf8_seq(u + i, n - i)) == 0) {
			memcpy(buf + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(buf + o, u + i, k);
		o += k;
		i += k;
	}
	s = json_stringn(buf, o);
	free(buf);
	return s;
}

json_t *
oai_bytes_array(const char *p, size_t n)
{
	json_t	*a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer((unsigned char)p[i]));
	return a;
}

json_t *
oai_chat_logprob(const struct ipc_gen_token *t)
{
	json_t	*top = json_array(), *e;

	for (uint32_t i = 0; i < t->n_top && i < IPC_TOP_MAX; i++)
		json_array_append_new(top, json_pack("{s:o, s:f, s:o}",
		    "token", oai_string_lossy(t->top[i].token.p,
		    t->top[i].token.n), "logprob", (double)t->top[i].logprob,
		    "bytes", oai_bytes_array(t->top[i].token.p,
		    t->top[i].token.n)));
	e = json_pack("{s:o, s:f, s:o, s:o}", "token",
	    oai_string_lossy(t->lp.token.p, t->lp.token.n), "logprob",
	    (double)t->lp.logprob, "bytes", oai_bytes_array(t->lp.token.p,
	    t->lp.token.n), "top_logprobs", top);
	return e;
}

json_t *
oai_completion_logprobs_new(void)
{
	return json_pack("{s:[], s:[], s:[], s:[]}", "tokens",
	    "token_logprobs", "top_logprobs", "text_offset");
}

void
oai_completion_logprob(json_t *lp, const struct ipc_gen_token *t,
    size_t text_offset)
{
	json_t	*top = json_object(), *tok;

	tok = oai_string_lossy(t->lp.token.p, t->lp.token.n);
	json_array_append_new(json_object_get(lp, "tokens"), tok);
	json_array_append_new(json_object_get(lp, "token_logprobs"),
	    json_real((double)t->lp.logprob));
	for (uint32_t i = 0; i < t->n_top && i < IPC_TOP_MAX; i++) {
		json_t	*k = oai_string_lossy(t->top[i].token.p,
		    t->top[i].token.n);

		if (k != NULL)
			json_object_set_new(top, json_string_value(k),
			    json_real((double)t->top[i].logprob));
		json_decref(k);
	}
	json_array_append_new(json_object_get(lp, "top_logprobs"), top);
	json_array_append_new(json_object_get(lp, "text_offset"),
	    json_integer((json_int_t)text_offset));
}
