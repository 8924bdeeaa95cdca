/* runtime/llm/gguf.c - see gguf.h.
 *
 * Layout of a GGUF file (v2 and v3, little-endian):
 *   "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x   { string key | u32 type | value }
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 type |
 *                 u64 offset }
 *   padding to general.alignment (default 32) | tensor data
 * where a string is u64 length + bytes, and an array value is u32 element
 * type + u64 count + elements.  Tensor offsets are relative to the start
 * of the data section and aligned.
 *
 * The parser walks the file once with a cursor that refuses every read
 * past the end, so no count is trusted before the bytes it claims exist:
 * an allocation of n entries happens only after n * (smallest encoding of
 * an entry) was found to fit in the bytes left.  Keys and tensor names are
 * kept in arrays sorted by name, looked up by binary search; duplicates
 * show up as neighbours after the sort and are refused. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "runtime/llm/gguf.h"

#define GGUF_MAGIC		0x46554747u	/* "GGUF" little-endian */
#define GGUF_MAX_TENSORS	(1u << 16)
#define GGUF_MAX_KV		(1u << 16)
#define GGUF_KEY_MAX		65535		/* spec: keys fit a u16 */
#define GGUF_ALIGN_DEFAULT	32
#define GGUF_ALIGN_MAX		(1u << 16)
#define GGUF_NE_MAX		(1ULL << 50)	/* elements in one tensor */

/* One metadata pair.  Scalars are decoded at parse time. */
struct gguf_kv {
	struct gguf_str	 key;
	enum gguf_type	 type;
	union {
		uint64_t	 u;	/* unsigned ints, bool */
		int64_t		 i;	/* signed ints */
		double		 f;	/* F32, F64 */
		struct gguf_str	 s;
		struct gguf_arr	 a;
	} v;
};

struct gguf {
	const uint8_t		*base;		/* the file's bytes */
	size_t			 len;
	bool			 mapped;	/* we munmap base on close */
	uint32_t		 version;
	uint32_t		 alignment;
	struct gguf_kv		*kv;		/* (n_kv), sorted by key */
	size_t			 n_kv;
	struct gguf_tensor	*tensors;	/* (n_tensors), file order */
	size_t			 n_tensors;
	uint32_t		*by_name;	/* tensor indices sorted by name */
};

/* A read cursor over the file. */
struct cur {
	const uint8_t	*p;
	size_t		 len;
	size_t		 off;
	char		*err;
	size_t		 errlen;
	bool		 failed;
};

