/* tests/unit/test_sched.c - the scheduler end to end with fake runtimes
 * (tests/unit/fake_runtime.c, y = 2x, misbehaving on chosen inputs) on a
 * real event loop: batching and the split back, crash retry and
 * quarantine (batch crash, then each job alone), hang kill, an outside
 * SIGKILL not held against the input, batch errors isolated, deadlines,
 * cancellation, the full queue's victim, draining on scale-down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <limits.h>
#include <libgen.h>
#include <signal.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/ipc.h"
#include "common/log.h"
#include "scheduler/sched.h"

struct outcome {
	bool			 done;
	enum sched_status	 status;
	unsigned		 attempts;
	unsigned		 batch_rows;
	int64_t			 compute_us;
	int			 retry_after_s;
	int64_t			 rows;		/* of the output */
	float			 y[64];
};

static struct event_base	*base;
static struct sched		*sched;
static char			 fake[PATH_MAX];
static char			 logfile[PATH_MAX];

static void
done_cb(void *arg, const struct sched_result *res)
{
	struct outcome		*o = arg;
	struct ipc_tensor	 t[2];
	struct rbuf		 r;

	assert_false(o->done);
	o->done = true;
	o->status = res->status;
	o->attempts = res->attempts;
	o->batch_rows = res->batch_rows;
	o->compute_us = res->compute_us;
	o->retry_after_s = res->retry_after_s;
	if (res->status != SCHED_OK)
		return;
	rbuf_init(&r, res->payload, res->len);
	assert_int_equal(ipc_get_tensors(&r, t, 2), 1);
	assert_string_equal(t[0].desc.name, "y");
	o->rows = t[0].desc.dims[0];
	memcpy(o->y, t[0].data, t[0].nbytes < sizeof(o->y) ? t[0].nbytes :
	    sizeof(o->y));
}

/* An INFER payload of rows x 4 floats, row i = first + i (all four). */
static void
payload(struct wbuf *w, int rows, float first)
{
	struct ipc_tensor_desc	d;

	memset(&d, 0, sizeof(d));
	snprintf(d.name, sizeof(d.name), "x");
	d.dtype = DT_FP32;
	d.ndim = 2;
	d.dims[0] = rows;
	d.dims[1] = 4;
	wbuf_init(w);
	wbuf_u32(w, 1);
	ipc_put_tensor_header(w, &d, (uint64_t)rows * 16);
	for (int i = 0; i < rows; i++)
		for (int k = 0; k < 4; k++) {
			float	v = first + (float)i;
			uint32_t u;

			memcpy(&u, &v, 4);
			wbuf_u32(w, u);
		}
	wbuf_u32(w, 0);
}

static struct sched_job *
submit(const char *dep, const char *tenant, int rows, float first,
    struct outcome *o, int64_t timeout_us)
{
	struct sched_job_opts	opts = { .tenant_id = tenant,
	    .timeout_us = timeout_us };
	struct wbuf		w;
	struct sched_job	*j;

