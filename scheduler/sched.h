/* scheduler/sched.h - deployments, replica pools and job placement.
 *
 * The scheduler moves jobs: opaque IPC INFER payloads built by the gateway,
 * queued per deployment and sent to one of its replicas, each a
 * maas-runtime process spawned and supervised here (scheduler/supervisor.c).
 * It knows nothing of HTTP or JSON.  Everything here runs on maasd's event
 * loop thread.
 *
 * A replica runs one request at a time; the queue lives in maasd so that
 * placement (and later, fairness between tenants) is decided here and a
 * replica that dies loses only the request it was computing. */
#ifndef SCHEDULER_SCHED_H
#define SCHEDULER_SCHED_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/ipc.h"

struct event_base;
struct sched;
struct sched_job;

struct sched_config {
	const char	*runtime_path;	/* bin/maas-runtime */
	uid_t		 uid;		/* runtimes drop to this when root */
	gid_t		 gid;
	int		 mem_limit_mb;	/* per runtime, 0: none */
	size_t		 max_queue;	/* per deployment */
};

struct sched_deploy_spec {
	const char	*name;		/* public name */
	const char	*model;		/* registered model name */
	const char	*version;	/* registered model version */
	const char	*path;		/* model file */
	int		 replicas;
	int		 threads;	/* OpenBLAS threads per replica */
};

enum sched_status {
	SCHED_OK = 0,
	SCHED_BAD_INPUT,	/* the runtime rejected the input */
	SCHED_TOO_LARGE,	/* beyond the runtime's limits */
	SCHED_INTERNAL,		/* the runtime failed computing it */
	SCHED_UNAVAILABLE,	/* replica died with it, or none can start */
	SCHED_OVERLOADED,	/* queue full */
	SCHED_SHUTDOWN,		/* maasd is stopping */
};

struct sched_result {
	enum sched_status	 status;
	const uint8_t		*payload;	/* INFER_OK body, borrowed */
	size_t			 len;
	const char		*message;	/* error text, borrowed */
	const char		*version;	/* model version that served it */
	int64_t			 queue_us;
	int64_t			 compute_us;
};

/* Called once per job on the loop thread; the result is borrowed for the
 * duration of the call. */
typedef void	sched_done_fn(void *arg, const struct sched_result *);
/* meta is NULL on failure; error is then a message naming the problem. */
typedef void	sched_probe_fn(void *arg, const struct ipc_meta *meta,
		    const char *error);

struct sched	*sched_new(struct event_base *, const struct sched_config *);
/* Kills every runtime (EOF first, SIGKILL after a grace period), fails
 * queued jobs with SCHED_SHUTDOWN.  NULL is ok. */
void		 sched_free(struct sched *);

/* Loads the model at path in a throw-away runtime and reports its metadata
 * or why it cannot be loaded. */
void		 sched_probe(struct sched *, const char *path,
		    sched_probe_fn *, void *arg);

/* Creates a deployment and starts its replicas.  -1 if the name exists. */
int		 sched_deploy(struct sched *, const struct sched_deploy_spec *);

/* Metadata of a deployment's model once a replica said HELLO, else NULL.
 * Borrowed until the deployment changes. */
const struct ipc_meta *sched_meta(struct sched *, const char *name,
		    const char **version);
bool		 sched_exists(struct sched *, const char *name);
/* True when the deployment has at least one live replica. */
bool		 sched_deployment_ready(struct sched *, const char *name);
/* True when every deployment has at least one live replica. */
bool		 sched_ready(struct sched *);
/* Live replica processes' pids of a deployment, for tests and metrics;
 * returns how many were written (at most max). */
size_t		 sched_replica_pids(struct sched *, const char *name,
		    pid_t *pids, size_t max);

/* Queues a job for a deployment.  Takes ownership of payload's memory (the
 * wbuf is emptied).  done is called exactly once unless the job is
 * cancelled first.  Returns NULL, having called nothing, if the deployment
 * does not exist; returns NULL after calling done (SCHED_OVERLOADED or
 * SCHED_SHUTDOWN) if the job cannot be queued. */
struct sched_job *sched_submit(struct sched *, const char *name,
		    const char *tenant_id, struct wbuf *payload,
		    sched_done_fn *done, void *arg);
/* The caller lost interest (client went away): done will not be called.
 * A job already on a replica finishes there and its result is dropped. */
void		 sched_cancel(struct sched_job *);
/* Jobs queued or running. */
size_t		 sched_inflight(struct sched *);
#endif
