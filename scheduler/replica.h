/* scheduler/replica.h - one maas-runtime process: spawn, frame I/O,
 * supervision (PING, compute deadline), death and restart.  Internal to
 * scheduler/.
 *
 * A replica computes one INFER at a time: a single job or a batch of
 * them, kept on r->jobs until the reply comes.  Under load a second,
 * full INFER may follow the one computing (REPLICA_PIPELINE): it waits
 * in the socket, so that the runtime starts it as soon as it answers the
 * first instead of after a round trip through maasd.  The runtime
 * answers INFERs in order.  When the runtime dies
 * those jobs stay with the replica until the process is reaped, because
 * how it died decides their fate: a death the input may have caused (a
 * signal other than an outside SIGKILL, an exit, a hang or a protocol
 * violation we killed it for) counts against each job, an outside SIGKILL
 * (an operator, the OOM killer) does not.  Then each job is retried once,
 * quarantined after two crashes, or failed. */
#ifndef SCHEDULER_REPLICA_H
#define SCHEDULER_REPLICA_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "common/ipc.h"
#include "common/wire.h"
#include "scheduler/fairq.h"	/* struct job_queue */

struct bufferevent;
struct event;
struct sched;
struct sched_job;
struct deployment;

#define REPLICA_PIPELINE	2	/* INFERs sent to one runtime at most */
#if REPLICA_PIPELINE > IPC_SHM_SLOTS
#error "each INFER in flight needs a slot of the shared window"
#endif

enum replica_state {
	REPLICA_STARTING,	/* spawned, waiting for HELLO */
	REPLICA_LIVE,		/* HELLO received, serving */
	REPLICA_DEAD,		/* exited or killed; restart may be pending */
};

/* Why maasd killed a runtime. */
enum replica_kill {
	REPLICA_KILL_NONE = 0,	/* it died by itself, or from outside */
	REPLICA_KILL_EOF,	/* it closed its socket */
	REPLICA_KILL_HANG,	/* computing past its deadline */
	REPLICA_KILL_PING,	/* no PONG in time */
	REPLICA_KILL_PROTOCOL,	/* a bad frame */
	REPLICA_KILL_STOP,	/* retired, or maasd stops */
};

struct replica {
	struct sched		*s;
	struct deployment	*dep;		/* NULL for a probe */
	int			 idx;		/* slot in dep->replicas */
	enum replica_state	 state;
	pid_t			 pid;		/* 0: reaped or never spawned */
	struct bufferevent	*bev;		/* IPC socket; NULL when dead */
	struct bufferevent	*errbev;	/* the runtime's stderr pipe */
	struct job_queue	 jobs;		/* of the INFERs in flight */
	size_t			 n_jobs;
	/* ONNX runtimes: the INFERs sent and not answered, oldest (the one
	 * computing) first; their jobs lie on r->jobs in the same order. */
	struct replica_infer {
		uint64_t	 id;		/* IPC request id */
		uint32_t	 rows;
		uint32_t	 n_jobs;
		int64_t		 start_us;	/* began computing (about) */
		int		 slot;		/* in the window, or -1 */
	}			 infers[REPLICA_PIPELINE];
	int			 n_infers;
	struct wbuf		 sendbuf;	/* a batch's payload, reused */
	/* The shared window of common/ipc.h, mapped writable, that INFER
	 * payloads go through (INFER_SHM); NULL for a probe or a GGUF
	 * runtime, or if it could not be made.  A new one for every
	 * process: nothing of one process's requests reaches the next. */
	uint8_t			*shm;
	struct event		*restart_ev;	/* pending restart */
	struct event		*ping_ev;	/* liveness tick */
	struct event		*hang_ev;	/* compute deadline */
	struct event		*reap_ev;	/* stop waiting for SIGCHLD */
	uint64_t		 ping_id;	/* outstanding PING, 0: none */
	int64_t			 ping_sent_us;
	int64_t			 active_us;	/* last frame or send */
	int64_t			 live_since_us;
	int64_t			 restart_at_us;	/* of the pending restart */
	int			 backoff_ms;	/* next restart delay */
	unsigned		 restarts;
	/* GGUF runtimes: GENERATEs they run at once (HELLO), the jobs on
	 * r->jobs; 0 for ONNX runtimes, which run one INFER. */
	uint32_t		 max_seqs;
	enum replica_kill	 kill;		/* why we killed it, if so */
	int			 wstatus;	/* waitpid status once reaped */
	bool			 reaped;	/* wstatus is valid */
	bool			 dying;		/* killed, not reaped yet */
	bool			 draining;	/* finish INFER, then retire */
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
/* True when it can take an INFER now. */
bool		 replica_idle(const struct replica *);
/* True when an ONNX runtime computing an INFER can be sent the next one
 * to start right after it (sched.c sends only full ones there). */
bool		 replica_pipe(const struct replica *);
/* Jobs sent that wait behind the INFER computing. */
size_t		 replica_waiting(const struct replica *);
/* True when a GGUF runtime can take one more GENERATE now. */
bool		 replica_room(const struct replica *);
/* Sends a stream job's GENERATE (the job joins r->jobs) and watches the
 * runtime: it must send a TOKEN, DONE or PONG within the compute timeout
 * while it generates.  Fails the replica if it cannot send. */
void		 replica_generate(struct replica *, struct sched_job *);
/* Sends the n jobs on batch (rows in all; the list is emptied) as one
 * INFER after those in flight; the compute deadline runs for the oldest.
 * Fails the replica (which retries the jobs) if it cannot send. */
void		 replica_infer(struct replica *, struct job_queue *batch,
		    uint32_t n, uint32_t rows);
/* Kills the process.  Its jobs are settled and a restart scheduled once
 * it is reaped, unless the replica is retiring or maasd stops. */
void		 replica_fail(struct replica *, const char *why,
		    enum replica_kill);
/* Stops for good: closes the socket (the runtime exits on EOF), SIGKILL
 * later if needed; frees the struct once reaped. */
void		 replica_retire(struct replica *);
/* SIGCHLD: reaps pid and handles the death of whichever replica had it.
 * Returns false if no replica had it. */
bool		 replica_reaped(struct sched *, pid_t, int status);
void		 replica_free(struct replica *);
#endif
