/* common/wire.c - see wire.h. */
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"
#include "common/xmalloc.h"

void
le16_put(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void
le32_put(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void
le64_put(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint16_t
le16_get(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

uint32_t
le32_get(const uint8_t *p)
{
	uint32_t	v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

uint64_t
le64_get(const uint8_t *p)
{
	uint64_t	v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void
wbuf_init(struct wbuf *w)
{
	memset(w, 0, sizeof(*w));
}

void
wbuf_release(struct wbuf *w)
{
	if (w == NULL)
		return;
	free(w->data);
	memset(w, 0, sizeof(*w));
}

void
wbuf_reset(struct wbuf *w)
{
	w->len = 0;
}

void *
wbuf_reserve(struct wbuf *w, size_t n)
{
	void	*p;

	if (n > w->cap - w->len) {
		size_t	ncap = w->cap ? w->cap : 256;

		while (ncap - w->len < n) {
			if (ncap > SIZE_MAX / 2)
				ncap = w->len + n;
			else
				ncap *= 2;
		}
		w->data = xrealloc(w->data, ncap);
		w->cap = ncap;
	}
	p = w->data + w->len;
	w->len += n;
	return p;
}

void
wbuf_put(struct wbuf *w, const void *src, size_t n)
{
	if (n > 0)
		memcpy(wbuf_reserve(w, n), src, n);
}

void
wbuf_u8(struct wbuf *w, uint8_t v)
{
	*(uint8_t *)wbuf_reserve(w, 1) = v;
}

void
wbuf_u16(struct wbuf *w, uint16_t v)
{
	le16_put(wbuf_reserve(w, 2), v);
}

void
wbuf_u32(struct wbuf *w, uint32_t v)
{
	le32_put(wbuf_reserve(w, 4), v);
}

void
wbuf_u64(struct wbuf *w, uint64_t v)
{
	le64_put(wbuf_reserve(w, 8), v);
}

void
wbuf_i64(struct wbuf *w, int64_t v)
{
	wbuf_u64(w, (uint64_t)v);
}

void
wbuf_str16(struct wbuf *w, const char *s)
{
	size_t	n = strlen(s);

	if (n > UINT16_MAX)
		n = UINT16_MAX;
	wbuf_u16(w, (uint16_t)n);
	wbuf_put(w, s, n);
}

void
rbuf_init(struct rbuf *r, const void *data, size_t len)
{
	r->data = data;
	r->len = len;
	r->off = 0;
	r->err = false;
}

size_t
rbuf_left(const struct rbuf *r)
{
	return r->err ? 0 : r->len - r->off;
}

int
rbuf_bytes(struct rbuf *r, const uint8_t **p, size_t n)
{
	if (r->err || n > r->len - r->off) {
		r->err = true;
		return -1;
	}
	*p = r->data + r->off;
	r->off += n;
	return 0;
}

int
rbuf_u8(struct rbuf *r, uint8_t *v)
{
	const uint8_t	*p;

	if (rbuf_bytes(r, &p, 1) == -1)
		return -1;
	*v = p[0];
	return 0;
}

int
rbuf_u16(struct rbuf *r, uint16_t *v)
{
	const uint8_t	*p;

	if (rbuf_bytes(r, &p, 2) == -1)
		return -1;
	*v = le16_get(p);
	return 0;
}

int
rbuf_u32(struct rbuf *r, uint32_t *v)
{
	const uint8_t	*p;

	if (rbuf_bytes(r, &p, 4) == -1)
		return -1;
	*v = le32_get(p);
	return 0;
}

int
rbuf_u64(struct rbuf *r, uint64_t *v)
{
	const uint8_t	*p;

	if (rbuf_bytes(r, &p, 8) == -1)
		return -1;
	*v = le64_get(p);
	return 0;
}

int
rbuf_i64(struct rbuf *r, int64_t *v)
{
	uint64_t	u;

	if (rbuf_u64(r, &u) == -1)
		return -1;
	*v = (int64_t)u;
	return 0;
}

int
rbuf_str16(struct rbuf *r, char *out, size_t outsz)
{
	const uint8_t	*p;
	uint16_t	 n;

	if (rbuf_u16(r, &n) == -1)
		return -1;
	if (outsz == 0 || (size_t)n > outsz - 1) {
		r->err = true;
		return -1;
	}
	if (rbuf_bytes(r, &p, n) == -1)
		return -1;
	if (memchr(p, '\0', n) != NULL) {
		r->err = true;
		return -1;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}
