/* runtime/onnx/weights.h - tensor bytes that stay in the model's files.
 *
 * protobuf-c copies every bytes field it unpacks, so N replicas of a model
 * would each hold a private copy of its weights.  Instead the raw_data of
 * the initializers and of the Constant nodes' tensors is cut out of the
 * message before protobuf-c sees it (the rest, names and graph, is small),
 * and after unpacking each of those TensorProtos has its raw_data pointed
 * back into the caller's buffer: the read-only mapping of the model file,
 * whose pages the kernel shares between every process that maps the file.
 * Tensors in external data files (data_location EXTERNAL) are pointed at
 * the caller's mapping of that file the same way, after their offset and
 * length are checked against it.
 *
 * Private to runtime/onnx. */
#ifndef RUNTIME_ONNX_WEIGHTS_H
#define RUNTIME_ONNX_WEIGHTS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"

#include "runtime/onnx/onnx.h"

/* A byte range tensors may point into. */
struct weights_range {
	const uint8_t	*p;
	size_t		 len;
};

struct weights {
	/* TensorProtos whose raw_data points outside the proto: reset before
	 * protobuf-c frees it. */
	Onnx__TensorProto	**borrowed;
	size_t			  n_borrowed;
	struct weights_range	 *ranges;	/* the buffer, external files */
	size_t			  n_ranges;
};

/* Strips src's buffer (whose framing and nesting the caller has checked),
 * unpacks it and points tensors back into that buffer (borrowed when
 * src->borrow, else copied) and into external files (always borrowed).
 * Returns the proto, owned by the caller (weights_release() first, then
 * onnx__model_proto__free_unpacked()), or NULL with a message in err. */
Onnx__ModelProto *weights_unpack(struct weights *, const struct onnx_source *,
		    char *err, size_t errlen);
/* Whether p points into a range the model borrows (not its own memory). */
bool		 weights_borrowed(const struct weights *, const void *p);
/* Puts back what protobuf-c may free; proto may be NULL. */
void		 weights_release(struct weights *, Onnx__ModelProto *);
/* Reads the protobuf varint at p[*off] (len bytes in all) into *v and
 * moves *off past it; -1 if it runs past len or over 10 bytes.  The
 * loader's framing check uses it too. */
int		 weights_varint(const uint8_t *p, size_t len, size_t *off,
		    uint64_t *v);
#endif
