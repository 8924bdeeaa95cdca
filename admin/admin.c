/* admin/admin.c - see admin.h.
 *
 * Handlers validate their JSON, then hand the change to db/ (writer thread)
 * and reply from the completion callback, once the change is durable.  The
 * model registration and deployment operations are continuation chains
 * (hash on the worker thread -> probe runtime -> database) carried by a
 * small heap context. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/http.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "admin/admin.h"
#include "admin/billing.h"
#include "admin/console.h"
#include "admin/idem.h"
#include "admin/issuers.h"
#include "admin/openapi.h"
#include "admin/tenancy.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "db/db.h"
#include "gateway/auth.h"
#include "gateway/http.h"
#include "gateway/metrics.h"
#include "gateway/tensorjson.h"
#include "gateway/server.h"
#include "gateway/work.h"
#include "scheduler/sched.h"

#define NAME_MAX_LEN		64
#define MODEL_MAX_BYTES		(64LL << 30)

/* --- small helpers --- */

/* Names of tenants, keys, models, versions, deployments: 1-64 characters
 * from [A-Za-z0-9._-], starting with an alphanumeric. */
static bool
valid_name(const char *s)
{
	size_t	n;

	if (s == NULL || (n = strlen(s)) == 0 || n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char	c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') ||
		    (i > 0 && (c == '.' || c == '_' || c == '-'))))
			return false;
	}
	return true;
}

static int
db_status_http(enum db_status st)
{
	switch (st) {
	case DB_OK:
		return 201;
	case DB_NOT_FOUND:
		return 404;
	case DB_CONFLICT:
		return 409;
	default:
		return 500;
	}
}

static const char *
http_code_name(int status)
{
	switch (status) {
	case 400: return "invalid_request";
	case 404: return "not_found";
	case 409: return "already_exists";
	default: return "internal_error";
	}
}

/* Parses limit and after; replies 400 and returns -1 if malformed. */
static int
page_params(struct req *r, int *limit, const char **after)
{
	const char	*l = http_query(r, "limit");
	char		*end;
	long		 v;

	*after = http_query(r, "after");
	*limit = 100;
	if (l == NULL)
		return 0;
	errno = 0;
	v = strtol(l, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > 1000) {
		http_error(r, 400, "invalid_request", "limit",
		    "limit must be an integer from 1 to 1000");
		return -1;
	}
	*limit = (int)v;
	return 0;
}

/* Unix seconds, "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SSZ" (UTC). */
static int
parse_time(const char *s, int64_t *out)
{
	struct tm	 tm;
	char		*end;
	long long	 v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == 0 && *end == '\0' && v >= 0) {
		*out = v;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%d", &tm);
	if (end != NULL && *end == 'T')
		end = strptime(end + 1, "%H:%M:%S", &tm);
	if (end == NULL || (*end != '\0' && strcmp(end, "Z") != 0))
		return -1;
	*out = (int64_t)timegm(&tm);
	return 0;
}

/* admin_handle lets a call without Authorization through only with a
 * live console session. */
const char *
admin_actor(struct req *r)
{
	return http_header(r, "Authorization") != NULL ? "admin" : "console";
}

int
admin_page_params(struct req *r, int *limit, const char **after)
{
	return page_params(r, limit, after);
}

int
admin_parse_time(const char *s, int64_t *out)
{
	return parse_time(s, out);
}

static void
reply_list(struct req *r, json_t *list)
{
	if (list == NULL) {
		http_error(r, 500, "internal_error", NULL,
		    "cannot read the database");
		return;
	}
	json_object_set_new(list, "object", json_string("list"));
	http_reply_json(r, 200, list);
}

void
admin_reply_list(struct req *r, json_t *list)
{
	reply_list(r, list);
}

/* A db completion that answers the request with the created row. */
static void
reply_created(void *arg, enum db_status st, json_t *row)
{
	struct req	*r = arg;
	int		 status = db_status_http(st);

	if (st == DB_OK && row != NULL) {
		http_reply_json(r, 201, row);
		return;
	}
	json_decref(row);
	http_error(r, status, http_code_name(status), NULL, "%s",
	    st == DB_CONFLICT ? "an object with this name already exists" :
	    st == DB_NOT_FOUND ? "the referenced object does not exist" :
	    "the change could not be stored");
}

/* An admin_done_fn that answers the request. */
static void
reply_op(void *arg, int status, json_t *row, const char *msg)
{
	struct req	*r = arg;

	if (status == 201 && row != NULL) {
		http_reply_json(r, 201, row);
		return;
	}
	json_decref(row);
	http_error(r, status, http_code_name(status), NULL, "%s", msg);
}

/* --- tenants and keys --- */

static void
tenant_create(struct req *r)
{
	json_t		*body = http_json_body(r);
	const char	*name;

	if (body == NULL)
		return;
	name = json_string_value(json_object_get(body, "name"));
	if (!valid_name(name)) {
		json_decref(body);
		http_error(r, 400, "invalid_request", "name", "'name' must be "
		    "1-64 characters of letters, digits, '.', '_' or '-'");
		return;
	}
	db_tenant_create(r->srv->db, name, admin_actor(r), reply_created,
	    r);
	json_decref(body);
}

struct key_ctx {
	struct req	*r;
	char		 secret[AUTH_KEY_LEN + 1];
	char		 prefix[AUTH_PREFIX_LEN + 1];
	uint8_t		 hash[32];
	char		 tenant_id[64];
	char		 name[NAME_MAX_LEN + 1];
	int64_t		 expires_at;
	int		 tries;
	json_t		*scopes;	/* models the key may call, or NULL */
};

static void	key_store(struct key_ctx *);
static void	key_scoped(void *, enum db_status, json_t *);

static void
key_ctx_free(void *p)
{
	if (p == NULL)
		return;
	json_decref(((struct key_ctx *)p)->scopes);
	OPENSSL_cleanse(p, sizeof(struct key_ctx));
	free(p);
}

static void
key_created(void *arg, enum db_status st, json_t *row)
{
	struct key_ctx	*k = arg;
	struct req	*r = k->r;

	/* A prefix collision (48 random bits) is retried with a new key. */
	if (st == DB_CONFLICT && k->tries < 3) {
		json_decref(row);
		key_store(k);
		return;
	}
	if (st == DB_OK && row != NULL && k->scopes != NULL) {
		db_key_set_scopes(r->srv->db, json_string_value(
		    json_object_get(row, "id")), k->scopes, admin_actor(r),
		    key_scoped, k);
		json_decref(row);
		return;
	}
	if (st == DB_OK && row != NULL) {
		json_object_set_new(row, "key", json_string(k->secret));
		http_reply_json(r, 201, row);	/* frees k via ctx_free */
		return;
	}
	reply_created(r, st, row);
}

static void
key_scoped(void *arg, enum db_status st, json_t *row)
{
	struct key_ctx	*k = arg;

	if (st == DB_OK && row != NULL) {
		json_object_set_new(row, "key", json_string(k->secret));
		http_reply_json(k->r, 201, row);
		return;
	}
	reply_created(k->r, st, row);
}

static void
key_store(struct key_ctx *k)
{
	k->tries++;
	auth_key_generate(k->secret, k->prefix, k->hash);
	db_key_create(k->r->srv->db, k->tenant_id, k->name, k->prefix,
	    k->hash, k->expires_at, admin_actor(k->r), key_created, k);
}

