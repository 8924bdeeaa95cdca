/* runtime/onnx/weights.c - see weights.h.
 *
 * The strip walks the protobuf wire format along the only paths that hold
 * the tensors we serve from: ModelProto.graph (7) -> GraphProto.initializer
 * (5) -> TensorProto.raw_data (9), and GraphProto.node (1) ->
 * NodeProto.attribute (5) -> AttributeProto.t (5) -> raw_data.  Every
 * other field is copied as it is; messages on the path are re-framed with
 * their new lengths.  Each raw_data cut out is recorded with the position
 * of its tensor (initializer i, or node j's attribute k), which is where
 * protobuf-c puts it after unpacking: repeated fields keep wire order.  A
 * singular field on the path that appears twice would be merged by
 * protobuf-c, and the positions would no longer match; no exporter writes
 * that, so it is refused. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"
#include "common/xmalloc.h"
#include "runtime/onnx/weights.h"

enum level { L_MODEL, L_GRAPH, L_NODE, L_ATTR, L_TENSOR };

/* A raw_data cut out of the message. */
struct cut {
	bool	 attr;		/* node j's attribute k, else initializer i */
	size_t	 i, k;
	size_t	 off, len;	/* in the buffer */
};

/* State of one strip. */
struct strip {
	const uint8_t	*base;		/* the whole buffer */
	struct cut	*cuts;
	size_t		 n_cuts, cap_cuts;
	size_t		 n_init;	/* initializers seen */
	size_t		 n_node;	/* nodes seen */
	size_t		 node, attr;	/* where the walk is */
	bool		 in_attr;	/* tensor under an attribute */
	char		*err;
	size_t		 errlen;
};

static int	werr(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	put_varint(struct wbuf *, uint64_t);
static int	strip_msg(struct strip *, const uint8_t *, size_t,
		    enum level, struct wbuf *);
static Onnx__TensorProto *cut_tensor(Onnx__ModelProto *, const struct cut *);
static void	borrow(struct weights *, Onnx__TensorProto *);
static void	add_range(struct weights *, const void *, size_t);
static int	parse_u64(const char *, uint64_t *);
static int	external(struct weights *, const struct onnx_source *,
		    Onnx__TensorProto *, const char *label, char *, size_t);
static int	externals(struct weights *, const struct onnx_source *,
		    Onnx__ModelProto *, char *, size_t);

static int
werr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

int
weights_varint(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		uint8_t	b;

		if (*off >= len)
			return -1;
		b = p[(*off)++];
		*v |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0)
			return 0;
	}
	return -1;
}

static void
put_varint(struct wbuf *w, uint64_t v)
{
	while (v >= 0x80) {
		wbuf_u8(w, (uint8_t)(v | 0x80));
		v >>= 7;
	}
	wbuf_u8(w, (uint8_t)v);
}

/* The message at p (len bytes) at level lv, stripped, appended to out. */
static int
strip_msg(struct strip *S, const uint8_t *p, size_t len, enum level lv,
    struct wbuf *out)
{
	struct wbuf	sub;
	uint64_t	key, v;
	size_t		off = 0, start, body;
	enum level	down;
	bool		seen = false;	/* the one singular field on the path */
	int		ret = -1;

