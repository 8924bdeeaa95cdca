/* common/wire.h - little-endian byte buffers for IPC payloads.
 * A wbuf grows (xmalloc); an rbuf reads a borrowed byte range and never
 * reads past its end: every getter returns -1 once the input is exhausted
 * or malformed, and the rbuf stays failed ("sticky" error), so a decoder can
 * read a whole record and check once. */
#ifndef COMMON_WIRE_H
#define COMMON_WIRE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wbuf {
	uint8_t	*data;		/* owned; free with wbuf_release() */
	size_t	 len;		/* bytes written */
	size_t	 cap;		/* bytes allocated */
};

struct rbuf {
	const uint8_t	*data;	/* borrowed */
	size_t		 len;	/* total bytes */
	size_t		 off;	/* read position */
	bool		 err;	/* set by the first failed read */
};

void	 wbuf_init(struct wbuf *);
void	 wbuf_release(struct wbuf *);
void	 wbuf_reset(struct wbuf *);		/* len = 0, keeps memory */
void	*wbuf_reserve(struct wbuf *, size_t);	/* returns space for n bytes, len += n */
void	 wbuf_put(struct wbuf *, const void *, size_t);
void	 wbuf_u8(struct wbuf *, uint8_t);
void	 wbuf_u16(struct wbuf *, uint16_t);
void	 wbuf_u32(struct wbuf *, uint32_t);
void	 wbuf_u64(struct wbuf *, uint64_t);
void	 wbuf_i64(struct wbuf *, int64_t);
void	 wbuf_str16(struct wbuf *, const char *);	/* u16 length + bytes */

void	 rbuf_init(struct rbuf *, const void *, size_t);
int	 rbuf_u8(struct rbuf *, uint8_t *);
int	 rbuf_u16(struct rbuf *, uint16_t *);
int	 rbuf_u32(struct rbuf *, uint32_t *);
int	 rbuf_u64(struct rbuf *, uint64_t *);
int	 rbuf_i64(struct rbuf *, int64_t *);
/* Points *p at the next n bytes (borrowed from the input). */
int	 rbuf_bytes(struct rbuf *, const uint8_t **, size_t);
/* u16 length + bytes into out (NUL-terminated); -1 if it does not fit in
 * outsz-1 bytes or contains a NUL. */
int	 rbuf_str16(struct rbuf *, char *, size_t);
size_t	 rbuf_left(const struct rbuf *);

/* Little-endian helpers for fixed headers. */
void	 le16_put(uint8_t *, uint16_t);
void	 le32_put(uint8_t *, uint32_t);
void	 le64_put(uint8_t *, uint64_t);
uint16_t le16_get(const uint8_t *);
uint32_t le32_get(const uint8_t *);
uint64_t le64_get(const uint8_t *);
#endif
