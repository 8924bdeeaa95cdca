/* scheduler/replica.h - one maas-runtime process: spawn, frame I/O, death
 * and restart.  Internal to scheduler/. */
#ifndef SCHEDULER_REPLICA_H
#define SCHEDULER_REPLICA_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/ipc.h"

struct bufferevent;
struct event;
struct sched;
struct sched_job;
struct deployment;

enum replica_state {
	REPLICA_STARTING,	/* spawned, waiting for HELLO */
	REPLICA_LIVE,		/* HELLO received, serving */
	REPLICA_DEAD,		/* exited or killed; restart may be pending */
};

struct replica {
	struct sched		*s;
	struct deployment	*dep;		/* NULL for a probe */
	int			 idx;		/* slot in dep->replicas */
	enum replica_state	 state;
	pid_t			 pid;		/* 0 once reaped or never spawned */
	struct bufferevent	*bev;		/* IPC socket; NULL when dead */
	struct bufferevent	*errbev;	/* the runtime's stderr pipe */
	struct sched_job	*job;		/* in flight, at most one */
	struct event		*restart_ev;	/* pending restart */
	struct event		*ping_ev;	/* liveness check timer */
	uint64_t		 ping_id;	/* outstanding PING, 0: none */
	int64_t			 ping_sent_us;
	int64_t			 live_since_us;
	int			 backoff_ms;	/* next restart delay */
	unsigned		 restarts;
	/* probes only */
	void			(*probe_cb)(void *, const struct ipc_meta *,
				    const char *);
	void			*probe_arg;
	struct event		*probe_timeout;
	bool			 retiring;	/* freed when it exits */
};

struct replica	*replica_new(struct sched *, struct deployment *, int idx);
/* Spawns the process; -1 (logged) if fork/socketpair fail, in which case a
 * restart is scheduled. */
int		 replica_start(struct replica *, const char *path,
		    int threads);
/* Sends one frame; -1 if the replica is not connected. */
int		 replica_send(struct replica *, enum ipc_type, uint64_t req_id,
		    const void *payload, size_t len);
/* Kills the process and fails its in-flight job; schedules a restart
 * unless the replica is retiring or maasd stops. */
void		 replica_fail(struct replica *, const char *why);
/* Stops for good: closes the socket (the runtime exits on EOF), SIGKILL
 * later if needed; frees the struct once reaped. */
void		 replica_retire(struct replica *);
/* SIGCHLD: reaps pid and handles the death of whichever replica had it. */
void		 replica_reaped(struct sched *, pid_t, int status);
void		 replica_free(struct replica *);
#endif
