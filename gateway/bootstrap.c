/* gateway/bootstrap.c - see bootstrap.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "admin/admin.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "db/db.h"
#include "gateway/auth.h"
#include "gateway/bootstrap.h"
#include "gateway/server.h"
#include "gateway/tls.h"
#include "scheduler/sched.h"

#define DEMO_TENANT	"demo"
#define DEMO_MODEL	"demo-mlp"
#define DEMO_VERSION	"1"
#define DEMO_LAYERS	"784,128,64,10"
#define DEMO_SEED	"42"
#define DEMO_LLM	"demo-llm"	/* a tiny GGUF chat model */
#define DEMO_LLM_CTX	"1024"

static void	demo_step_key(struct server *, const char *tenant_id);
static void	demo_step_model(struct server *);
static void	demo_step_deploy(struct server *);
static void	demo_wait_ready(struct server *);
static void	demo_step_llm(struct server *);
static void	demo_step_llm_deploy(struct server *);

static void
data_path(struct server *srv, const char *name, char *out, size_t sz)
{
	snprintf(out, sz, "%s/%s", srv->cfg.data_dir, name);
}

/* Reads a small secret file into out (trailing newline stripped). */
static int
read_secret(const char *path, char *out, size_t sz)
{
	ssize_t	n;
	int	fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, out, sz - 1);
	close(fd);
	if (n <= 0)
		return -1;
	out[n] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	return 0;
}

/* Creates path with mode 0600 holding s and a newline; never replaces. */
static int
write_secret(const char *path, const char *s)
{
	size_t	n = strlen(s);
	int	fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600))
	    == -1) {
		log_warn("cannot create '%s'", path);
		return -1;
	}
	if (write(fd, s, n) != (ssize_t)n || write(fd, "\n", 1) != 1 ||
	    fsync(fd) == -1) {
		log_warn("cannot write '%s'", path);
		close(fd);
		unlink(path);
		return -1;
	}
	return close(fd);
}

int
bootstrap_data_dir(struct server *srv)
{
	char	path[4096], token[AUTH_ADMIN_LEN + 2];

	if (mkdir(srv->cfg.data_dir, 0700) == -1 && errno != EEXIST) {
		log_warn("cannot create data directory '%s'",
		    srv->cfg.data_dir);
		return -1;
	}
	data_path(srv, "admin.token", path, sizeof(path));
	if (access(path, F_OK) == -1) {
		auth_admin_generate(token);
		if (write_secret(path, token) == -1)
			return -1;
		log_info("created admin token in '%s'", path);
	}
	if (read_secret(path, token, sizeof(token)) == -1 ||
	    strlen(token) != AUTH_ADMIN_LEN) {
		log_warnx("'%s' does not hold an admin token", path);
		return -1;
	}
	auth_sha256(token, strlen(token), srv->admin_hash);
	OPENSSL_cleanse(token, sizeof(token));
	return 0;
}

int
bootstrap_tls(struct server *srv, char *cert, char *key, size_t sz)
{
	char	dir[4096];

	if (srv->cfg.cert != NULL || srv->cfg.key != NULL) {
		if (srv->cfg.cert == NULL || srv->cfg.key == NULL) {
			log_warnx("--cert and --key go together");
			return -1;
		}
		snprintf(cert, sz, "%s", srv->cfg.cert);
		snprintf(key, sz, "%s", srv->cfg.key);
		return 0;
	}
	data_path(srv, "tls", dir, sizeof(dir));
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		log_warn("cannot create '%s'", dir);
		return -1;
	}
	snprintf(cert, sz, "%s/cert.pem", dir);
	snprintf(key, sz, "%s/key.pem", dir);
	if (access(cert, F_OK) == 0 && access(key, F_OK) == 0)
		return 0;
	if (tls_selfsigned_create(cert, key) == -1)
		return -1;
	log_info("created a self-signed certificate in '%s'", dir);
	return 0;
}

/* --- demo --- */

static void
demo_failed(const char *what, const char *msg)
{
	log_warnx("demo set-up: cannot %s: %s", what, msg ? msg : "error");
}

static void
demo_tenant_done(void *arg, enum db_status st, json_t *row)
{
	struct server	*srv = arg;
	const char	*id = json_string_value(json_object_get(row, "id"));

	if (st != DB_OK || id == NULL) {
		demo_failed("create the demo tenant", NULL);
		json_decref(row);
		return;
	}
	demo_step_key(srv, id);
	json_decref(row);
}

void
bootstrap_demo(struct server *srv)
{
	json_t		*t = db_tenant_get_by_name(srv->db, DEMO_TENANT);
	const char	*id;

	if (t == NULL) {
		db_tenant_create(srv->db, DEMO_TENANT, "bootstrap",
		    demo_tenant_done, srv);
		return;
	}
	id = json_string_value(json_object_get(t, "id"));
	demo_step_key(srv, id);
	json_decref(t);
}

