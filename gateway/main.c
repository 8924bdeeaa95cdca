/* gateway/main.c - maasd: parses argv, sets up the parts, runs the loop.
 *
 * One event-loop thread owns the listeners, the scheduler and the runtime
 * processes; SQLite writes go to db/'s writer thread and file hashing to
 * the worker thread.  SIGTERM drains: listeners close, requests in flight
 * finish (their usage committed), then everything stops and maasd exits 0. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>

#include "admin/admin.h"
#include "admin/console.h"
#include "gateway/admit.h"
#include "common/ipc.h"
#include "common/log.h"
#include "db/db.h"
#include "gateway/bootstrap.h"
#include "gateway/http.h"
#include "gateway/jwt.h"
#include "gateway/kserve.h"
#include "gateway/openai.h"
#include "gateway/server.h"
#include "gateway/tls.h"
#include "gateway/work.h"
#include "scheduler/sched.h"

#define DEFAULT_MAX_BODY_MB	64
#define DEFAULT_MAX_HEADERS	(16 * 1024)
#define DRAIN_POLL_US		50000

static void	usage(FILE *, int) __attribute__((noreturn));
static void	tenant_handle(struct req *);
static void	on_signal(evutil_socket_t, short, void *);
static uint64_t	memory_default(void);
static char	*web_default(void);
static void	drain_poll(evutil_socket_t, short, void *);

static struct timeval	drain_started;
static int		drain_quiet;	/* idle polls in a row */
#define DRAIN_QUIET_POLLS	5

static void
usage(FILE *f, int code)
{
	fprintf(f,
"usage: maasd --data-dir DIR [options]\n"
"\n"
"maasd serves models to tenants over HTTPS (KServe v2 protocol) and runs\n"
"the admin API.  On first start it initializes DIR: maas.db (SQLite),\n"
"tls/cert.pem and tls/key.pem (self-signed, unless --cert/--key),\n"
"admin.token (mode 0600) and, with --demo, demo.key and the demo-mlp model.\n"
"\n"
"options:\n"
"  --data-dir DIR        data directory (required)\n"
"  --listen HOST:PORT    tenant API address (default 127.0.0.1:8443)\n"
"  --admin-listen HOST:PORT\n"
"                        admin API address (default 127.0.0.1:8444)\n"
"  --cert FILE           TLS certificate chain (PEM); needs --key\n"
"  --key FILE            TLS private key (PEM); needs --cert\n"
"  --demo                create and deploy the demo tenant, key and model\n"
"  --runtime FILE        maas-runtime binary (default: next to maasd)\n"
"  --genmodel FILE       maas-genmodel binary (default: next to maasd)\n"
"  --web-dir DIR         web console assets served on the admin port\n"
"                        (default: ../web or ../share/maas/web next to maasd)\n"
"  --max-body-mb N       largest request body in MiB (default %d)\n"
"  --runtime-mem-mb N    address-space limit per runtime in MiB, an ONNX\n"
"                        runtime's %zu MiB request window included\n"
"                        (default: none)\n"
"  --memory-budget-mb N  memory the replicas of this node may reserve, in MiB:\n"
"                        each its model's private memory, plus each model\n"
"                        file once (replicas share its pages); deployments,\n"
"                        scaling and traffic shifts past it are refused with\n"
"                        409 (default: 80%% of MemTotal; 0: unlimited)\n"
"  --drain-timeout S     seconds to wait for requests on SIGTERM (default 30)\n"
"  --max-queue N         queued requests per deployment (default 1024)\n"
"  --compute-timeout-ms N\n"
"                        a runtime computing one request longer is killed\n"
"                        as hung and restarted (default 10000)\n"
"  --ping-interval-ms N  PING idle runtimes this often (default 5000)\n"
"  --ping-timeout-ms N   kill a runtime that does not answer (default 10000)\n"
"  --autoscale-up-ms N   add a replica to a deployment whose queue held 2\n"
"                        requests per replica this long (default 1000)\n"
"  --autoscale-idle-ms N remove one after a replica idled this long\n"
"                        (default 30000); both within min/max_replicas\n"
"  --debug               verbose logging\n"
"  -h, --help            this text\n"
"\n"
"environment:\n"
"  MAAS_GUARD=key=value,...\n"
"                        request-framing limits and deadlines of both\n"
"                        listeners (for tests): request_line, header_bytes,\n"
"                        header_count, handshake_ms, head_ms, idle_ms,\n"
"                        linger_ms, max_conns, per_ip\n"
"  MAAS_CONSOLE_IDLE_S=N, MAAS_CONSOLE_TTL_S=N\n"
"                        shorter console sessions (for tests; default 1 h\n"
"                        idle, 12 h in all)\n"
"  MAAS_DEBUG=1          same as --debug\n", DEFAULT_MAX_BODY_MB,
	    IPC_SHM_SIZE >> 20);
	exit(code);
}