static void	fail(struct cur *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static bool	need(struct cur *, uint64_t, const char *);
static bool	rd_u32(struct cur *, uint32_t *, const char *);
static bool	rd_u64(struct cur *, uint64_t *, const char *);
static bool	rd_str(struct cur *, struct gguf_str *, const char *);
static size_t	type_size(enum gguf_type);
static bool	rd_value(struct cur *, struct gguf_kv *);
static bool	rd_array(struct cur *, struct gguf_kv *);
static int	kv_cmp(const void *, const void *);
static int	strn_cmp(const struct gguf_str *, const struct gguf_str *);
static const struct gguf_kv *find_kv(const struct gguf *, const char *);
static uint64_t	rd_le(const void *, size_t);
static bool	rd_tensor(struct cur *, struct gguf_tensor *, uint64_t *);
static int	tensor_cmp_r(const void *, const void *, void *);
static void	print_name(char *, size_t, const struct gguf_str *);

static void
fail(struct cur *c, const char *fmt, ...)
{
	va_list	ap;

	if (c->failed)
		return;
	c->failed = true;
	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
}

static bool
need(struct cur *c, uint64_t n, const char *what)
{
	if (c->failed)
		return false;
	if (n > c->len - c->off) {
		fail(c, "%s at byte %zu runs past the end of the file", what,
		    c->off);
		return false;
	}
	return true;
}

static uint64_t
rd_le(const void *p, size_t n)
{
	const uint8_t	*b = p;
	uint64_t	 v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static bool
rd_u32(struct cur *c, uint32_t *v, const char *what)
{
	if (!need(c, 4, what))
		return false;
	*v = (uint32_t)rd_le(c->p + c->off, 4);
	c->off += 4;
	return true;
}

static bool
rd_u64(struct cur *c, uint64_t *v, const char *what)
{
	if (!need(c, 8, what))
		return false;
	*v = rd_le(c->p + c->off, 8);
	c->off += 8;
	return true;
}

static bool
rd_str(struct cur *c, struct gguf_str *s, const char *what)
{
	uint64_t	n;

	if (!rd_u64(c, &n, what))
		return false;
	if (!need(c, n, what))
		return false;
	s->p = (const char *)c->p + c->off;
	s->n = n;
	c->off += n;
	return true;
}

/* Bytes of one scalar of type t; 0 for strings, arrays and unknowns. */
static size_t
type_size(enum gguf_type t)
{
	switch (t) {
	case GGUF_T_U8: case GGUF_T_I8: case GGUF_T_BOOL:
		return 1;
	case GGUF_T_U16: case GGUF_T_I16:
		return 2;
	case GGUF_T_U32: case GGUF_T_I32: case GGUF_T_F32:
		return 4;
	case GGUF_T_U64: case GGUF_T_I64: case GGUF_T_F64:
		return 8;
	default:
		return 0;
	}
}

static bool
rd_value(struct cur *c, struct gguf_kv *kv)
{
	size_t		sz;
	uint64_t	raw;
	float		f;

	if (kv->type == GGUF_T_STRING)
		return rd_str(c, &kv->v.s, "string value");
	if (kv->type == GGUF_T_ARRAY)
		return rd_array(c, kv);
	if ((sz = type_size(kv->type)) == 0) {
		fail(c, "key '%.*s': unknown value type %u",
		    (int)(kv->key.n > 200 ? 200 : kv->key.n), kv->key.p,
		    (unsigned)kv->type);
		return false;
	}
	if (!need(c, sz, "value"))
		return false;
	raw = rd_le(c->p + c->off, sz);
	c->off += sz;
	switch (kv->type) {
	case GGUF_T_I8:
		kv->v.i = (int8_t)raw;
		break;
	case GGUF_T_I16:
		kv->v.i = (int16_t)raw;
		break;
	case GGUF_T_I32:
		kv->v.i = (int32_t)raw;
		break;
	case GGUF_T_I64:
		kv->v.i = (int64_t)raw;
		break;
	case GGUF_T_F32:
		memcpy(&f, &(uint32_t){ (uint32_t)raw }, 4);
		kv->v.f = f;
		break;
	case GGUF_T_F64:
		memcpy(&kv->v.f, &raw, 8);
		break;
	case GGUF_T_BOOL:
		if (raw > 1) {
			fail(c, "key '%.*s': bool value %u is neither 0 nor 1",
			    (int)(kv->key.n > 200 ? 200 : kv->key.n),
			    kv->key.p, (unsigned)raw);
			return false;
		}
		kv->v.u = raw;
		break;
	default:
		kv->v.u = raw;
		break;
	}
	return true;
}

/* Arrays of scalars or of strings; arrays of arrays are refused (nothing
 * maas reads has them). */
static bool
rd_array(struct cur *c, struct gguf_kv *kv)
{
	struct gguf_arr	*a = &kv->v.a;
	uint32_t	 et;
	uint64_t	 n, len;
	size_t		 sz;

	if (!rd_u32(c, &et, "array type") || !rd_u64(c, &n, "array length"))
		return false;
	a->type = (enum gguf_type)et;
	a->n = n;
	a->str_off = NULL;
	if (et == GGUF_T_STRING) {
		/* Each string takes at least its 8-byte length. */
		if (n > (c->len - c->off) / 8) {
			fail(c, "key '%.*s': %llu strings cannot fit in the "
			    "%zu bytes left", (int)(kv->key.n > 200 ? 200 :
			    kv->key.n), kv->key.p, (unsigned long long)n,
			    c->len - c->off);
			return false;
		}
		uint64_t *off = xcalloc(n ? n : 1, sizeof(*off));
		a->str_off = off;
		a->data = c->p;
		for (uint64_t i = 0; i < n; i++) {
			off[i] = c->off;
			if (!rd_u64(c, &len, "array string") ||
			    !need(c, len, "array string"))
				return false;
			c->off += len;
		}
		return true;
	}
	if ((sz = type_size((enum gguf_type)et)) == 0) {
		fail(c, "key '%.*s': arrays of type %u are not supported",
		    (int)(kv->key.n > 200 ? 200 : kv->key.n), kv->key.p, et);
		return false;
	}
	if (n > (c->len - c->off) / sz) {
		fail(c, "key '%.*s': %llu elements run past the end of the "
		    "file", (int)(kv->key.n > 200 ? 200 : kv->key.n), kv->key.p,
		    (unsigned long long)n);
		return false;
	}
	a->data = c->p + c->off;
	c->off += n * sz;
	return true;
}

static int
strn_cmp(const struct gguf_str *a, const struct gguf_str *b)
{
	uint64_t	n = a->n < b->n ? a->n : b->n;
	int		r = n ? memcmp(a->p, b->p, n) : 0;

	if (r != 0)
		return r;
	return a->n < b->n ? -1 : a->n > b->n;
}

static int
kv_cmp(const void *a, const void *b)
{
	return strn_cmp(&((const struct gguf_kv *)a)->key,
	    &((const struct gguf_kv *)b)->key);
}

static int
tensor_cmp_r(const void *a, const void *b, void *arg)
{
	const struct gguf_tensor	*t = arg;

	return strcmp(t[*(const uint32_t *)a].name,
	    t[*(const uint32_t *)b].name);
}

/* A name for messages: at most 64 bytes, non-printables as '?'. */
static void
print_name(char *buf, size_t cap, const struct gguf_str *s)
{
	size_t	n = s->n < 64 ? s->n : 64;

	if (n >= cap)
		n = cap - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s->p[i];
		buf[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	buf[n] = '\0';
}

static bool
rd_tensor(struct cur *c, struct gguf_tensor *t, uint64_t *offset)
{
	struct gguf_str	name;
	uint32_t	nd, type;
	uint64_t	ne, total = 1;
	char		pn[80];

	if (!rd_str(c, &name, "tensor name"))
		return false;
	print_name(pn, sizeof(pn), &name);
	if (name.n == 0 || name.n > GGUF_NAME_MAX ||
	    memchr(name.p, '\0', name.n) != NULL) {
		fail(c, "tensor '%s': name of %llu bytes is empty, longer "
		    "than %d or holds a NUL", pn, (unsigned long long)name.n,
		    GGUF_NAME_MAX);
		return false;
	}
	memcpy(t->name, name.p, name.n);
	t->name[name.n] = '\0';
	if (!rd_u32(c, &nd, "tensor dims"))
		return false;
	if (nd < 1 || nd > GGUF_MAX_DIMS) {
		fail(c, "tensor '%s': %u dimensions (1 to %d allowed)", pn,
		    nd, GGUF_MAX_DIMS);
		return false;
	}
	t->ndim = (int)nd;
	for (int i = 0; i < GGUF_MAX_DIMS; i++)
		t->ne[i] = 1;
	for (uint32_t i = 0; i < nd; i++) {
		if (!rd_u64(c, &ne, "tensor shape"))
			return false;
		if (ne == 0 || ne > GGUF_NE_MAX || total > GGUF_NE_MAX / ne) {
			fail(c, "tensor '%s': dimension %u of %llu is zero or "
			    "makes the tensor too large", pn, i,
			    (unsigned long long)ne);
			return false;
		}
		t->ne[i] = ne;
		total *= ne;
	}
	if (!rd_u32(c, &type, "tensor type") ||
	    !rd_u64(c, offset, "tensor offset"))
		return false;
	t->type = (enum ggml_type)type;
	if (ggml_type_name(t->type) == NULL) {
		fail(c, "tensor '%s': unknown tensor type %u", pn, type);
		return false;
	}
	if ((t->nbytes = ggml_nbytes(t->type, total)) == 0 ||
	    ggml_nbytes(t->type, t->ne[0]) == 0) {
		fail(c, "tensor '%s': a row of %llu elements is not a whole "
		    "number of %s blocks", pn, (unsigned long long)t->ne[0],
		    ggml_type_name(t->type));
		return false;
	}
	return true;
}

int
gguf_parse(const uint8_t *data, size_t len, struct gguf **out, char *err,
    size_t errlen)
{
	struct cur	 c = { data, len, 0, err, errlen, false };
	struct gguf	*g;
	uint32_t	 magic, ver;
	uint64_t	 nt, nkv, *offs = NULL, data_off, data_len;
	size_t		 i;
	char		 pn[80];

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if (!rd_u32(&c, &magic, "magic"))
		return -1;
	if (magic != GGUF_MAGIC) {
		fail(&c, "not a GGUF file (bad magic)");
		return -1;
	}
	if (!rd_u32(&c, &ver, "version"))
		return -1;
	if (ver != 2 && ver != 3) {
		fail(&c, "GGUF version %u is not supported (2 and 3 are%s)",
		    ver, (ver & 0xffff) == 0 ? "; big-endian files are not" :
		    "");
		return -1;
	}
	if (!rd_u64(&c, &nt, "tensor count") || !rd_u64(&c, &nkv, "kv count"))
		return -1;
	if (nt > GGUF_MAX_TENSORS || nkv > GGUF_MAX_KV) {
		fail(&c, "%llu tensors and %llu keys exceed the limits "
		    "(%u, %u)", (unsigned long long)nt,
		    (unsigned long long)nkv, GGUF_MAX_TENSORS, GGUF_MAX_KV);
		return -1;
	}
	/* Smallest encodings: a key is 8 + 4 + 1 bytes, a tensor info
	 * 8 + 1 + 4 + 8 + 4 + 8. */
	if (nkv * 13 + nt * 33 > len - c.off) {
		fail(&c, "%llu tensors and %llu keys cannot fit in a file of "
		    "%zu bytes", (unsigned long long)nt,
		    (unsigned long long)nkv, len);
		return -1;
	}
	g = xcalloc(1, sizeof(*g));
	g->base = data;
	g->len = len;
	g->version = ver;
	g->alignment = GGUF_ALIGN_DEFAULT;
	g->kv = xcalloc(nkv ? nkv : 1, sizeof(*g->kv));
	g->tensors = xcalloc(nt ? nt : 1, sizeof(*g->tensors));
	g->by_name = xcalloc(nt ? nt : 1, sizeof(*g->by_name));
	offs = xcalloc(nt ? nt : 1, sizeof(*offs));

	for (i = 0; i < nkv; i++) {
		struct gguf_kv	*kv = &g->kv[i];
		uint32_t	 type;

		if (!rd_str(&c, &kv->key, "key"))
			goto bad;
		g->n_kv = i + 1;	/* so that close frees str_off */
		if (kv->key.n == 0 || kv->key.n > GGUF_KEY_MAX) {
			fail(&c, "key %zu has length %llu", i,
			    (unsigned long long)kv->key.n);
			goto bad;
		}
		if (!rd_u32(&c, &type, "value type"))
			goto bad;
		kv->type = (enum gguf_type)type;
		if (!rd_value(&c, kv))
			goto bad;
	}
	qsort(g->kv, g->n_kv, sizeof(*g->kv), kv_cmp);
	for (i = 1; i < g->n_kv; i++) {
		if (strn_cmp(&g->kv[i - 1].key, &g->kv[i].key) == 0) {
			print_name(pn, sizeof(pn), &g->kv[i].key);
			fail(&c, "duplicate key '%s'", pn);
			goto bad;
		}
	}
	{
		const struct gguf_kv *a = find_kv(g, "general.alignment");

		if (a != NULL) {
			if (a->type != GGUF_T_U32 || a->v.u < 8 ||
			    a->v.u > GGUF_ALIGN_MAX ||
			    (a->v.u & (a->v.u - 1)) != 0) {
				fail(&c, "general.alignment must be a u32 "
				    "power of two from 8 to %u",
				    GGUF_ALIGN_MAX);
				goto bad;
			}
			g->alignment = (uint32_t)a->v.u;
		}
	}

	for (i = 0; i < nt; i++) {
		if (!rd_tensor(&c, &g->tensors[i], &offs[i]))
			goto bad;
		g->by_name[i] = (uint32_t)i;
		g->n_tensors = i + 1;
	}
	qsort_r(g->by_name, g->n_tensors, sizeof(*g->by_name), tensor_cmp_r,
	    g->tensors);
	for (i = 1; i < g->n_tensors; i++) {
		if (strcmp(g->tensors[g->by_name[i - 1]].name,
		    g->tensors[g->by_name[i]].name) == 0) {
			fail(&c, "duplicate tensor '%s'",
			    g->tensors[g->by_name[i]].name);
			goto bad;
		}
	}

	/* The data section starts at the next multiple of the alignment. */
	data_off = (c.off + g->alignment - 1) / g->alignment * g->alignment;
	if (nt > 0 && data_off > len) {
		fail(&c, "the data section starts past the end of the file");
		goto bad;
	}
	data_len = data_off <= len ? len - data_off : 0;
	if (nt > 0 && ((uintptr_t)(data + data_off) & 7) != 0) {
		fail(&c, "the data section is not 8-byte aligned in memory");
		goto bad;
	}
	for (i = 0; i < g->n_tensors; i++) {
		struct gguf_tensor	*t = &g->tensors[i];

		if (offs[i] % g->alignment != 0) {
			fail(&c, "tensor '%s': offset %llu is not a multiple "
			    "of the alignment %u", t->name,
			    (unsigned long long)offs[i], g->alignment);
			goto bad;
		}
		if (offs[i] > data_len || t->nbytes > data_len - offs[i]) {
			fail(&c, "tensor '%s': data runs past the end of the "
			    "file", t->name);
			goto bad;
		}
		t->data = data + data_off + offs[i];
	}
	free(offs);
	*out = g;
	return 0;
 bad:
	free(offs);
	gguf_close(g);
	return -1;
}

int
gguf_open(const char *path, uint64_t max_bytes, struct gguf **out,
    char *err, size_t errlen)
{
	struct stat	 st;
	void		*p;
	int		 fd;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "cannot open '%s': %s", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "'%s' is not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_size <= 0 || (uint64_t)st.st_size > max_bytes ||
	    (uint64_t)st.st_size > SIZE_MAX) {
		snprintf(err, errlen, "'%s': size %lld is empty or above the "
		    "limit of %llu bytes", path, (long long)st.st_size,
		    (unsigned long long)max_bytes);
		close(fd);
		return -1;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "cannot map '%s': %s", path,
		    strerror(errno));
		return -1;
	}
	if (gguf_parse(p, (size_t)st.st_size, out, err, errlen) == -1) {
		munmap(p, (size_t)st.st_size);
		return -1;
	}
	(*out)->mapped = true;
	return 0;
}

void
gguf_close(struct gguf *g)
{
	if (g == NULL)
		return;
	for (size_t i = 0; i < g->n_kv; i++) {
		if (g->kv[i].type == GGUF_T_ARRAY)
			free((void *)(uintptr_t)g->kv[i].v.a.str_off);
	}
	free(g->kv);
	free(g->tensors);
	free(g->by_name);
	if (g->mapped)
		munmap((void *)(uintptr_t)g->base, g->len);
	free(g);
}

uint32_t
gguf_version(const struct gguf *g)
{
	return g->version;
}

static const struct gguf_kv *
find_kv(const struct gguf *g, const char *key)
{
	struct gguf_kv	k;

	k.key.p = key;
	k.key.n = strlen(key);
	return bsearch(&k, g->kv, g->n_kv, sizeof(*g->kv), kv_cmp);
}

bool
gguf_get_u32(const struct gguf *g, const char *key, uint32_t *v)
{
	const struct gguf_kv	*kv = find_kv(g, key);

	if (kv == NULL)
		return false;
	switch (kv->type) {
	case GGUF_T_U8: case GGUF_T_U16: case GGUF_T_U32: case GGUF_T_U64:
		if (kv->v.u > UINT32_MAX)
			return false;
		*v = (uint32_t)kv->v.u;
		return true;
	case GGUF_T_I8: case GGUF_T_I16: case GGUF_T_I32: case GGUF_T_I64:
		if (kv->v.i < 0 || kv->v.i > (int64_t)UINT32_MAX)
			return false;
		*v = (uint32_t)kv->v.i;
		return true;
	default:
		return false;
	}
}

bool
gguf_get_f32(const struct gguf *g, const char *key, float *v)
{
	const struct gguf_kv	*kv = find_kv(g, key);

	if (kv == NULL || (kv->type != GGUF_T_F32 && kv->type != GGUF_T_F64))
		return false;
	*v = (float)kv->v.f;
	return true;
}

bool
gguf_get_bool(const struct gguf *g, const char *key, bool *v)
{
	const struct gguf_kv	*kv = find_kv(g, key);

	if (kv == NULL || kv->type != GGUF_T_BOOL)
		return false;
	*v = kv->v.u != 0;
	return true;
}

bool
gguf_get_str(const struct gguf *g, const char *key, struct gguf_str *v)
{
	const struct gguf_kv	*kv = find_kv(g, key);

	if (kv == NULL || kv->type != GGUF_T_STRING)
		return false;
	*v = kv->v.s;
	return true;
}

bool
gguf_get_arr(const struct gguf *g, const char *key, struct gguf_arr *v)
{
	const struct gguf_kv	*kv = find_kv(g, key);

	if (kv == NULL || kv->type != GGUF_T_ARRAY)
		return false;
	*v = kv->v.a;
	return true;
}

bool
gguf_arr_str(const struct gguf_arr *a, uint64_t i, struct gguf_str *s)
{
	const uint8_t	*p;

	if (a->type != GGUF_T_STRING || a->str_off == NULL || i >= a->n)
		return false;
	/* The parser checked that the length and bytes are in the file. */
	p = (const uint8_t *)a->data + a->str_off[i];
	s->n = rd_le(p, 8);
	s->p = (const char *)p + 8;
	return true;
}

bool
gguf_str_eq(const struct gguf_str *s, const char *z)
{
	size_t	n = strlen(z);

	return s->n == n && (n == 0 || memcmp(s->p, z, n) == 0);
}

size_t
gguf_n_tensors(const struct gguf *g)
{
	return g->n_tensors;
}

const struct gguf_tensor *
gguf_tensor_at(const struct gguf *g, size_t i)
{
	return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const struct gguf_tensor *
gguf_tensor(const struct gguf *g, const char *name)
{
	size_t	lo = 0, hi = g->n_tensors;

	while (lo < hi) {
		size_t	mid = lo + (hi - lo) / 2;
		int	r = strcmp(name, g->tensors[g->by_name[mid]].name);

		if (r == 0)
			return &g->tensors[g->by_name[mid]];
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

uint64_t
ggml_nbytes(enum ggml_type t, uint64_t n)
{
	uint64_t	blk, bsz;

	switch (t) {
	case GGML_T_F32:
		blk = 1, bsz = 4;
		break;
	case GGML_T_F16:
	case GGML_T_BF16:
		blk = 1, bsz = 2;
		break;
	case GGML_T_Q4_0:
		blk = 32, bsz = 18;
		break;
	case GGML_T_Q4_1:
		blk = 32, bsz = 20;
		break;
	case GGML_T_Q8_0:
		blk = 32, bsz = 34;
		break;
	case GGML_T_Q4_K:
		blk = 256, bsz = 144;
		break;
	case GGML_T_Q5_K:
		blk = 256, bsz = 176;
		break;
	case GGML_T_Q6_K:
		blk = 256, bsz = 210;
		break;
	default:
		return 0;
	}
	/* n <= 2^50 (checked by the parser), so this cannot overflow. */
	if (n == 0 || n % blk != 0 || n / blk > UINT64_MAX / bsz)
		return 0;
	return n / blk * bsz;
}

const char *
ggml_type_name(enum ggml_type t)
{
	switch (t) {
	case GGML_T_F32:	return "F32";
	case GGML_T_F16:	return "F16";
	case GGML_T_BF16:	return "BF16";
	case GGML_T_Q4_0:	return "Q4_0";
	case GGML_T_Q4_1:	return "Q4_1";
	case GGML_T_Q8_0:	return "Q8_0";
	case GGML_T_Q4_K:	return "Q4_K";
	case GGML_T_Q5_K:	return "Q5_K";
	case GGML_T_Q6_K:	return "Q6_K";
	}
	return NULL;
}