	memset(o, 0, sizeof(*o));
	payload(&w, rows, first);
	j = sched_submit_opts(sched, dep, &opts, &w, done_cb, o);
	wbuf_release(&w);
	return j;
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static int64_t
test_now_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Runs the loop until every outcome in os[0..n) is done (or the
 * deployment is ready when n == 0 and dep != NULL); fails after 20 s. */
static void
run(struct outcome *os, size_t n, const char *dep)
{
	struct event	*t = event_new(base, -1, EV_PERSIST, tick, NULL);
	struct timeval	 tv = { 0, 5000 };
	int64_t		 end = test_now_us() + 20 * 1000000LL;

	event_add(t, &tv);
	for (;;) {
		bool	all = true;

		for (size_t i = 0; i < n; i++)
			all = all && os[i].done;
		if (n == 0 && dep != NULL)
			all = sched_deployment_ready(sched, dep);
		if (all)
			break;
		assert_true(test_now_us() < end);
		event_base_loop(base, EVLOOP_ONCE);
	}
	event_free(t);
}

static void
run_ms(int ms)
{
	struct timeval	tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void
deploy(const char *name, const char *model, int replicas, int max_batch,
    int64_t delay_us)
{
	struct sched_deploy_spec	spec = {
		.name = name, .model = "fake", .version = "1", .path = model,
		.replicas = replicas, .threads = 1, .max_batch = max_batch,
		.max_queue_delay_us = delay_us,
	};
	pid_t	pids[8];

	assert_int_equal(sched_deploy(sched, &spec), 0);
	for (int i = 0; i < 4000; i++) {
		if (sched_replica_pids(sched, name, pids, 8) ==
		    (size_t)replicas)
			return;
		run_ms(5);
	}
	fail_msg("deployment '%s' not live", name);
}

static int
setup(void **state)
{
	struct sched_config	cfg = {
		.runtime_path = fake, .uid = 65534, .gid = 65534,
		.max_queue = 8, .compute_timeout_ms = 300,
		.ping_interval_ms = 100, .ping_timeout_ms = 1000,
	};

	(void)state;
	base = event_base_new();
	sched = sched_new(base, &cfg);
	unlink(logfile);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sched_free(sched);
	event_base_free(base);
	unlink(logfile);
	return 0;
}

/* Rows per INFER the fake runtime saw, from its log; shm[i] (if not
 * NULL) says whether the i-th came through the shared window. */
static int
infers_how(int *rows, bool *shm, int max)
{
	FILE	*f = fopen(logfile, "r");
	char	 line[64], how[8];
	int	 n = 0, k;

	if (f == NULL)
		return 0;
	while (n < max && fgets(line, sizeof(line), f) != NULL) {
		how[0] = '\0';
		if ((k = sscanf(line, "%d %7s", &rows[n], how)) < 1)
			fail_msg("bad log line '%s'", line);
		if (shm != NULL)
			shm[n] = strcmp(how, "shm") == 0;
		n++;
	}
	fclose(f);
	return n;
}

static int
infers(int *rows, int max)
{
	return infers_how(rows, NULL, max);
}

static void
check_doubled(const struct outcome *o, int rows, float first)
{
	assert_int_equal(o->status, SCHED_OK);
	assert_int_equal(o->rows, rows);
	for (int i = 0; i < rows && i < (int)(sizeof(o->y) / 16); i++)
		for (int k = 0; k < 4; k++)
			assert_true(o->y[i * 4 + k] == 2 * (first + (float)i));
}

static void
test_batches_split_back(void **state)
{
	struct outcome	o[7];
	char		model[PATH_MAX + 16];
	int		rows[16], n;

	(void)state;
	snprintf(model, sizeof(model), "slow:40,log=%s", logfile);
	deploy("d", model, 1, 8, 100000);
	/* The first goes at once, alone (nothing says requests come in
	 * bunches yet); the other six queue while it computes and leave as
	 * one batch of 8 rows. */
	submit("d", "a", 1, 10, &o[0], 0);
	submit("d", "a", 2, 20, &o[1], 0);
	submit("d", "b", 1, 30, &o[2], 0);
	submit("d", "c", 1, 40, &o[3], 0);
	submit("d", "b", 2, 50, &o[4], 0);
	submit("d", "a", 1, 60, &o[5], 0);
	submit("d", "c", 1, 70, &o[6], 0);
	run(o, 7, NULL);
	check_doubled(&o[0], 1, 10);
	check_doubled(&o[1], 2, 20);
	check_doubled(&o[2], 1, 30);
	check_doubled(&o[3], 1, 40);
	check_doubled(&o[4], 2, 50);
	check_doubled(&o[5], 1, 60);
	check_doubled(&o[6], 1, 70);
	n = infers(rows, 16);
	assert_int_equal(n, 2);
	assert_int_equal(rows[0], 1);
	assert_int_equal(rows[1], 8);
	assert_int_equal(o[1].batch_rows, 8);
	/* Compute time is shared by rows: 40 ms for 8 rows. */
	assert_int_equal(o[1].compute_us, 40000 * 2 / 8);
	/* Now that requests come in bunches, a lone one waits (up to the
	 * delay) for the next ones. */
	submit("d", "a", 1, 80, &o[0], 0);
	run_ms(20);
	submit("d", "b", 2, 90, &o[1], 0);
	run(o, 2, NULL);
	check_doubled(&o[0], 1, 80);
	check_doubled(&o[1], 2, 90);
	n = infers(rows, 16);
	assert_int_equal(n, 3);
	assert_int_equal(rows[2], 3);
	assert_int_equal(sched_inflight(sched), 0);
}

/* INFER payloads go through the shared window when they fit a slot, two
 * in flight in two slots (the runtime reads its input again after it
 * sleeps, so a slot reused too soon would show in its answer), and
 * through the socket when they do not fit. */
static void
test_window_and_socket(void **state)
{
	static struct outcome	o[3];
	char			model[PATH_MAX + 16];
	int			rows[8], n;
	bool			shm[8];
	int			big = (int)(IPC_SHM_SLOT / 16) + 1000;

	(void)state;
	snprintf(model, sizeof(model), "slow:40,log=%s", logfile);
	deploy("d", model, 1, 5000, 0);
	/* Rows from 1000 up: the fake runtime's poison values are below. */
	submit("d", "a", 5000, 1000, &o[0], 0);
	submit("d", "b", 5000, 100000, &o[1], 0);
	run(o, 2, NULL);
	check_doubled(&o[0], 5000, 1000);
	check_doubled(&o[1], 5000, 100000);
	submit("d", "c", big, 1000, &o[2], 0);
	run(&o[2], 1, NULL);
	check_doubled(&o[2], big, 1000);
	n = infers_how(rows, shm, 8);
	assert_int_equal(n, 3);
	assert_int_equal(rows[0], 5000);
	assert_true(shm[0]);
	assert_int_equal(rows[1], 5000);
	assert_true(shm[1]);
	assert_int_equal(rows[2], big);
	assert_false(shm[2]);
}

static void
test_crash_retried_then_quarantined(void **state)
{
	struct outcome	o[4], again;
	pid_t		before, after;

	(void)state;
	deploy("d", "fast", 1, 4, 50000);
	assert_int_equal(sched_replica_pids(sched, "d", &before, 1), 1);
	/* The first job goes alone at once; the next three queue behind it
	 * and form one batch with a poison row: it crashes, then every job
	 * runs alone; only the poison crashes again. */
	submit("d", "a", 1, 1, &o[0], 0);
	submit("d", "b", 1, 666, &o[1], 0);
	submit("d", "a", 1, 3, &o[2], 0);
	submit("d", "c", 1, 4, &o[3], 0);
	run(o, 4, NULL);
	check_doubled(&o[0], 1, 1);
	check_doubled(&o[2], 1, 3);
	check_doubled(&o[3], 1, 4);
	assert_int_equal(o[0].attempts, 1);
	assert_int_equal(o[2].attempts, 2);
	assert_int_equal(o[3].attempts, 2);
	assert_int_equal(o[1].status, SCHED_QUARANTINED);
	assert_int_equal(o[1].attempts, 2);
	run(NULL, 0, "d");
	assert_int_equal(sched_replica_pids(sched, "d", &after, 1), 1);
	assert_true(after != before);
	/* The same input again: refused at once, no runtime touched. */
	assert_null(submit("d", "z", 1, 666, &again, 0));
	assert_true(again.done);
	assert_int_equal(again.status, SCHED_QUARANTINED);
	assert_int_equal(sched_replica_pids(sched, "d", &before, 1), 1);
	assert_int_equal(before, after);
}

static void
test_hang_killed_and_quarantined(void **state)
{
	struct outcome	o[2];

	(void)state;
	deploy("d", "fast", 1, 1, 0);
	submit("d", "a", 1, 777, &o[0], 0);
	submit("d", "b", 1, 5, &o[1], 0);
	run(o, 2, NULL);
	assert_int_equal(o[0].status, SCHED_QUARANTINED);
	check_doubled(&o[1], 1, 5);
}

static void
test_outside_kill_not_held_against_input(void **state)
{
	struct outcome	o;
	pid_t		pid;

	(void)state;
	deploy("d", "slow:300", 1, 1, 0);
	/* Killed from outside twice while computing it: retried once, then
	 * 503, never quarantined (a SIGKILL is not the input's doing). */
	submit("d", "a", 1, 1, &o, 0);
	for (int kills = 0; kills < 2; kills++) {
		run_ms(100);
		assert_int_equal(sched_replica_pids(sched, "d", &pid, 1), 1);
		kill(pid, SIGKILL);
		if (kills == 0) {
			pid_t	now = pid;

			for (int i = 0; i < 400 && now == pid; i++) {
				run_ms(5);
				if (sched_replica_pids(sched, "d", &now,
				    1) == 0)
					now = pid;
			}
			assert_true(now != pid);
			assert_false(o.done);
		}
	}
	run(&o, 1, NULL);
	assert_int_equal(o.status, SCHED_UNAVAILABLE);
	assert_int_equal(o.attempts, 2);
}

static void
test_batch_error_isolated(void **state)
{
	struct outcome	o[4];

	(void)state;
	deploy("d", "fast", 1, 8, 50000);
	submit("d", "a", 1, 1, &o[0], 0);
	submit("d", "a", 1, 555, &o[1], 0);
	submit("d", "b", 2, 3, &o[2], 0);
	submit("d", "b", 1, 555, &o[3], 0);
	run(o, 4, NULL);
	check_doubled(&o[0], 1, 1);
	check_doubled(&o[2], 2, 3);
	assert_int_equal(o[1].status, SCHED_BAD_INPUT);
	assert_int_equal(o[3].status, SCHED_BAD_INPUT);
}

static void
test_deadline_and_cancel(void **state)
{
	struct outcome		 o[4];
	struct sched_job	*queued, *running;

	(void)state;
	deploy("d", "slow:200", 1, 1, 0);
	running = submit("d", "a", 1, 1, &o[0], 0);
	submit("d", "a", 1, 2, &o[1], 50000);
	queued = submit("d", "b", 1, 3, &o[2], 0);
	sched_cancel(queued);			/* done never called */
	run(&o[1], 1, NULL);
	assert_int_equal(o[1].status, SCHED_TIMED_OUT);
	assert_false(o[0].done);
	sched_cancel(running);			/* its result is dropped */
	submit("d", "c", 1, 4, &o[3], 0);
	run(&o[3], 1, NULL);
	check_doubled(&o[3], 1, 4);
	assert_false(o[0].done);
	assert_false(o[2].done);
	assert_int_equal(sched_inflight(sched), 0);
}

static void
test_full_queue_refuses_the_flood(void **state)
{
	struct outcome	a[10], b;

	(void)state;
	deploy("d", "slow:100", 1, 1, 0);
	/* max_queue 8: one running, eight queued, the tenth refused. */
	for (int i = 0; i < 10; i++)
		submit("d", "a", 1, (float)i, &a[i], 0);
	assert_true(a[9].done);
	assert_int_equal(a[9].status, SCHED_OVERLOADED);
	assert_true(a[9].retry_after_s >= 1);
	/* Another tenant still gets in: a's newest queued job goes. */
	submit("d", "b", 1, 100, &b, 0);
	assert_true(a[8].done);
	assert_int_equal(a[8].status, SCHED_OVERLOADED);
	assert_false(b.done);
	/* And it is served second, not after a's seven. */
	run(&b, 1, NULL);
	check_doubled(&b, 1, 100);
	assert_int_equal(a[0].status, SCHED_OK);
	for (int i = 1; i < 8; i++)
		assert_false(a[i].done && a[i].status != SCHED_OK);
	run(a, 8, NULL);
}

static void
test_scale_down_drains(void **state)
{
	struct outcome	o[10];
	pid_t		pids[4];

	(void)state;
	deploy("d", "slow:50", 3, 1, 0);
	for (int i = 0; i < 8; i++)
		submit("d", i % 2 ? "a" : "b", 1, (float)i, &o[i], 0);
	run_ms(20);
	assert_int_equal(sched_scale(sched, "d", 1, 0, 0), 0);
	for (int i = 8; i < 10; i++)
		submit("d", "c", 1, (float)i, &o[i], 0);
	run(o, 10, NULL);
	for (int i = 0; i < 10; i++)
		check_doubled(&o[i], 1, (float)i);
	assert_int_equal(sched_replica_pids(sched, "d", pids, 4), 1);
	assert_int_equal(sched_scale(sched, "d", 2, 1, 2), 0);
	run_ms(300);
	assert_int_equal(sched_replica_pids(sched, "d", pids, 4), 2);
	assert_int_equal(sched_scale(sched, "d", 3, 1, 2), -1);
	assert_int_equal(sched_scale(sched, "nope", 1, 0, 0), -1);
}

/* Admin changes hold their room from check to apply: a second change
 * checked meanwhile counts it; a release gives it back; a hold may
 * outlive the scheduler. */
static void
test_memory_holds(void **state)
{
	struct sched_config	cfg = {
		.runtime_path = fake, .uid = 65534, .gid = 65534,
		.memory_budget = 100,
	};
	struct sched_deploy_spec one = {
		.name = "a", .model = "fake", .version = "1", .path = "/m/a",
		.replicas = 1, .threads = 1, .mem_bytes = 30, .file_bytes = 10,
	}, two = one;
	struct sched_mem_hold	*ha, *hb, *hc;
	struct sched_memory	 m;

	(void)state;
	sched_free(sched);
	sched = sched_new(base, &cfg);
	two.replicas = 2;
	assert_int_equal(sched_mem_hold_deploy(sched, &one, &ha), 0);
	assert_non_null(ha);
	/* The same file is held once: 10 + 2 x 30. */
	assert_int_equal(sched_mem_hold_deploy(sched, &one, &hb), 0);
	sched_memory(sched, &m);
	assert_int_equal(m.reserved, 70);
	/* Two more replicas would need 130: 30 over, and nothing held. */
	assert_int_equal(sched_mem_hold_deploy(sched, &two, &hc), 30);
	assert_null(hc);
	assert_int_equal(sched_mem_deploy(sched, &two), 30);
	sched_mem_release(ha);
	assert_int_equal(sched_mem_hold_deploy(sched, &two, &hc), 0);
	sched_memory(sched, &m);
	assert_int_equal(m.reserved, 100);
	sched_mem_release(hb);
	sched_mem_release(NULL);
	sched_memory(sched, &m);
	assert_int_equal(m.reserved, 70);
	/* Released after the scheduler is gone: only freed. */
	sched_free(sched);
	sched = NULL;
	sched_mem_release(hc);
}

int
main(int argc, char *argv[])
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_window_and_socket,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_batches_split_back,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_crash_retried_then_quarantined, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_hang_killed_and_quarantined, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_outside_kill_not_held_against_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_error_isolated,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_and_cancel,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_full_queue_refuses_the_flood, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scale_down_drains,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_holds,
		    setup, teardown),
	};
	char	self[PATH_MAX];
	ssize_t	n;

	(void)argc;
	(void)argv;
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) == -1)
		return 1;
	self[n] = '\0';
	snprintf(fake, sizeof(fake), "%s/fake_runtime", dirname(self));
	snprintf(logfile, sizeof(logfile), "/tmp/test_sched.%d.log",
	    (int)getpid());
	log_init("test_sched", getenv("MAAS_DEBUG") != NULL);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