static void
key_create(struct req *r, const char *tenant_id)
{
	json_t		*body = http_json_body(r), *exp, *t, *sc;
	const char	*name;
	struct key_ctx	*k;

	if (body == NULL)
		return;
	if ((t = db_tenant_get(r->srv->db, tenant_id)) == NULL) {
		json_decref(body);
		http_error(r, 404, "not_found", NULL,
		    "tenant '%.64s' does not exist", tenant_id);
		return;
	}
	json_decref(t);
	t = json_object_get(body, "name");
	name = t == NULL || json_is_null(t) ? "default" :
	    json_string_value(t);
	exp = json_object_get(body, "expires_at");
	if (!valid_name(name) || (exp != NULL && !json_is_null(exp) &&
	    (!json_is_integer(exp) || json_integer_value(exp) <= 0))) {
		json_decref(body);
		http_error(r, 400, "invalid_request", NULL, "'name' must be "
		    "1-64 characters of letters, digits, '.', '_' or '-', and "
		    "'expires_at' a Unix time in seconds");
		return;
	}
	sc = json_object_get(body, "scopes");
	if (sc != NULL && !json_is_null(sc)) {
		json_t	*v;
		size_t	 i;
		bool	 ok = json_is_array(sc) && json_array_size(sc) <= 1000;

		json_array_foreach(sc, i, v)
			ok = ok && valid_name(json_string_value(v));
		if (!ok) {
			json_decref(body);
			http_error(r, 400, "invalid_request", "scopes",
			    "'scopes' must be null or an array of model names");
			return;
		}
	} else
		sc = NULL;
	k = xcalloc(1, sizeof(*k));
	k->r = r;
	k->scopes = json_incref(sc);
	snprintf(k->tenant_id, sizeof(k->tenant_id), "%s", tenant_id);
	snprintf(k->name, sizeof(k->name), "%s", name);
	k->expires_at = json_is_integer(exp) ? json_integer_value(exp) : 0;
	r->ctx = k;
	r->ctx_free = key_ctx_free;
	json_decref(body);
	key_store(k);
}

static void
key_revoked(void *arg, enum db_status st, json_t *row)
{
	struct req	*r = arg;

	if (st == DB_OK) {
		if (row == NULL)
			row = json_object();
		json_object_set_new(row, "revoked", json_true());
		http_reply_json(r, 200, row);
		return;
	}
	reply_created(r, st, row);
}

/* --- models --- */

struct model_op {
	struct server	*srv;
	admin_done_fn	*done;
	void		*arg;
	char		*name;
	char		*version;
	char		*path;
	char		*actor;
	char		 sha256[65];
	int64_t		 size;
	char		 err[512];	/* set by the hashing job */
};

static void
model_op_finish(struct model_op *op, int status, json_t *row,
    const char *msg)
{
	op->done(op->arg, status, row, msg);
	free(op->name);
	free(op->version);
	free(op->path);
	free(op->actor);
	free(op);
}

/* Worker thread: size and SHA-256 of the file. */
static void
model_hash(void *arg)
{
	struct model_op	*op = arg;
	EVP_MD_CTX	*md = EVP_MD_CTX_new();
	unsigned char	 buf[1 << 16], dig[32];
	struct stat	 st;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(op->path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(op->err, sizeof(op->err), "cannot open '%s': %s",
		    op->path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(op->err, sizeof(op->err), "'%s' is not a regular "
		    "file", op->path);
		goto out;
	}
	if (st.st_size > MODEL_MAX_BYTES || st.st_size == 0) {
		snprintf(op->err, sizeof(op->err), "'%s' has an unusable "
		    "size (%lld bytes)", op->path, (long long)st.st_size);
		goto out;
	}
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		EVP_DigestUpdate(md, buf, (size_t)n);
		op->size += n;
	}
	if (n == -1) {
		snprintf(op->err, sizeof(op->err), "cannot read '%s': %s",
		    op->path, strerror(errno));
		goto out;
	}
	EVP_DigestFinal_ex(md, dig, NULL);
	for (int i = 0; i < 32; i++)
		snprintf(op->sha256 + 2 * i, 3, "%02x", dig[i]);
 out:
	if (fd != -1)
		close(fd);
	EVP_MD_CTX_free(md);
}

static void
model_stored(void *arg, enum db_status st, json_t *row)
{
	struct model_op	*op = arg;

	if (st == DB_OK) {
		model_op_finish(op, 201, row, NULL);
		return;
	}
	json_decref(row);
	model_op_finish(op, db_status_http(st), NULL, st == DB_CONFLICT ?
	    "this model version is already registered" :
	    "the model could not be stored");
}

static void
model_probed(void *arg, const struct ipc_meta *meta, const char *error)
{
	struct model_op		*op = arg;
	struct db_model_in	 in;
	json_t			*mj;

	if (meta == NULL) {
		char	msg[700];

		snprintf(msg, sizeof(msg), "invalid model file '%s': %s",
		    op->path, error);
		model_op_finish(op, 400, NULL, msg);
		return;
	}
	mj = tensorjson_meta_json(meta);
	/* What one replica holds privately, for the memory budget. */
	json_object_set_new(mj, "mem_bytes",
	    json_integer((json_int_t)meta->mem_bytes));
	memset(&in, 0, sizeof(in));
	in.name = op->name;
	in.version = op->version;
	in.format = meta->format == MODEL_FORMAT_GGUF ? "gguf" : "onnx";
	in.path = op->path;
	in.sha256 = op->sha256;
	/* The model file and its external data files, which the runtime
	 * has mapped (the hash covers the model file). */
	in.size = meta->shared_bytes > (uint64_t)op->size &&
	    meta->shared_bytes <= INT64_MAX ? (int64_t)meta->shared_bytes :
	    op->size;
	in.meta = mj;
	db_model_create(op->srv->db, &in, op->actor, model_stored, op);
	json_decref(mj);
}

static void
model_hashed(void *arg)
{
	struct model_op	*op = arg;

	if (op->err[0] != '\0') {
		model_op_finish(op, 400, NULL, op->err);
		return;
	}
	sched_probe(op->srv->sched, op->path, model_probed, op);
}

void
admin_model_register(struct server *srv, const char *name,
    const char *version, const char *path, const char *actor,
    admin_done_fn *done, void *arg)
{
	struct model_op	*op;
	json_t		*old;
	char		 real[PATH_MAX];

	if (!valid_name(name) || !valid_name(version)) {
		done(arg, 400, NULL, "'name' and 'version' must be 1-64 "
		    "characters of letters, digits, '.', '_' or '-'");
		return;
	}
	if (path == NULL || *path == '\0' || strlen(path) >= PATH_MAX) {
		done(arg, 400, NULL, "'path' must name the model file");
		return;
	}
	if (realpath(path, real) == NULL) {
		char	msg[PATH_MAX + 64];

		snprintf(msg, sizeof(msg), "cannot open '%s': %s", path,
		    strerror(errno));
		done(arg, 400, NULL, msg);
		return;
	}
	if ((old = db_model_get(srv->db, name, version)) != NULL) {
		json_decref(old);
		done(arg, 409, NULL, "this model version is already "
		    "registered");
		return;
	}
	op = xcalloc(1, sizeof(*op));
	op->srv = srv;
	op->done = done;
	op->arg = arg;
	op->name = xstrdup(name);
	op->version = xstrdup(version);
	op->path = xstrdup(real);
	op->actor = xstrdup(actor);
	work_submit(srv->work, model_hash, model_hashed, op);
}

