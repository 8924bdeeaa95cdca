/* admin/idem.h - Idempotency-Key on admin POSTs.
 *
 * A POST sent with "Idempotency-Key: <1-255 printable characters>" is
 * answered once; its status and body are stored in SQLite (table
 * idempotency_keys) before they are sent.  A later POST with the same key
 * and the same method, URI and body gets the stored answer again with
 * "Idempotent-Replayed: true" and changes nothing; with another request
 * it gets 409 idempotency_key_reused; while the first is still running,
 * 409 idempotency_key_in_use.  Answers 5xx are not stored (the client may
 * retry them).  A secret in the answer (an API key's "key") is not stored:
 * a replay shows it as null, since a secret is shown once.  An answer
 * is kept for DB_IDEM_TTL_S (24 h, db.h): after that the key is free
 * again, and the writer thread deletes the stored answer. */
#ifndef ADMIN_IDEM_H
#define ADMIN_IDEM_H
#include <stdbool.h>

struct req;

/* Called before a POST is routed.  Returns true if it answered the
 * request (a replay, a conflict or a malformed key); false to go on,
 * having arranged, when the request carries a key, for its answer to be
 * stored. */
bool	admin_idem_begin(struct req *);
#endif