/* 80% of MemTotal: what the replicas of this node may reserve unless
 * told otherwise (the rest is for maasd, the page cache and the system).
 * 0 (unlimited) if /proc/meminfo cannot tell. */
static uint64_t
memory_default(void)
{
	FILE			*f;
	char			 line[256];
	unsigned long long	 kb = 0;

	if ((f = fopen("/proc/meminfo", "re")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return (uint64_t)kb * 1024 / 10 * 8;
}

static long
num_arg(const char *opt, const char *s, long lo, long hi)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < lo || v > hi)
		fatalx("%s must be an integer from %ld to %ld", opt, lo, hi);
	return v;
}

/* path of a sibling binary of maasd */
static char *
sibling(const char *name)
{
	char	 self[PATH_MAX], *dir, *out;
	ssize_t	 n;

	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) == -1)
		fatal("readlink /proc/self/exe");
	self[n] = '\0';
	dir = dirname(self);
	if (asprintf(&out, "%s/%s", dir, name) == -1)
		fatal("asprintf");
	return out;
}

/* The console's assets: web/ of the source tree when maasd runs from
 * bin/ (or build/NAME/bin/), share/maas/web when installed.  NULL if
 * none holds an index.html. */
static char *
web_default(void)
{
	static const char *cand[] = { "../web", "../share/maas/web",
	    "../../../web" };
	char	*dir, *index;
	bool	 found;

	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++) {
		dir = sibling(cand[i]);
		if (asprintf(&index, "%s/index.html", dir) == -1)
			fatal("asprintf");
		found = access(index, R_OK) == 0;
		free(index);
		if (found)
			return dir;
		free(dir);
	}
	return NULL;
}

/* Connection caps are thousands per listener; a soft limit of 1024 file
 * descriptors (systemd's default) would bind first. */
static void
raise_nofile(void)
{
	struct rlimit	rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("cannot raise the file descriptor limit");
	}
}

static void
tenant_handle(struct req *r)
{
	struct server	*srv = r->srv;

	if (r->n_parts == 1 && strcmp(r->parts[0], "healthz") == 0) {
		http_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
		return;
	}
	if (r->n_parts == 1 && strcmp(r->parts[0], "readyz") == 0) {
		bool	ready = !srv->draining && sched_ready(srv->sched) &&
		    (!srv->cfg.demo || srv->demo_ready);

		http_reply_json(r, ready ? 200 : 503, json_pack("{s:s}",
		    "status", ready ? "ready" : srv->draining ? "draining" :
		    "starting"));
		return;
	}
	if (r->n_parts >= 1 && strcmp(r->parts[0], "v2") == 0) {
		kserve_handle(r);
		return;
	}
	if (r->n_parts >= 1 && strcmp(r->parts[0], "v1") == 0) {
		openai_handle(r);
		return;
	}
	http_error(r, 404, "not_found", NULL, "no route for '%.200s'",
	    r->path);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server	*srv = arg;
	struct timeval	 tv = { 0, DRAIN_POLL_US };

	(void)what;
	if (srv->draining) {
		log_info("second signal %d: stopping now", (int)sig);
		event_base_loopbreak(srv->base);
		return;
	}
	log_info("signal %d: draining %zu request(s)", (int)sig,
	    srv->requests);
	srv->draining = true;
	gettimeofday(&drain_started, NULL);
	http_stop_accepting(srv->http);
	http_stop_accepting(srv->admin_http);
	event_base_once(srv->base, -1, EV_TIMEOUT, drain_poll, srv, &tv);
}