static void
model_create(struct req *r)
{
	json_t	*body = http_json_body(r);

	if (body == NULL)
		return;
	admin_model_register(r->srv,
	    json_string_value(json_object_get(body, "name")),
	    json_string_value(json_object_get(body, "version")),
	    json_string_value(json_object_get(body, "path")),
	    admin_actor(r), reply_op, r);
	json_decref(body);
}

/* --- the node memory budget --- */

/* A registered model's memory: private bytes per replica (what its probe
 * reported at registration) and its files' size, shared by replicas. */
static void
model_memory(json_t *m, uint64_t *mem, uint64_t *file)
{
	json_int_t	v;

	v = json_integer_value(json_object_get(json_object_get(m, "meta"),
	    "mem_bytes"));
	*mem = v > 0 ? (uint64_t)v : 0;
	v = json_integer_value(json_object_get(m, "size"));
	*file = v > 0 ? (uint64_t)v : 0;
}

/* The message of a change refused for memory.  The status is 409, not
 * 507: the change conflicts with what the node serves now, which the
 * operator can change (delete or scale down a deployment, or raise
 * --memory-budget-mb), and a 5xx would read as the server's fault. */
static void
memory_message(struct server *srv, uint64_t missing, char *buf, size_t len)
{
	struct sched_memory	m;

	sched_memory(srv->sched, &m);
	snprintf(buf, len, "needs %llu MiB more than the node's memory "
	    "budget of %llu MiB (%llu MiB in use)",
	    (unsigned long long)((missing + (1ULL << 20) - 1) >> 20),
	    (unsigned long long)(m.budget >> 20),
	    (unsigned long long)((m.reserved + (1ULL << 19)) >> 20));
}

/* --- deployments --- */

struct deploy_op {
	struct server		*srv;
	admin_done_fn		*done;
	void			*arg;
	struct sched_deploy_spec spec;		/* strings owned below */
	char			*path;
	struct sched_mem_hold	*hold;		/* its room, until applied */
};

static void
deploy_stored(void *arg, enum db_status st, json_t *row)
{
	struct deploy_op	*op = arg;

	if (st == DB_OK) {
		if (sched_deploy(op->srv->sched, &op->spec) == 0)
			json_object_set_new(row, "state",
			    json_string("starting"));
		op->done(op->arg, 201, row, NULL);
	} else {
		json_decref(row);
		op->done(op->arg, db_status_http(st), NULL,
		    st == DB_CONFLICT ? "a deployment with this name exists" :
		    st == DB_NOT_FOUND ? "the model version is not registered" :
		    "the deployment could not be stored");
	}
	sched_mem_release(op->hold);
	free((char *)(uintptr_t)op->spec.name);
	free((char *)(uintptr_t)op->spec.model);
	free((char *)(uintptr_t)op->spec.version);
	free(op->path);
	free(op);
}

/* Versions in one deployment's traffic split. */
#define DEPLOY_MAX_VERSIONS	8

/* Batching of a deployment: rows per INFER and the wait to fill one. */
#define MAX_BATCH_LIMIT		1024
#define MAX_QUEUE_DELAY_US	1000000

/* What a deployment is created with beyond its name and model. */
struct deploy_params {
	int		 replicas;
	int		 min_replicas;	/* 0: replicas */
	int		 max_replicas;	/* 0: replicas */
	int		 threads;
	int		 max_batch;
	int64_t		 max_queue_delay_us;
};

static void	deploy_start(struct server *, const char *name,
		    const char *model, const char *version,
		    const struct deploy_params *, const char *actor,
		    admin_done_fn *, void *arg);

void
admin_deploy(struct server *srv, const char *name, const char *model,
    const char *version, int replicas, int threads, const char *actor,
    admin_done_fn *done, void *arg)
{
	struct deploy_params	p = { .replicas = replicas,
	    .threads = threads, .max_batch = 1 };

	deploy_start(srv, name, model, version, &p, actor, done, arg);
}

static void
deploy_start(struct server *srv, const char *name, const char *model,
    const char *version, const struct deploy_params *p, const char *actor,
    admin_done_fn *done, void *arg)
{
	struct db_deployment_in	 in;
	int			 replicas = p->replicas, threads = p->threads;
	int			 max_batch = p->max_batch;
	int			 lo = p->min_replicas ? p->min_replicas :
				    replicas;
	int			 hi = p->max_replicas ? p->max_replicas :
				    replicas;
	int64_t			 max_queue_delay_us = p->max_queue_delay_us;
	struct deploy_op	*op;
	struct sched_mem_hold	*hold;
	json_t			*m;
	const char		*path;
	uint64_t		 mem, file, missing;

	if (!valid_name(name) || !valid_name(model) || !valid_name(version)) {
		done(arg, 400, NULL, "'name', 'model' and 'version' must be "
		    "1-64 characters of letters, digits, '.', '_' or '-'");
		return;
	}
	if (replicas < 1 || replicas > 64 || threads < 1 || threads > 256) {
		done(arg, 400, NULL, "'replicas' must be 1-64 and 'threads' "
		    "1-256");
		return;
	}
	if (lo < 1 || hi > 64 || replicas < lo || replicas > hi) {
		done(arg, 400, NULL, "'min_replicas' <= 'replicas' <= "
		    "'max_replicas' must hold, within 1-64");
		return;
	}
	if (max_batch < 1 || max_batch > MAX_BATCH_LIMIT ||
	    max_queue_delay_us < 0 ||
	    max_queue_delay_us > MAX_QUEUE_DELAY_US) {
		done(arg, 400, NULL, "'max_batch' must be 1-1024 and "
		    "'max_queue_delay_us' 0-1000000");
		return;
	}
	if (sched_exists(srv->sched, name)) {
		done(arg, 409, NULL, "a deployment with this name exists");
		return;
	}
	if ((m = db_model_get(srv->db, model, version)) == NULL ||
	    (path = json_string_value(json_object_get(m, "path"))) == NULL) {
		json_decref(m);
		done(arg, 404, NULL, "the model version is not registered");
		return;
	}
	model_memory(m, &mem, &file);
	if ((missing = sched_mem_hold_deploy(srv->sched,
	    &(struct sched_deploy_spec){ .path = path, .replicas = replicas,
	    .mem_bytes = mem, .file_bytes = file }, &hold)) > 0) {
		char	msg[256];

		json_decref(m);
		memory_message(srv, missing, msg, sizeof(msg));
		if (done == reply_op)
			http_error(arg, 409, "memory_budget_exceeded",
			    "replicas", "%s", msg);
		else
			done(arg, 409, NULL, msg);
		return;
	}
	op = xcalloc(1, sizeof(*op));
	op->srv = srv;
	op->done = done;
	op->arg = arg;
	op->spec.name = xstrdup(name);
	op->spec.model = xstrdup(model);
	op->spec.version = xstrdup(version);
	op->spec.path = op->path = xstrdup(path);
	op->hold = hold;
	op->spec.replicas = replicas;
	op->spec.min_replicas = lo;
	op->spec.max_replicas = hi;
	op->spec.threads = threads;
	op->spec.max_batch = max_batch;
	op->spec.max_queue_delay_us = max_queue_delay_us;
	op->spec.mem_bytes = mem;
	op->spec.file_bytes = file;
	json_decref(m);
	memset(&in, 0, sizeof(in));
	in.name = name;
	in.model = model;
	in.version = version;
	in.replicas = replicas;
	in.threads = threads;
	in.max_batch = max_batch;
	in.max_queue_delay_us = max_queue_delay_us;
	in.min_replicas = lo;
	in.max_replicas = hi;
	db_deployment_create(srv->db, &in, actor, deploy_stored, op);
}

