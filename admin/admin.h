/* admin/admin.h - the admin REST API under /admin/v1/ on the admin port,
 * and the operations it shares with maasd's start-up (the demo set-up and
 * reloading deployments).  Every change is written with an audit row by
 * db/; the actor is "admin" for the admin token. */
#ifndef ADMIN_ADMIN_H
#define ADMIN_ADMIN_H
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
/* Starts every deployment stored in the database (maasd start-up). */
int	admin_load_deployments(struct server *);
#endif