struct demo_key {
	struct server	*srv;
	char		 secret[AUTH_KEY_LEN + 1];
};

static void
demo_key_done(void *arg, enum db_status st, json_t *row)
{
	struct demo_key	*k = arg;
	char		 path[4096];

	json_decref(row);
	data_path(k->srv, "demo.key", path, sizeof(path));
	if (st != DB_OK)
		demo_failed("create the demo key", NULL);
	else if (write_secret(path, k->secret) == 0)
		demo_step_model(k->srv);
	OPENSSL_cleanse(k, sizeof(*k));
	free(k);
}

static void
demo_step_key(struct server *srv, const char *tenant_id)
{
	struct demo_key	*k;
	char		 path[4096], prefix[AUTH_PREFIX_LEN + 1];
	uint8_t		 hash[32];

	data_path(srv, "demo.key", path, sizeof(path));
	if (access(path, F_OK) == 0) {
		demo_step_model(srv);
		return;
	}
	k = xcalloc(1, sizeof(*k));
	k->srv = srv;
	auth_key_generate(k->secret, prefix, hash);
	db_key_create(srv->db, tenant_id, "demo", prefix, hash, 0,
	    "bootstrap", demo_key_done, k);
}

/* Runs a generator synchronously: the demo models are tiny. */
static int
demo_run(char *const argv[])
{
	pid_t	 pid;
	int	 status;

	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int
demo_generate(struct server *srv, const char *out)
{
	char	*argv[] = { (char *)(uintptr_t)srv->cfg.genmodel_path, "mlp",
	    "--layers", DEMO_LAYERS, "--seed", DEMO_SEED, "-o",
	    (char *)(uintptr_t)out, NULL };

	return demo_run(argv);
}

/* maas-gengguf lives next to maas-genmodel. */
static int
demo_generate_llm(struct server *srv, const char *out)
{
	char		 tool[4096];
	const char	*slash = strrchr(srv->cfg.genmodel_path, '/');
	char		*argv[] = { tool, "--seed", DEMO_SEED, "--n-ctx",
	    DEMO_LLM_CTX, "--template", "chatml", "-o",
	    (char *)(uintptr_t)out, NULL };

	if (slash == NULL)
		snprintf(tool, sizeof(tool), "maas-gengguf");
	else
		snprintf(tool, sizeof(tool), "%.*s/maas-gengguf",
		    (int)(slash - srv->cfg.genmodel_path),
		    srv->cfg.genmodel_path);
	return demo_run(argv);
}

/* A request body for the banner's curl line: one row of 784 pixels. */
static void
demo_write_request(struct server *srv)
{
	char	 path[4096];
	FILE	*f;

	data_path(srv, "demo-request.json", path, sizeof(path));
	if (access(path, F_OK) == 0 || (f = fopen(path, "w")) == NULL)
		return;
	fprintf(f, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],"
	    "\"datatype\":\"FP32\",\"data\":[");
	for (int i = 0; i < 784; i++)
		fprintf(f, "%s%.3f", i ? "," : "", (double)((i * 37) % 101) /
		    100.0);
	fprintf(f, "]}]}\n");
	fclose(f);
}

static void
demo_model_done(void *arg, int status, json_t *row, const char *msg)
{
	struct server	*srv = arg;

	json_decref(row);
	if (status != 201 && status != 409) {
		demo_failed("register demo-mlp", msg);
		return;
	}
	demo_step_deploy(srv);
}