static void
drain_poll(evutil_socket_t fd, short what, void *arg)
{
	struct server	*srv = arg;
	struct timeval	 now, tv = { 0, DRAIN_POLL_US };

	(void)fd;
	(void)what;
	gettimeofday(&now, NULL);
	/* Requests still arriving count too: their connections were open
	 * before the signal.  Idle must hold for a few polls in a row: a
	 * request whose bytes are in the socket but not yet read (its read
	 * event queued behind this timer) would otherwise be cut off. */
	if (srv->requests == 0 && db_pending(srv->db) == 0 &&
	    http_reading(srv->http) == 0 &&
	    http_reading(srv->admin_http) == 0) {
		if (++drain_quiet >= DRAIN_QUIET_POLLS) {
			event_base_loopexit(srv->base, NULL);
			return;
		}
	} else
		drain_quiet = 0;
	if (now.tv_sec - drain_started.tv_sec >= srv->cfg.drain_timeout_s) {
		log_warnx("drain timeout: %zu request(s) still open",
		    srv->requests);
		event_base_loopexit(srv->base, NULL);
		return;
	}
	event_base_once(srv->base, -1, EV_TIMEOUT, drain_poll, srv, &tv);
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "admin-listen", required_argument, NULL, 'a' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "demo", no_argument, NULL, 'D' },
		{ "runtime", required_argument, NULL, 'r' },
		{ "genmodel", required_argument, NULL, 'g' },
		{ "web-dir", required_argument, NULL, 'W' },
		{ "max-body-mb", required_argument, NULL, 'b' },
		{ "runtime-mem-mb", required_argument, NULL, 'm' },
		{ "memory-budget-mb", required_argument, NULL, 'B' },
		{ "drain-timeout", required_argument, NULL, 't' },
		{ "max-queue", required_argument, NULL, 'Q' },
		{ "compute-timeout-ms", required_argument, NULL, 'C' },
		{ "ping-interval-ms", required_argument, NULL, 'P' },
		{ "ping-timeout-ms", required_argument, NULL, 'T' },
		{ "autoscale-up-ms", required_argument, NULL, 'U' },
		{ "autoscale-idle-ms", required_argument, NULL, 'I' },
		{ "debug", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct server		 srv;
	struct sched_config	 scfg;
	struct event		*sigterm, *sigint;
	char			 cert[4096], key[4096], dbpath[4096];
	char			*runtime_alloc = NULL, *genmodel_alloc = NULL;
	char			*web_alloc = NULL;
	bool			 debug = false;
	int			 ch, mem_mb = 0, loaded;
	long			 budget_mb = -1;

	memset(&srv, 0, sizeof(srv));
	memset(&scfg, 0, sizeof(scfg));
	srv.cfg.listen = "127.0.0.1:8443";
	srv.cfg.admin_listen = "127.0.0.1:8444";
	srv.cfg.max_body = (size_t)DEFAULT_MAX_BODY_MB << 20;
	srv.cfg.max_headers = DEFAULT_MAX_HEADERS;
	srv.cfg.drain_timeout_s = 30;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': srv.cfg.data_dir = optarg; break;
		case 'l': srv.cfg.listen = optarg; break;
		case 'a': srv.cfg.admin_listen = optarg; break;
		case 'c': srv.cfg.cert = optarg; break;
		case 'k': srv.cfg.key = optarg; break;
		case 'D': srv.cfg.demo = true; break;
		case 'r': srv.cfg.runtime_path = optarg; break;
		case 'g': srv.cfg.genmodel_path = optarg; break;
		case 'W': srv.cfg.web_dir = optarg; break;
		case 'b':
			srv.cfg.max_body = (size_t)num_arg("--max-body-mb",
			    optarg, 1, 4096) << 20;
			break;
		case 'm':
			mem_mb = (int)num_arg("--runtime-mem-mb", optarg, 64,
			    1 << 20);
			break;
		case 'B':
			budget_mb = num_arg("--memory-budget-mb", optarg, 0,
			    1L << 30);
			break;
		case 't':
			srv.cfg.drain_timeout_s = (int)num_arg(
			    "--drain-timeout", optarg, 0, 3600);
			break;
		case 'Q':
			scfg.max_queue = (size_t)num_arg("--max-queue", optarg,
			    1, 1 << 20);
			break;
		case 'C':
			scfg.compute_timeout_ms = (int)num_arg(
			    "--compute-timeout-ms", optarg, 10, 3600000);
			break;
		case 'P':
			scfg.ping_interval_ms = (int)num_arg(
			    "--ping-interval-ms", optarg, 10, 3600000);
			break;
		case 'T':
			scfg.ping_timeout_ms = (int)num_arg(
			    "--ping-timeout-ms", optarg, 10, 3600000);
			break;
		case 'U':
			scfg.autoscale_up_ms = (int)num_arg("--autoscale-up-ms",
			    optarg, 10, 3600000);
			break;
		case 'I':
			scfg.autoscale_idle_ms = (int)num_arg(
			    "--autoscale-idle-ms", optarg, 10, 86400000);
			break;
		case 'v': debug = true; break;
		case 'h': usage(stdout, 0);
		default: usage(stderr, 2);
		}
	}
	if (optind != argc || srv.cfg.data_dir == NULL)
		usage(stderr, 2);
	log_init("maasd", debug);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	if (srv.cfg.runtime_path == NULL)
		srv.cfg.runtime_path = runtime_alloc = sibling("maas-runtime");
	if (srv.cfg.genmodel_path == NULL)
		srv.cfg.genmodel_path = genmodel_alloc =
		    sibling("maas-genmodel");
	if (srv.cfg.web_dir == NULL)
		srv.cfg.web_dir = web_alloc = web_default();
	if (access(srv.cfg.runtime_path, X_OK) == -1)
		fatal("runtime '%s'", srv.cfg.runtime_path);

	if (bootstrap_data_dir(&srv) == -1 ||
	    bootstrap_tls(&srv, cert, key, sizeof(cert)) == -1)
		fatalx("cannot initialize '%s'", srv.cfg.data_dir);
	srv.cfg.cert = cert;
	srv.cfg.key = key;
	if ((srv.base = event_base_new()) == NULL)
		fatalx("event_base_new");
	if ((srv.tls = tls_ctx_new(cert, key)) == NULL)
		fatalx("cannot set up TLS");
	snprintf(dbpath, sizeof(dbpath), "%s/maas.db", srv.cfg.data_dir);
	if ((srv.db = db_open(dbpath, srv.base)) == NULL)
		fatalx("cannot open the database '%s'", dbpath);
	srv.work = work_new(srv.base);
	srv.console = console_new(srv.cfg.web_dir);
	scfg.runtime_path = srv.cfg.runtime_path;
	scfg.uid = 65534;
	scfg.gid = 65534;
	scfg.mem_limit_mb = mem_mb;
	scfg.memory_budget = budget_mb >= 0 ? (uint64_t)budget_mb << 20 :
	    memory_default();
	if (scfg.memory_budget > 0)
		log_info("memory budget for replicas: %llu MiB",
		    (unsigned long long)(scfg.memory_budget >> 20));
	srv.sched = sched_new(srv.base, &scfg);
	if ((loaded = admin_load_deployments(&srv)) == -1)
		fatalx("cannot read deployments");
	if (admit_load(&srv) == -1)
		fatalx("cannot read quotas, prices and usage");
	if (jwt_shared(srv.db) == NULL)
		fatalx("cannot read JWT issuers");

	srv.http = http_listen(&srv, srv.cfg.listen, srv.cfg.max_body,
	    tenant_handle, &srv.tenant_port);
	srv.admin_http = http_listen(&srv, srv.cfg.admin_listen,
	    1 << 20, admin_handle, &srv.admin_port);
	if (srv.http == NULL || srv.admin_http == NULL)
		fatalx("cannot listen");
	log_info("tenant API on https://%s (port %d), admin API on "
	    "https://%s (port %d), %d deployment(s)", srv.cfg.listen,
	    srv.tenant_port, srv.cfg.admin_listen, srv.admin_port, loaded);
	if (srv.cfg.demo)
		bootstrap_demo(&srv);

	sigterm = evsignal_new(srv.base, SIGTERM, on_signal, &srv);
	sigint = evsignal_new(srv.base, SIGINT, on_signal, &srv);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	event_base_dispatch(srv.base);

	/* Order matters: failing queued jobs meters them (db queue), then
	 * db_close commits and replies, then the listeners go. */
	work_free(srv.work);
	sched_free(srv.sched);
	admit_release(&srv);
	jwt_shared_release();
	db_close(srv.db);
	http_free(srv.http);
	http_free(srv.admin_http);
	event_free(sigterm);
	event_free(sigint);
	SSL_CTX_free(srv.tls);
	console_free(srv.console);
	free(web_alloc);
	event_base_free(srv.base);
	free(runtime_alloc);
	free(genmodel_alloc);
	log_info("stopped");
	return 0;
}