static int
json_int_field(json_t *o, const char *k, int def, bool *bad)
{
	json_t	*v = json_object_get(o, k);

	if (v == NULL || json_is_null(v))
		return def;
	if (!json_is_integer(v) || json_integer_value(v) < INT_MIN ||
	    json_integer_value(v) > INT_MAX) {
		*bad = true;
		return def;
	}
	return (int)json_integer_value(v);
}

static void
deployment_create(struct req *r)
{
	json_t			*body = http_json_body(r);
	struct deploy_params	 p;
	bool			 bad = false;

	if (body == NULL)
		return;
	p.replicas = json_int_field(body, "replicas", 1, &bad);
	p.min_replicas = json_int_field(body, "min_replicas", 0, &bad);
	p.max_replicas = json_int_field(body, "max_replicas", 0, &bad);
	p.threads = json_int_field(body, "threads", 1, &bad);
	p.max_batch = json_int_field(body, "max_batch", 1, &bad);
	p.max_queue_delay_us = json_int_field(body, "max_queue_delay_us", 0,
	    &bad);
	if (bad) {
		json_decref(body);
		http_error(r, 400, "invalid_request", NULL,
		    "'replicas', 'min_replicas', 'max_replicas', 'threads', "
		    "'max_batch' and 'max_queue_delay_us' must be integers");
		return;
	}
	deploy_start(r->srv, json_string_value(json_object_get(body, "name")),
	    json_string_value(json_object_get(body, "model")),
	    json_string_value(json_object_get(body, "version")),
	    &p, admin_actor(r), reply_op, r);
	json_decref(body);
}

/* A row's traffic split as JSON (new ref): the stored one, else its one
 * version with all the traffic.  key: "traffic" or "prev_traffic". */
static json_t *
deployment_traffic(json_t *row, const char *key)
{
	const char	*text = json_string_value(json_object_get(row, key));
	json_t		*t = NULL;

	if (text != NULL && (t = json_loads(text, 0, NULL)) != NULL &&
	    json_is_array(t))
		return t;
	if (text != NULL) {
		json_decref(t);
		return NULL;
	}
	if (strcmp(key, "traffic") != 0)
		return NULL;
	return json_pack("[{s:O, s:i, s:O}]", "version", json_object_get(row,
	    "version"), "weight", 100, "replicas", json_object_get(row,
	    "replicas"));
}

/* The scheduler's view of a traffic split t: each version's model file
 * and memory from the registry (models[] keeps the rows its strings are
 * borrowed from; the caller decrefs *n of them).  -1 if a version is
 * missing. */
static int
traffic_specs(struct server *srv, const char *name, const char *model,
    json_t *t, struct sched_version_spec *v, json_t **models, size_t *n)
{
	json_t	*e;
	size_t	 i;

	*n = 0;
	if (t == NULL || model == NULL ||
	    json_array_size(t) > DEPLOY_MAX_VERSIONS)
		return -1;
	json_array_foreach(t, i, e) {
		memset(&v[*n], 0, sizeof(v[*n]));
		v[*n].version = json_string_value(json_object_get(e,
		    "version"));
		v[*n].weight = (unsigned)json_integer_value(json_object_get(e,
		    "weight"));
		v[*n].replicas = (int)json_integer_value(json_object_get(e,
		    "replicas"));
		if (v[*n].version == NULL)
			return -1;
		models[*n] = db_model_get(srv->db, model, v[*n].version);
		v[*n].path = json_string_value(json_object_get(models[*n],
		    "path"));
		model_memory(models[*n], &v[*n].mem_bytes, &v[*n].file_bytes);
		(*n)++;
		if (v[*n - 1].path == NULL) {
			log_warnx("deployment '%s': model %s:%s is missing",
			    name ? name : "", model, v[*n - 1].version);
			return -1;
		}
	}
	return 0;
}

/* Gives the scheduler a row's traffic split: model files of its versions
 * from the registry.  -1 if one is missing or the scheduler refuses. */
static int
traffic_apply(struct server *srv, json_t *row)
{
	struct sched_version_spec v[DEPLOY_MAX_VERSIONS];
	json_t		*t = deployment_traffic(row, "traffic");
	json_t		*models[DEPLOY_MAX_VERSIONS] = { NULL };
	const char	*name = json_string_value(json_object_get(row, "name"));
	const char	*model = json_string_value(json_object_get(row,
			    "model"));
	size_t		 i, n = 0;
	int		 ret = -1;

	if (name != NULL && traffic_specs(srv, name, model, t, v, models,
	    &n) == 0)
		ret = sched_traffic(srv->sched, name, v, n);
	for (i = 0; i < n; i++)
		json_decref(models[i]);
	json_decref(t);
	return ret;
}

/* How far past the memory budget the split t of deployment row would
 * take the node; 0 if it fits, its room then held in *hold until applied
 * (or a version is missing: the split is refused elsewhere). */
static uint64_t
traffic_memory(struct server *srv, json_t *row, json_t *t,
    struct sched_mem_hold **hold)
{
	struct sched_version_spec v[DEPLOY_MAX_VERSIONS];
	json_t		*models[DEPLOY_MAX_VERSIONS] = { NULL };
	const char	*name = json_string_value(json_object_get(row, "name"));
	const char	*model = json_string_value(json_object_get(row,
			    "model"));
	uint64_t	 missing = 0;
	size_t		 n = 0;

	*hold = NULL;
	if (name != NULL && traffic_specs(srv, name, model, t, v, models,
	    &n) == 0)
		missing = sched_mem_hold_traffic(srv->sched, name, v, n, hold);
	for (size_t i = 0; i < n; i++)
		json_decref(models[i]);
	return missing;
}

/* Adds the live state of each deployment from the scheduler. */
static json_t *
deployment_state(struct server *srv, json_t *row)
{
	const char	*name = json_string_value(json_object_get(row, "name"));
	pid_t		 pids[64];
	size_t		 n;

	if (name == NULL)
		return row;
	json_object_set_new(row, "traffic", deployment_traffic(row,
	    "traffic"));
	json_object_set_new(row, "prev_traffic", deployment_traffic(row,
	    "prev_traffic"));
	n = sched_replica_pids(srv->sched, name, pids, 64);
	json_object_set_new(row, "ready", json_boolean(n > 0));
	json_object_set_new(row, "live_replicas", json_integer((json_int_t)n));
	return row;
}

