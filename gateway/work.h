/* gateway/work.h - one worker thread for blocking work (hashing model
 * files) so the event loop never blocks.  Jobs run in order; each job's
 * done callback then runs on the event-loop thread. */
#ifndef GATEWAY_WORK_H
#define GATEWAY_WORK_H

struct event_base;
struct work;

typedef void	work_fn(void *arg);	/* worker thread */

struct work	*work_new(struct event_base *);
/* Waits for queued jobs, runs their done callbacks, joins.  NULL is ok. */
void		 work_free(struct work *);
void		 work_submit(struct work *, work_fn *run, work_fn *done,
		    void *arg);
#endif