	wbuf_init(&sub);
	while (off < len) {
		start = off;
		if (weights_varint(p, len, &off, &key) == -1)
			goto bad;
		switch (key & 7) {
		case 0:		/* varint */
			if (weights_varint(p, len, &off, &v) == -1)
				goto bad;
			wbuf_put(out, p + start, off - start);
			continue;
		case 1:		/* 64-bit */
			if (len - off < 8)
				goto bad;
			off += 8;
			wbuf_put(out, p + start, off - start);
			continue;
		case 5:		/* 32-bit */
			if (len - off < 4)
				goto bad;
			off += 4;
			wbuf_put(out, p + start, off - start);
			continue;
		case 2:		/* length-delimited */
			if (weights_varint(p, len, &off, &v) == -1 ||
			    v > len - off)
				goto bad;
			body = off;
			off += (size_t)v;
			break;
		default:
			goto bad;
		}
		/* A length-delimited field: on the path, or copied. */
		switch (lv) {
		case L_MODEL:
			down = key >> 3 == 7 ? L_GRAPH : L_MODEL;
			break;
		case L_GRAPH:
			down = key >> 3 == 1 ? L_NODE : key >> 3 == 5 ?
			    L_TENSOR : L_GRAPH;
			break;
		case L_NODE:
			down = key >> 3 == 5 ? L_ATTR : L_NODE;
			break;
		case L_ATTR:
			down = key >> 3 == 5 ? L_TENSOR : L_ATTR;
			break;
		case L_TENSOR:
		default:
			down = L_TENSOR;
			if (key >> 3 != 9)
				break;
			if (seen) {
				werr(S->err, S->errlen, "not a valid ONNX model: "
				    "a tensor has two raw_data fields");
				goto out;
			}
			seen = true;
			if (S->n_cuts == S->cap_cuts) {
				S->cap_cuts = S->cap_cuts ? 2 * S->cap_cuts :
				    16;
				S->cuts = xreallocarray(S->cuts, S->cap_cuts,
				    sizeof(*S->cuts));
			}
			S->cuts[S->n_cuts++] = (struct cut){
				.attr = S->in_attr,
				.i = S->in_attr ? S->node : S->n_init - 1,
				.k = S->attr,
				.off = (size_t)(p + body - S->base),
				.len = (size_t)v,
			};
			continue;	/* not copied */
		}
		if (down == lv) {
			wbuf_put(out, p + start, off - start);
			continue;
		}
		if (lv == L_MODEL || lv == L_ATTR) {
			if (seen) {
				werr(S->err, S->errlen, "not a valid ONNX "
				    "model: %s appears twice", lv == L_MODEL ?
				    "the graph" : "an attribute's tensor");
				goto out;
			}
			seen = true;
		}
		if (lv == L_GRAPH && down == L_NODE) {
			S->node = S->n_node++;
			S->attr = 0;
		} else if (lv == L_GRAPH) {
			S->n_init++;
			S->in_attr = false;
		} else if (lv == L_ATTR)
			S->in_attr = true;
		wbuf_reset(&sub);
		if (strip_msg(S, p + body, (size_t)v, down, &sub) == -1)
			goto out;
		if (lv == L_NODE)
			S->attr++;
		put_varint(out, key);
		put_varint(out, sub.len);
		if (sub.len > 0)
			wbuf_put(out, sub.data, sub.len);
	}
	ret = 0;
	goto out;
 bad:
	werr(S->err, S->errlen, "not a valid ONNX model: protobuf parse "
	    "failed");
 out:
	wbuf_release(&sub);
	return ret;
}

/* Where protobuf-c put the tensor of a cut; NULL if nowhere. */
static Onnx__TensorProto *
cut_tensor(Onnx__ModelProto *p, const struct cut *c)
{
	Onnx__GraphProto	*g = p->graph;
	Onnx__NodeProto		*n;

	if (g == NULL)
		return NULL;
	if (!c->attr)
		return c->i < g->n_initializer ? g->initializer[c->i] : NULL;
	if (c->i >= g->n_node)
		return NULL;
	n = g->node[c->i];
	if (c->k >= n->n_attribute || n->attribute[c->k] == NULL)
		return NULL;
	return n->attribute[c->k]->t;
}

static void
borrow(struct weights *w, Onnx__TensorProto *t)
{
	w->borrowed = xreallocarray(w->borrowed, w->n_borrowed + 1,
	    sizeof(*w->borrowed));
	w->borrowed[w->n_borrowed++] = t;
}

static void
add_range(struct weights *w, const void *p, size_t len)
{
	for (size_t i = 0; i < w->n_ranges; i++)
		if (w->ranges[i].p == p)
			return;
	w->ranges = xreallocarray(w->ranges, w->n_ranges + 1,
	    sizeof(*w->ranges));
	w->ranges[w->n_ranges++] = (struct weights_range){ p, len };
}

/* A decimal u64 as external_data writes offsets and lengths. */
static int
parse_u64(const char *s, uint64_t *v)
{
	char			*end;
	unsigned long long	 x;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*v = x;
	return 0;
}

/* Points an EXTERNAL tensor at its bytes in the mapped data file. */
static int
external(struct weights *w, const struct onnx_source *src,
    Onnx__TensorProto *t, const char *label, char *err, size_t errlen)
{
	const char	*loc = NULL;
	const uint8_t	*data;
	char		 why[512];
	uint64_t	 off = 0, len = 0;
	size_t		 flen;
	bool		 have_len = false;

	if (t->has_raw_data)
		return werr(err, errlen, "%s: holds raw_data and external "
		    "data", label);
	for (size_t i = 0; i < t->n_external_data; i++) {
		const Onnx__StringStringEntryProto	*e = t->external_data[i];
		const char				*k = e->key ? e->key : "";

		if (strcmp(k, "location") == 0)
			loc = e->value;
		else if (strcmp(k, "offset") == 0) {
			if (parse_u64(e->value, &off) == -1)
				return werr(err, errlen, "%s: external data "
				    "offset is not a number", label);
		} else if (strcmp(k, "length") == 0) {
			if (parse_u64(e->value, &len) == -1)
				return werr(err, errlen, "%s: external data "
				    "length is not a number", label);
			have_len = true;
		}
		/* "checksum" and keys of later versions: not needed. */
	}
	if (loc == NULL || *loc == '\0')
		return werr(err, errlen, "%s: external data has no location",
		    label);
	if (src->ext == NULL)
		return werr(err, errlen, "%s: external data cannot be read "
		    "here", label);
	if ((data = src->ext(src->ext_arg, loc, &flen, why, sizeof(why))) ==
	    NULL)
		return werr(err, errlen, "%s: %s", label, why);
	if (off > flen || (have_len && len > flen - off))
		return werr(err, errlen, "%s: external data at offset %llu, "
		    "length %llu, is past the end of its file (%zu bytes)",
		    label, (unsigned long long)off, (unsigned long long)len,
		    flen);
	if (!have_len)
		len = flen - off;
	add_range(w, data, flen);
	t->has_raw_data = 1;
	t->raw_data.data = (uint8_t *)(uintptr_t)(data + off);
	t->raw_data.len = (size_t)len;
	/* Now an ordinary tensor to whoever reads it. */
	t->has_data_location = 0;
	t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__DEFAULT;
	for (size_t i = 0; i < t->n_external_data; i++)
		onnx__string_string_entry_proto__free_unpacked(
		    t->external_data[i], NULL);
	free(t->external_data);
	t->external_data = NULL;
	t->n_external_data = 0;
	borrow(w, t);
	return 0;
}

