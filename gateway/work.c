/* gateway/work.c - see work.h.  Completed jobs are handed back through a
 * pipe watched by the event loop, so no evthread locking is needed. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "gateway/work.h"

struct work_job {
	STAILQ_ENTRY(work_job)	 entry;
	work_fn			*run;
	work_fn			*done;
	void			*arg;
};
STAILQ_HEAD(work_list, work_job);

struct work {
	pthread_t		 thread;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct work_list	 todo;		/* guarded by mu */
	struct work_list	 finished;	/* guarded by mu */
	bool			 stop;		/* guarded by mu */
	int			 pipe[2];	/* worker -> loop wakeups */
	struct event		*ev;
};

static void	*work_main(void *);
static void	 work_wake_cb(evutil_socket_t, short, void *);
static void	 work_run_done(struct work *);

struct work *
work_new(struct event_base *base)
{
	struct work	*w = xcalloc(1, sizeof(*w));

	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	STAILQ_INIT(&w->todo);
	STAILQ_INIT(&w->finished);
	if (pipe2(w->pipe, O_CLOEXEC | O_NONBLOCK) == -1)
		fatal("pipe2");
	w->ev = event_new(base, w->pipe[0], EV_READ | EV_PERSIST,
	    work_wake_cb, w);
	event_add(w->ev, NULL);
	if (pthread_create(&w->thread, NULL, work_main, w) != 0)
		fatalx("cannot start the worker thread");
	return w;
}

void
work_free(struct work *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	work_run_done(w);
	event_free(w->ev);
	close(w->pipe[0]);
	close(w->pipe[1]);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w);
}

void
work_submit(struct work *w, work_fn *run, work_fn *done, void *arg)
{
	struct work_job	*j = xcalloc(1, sizeof(*j));

	j->run = run;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&w->mu);
	STAILQ_INSERT_TAIL(&w->todo, j, entry);
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void *
work_main(void *arg)
{
	struct work	*w = arg;
	struct work_job	*j;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (STAILQ_EMPTY(&w->todo) && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if ((j = STAILQ_FIRST(&w->todo)) == NULL)
			break;		/* stopping and drained */
		STAILQ_REMOVE_HEAD(&w->todo, entry);
		pthread_mutex_unlock(&w->mu);
		j->run(j->arg);
		pthread_mutex_lock(&w->mu);
		STAILQ_INSERT_TAIL(&w->finished, j, entry);
		(void)!write(w->pipe[1], "", 1);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void
work_run_done(struct work *w)
{
	struct work_list	 done;
	struct work_job		*j;

	pthread_mutex_lock(&w->mu);
	STAILQ_INIT(&done);
	STAILQ_CONCAT(&done, &w->finished);
	pthread_mutex_unlock(&w->mu);
	while ((j = STAILQ_FIRST(&done)) != NULL) {
		STAILQ_REMOVE_HEAD(&done, entry);
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
}

static void
work_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	char	buf[64];

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	work_run_done(arg);
}
