/* admin/admin.h - the admin REST API under /admin/v1/ on the admin port,
 * and the operations it shares with maasd's start-up (the demo set-up and
 * reloading deployments).  Every change is written with an audit row by
 * db/; its actor is admin_actor()'s. */
#ifndef ADMIN_ADMIN_H
#define ADMIN_ADMIN_H
#include <stdint.h>

#include <jansson.h>

struct req;
struct server;

/* Result of an operation: status is the HTTP status it maps to (201 on
 * success); row is the created object (new reference) or NULL; msg says
 * what went wrong. */
typedef void	admin_done_fn(void *arg, int status, json_t *row,
		    const char *msg);

void	admin_handle(struct req *);

/* Registers a model file: hashes it (worker thread), loads it in a probe
 * runtime to read its metadata, stores it. */
void	admin_model_register(struct server *, const char *name,
	    const char *version, const char *path, const char *actor,
	    admin_done_fn *, void *arg);
/* Creates a deployment of a registered model version and starts it. */
void	admin_deploy(struct server *, const char *name, const char *model,
	    const char *version, int replicas, int threads, const char *actor,
	    admin_done_fn *, void *arg);
/* Helpers shared by the admin modules.  Paging: ?limit=1-1000 (default
 * 100) and ?after=<cursor>; replies 400 and returns -1 if malformed. */
int	admin_page_params(struct req *, int *limit, const char **after);
/* Replies 200 with list (a page from the db, now owned) marked
 * "object":"list", or 500 if it is NULL (the read failed). */
void	admin_reply_list(struct req *, json_t *list);
/* Unix seconds, "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SSZ" (UTC) into *out
 * (seconds); -1 if malformed. */
int	admin_parse_time(const char *, int64_t *out);
/* Calls fn for each route of the admin API (method "GET", ...; pattern
 * relative to /admin/v1/ with "*" for a path parameter), in table order:
 * the OpenAPI document is built from this. */
void	admin_routes_each(void (*fn)(void *arg, const char *method,
	    const char *pattern), void *arg);

/* Who an authenticated admin API call acts as, for its audit rows:
 * "admin" with the admin token (Authorization: Bearer), "console" with
 * a console session's cookie.  Static string. */
const char	*admin_actor(struct req *);

/* Starts every deployment stored in the database (maasd start-up). */
int	admin_load_deployments(struct server *);
#endif