static int
externals(struct weights *w, const struct onnx_source *src,
    Onnx__ModelProto *p, char *err, size_t errlen)
{
	Onnx__GraphProto	*g = p->graph;
	char			 label[200];

	if (g == NULL)
		return 0;
	for (size_t i = 0; i < g->n_initializer; i++) {
		Onnx__TensorProto	*t = g->initializer[i];

		if (t->data_location !=
		    ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
			continue;
		snprintf(label, sizeof(label), "initializer '%s'",
		    t->name ? t->name : "");
		if (external(w, src, t, label, err, errlen) == -1)
			return -1;
	}
	for (size_t j = 0; j < g->n_node; j++) {
		Onnx__NodeProto	*n = g->node[j];

		for (size_t k = 0; k < n->n_attribute; k++) {
			Onnx__TensorProto	*t = n->attribute[k]->t;

			if (t == NULL || t->data_location !=
			    ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
				continue;
			snprintf(label, sizeof(label), "node '%s' attribute "
			    "'%s'", n->name ? n->name : "",
			    n->attribute[k]->name ? n->attribute[k]->name : "");
			if (external(w, src, t, label, err, errlen) == -1)
				return -1;
		}
	}
	return 0;
}

Onnx__ModelProto *
weights_unpack(struct weights *w, const struct onnx_source *src, char *err,
    size_t errlen)
{
	struct strip		 S = { .base = src->buf, .err = err,
				    .errlen = errlen };
	struct wbuf		 out;
	Onnx__ModelProto	*p = NULL;

	wbuf_init(&out);
	if (strip_msg(&S, src->buf, src->len, L_MODEL, &out) == -1)
		goto out;
	if ((p = onnx__model_proto__unpack(NULL, out.len, out.data)) == NULL) {
		werr(err, errlen, "not a valid ONNX model: protobuf parse "
		    "failed");
		goto out;
	}
	if (src->borrow)
		add_range(w, src->buf, src->len);
	for (size_t i = 0; i < S.n_cuts; i++) {
		const struct cut	*c = &S.cuts[i];
		Onnx__TensorProto	*t = cut_tensor(p, c);
		const uint8_t		*at = S.base + c->off;

		/* Stripped, so only a cut can have set it. */
		if (t == NULL || t->has_raw_data) {
			werr(err, errlen, "not a valid ONNX model: a tensor's "
			    "raw_data is misplaced");
			goto fail;
		}
		t->has_raw_data = 1;
		t->raw_data.len = c->len;
		if (src->borrow) {
			t->raw_data.data = (uint8_t *)(uintptr_t)at;
			borrow(w, t);
		} else if (c->len > 0) {
			/* protobuf-c frees it with free(). */
			t->raw_data.data = xmalloc(c->len);
			memcpy(t->raw_data.data, at, c->len);
		} else
			t->raw_data.data = NULL;
	}
	if (externals(w, src, p, err, errlen) == -1)
		goto fail;
	goto out;
 fail:
	weights_release(w, p);
	onnx__model_proto__free_unpacked(p, NULL);
	p = NULL;
 out:
	free(S.cuts);
	wbuf_release(&out);
	return p;
}

bool
weights_borrowed(const struct weights *w, const void *p)
{
	const uint8_t	*b = p;

	for (size_t i = 0; i < w->n_ranges; i++)
		if (b >= w->ranges[i].p && (size_t)(b - w->ranges[i].p) <
		    w->ranges[i].len)
			return true;
	return false;
}

void
weights_release(struct weights *w, Onnx__ModelProto *p)
{
	if (p != NULL)
		for (size_t i = 0; i < w->n_borrowed; i++) {
			w->borrowed[i]->raw_data.data = NULL;
			w->borrowed[i]->raw_data.len = 0;
		}
	free(w->borrowed);
	free(w->ranges);
	*w = (struct weights){ 0 };
}