int
admin_load_deployments(struct server *srv)
{
	const char	*after = NULL;
	json_t		*page = NULL, *row;
	char		 last[128] = "";
	size_t		 i;
	int		 n = 0;

	for (;;) {
		json_decref(page);
		page = db_deployment_list(srv->db, after, 1000);
		if (page == NULL)
			return -1;
		json_array_foreach(json_object_get(page, "data"), i, row) {
			struct sched_deploy_spec	 spec;
			json_t				*m, *t = NULL, *e;
			const char			*path;
			size_t				 k;

			memset(&spec, 0, sizeof(spec));
			spec.name = json_string_value(json_object_get(row,
			    "name"));
			spec.model = json_string_value(json_object_get(row,
			    "model"));
			spec.version = json_string_value(json_object_get(row,
			    "version"));
			spec.replicas = (int)json_integer_value(
			    json_object_get(row, "replicas"));
			spec.threads = (int)json_integer_value(
			    json_object_get(row, "threads"));
			spec.max_batch = (int)json_integer_value(
			    json_object_get(row, "max_batch"));
			spec.max_queue_delay_us = json_integer_value(
			    json_object_get(row, "max_queue_delay_us"));
			spec.min_replicas = (int)json_integer_value(
			    json_object_get(row, "min_replicas"));
			spec.max_replicas = (int)json_integer_value(
			    json_object_get(row, "max_replicas"));
			snprintf(last, sizeof(last), "%s", json_string_value(
			    json_object_get(row, "id")));
			if (spec.name == NULL || spec.model == NULL ||
			    spec.version == NULL)
				continue;
			/* A canary: start with a version that has traffic,
			 * then apply the whole split. */
			if ((t = deployment_traffic(row, "traffic")) != NULL) {
				json_array_foreach(t, k, e)
					if (json_integer_value(json_object_get(
					    e, "weight")) > 0 &&
					    json_string_value(json_object_get(e,
					    "version")) != NULL) {
						spec.version = json_string_value(
						    json_object_get(e,
						    "version"));
						break;
					}
			}
			m = db_model_get(srv->db, spec.model, spec.version);
			path = json_string_value(json_object_get(m, "path"));
			if (path == NULL) {
				log_warnx("deployment '%s': model %s:%s is "
				    "missing", spec.name, spec.model,
				    spec.version);
				json_decref(m);
				json_decref(t);
				continue;
			}
			spec.path = path;
			model_memory(m, &spec.mem_bytes, &spec.file_bytes);
			/* What was deployed stays deployed, even past a budget
			 * made smaller since. */
			if (sched_mem_deploy(srv->sched, &spec) > 0)
				log_warnx("deployment '%s' does not fit the "
				    "memory budget; starting it anyway",
				    spec.name);
			if (sched_deploy(srv->sched, &spec) == 0) {
				n++;
				if (json_string_value(json_object_get(row,
				    "traffic")) != NULL &&
				    traffic_apply(srv, row) == -1)
					log_warnx("deployment '%s': its traffic "
					    "split cannot be applied",
					    spec.name);
			}
			json_decref(m);
			json_decref(t);
		}
		if (!json_is_true(json_object_get(page, "has_more")))
			break;
		after = last;
	}
	json_decref(page);
	return n;
}

/* --- usage and audit --- */