static void
demo_step_model(struct server *srv)
{
	char	dir[4096], path[4200];
	json_t	*m = db_model_get(srv->db, DEMO_MODEL, DEMO_VERSION);

	demo_write_request(srv);
	if (m != NULL) {
		json_decref(m);
		demo_step_deploy(srv);
		return;
	}
	data_path(srv, "models", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s.onnx", dir, DEMO_MODEL);
	if ((mkdir(dir, 0700) == -1 && errno != EEXIST) ||
	    (access(path, F_OK) == -1 && demo_generate(srv, path) == -1)) {
		demo_failed("generate demo-mlp", path);
		return;
	}
	admin_model_register(srv, DEMO_MODEL, DEMO_VERSION, path, "bootstrap",
	    demo_model_done, srv);
}

static void
demo_deploy_done(void *arg, int status, json_t *row, const char *msg)
{
	struct server	*srv = arg;

	json_decref(row);
	if (status != 201 && status != 409) {
		demo_failed("deploy demo-mlp", msg);
		return;
	}
	demo_step_llm(srv);
}

static void
demo_step_deploy(struct server *srv)
{
	if (sched_exists(srv->sched, DEMO_MODEL)) {
		demo_step_llm(srv);
		return;
	}
	admin_deploy(srv, DEMO_MODEL, DEMO_MODEL, DEMO_VERSION, 1, 1,
	    "bootstrap", demo_deploy_done, srv);
}

/* demo-llm: var/models/demo-llm.gguf, generated once, registered and
 * deployed like demo-mlp.  Without it the demo still serves demo-mlp. */
static void
demo_llm_model_done(void *arg, int status, json_t *row, const char *msg)
{
	struct server	*srv = arg;

	json_decref(row);
	if (status != 201 && status != 409) {
		demo_failed("register " DEMO_LLM, msg);
		demo_wait_ready(srv);
		return;
	}
	demo_step_llm_deploy(srv);
}

static void
demo_step_llm(struct server *srv)
{
	char	dir[4096], path[4200];
	json_t	*m = db_model_get(srv->db, DEMO_LLM, DEMO_VERSION);

	if (m != NULL) {
		json_decref(m);
		demo_step_llm_deploy(srv);
		return;
	}
	data_path(srv, "models", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s.gguf", dir, DEMO_LLM);
	if ((mkdir(dir, 0700) == -1 && errno != EEXIST) ||
	    (access(path, F_OK) == -1 && demo_generate_llm(srv, path) == -1)) {
		demo_failed("generate " DEMO_LLM, path);
		demo_wait_ready(srv);
		return;
	}
	admin_model_register(srv, DEMO_LLM, DEMO_VERSION, path, "bootstrap",
	    demo_llm_model_done, srv);
}

static void
demo_llm_deploy_done(void *arg, int status, json_t *row, const char *msg)
{
	struct server	*srv = arg;

	json_decref(row);
	if (status != 201 && status != 409)
		demo_failed("deploy " DEMO_LLM, msg);
	demo_wait_ready(srv);
}

static void
demo_step_llm_deploy(struct server *srv)
{
	if (sched_exists(srv->sched, DEMO_LLM)) {
		demo_wait_ready(srv);
		return;
	}
	admin_deploy(srv, DEMO_LLM, DEMO_LLM, DEMO_VERSION, 1, 1,
	    "bootstrap", demo_llm_deploy_done, srv);
}

static void
demo_banner(struct server *srv)
{
	char	keypath[4096], key[AUTH_KEY_LEN + 2] = "";

	data_path(srv, "demo.key", keypath, sizeof(keypath));
	if (read_secret(keypath, key, sizeof(key)) == -1)
		snprintf(key, sizeof(key), "(unreadable)");
	printf("\n"
	    "maas is ready.\n"
	    "  tenant API  https://127.0.0.1:%d   (KServe v2: /v2/..., "
	    "OpenAI: /v1/...)\n"
	    "  admin API   https://127.0.0.1:%d   (token in %s/admin.token)\n"
	    "  console     https://127.0.0.1:%d/   (log in with the admin "
	    "token)\n"
	    "  demo key    %s\n"
	    "  try it:\n"
	    "    curl --cacert %s -H \"Authorization: Bearer $(cat %s)\" \\\n"
	    "      https://127.0.0.1:%d/v2/models/demo-mlp/infer \\\n"
	    "      -d @%s/demo-request.json\n",
	    srv->tenant_port, srv->admin_port, srv->cfg.data_dir,
	    srv->admin_port, key,
	    srv->cfg.cert, keypath, srv->tenant_port, srv->cfg.data_dir);
	if (sched_exists(srv->sched, DEMO_LLM))
		printf("  chat with demo-llm (OpenAI API, base URL "
		    "https://127.0.0.1:%d/v1):\n"
		    "    curl --cacert %s -H \"Authorization: Bearer $(cat %s)\" "
		    "\\\n"
		    "      https://127.0.0.1:%d/v1/chat/completions \\\n"
		    "      -d '{\"model\":\"%s\",\"max_tokens\":32,"
		    "\"messages\":[{\"role\":\"user\",\"content\":"
		    "\"Hello!\"}]}'\n",
		    srv->tenant_port, srv->cfg.cert, keypath, srv->tenant_port,
		    DEMO_LLM);
	printf("\n");
	fflush(stdout);
	OPENSSL_cleanse(key, sizeof(key));
}

static void
demo_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server	*srv = arg;

	(void)fd;
	(void)what;
	if (!sched_ready(srv->sched)) {
		struct timeval	tv = { 0, 100000 };

		event_base_once(srv->base, -1, EV_TIMEOUT, demo_ready_cb, srv,
		    &tv);
		return;
	}
	srv->demo_ready = true;
	demo_banner(srv);
}

static void
demo_wait_ready(struct server *srv)
{
	demo_ready_cb(-1, 0, srv);
}