/* Usage and audit rows page by their integer id. */
static bool
valid_row_cursor(const char *after)
{
	if (after == NULL)
		return true;
	if (*after == '\0' || strlen(after) > 18)
		return false;
	for (const char *p = after; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

static void
usage_list(struct req *r)
{
	const char	*after, *from_s = http_query(r, "from");
	const char	*to_s = http_query(r, "to"), *st, *order;
	struct db_usage_q q;
	int64_t		 from = 0, to = 0;
	int		 limit;

	if (page_params(r, &limit, &after) == -1)
		return;
	if (!valid_row_cursor(after)) {
		http_error(r, 400, "invalid_request", "after",
		    "'after' must be a row id");
		return;
	}
	if ((from_s != NULL && parse_time(from_s, &from) == -1) ||
	    (to_s != NULL && parse_time(to_s, &to) == -1)) {
		http_error(r, 400, "invalid_request", from_s ? "from" : "to",
		    "'from' and 'to' must be Unix seconds, YYYY-MM-DD or "
		    "YYYY-MM-DDTHH:MM:SSZ");
		return;
	}
	if ((order = http_query(r, "order")) != NULL &&
	    strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0) {
		http_error(r, 400, "invalid_request", "order",
		    "'order' must be 'asc' or 'desc'");
		return;
	}
	memset(&q, 0, sizeof(q));
	q.tenant_id = http_query(r, "tenant");
	q.model = http_query(r, "model");
	q.key_id = http_query(r, "key");
	q.from = from;
	q.to = to;
	if ((st = http_query(r, "status")) != NULL) {
		char	*end;
		long	 v = strtol(st, &end, 10);

		if (*st == '\0' || *end != '\0' || v < 100 || v > 599) {
			http_error(r, 400, "invalid_request", "status",
			    "'status' must be an HTTP status code");
			return;
		}
		q.status = (int)v;
	}
	/* desc: the newest first (the dashboard's latest requests); after
	 * is then the lowest id seen. */
	reply_list(r, order != NULL && strcmp(order, "desc") == 0 ?
	    db_usage_find_desc(r->srv->db, &q, after, limit) :
	    db_usage_find(r->srv->db, &q, after, limit));
}

/* --- routing --- */

static void
route_tenant_list(struct req *r, char **arg)
{
	const char	*after;
	int		 limit;

	(void)arg;
	if (page_params(r, &limit, &after) == 0)
		reply_list(r, db_tenant_find(r->srv->db, http_query(r,
		    "status"), http_query(r, "plan"), after, limit));
}

static void
route_tenant_create(struct req *r, char **arg)
{
	(void)arg;
	tenant_create(r);
}

static void
route_tenant_get(struct req *r, char **arg)
{
	json_t	*j;

	if ((j = db_tenant_get(r->srv->db, arg[0])) == NULL) {
		http_error(r, 404, "not_found", NULL,
		    "tenant '%.64s' does not exist", arg[0]);
		return;
	}
	http_reply_json(r, 200, j);
}

static void
route_key_list(struct req *r, char **arg)
{
	const char	*after;
	int		 limit;

	if (page_params(r, &limit, &after) == 0)
		reply_list(r, db_key_find(r->srv->db, arg[0], http_query(r,
		    "status"), after, limit));
}

static void
route_key_create(struct req *r, char **arg)
{
	key_create(r, arg[0]);
}

static void
route_key_revoke(struct req *r, char **arg)
{
	db_key_revoke(r->srv->db, arg[0], admin_actor(r), key_revoked, r);
}

static void
route_issuers(struct req *r, char **arg)
{
	(void)arg;
	admin_issuers_handle(r);
}

static void
route_model_list(struct req *r, char **arg)
{
	const char	*after;
	int		 limit;

	(void)arg;
	if (page_params(r, &limit, &after) == 0)
		reply_list(r, db_model_find(r->srv->db, http_query(r, "name"),
		    after, limit));
}

static void
route_model_create(struct req *r, char **arg)
{
	(void)arg;
	model_create(r);
}

static void
route_deployment_list(struct req *r, char **arg)
{
	const char	*after;
	json_t		*j, *row;
	size_t		 i;
	int		 limit;

	(void)arg;
	if (page_params(r, &limit, &after) == -1)
		return;
	j = db_deployment_find(r->srv->db, http_query(r, "model"), after,
	    limit);
	json_array_foreach(json_object_get(j, "data"), i, row)
		deployment_state(r->srv, row);
	reply_list(r, j);
}

static void
route_deployment_create(struct req *r, char **arg)
{
	(void)arg;
	deployment_create(r);
}

static void
route_deployment_get(struct req *r, char **arg)
{
	json_t	*j;

	if ((j = db_deployment_get(r->srv->db, arg[0])) == NULL) {
		http_error(r, 404, "not_found", NULL,
		    "deployment '%.64s' does not exist", arg[0]);
		return;
	}
	http_reply_json(r, 200, deployment_state(r->srv, j));
}

static void
route_usage(struct req *r, char **arg)
{
	(void)arg;
	usage_list(r);
}

/* GET /admin/v1/audit filters: action (exact or a prefix before a '.'),
 * target, actor, from, to. */
static void
audit_filtered(struct req *r, const char *after, int limit)
{
	struct db_audit_q	 q;
	const char		*from_s = http_query(r, "from");
	const char		*to_s = http_query(r, "to");
	const char		*v;

	memset(&q, 0, sizeof(q));
	q.action = http_query(r, "action");
	q.target = http_query(r, "target");
	q.actor = http_query(r, "actor");
	/* action is also a GLOB prefix: only plain names, no wildcards. */
	for (v = q.action; v != NULL && *v != '\0'; v++)
		if (!((*v >= 'a' && *v <= 'z') || *v == '.' || *v == '_')) {
			http_error(r, 400, "invalid_request", "action",
			    "'action' must be an action name such as "
			    "'tenant.create' or 'tenant'");
			return;
		}
	if ((from_s != NULL && parse_time(from_s, &q.from) == -1) ||
	    (to_s != NULL && parse_time(to_s, &q.to) == -1)) {
		http_error(r, 400, "invalid_request", from_s ? "from" : "to",
		    "'from' and 'to' must be Unix seconds, YYYY-MM-DD or "
		    "YYYY-MM-DDTHH:MM:SSZ");
		return;
	}
	reply_list(r, db_audit_query(r->srv->db, &q, after, limit));
}

static void
route_audit(struct req *r, char **arg)
{
	const char	*after;
	int		 limit;

	(void)arg;
	if (page_params(r, &limit, &after) == -1)
		return;
	if (!valid_row_cursor(after)) {
		http_error(r, 400, "invalid_request", "after",
		    "'after' must be a row id");
		return;
	}
	audit_filtered(r, after, limit);
}

/* --- scheduling: tenant weight, deployment scale --- */

/* A db completion that answers 200 with the changed row. */
static void
reply_changed(void *arg, enum db_status st, json_t *row)
{
	struct req	*r = arg;

	if (st == DB_OK && row != NULL) {
		http_reply_json(r, 200, row);
		return;
	}
	reply_created(r, st, row);
}

/* PATCH /admin/v1/tenants/{id} {"weight": 1-1000, "plan": name,
 * "status": "active"|"suspended"} (any of them): weight is the tenant's
 * share in every deployment's fair queue, applied from its next request;
 * a suspended tenant's keys and tokens stop working at once. */
static void
route_tenant_patch(struct req *r, char **arg)
{
	json_t		*body = http_json_body(r), *w, *v;
	const char	*plan, *status, *k;
	int		 weight = 0;

	if (body == NULL)
		return;
	json_object_foreach(body, k, v)
		if (strcmp(k, "weight") != 0 && strcmp(k, "plan") != 0 &&
		    strcmp(k, "status") != 0) {
			http_error(r, 400, "invalid_request", k,
			    "unknown tenant field '%.64s'", k);
			json_decref(body);
			return;
		}
	w = json_object_get(body, "weight");
	if (w != NULL && (!json_is_integer(w) || json_integer_value(w) < 1 ||
	    json_integer_value(w) > SCHED_WEIGHT_MAX)) {
		json_decref(body);
		http_error(r, 400, "invalid_request", "weight",
		    "'weight' must be an integer from 1 to %d",
		    SCHED_WEIGHT_MAX);
		return;
	}
	if (w != NULL)
		weight = (int)json_integer_value(w);
	v = json_object_get(body, "plan");
	plan = json_string_value(v);
	if (v != NULL && !valid_name(plan)) {
		json_decref(body);
		http_error(r, 400, "invalid_request", "plan", "'plan' must be "
		    "1-64 characters of letters, digits, '.', '_' or '-'");
		return;
	}
	v = json_object_get(body, "status");
	status = json_string_value(v);
	if (v != NULL && (status == NULL || (strcmp(status, "active") != 0 &&
	    strcmp(status, "suspended") != 0))) {
		json_decref(body);
		http_error(r, 400, "invalid_request", "status",
		    "'status' must be 'active' or 'suspended'");
		return;
	}
	if (weight == 0 && plan == NULL && status == NULL) {
		json_decref(body);
		http_error(r, 400, "invalid_request", NULL,
		    "give 'weight', 'plan' or 'status'");
		return;
	}
	db_tenant_update(r->srv->db, arg[0], weight, plan, status,
	    admin_actor(r), reply_changed, r);
	json_decref(body);
}

static void
deployment_scaled(void *arg, enum db_status st, json_t *row)
{
	struct req	*r = arg;
	const char	*name;

	if (st == DB_OK && row != NULL) {
		name = json_string_value(json_object_get(row, "name"));
		if (name != NULL)
			(void)sched_scale(r->srv->sched, name,
			    (int)json_integer_value(json_object_get(row,
			    "replicas")), (int)json_integer_value(
			    json_object_get(row, "min_replicas")),
			    (int)json_integer_value(json_object_get(row,
			    "max_replicas")));
		http_reply_json(r, 200, deployment_state(r->srv, row));
		return;
	}
	reply_created(r, st, row);
}

/* A change whose memory is held (see sched_mem_hold_deploy()) from its
 * check until next, the database write's callback, has applied it. */
struct held_op {
	struct req		*r;
	struct sched_mem_hold	*hold;
	db_done_fn		*next;
};

static void
held_done(void *arg, enum db_status st, json_t *row)
{
	struct held_op	*op = arg;

	op->next(op->r, st, row);
	sched_mem_release(op->hold);
	free(op);
}

static struct held_op *
held_op(struct req *r, struct sched_mem_hold *hold, db_done_fn *next)
{
	struct held_op	*op = xcalloc(1, sizeof(*op));

	op->r = r;
	op->hold = hold;
	op->next = next;
	return op;
}

/* PATCH /admin/v1/deployments/{name} {"replicas", "min_replicas",
 * "max_replicas"} (any of them; 1 <= min <= replicas <= max <= 64):
 * stored, then applied.  Replicas beyond the new count drain (their
 * requests finish) before they stop; between min and max the autoscaler
 * moves the count with the queue. */
static void
route_deployment_patch(struct req *r, char **arg)
{
	json_t		*body = http_json_body(r), *row;
	struct sched_mem_hold *hold;
	bool		 bad = false;
	int		 n, lo, hi;
	uint64_t	 missing;
	char		 msg[256];

	if (body == NULL)
		return;
	if ((row = db_deployment_get(r->srv->db, arg[0])) == NULL ||
	    !sched_exists(r->srv->sched, arg[0])) {
		json_decref(body);
		json_decref(row);
		http_error(r, 404, "not_found", NULL,
		    "deployment '%.64s' does not exist", arg[0]);
		return;
	}
	n = json_int_field(body, "replicas", (int)json_integer_value(
	    json_object_get(row, "replicas")), &bad);
	lo = json_int_field(body, "min_replicas", json_object_get(body,
	    "replicas") && !json_object_get(body, "max_replicas") ? n :
	    (int)json_integer_value(json_object_get(row, "min_replicas")),
	    &bad);
	hi = json_int_field(body, "max_replicas", json_object_get(body,
	    "replicas") && !json_object_get(body, "min_replicas") ? n :
	    (int)json_integer_value(json_object_get(row, "max_replicas")),
	    &bad);
	json_decref(body);
	json_decref(row);
	if (n < lo && !bad)
		n = lo;		/* raising the floor raises the count */
	if (n > hi && !bad)
		n = hi;
	if (bad || lo < 1 || hi > 64 || lo > hi) {
		http_error(r, 400, "invalid_request", "replicas",
		    "'replicas', 'min_replicas' and 'max_replicas' must be "
		    "integers with 1 <= min <= replicas <= max <= 64");
		return;
	}
	if ((missing = sched_mem_hold_scale(r->srv->sched, arg[0], n,
	    &hold)) > 0) {
		memory_message(r->srv, missing, msg, sizeof(msg));
		http_error(r, 409, "memory_budget_exceeded", "replicas", "%s",
		    msg);
		return;
	}
	db_deployment_scale(r->srv->db, arg[0], n, lo, hi, admin_actor(r),
	    held_done, held_op(r, hold, deployment_scaled));
}

/* --- traffic: canary, rollback, delete --- */

static void
deployment_retrafficked(void *arg, enum db_status st, json_t *row)
{
	struct req	*r = arg;

	if (st == DB_OK && row != NULL) {
		if (traffic_apply(r->srv, row) == -1)
			log_warnx("deployment '%s': the scheduler refused its "
			    "traffic split", json_string_value(
			    json_object_get(row, "name")));
		http_reply_json(r, 200, deployment_state(r->srv, row));
		return;
	}
	if (st == DB_NOT_FOUND) {
		json_decref(row);
		http_error(r, 409, "conflict", NULL, "the deployment has no "
		    "previous traffic split");
		return;
	}
	reply_created(r, st, row);
}

/* The replicas a version runs with when a new split omits them: what the
 * current split says, else 1. */
static int
traffic_replicas(json_t *cur, const char *version)
{
	json_t	*e;
	size_t	 i;

	json_array_foreach(cur, i, e)
		if (json_is_string(json_object_get(e, "version")) &&
		    strcmp(json_string_value(json_object_get(e, "version")),
		    version) == 0 &&
		    json_integer_value(json_object_get(e, "replicas")) > 0)
			return (int)json_integer_value(json_object_get(e,
			    "replicas"));
	return 1;
}

/* PUT /admin/v1/deployments/{name}/traffic {"versions":[{"version",
 * "weight" 0-1000, "replicas" 1-64 (optional)}..]}: new versions start,
 * a request goes to version v with probability weight / sum, versions
 * left out or at weight 0 drain and stop.  The split replaced is kept
 * for rollback. */
static void
route_deployment_traffic(struct req *r, char **arg)
{
	json_t		*body = http_json_body(r), *row = NULL, *cur = NULL;
	json_t		*vs, *e, *out = NULL, *m;
	const char	*model, *ver, *err = NULL;
	size_t		 i, j;
	json_int_t	 sum = 0, w, n;
	uint64_t	 missing;
	struct sched_mem_hold *hold;
	char		 msg[256];

	if (body == NULL)
		return;
	if ((row = db_deployment_get(r->srv->db, arg[0])) == NULL ||
	    !sched_exists(r->srv->sched, arg[0])) {
		http_error(r, 404, "not_found", NULL,
		    "deployment '%.64s' does not exist", arg[0]);
		goto out;
	}
	model = json_string_value(json_object_get(row, "model"));
	cur = deployment_traffic(row, "traffic");
	vs = json_object_get(body, "versions");
	if (!json_is_array(vs) || json_array_size(vs) == 0 ||
	    json_array_size(vs) > DEPLOY_MAX_VERSIONS) {
		err = "'versions' must be an array of 1-8 objects";
		goto bad;
	}
	out = json_array();
	json_array_foreach(vs, i, e) {
		ver = json_string_value(json_object_get(e, "version"));
		w = json_integer_value(json_object_get(e, "weight"));
		n = json_object_get(e, "replicas") == NULL ? 0 :
		    json_integer_value(json_object_get(e, "replicas"));
		if (!valid_name(ver) ||
		    !json_is_integer(json_object_get(e, "weight")) ||
		    w < 0 || w > 1000 || (json_object_get(e, "replicas") &&
		    (!json_is_integer(json_object_get(e, "replicas")) ||
		    n < 1 || n > 64))) {
			err = "each version needs a 'version' name, a 'weight' "
			    "of 0-1000 and optionally 'replicas' of 1-64";
			goto bad;
		}
		for (j = 0; j < i; j++)
			if (strcmp(json_string_value(json_object_get(
			    json_array_get(vs, j), "version")), ver) == 0) {
				err = "a version is listed twice";
				goto bad;
			}
		if ((m = db_model_get(r->srv->db, model, ver)) == NULL) {
			http_error(r, 404, "not_found", "versions",
			    "the model '%.64s' has no version '%.64s'",
			    model ? model : "", ver);
			goto out;
		}
		json_decref(m);
		sum += w;
		json_array_append_new(out, json_pack("{s:s, s:I, s:I}",
		    "version", ver, "weight", w, "replicas",
		    n > 0 ? n : (json_int_t)traffic_replicas(cur, ver)));
	}
	if (sum == 0) {
		err = "at least one version needs a weight above 0";
		goto bad;
	}
	if ((missing = traffic_memory(r->srv, row, out, &hold)) > 0) {
		memory_message(r->srv, missing, msg, sizeof(msg));
		http_error(r, 409, "memory_budget_exceeded", "versions", "%s",
		    msg);
		goto out;
	}
	db_deployment_traffic(r->srv->db, arg[0], out, admin_actor(r),
	    held_done, held_op(r, hold, deployment_retrafficked));
	goto out;
 bad:
	http_error(r, 400, "invalid_request", "versions", "%s", err);
 out:
	json_decref(out);
	json_decref(cur);
	json_decref(row);
	json_decref(body);
}

/* POST /admin/v1/deployments/{name}/rollback: back to the split before
 * the last change (which is kept: rolling back twice rolls forward). */
static void
route_deployment_rollback(struct req *r, char **arg)
{
	json_t		*row, *prev;
	struct sched_mem_hold *hold = NULL;
	uint64_t	 missing = 0;
	char		 msg[256];

	if (!sched_exists(r->srv->sched, arg[0])) {
		http_error(r, 404, "not_found", NULL,
		    "deployment '%.64s' does not exist", arg[0]);
		return;
	}
	/* The split rolled back to may start replicas too. */
	if ((row = db_deployment_get(r->srv->db, arg[0])) != NULL &&
	    (prev = deployment_traffic(row, "prev_traffic")) != NULL) {
		missing = traffic_memory(r->srv, row, prev, &hold);
		json_decref(prev);
	}
	json_decref(row);
	if (missing > 0) {
		memory_message(r->srv, missing, msg, sizeof(msg));
		http_error(r, 409, "memory_budget_exceeded", NULL, "%s", msg);
		return;
	}
	db_deployment_rollback(r->srv->db, arg[0], admin_actor(r),
	    held_done, held_op(r, hold, deployment_retrafficked));
}

static void
deployment_deleted(void *arg, enum db_status st, json_t *row)
{
	struct req	*r = arg;
	const char	*name;

	if (st == DB_OK && row != NULL) {
		name = json_string_value(json_object_get(row, "name"));
		if (name != NULL)
			(void)sched_remove(r->srv->sched, name);
		json_object_set_new(row, "state", json_string("draining"));
		http_reply_json(r, 200, row);
		return;
	}
	reply_created(r, st, row);
}

/* DELETE /admin/v1/deployments/{name}: new requests see no such model;
 * queued and running ones finish, then its replicas stop. */
static void
route_deployment_delete(struct req *r, char **arg)
{
	if (!sched_exists(r->srv->sched, arg[0])) {
		http_error(r, 404, "not_found", NULL,
		    "deployment '%.64s' does not exist", arg[0]);
		return;
	}
	db_deployment_delete(r->srv->db, arg[0], admin_actor(r),
	    deployment_deleted, r);
}

#define ROUTE_ARGS	4

/* Paths under /admin/v1/; "*" matches one path segment, passed to the
 * handler in order; a trailing "**" matches the rest (sub-routers). */
static const struct admin_route {
	int		 method;
	const char	*name;		/* for Allow */
	const char	*pattern;
	void		(*fn)(struct req *, char **);
} admin_routes[] = {
	{ EVHTTP_REQ_GET, "GET", "tenants", route_tenant_list },
	{ EVHTTP_REQ_POST, "POST", "tenants", route_tenant_create },
	{ EVHTTP_REQ_GET, "GET", "tenants/*", route_tenant_get },
	{ EVHTTP_REQ_PATCH, "PATCH", "tenants/*", route_tenant_patch },
	{ EVHTTP_REQ_GET, "GET", "tenants/*/keys", route_key_list },
	{ EVHTTP_REQ_POST, "POST", "tenants/*/keys", route_key_create },
	{ EVHTTP_REQ_GET, "GET", "tenants/*/quota", admin_tenant_quota_get },
	{ EVHTTP_REQ_PUT, "PUT", "tenants/*/quota", admin_tenant_quota_put },
	{ EVHTTP_REQ_POST, "POST", "tenants/*/suspend", admin_tenant_suspend },
	{ EVHTTP_REQ_POST, "POST", "tenants/*/resume", admin_tenant_resume },
	{ EVHTTP_REQ_DELETE, "DELETE", "keys/*", route_key_revoke },
	{ EVHTTP_REQ_GET, "GET", "keys/*/quota", admin_key_quota_get },
	{ EVHTTP_REQ_PUT, "PUT", "keys/*/quota", admin_key_quota_put },
	{ EVHTTP_REQ_POST, "POST", "keys/*/rotate", admin_key_rotate },
	{ EVHTTP_REQ_GET, "GET", "prices", admin_price_list },
	{ EVHTTP_REQ_POST, "POST", "prices", admin_price_add },
	{ EVHTTP_REQ_GET, "GET", "issuers", route_issuers },
	{ EVHTTP_REQ_POST, "POST", "issuers", route_issuers },
	{ EVHTTP_REQ_GET, "GET", "issuers/*", route_issuers },
	{ EVHTTP_REQ_DELETE, "DELETE", "issuers/*", route_issuers },
	{ EVHTTP_REQ_GET, "GET", "models", route_model_list },
	{ EVHTTP_REQ_POST, "POST", "models", route_model_create },
	{ EVHTTP_REQ_GET, "GET", "deployments", route_deployment_list },
	{ EVHTTP_REQ_POST, "POST", "deployments", route_deployment_create },
	{ EVHTTP_REQ_GET, "GET", "deployments/*", route_deployment_get },
	{ EVHTTP_REQ_PATCH, "PATCH", "deployments/*",
	    route_deployment_patch },
	{ EVHTTP_REQ_DELETE, "DELETE", "deployments/*",
	    route_deployment_delete },
	{ EVHTTP_REQ_PUT, "PUT", "deployments/*/traffic",
	    route_deployment_traffic },
	{ EVHTTP_REQ_POST, "POST", "deployments/*/rollback",
	    route_deployment_rollback },
	{ EVHTTP_REQ_GET, "GET", "usage", route_usage },
	{ EVHTTP_REQ_GET, "GET", "usage/report", admin_usage_report },
	{ EVHTTP_REQ_GET, "GET", "usage/report.csv", admin_usage_report_csv },
	{ EVHTTP_REQ_GET, "GET", "usage/series", admin_usage_series },
	{ EVHTTP_REQ_GET, "GET", "invoices", admin_invoice_list },
	{ EVHTTP_REQ_GET, "GET", "invoices/*/*", admin_invoice_get },
	{ EVHTTP_REQ_GET, "GET", "billing/periods", admin_period_list },
	{ EVHTTP_REQ_POST, "POST", "billing/periods/*/close",
	    admin_period_close },
	{ EVHTTP_REQ_GET, "GET", "audit", route_audit },
	{ EVHTTP_REQ_GET, "GET", "openapi.json", admin_openapi },
};

void
admin_routes_each(void (*fn)(void *, const char *, const char *),
    void *arg)
{
	for (size_t i = 0; i < sizeof(admin_routes) / sizeof(admin_routes[0]);
	    i++)
		fn(arg, admin_routes[i].name, admin_routes[i].pattern);
}

/* Does parts[from..n) match pattern?  Fills arg with the "*" segments. */
static bool
route_match(const char *pattern, char **parts, int n, char **arg)
{
	char	 pat[128], *seg, *save = NULL;
	int	 i = 0, a = 0;

	snprintf(pat, sizeof(pat), "%s", pattern);
	for (seg = strtok_r(pat, "/", &save); seg != NULL;
	    seg = strtok_r(NULL, "/", &save), i++) {
		if (strcmp(seg, "**") == 0)
			return true;
		if (i >= n)
			return false;
		if (strcmp(seg, "*") == 0) {
			if (a < ROUTE_ARGS)
				arg[a++] = parts[i];
		} else if (strcmp(seg, parts[i]) != 0)
			return false;
	}
	return i == n;
}

void
admin_handle(struct req *r)
{
	struct server	*srv = r->srv;
	enum auth_status st;
	enum console_auth cst;
	char		*arg[ROUTE_ARGS] = { NULL };
	char		 allow[64] = "";
	size_t		 i;
	bool		 metrics;

	/* GET /metrics: the admin credential too (metrics.h). */
	metrics = r->n_parts == 1 && strcmp(r->parts[0], "metrics") == 0;
	if (!metrics && (r->n_parts < 2 || strcmp(r->parts[0], "admin") != 0 ||
	    strcmp(r->parts[1], "v1") != 0)) {
		console_handle(r);	/* the web console's pages */
		return;
	}
	/* The bearer token wins; without one, a console session may do. */
	if (http_header(r, "Authorization") == NULL &&
	    (cst = console_authorize(r)) != CONSOLE_AUTH_NONE) {
		if (cst == CONSOLE_AUTH_REPLIED)
			return;
	} else if ((st = auth_admin(srv->admin_hash,
	    http_header(r, "Authorization"))) != AUTH_OK) {
		http_add_header(r, "WWW-Authenticate",
		    "Bearer realm=\"maas-admin\"");
		http_error(r, 401, "invalid_admin_token", NULL, "%s",
		    st == AUTH_MISSING ? "missing admin credentials" :
		    "incorrect admin token");
		return;
	}
	if (metrics) {
		if (r->method != EVHTTP_REQ_GET)
			http_method_not_allowed(r, "GET");
		else
			metrics_handle(r);
		return;
	}
	if (admin_idem_begin(r))
		return;
	for (i = 0; i < sizeof(admin_routes) / sizeof(admin_routes[0]); i++) {
		const struct admin_route *rt = &admin_routes[i];

		if (!route_match(rt->pattern, r->parts + 2, r->n_parts - 2,
		    arg))
			continue;
		if (rt->method == 0 || rt->method == r->method) {
			rt->fn(r, arg);
			return;
		}
		snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow),
		    "%s%s", allow[0] ? ", " : "", rt->name);
	}
	if (allow[0] != '\0') {
		http_method_not_allowed(r, allow);
		return;
	}
	http_error(r, 404, "not_found", NULL, "nothing at '%.200s'", r->path);
}
