/* admin/console.c - see console.h.
 *
 * The asset tree is small and changes only with a new release, so it is
 * read whole at start: a request is then a table lookup by a path whose
 * every component was checked by webform_asset_part(), and symbolic links
 * in the tree are never followed.  Session ids are compared by their
 * SHA-256, CSRF tokens in constant time; neither is ever logged. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/http.h>
#include <openssl/crypto.h>

#include "admin/console.h"
#include "admin/webform.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "gateway/auth.h"
#include "gateway/http.h"
#include "gateway/server.h"

#define ASSET_PATH_MAX	256
#define ASSET_DEPTH	3		/* directories below web/ */
#define SESSION_HEX	64		/* 256 bits */
#define TOKEN_FIELD_MAX	128

/* Content-Security-Policy of every console answer: our own files only,
 * no inline script or style, never framed. */
#define CONSOLE_CSP	"default-src 'none'; script-src 'self'; " \
	"style-src 'self'; img-src 'self' data:; connect-src 'self'; " \
	"font-src 'self'; form-action 'self'; frame-ancestors 'none'; " \
	"base-uri 'none'"

struct asset {
	char		 path[ASSET_PATH_MAX];	/* relative, "css/app.css" */
	const char	*ctype;			/* static string */
	char		*data;			/* owned */
	size_t		 len;
};

struct session {
	bool		 used;
	uint8_t		 id_hash[32];		/* SHA-256 of the cookie */
	char		 csrf[SESSION_HEX + 1];	/* X-CSRF-Token */
	int64_t		 created_us;		/* monotonic */
	int64_t		 seen_us;		/* last authenticated use */
	int64_t		 wall_expires;		/* unix seconds, for the page */
};

struct console {
	struct asset	*assets;		/* n_assets, owned */
	size_t		 n_assets;
	size_t		 total;			/* bytes of all assets */
	int		 idle_s;		/* session limits */
	int		 ttl_s;
	struct session	 sessions[CONSOLE_SESSIONS_MAX];
};

static const char	*asset_ctype(const char *name);
static void		 load_dir(struct console *, int dirfd,
			    const char *prefix, int depth);
static const struct asset *asset_find(struct console *, struct req *);
static void		 random_hex(char *out, size_t nbytes);
static struct session	*session_find(struct console *, struct req *);
static struct session	*session_new(struct console *, char *cookie);
static bool		 session_live(const struct console *,
			    const struct session *, int64_t now);
static int		 env_seconds(const char *name, int def);
static bool		 same_origin(struct req *);
static bool		 csrf_ok(const struct session *, struct req *);
static void		 security_headers(struct req *);
static void		 route_login(struct req *);
static void		 route_logout(struct req *);
static void		 route_session(struct req *);
static void		 route_asset(struct req *);

/* --- assets --- */

static const char *
asset_ctype(const char *name)
{
	static const struct {
		const char	*ext;
		const char	*ctype;
	} types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".mjs", "text/javascript; charset=utf-8" },
		{ ".json", "application/json" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
		{ ".ico", "image/x-icon" },
		{ ".txt", "text/plain; charset=utf-8" },
		{ ".woff2", "font/woff2" },
	};
	size_t	n = strlen(name), e;

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		e = strlen(types[i].ext);
		if (n > e && strcmp(name + n - e, types[i].ext) == 0)
			return types[i].ctype;
	}
	return NULL;
}

/* Reads the regular files of dirfd (owned: closed here) whose names are
 * safe and whose type we know, and the directories below it. */
static void
load_dir(struct console *c, int dirfd, const char *prefix, int depth)
{
	DIR		*d;
	struct dirent	*de;
	struct asset	*a;
	struct stat	 st;
	char		 rel[ASSET_PATH_MAX];
	int		 fd, sub;

	if ((d = fdopendir(dirfd)) == NULL) {
		log_warn("console: cannot read '%s'", prefix);
		close(dirfd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		const char	*ctype = NULL;
		ssize_t		 n;
		size_t		 got;

		if (!webform_asset_part(de->d_name))
			continue;
		if (snprintf(rel, sizeof(rel), "%s%s%s", prefix,
		    prefix[0] ? "/" : "", de->d_name) >= (int)sizeof(rel))
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (depth >= ASSET_DEPTH)
				continue;
			sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
			if (sub != -1)
				load_dir(c, sub, rel, depth + 1);
			continue;
		}
		if (!S_ISREG(st.st_mode) ||
		    (ctype = asset_ctype(de->d_name)) == NULL)
			continue;
		if (c->n_assets == CONSOLE_ASSETS_MAX ||
		    (size_t)st.st_size > CONSOLE_ASSET_BYTES ||
		    c->total + (size_t)st.st_size > CONSOLE_TOTAL_BYTES) {
			log_warnx("console: asset '%s' skipped: over the limits",
			    rel);
			continue;
		}
		if ((fd = openat(dirfd, de->d_name, O_RDONLY | O_NOFOLLOW |
		    O_CLOEXEC)) == -1)
			continue;
		if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
		    (size_t)st.st_size > CONSOLE_ASSET_BYTES) {
			close(fd);
			continue;
		}
		c->assets = xreallocarray(c->assets, c->n_assets + 1,
		    sizeof(*c->assets));
		a = &c->assets[c->n_assets];
		snprintf(a->path, sizeof(a->path), "%s", rel);
		a->ctype = ctype;
		a->data = xmalloc((size_t)st.st_size + 1);
		for (got = 0; got < (size_t)st.st_size; got += (size_t)n)
			if ((n = read(fd, a->data + got,
			    (size_t)st.st_size - got)) <= 0)
				break;
		close(fd);
		if (got != (size_t)st.st_size) {
			log_warnx("console: cannot read asset '%s'", rel);
			free(a->data);
			continue;
		}
		a->len = got;
		c->total += got;
		c->n_assets++;
	}
	closedir(d);
}

/* The asset a GET names: "/" is index.html; every component must be
 * safe (no "..", no hidden files) and there are at most 4 of them. */
static const struct asset *
asset_find(struct console *c, struct req *r)
{
	char	path[ASSET_PATH_MAX] = "";
	size_t	n = 0;

	if (r->n_parts == 0)
		snprintf(path, sizeof(path), "index.html");
	else if (r->n_parts > ASSET_DEPTH + 1)
		return NULL;
	for (int i = 0; i < r->n_parts; i++) {
		if (!webform_asset_part(r->parts[i]))
			return NULL;
		n += (size_t)snprintf(path + n, sizeof(path) - n, "%s%s",
		    i > 0 ? "/" : "", r->parts[i]);
		if (n >= sizeof(path))
			return NULL;
	}
	for (size_t i = 0; i < c->n_assets; i++)
		if (strcmp(c->assets[i].path, path) == 0)
			return &c->assets[i];
	return NULL;
}

/* --- sessions --- */

static void
random_hex(char *out, size_t nbytes)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t		  rnd[64];

	if (nbytes > sizeof(rnd) ||
	    getrandom(rnd, nbytes, 0) != (ssize_t)nbytes)
		fatal("getrandom");
	for (size_t i = 0; i < nbytes; i++) {
		out[2 * i] = hex[rnd[i] >> 4];
		out[2 * i + 1] = hex[rnd[i] & 15];
	}
	out[2 * nbytes] = '\0';
	OPENSSL_cleanse(rnd, sizeof(rnd));
}

static bool
session_live(const struct console *c, const struct session *s, int64_t now)
{
	return s->used &&
	    now - s->seen_us < (int64_t)c->idle_s * 1000000 &&
	    now - s->created_us < (int64_t)c->ttl_s * 1000000;
}

/* Session limits can be shortened for tests (MAAS_CONSOLE_IDLE_S,
 * MAAS_CONSOLE_TTL_S); anything but 1..def is ignored. */
static int
env_seconds(const char *name, int def)
{
	const char	*v = getenv(name);
	char		*end;
	long		 n;

	if (v == NULL)
		return def;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || end == v || n < 1 || n > def) {
		log_warnx("console: %s ignored: not 1 to %d", name, def);
		return def;
	}
	return (int)n;
}

/* The live session the request's cookie names, or NULL. */
static struct session *
session_find(struct console *c, struct req *r)
{
	char		 v[SESSION_HEX + 2];
	uint8_t		 h[32];
	int64_t		 now = http_now_us();
	struct session	*found = NULL;

	if (webform_cookie(http_header(r, "Cookie"), CONSOLE_COOKIE, v,
	    sizeof(v)) == -1 || strlen(v) != SESSION_HEX)
		return NULL;
	auth_sha256(v, SESSION_HEX, h);
	OPENSSL_cleanse(v, sizeof(v));
	for (size_t i = 0; i < CONSOLE_SESSIONS_MAX; i++) {
		struct session *s = &c->sessions[i];

		if (!s->used)
			continue;
		if (!session_live(c, s, now)) {
			OPENSSL_cleanse(s, sizeof(*s));
			continue;
		}
		if (CRYPTO_memcmp(s->id_hash, h, sizeof(h)) == 0)
			found = s;
	}
	return found;
}

/* A new session; its cookie value (SESSION_HEX + 1 bytes) goes to
 * cookie.  A full table drops the session used least recently. */
static struct session *
session_new(struct console *c, char *cookie)
{
	struct session	*s = NULL;
	int64_t		 now = http_now_us();

	for (size_t i = 0; i < CONSOLE_SESSIONS_MAX; i++) {
		struct session *t = &c->sessions[i];

		if (!t->used || !session_live(c, t, now)) {
			s = t;
			break;
		}
		if (s == NULL || t->seen_us < s->seen_us)
			s = t;
	}
	memset(s, 0, sizeof(*s));
	random_hex(cookie, SESSION_HEX / 2);
	auth_sha256(cookie, SESSION_HEX, s->id_hash);
	random_hex(s->csrf, SESSION_HEX / 2);
	s->used = true;
	s->created_us = s->seen_us = now;
	s->wall_expires = http_wall_us() / 1000000 + c->ttl_s;
	return s;
}

/* An Origin header, when the browser sends one, must be this server:
 * "https://" and the Host the request was sent to. */
static bool
same_origin(struct req *r)
{
	const char	*origin = http_header(r, "Origin");
	const char	*host = http_header(r, "Host");
	const char	*site = http_header(r, "Sec-Fetch-Site");

	if (site != NULL && strcmp(site, "same-origin") != 0 &&
	    strcmp(site, "none") != 0)
		return false;
	if (origin == NULL)
		return true;
	return host != NULL && strncmp(origin, "https://", 8) == 0 &&
	    strcmp(origin + 8, host) == 0;
}

static bool
csrf_ok(const struct session *s, struct req *r)
{
	const char	*t = http_header(r, "X-CSRF-Token");

	return t != NULL && strnlen(t, SESSION_HEX + 1) == SESSION_HEX &&
	    CRYPTO_memcmp(t, s->csrf, SESSION_HEX) == 0;
}

enum console_auth
console_authorize(struct req *r)
{
	struct console	*c = r->srv->console;
	struct session	*s;
	char		 v[WEBFORM_HEADER_MAX + 1];

	/* Any cookie of that name, well-formed or not, means the caller
	 * meant the session: it is then refused rather than ignored. */
	if (c == NULL || webform_cookie(http_header(r, "Cookie"),
	    CONSOLE_COOKIE, v, sizeof(v)) == -1)
		return CONSOLE_AUTH_NONE;
	OPENSSL_cleanse(v, sizeof(v));
	if ((s = session_find(c, r)) == NULL) {
		http_error(r, 401, "session_expired", NULL, "%s",
		    "the console session is unknown or has expired; log in "
		    "again");
		return CONSOLE_AUTH_REPLIED;
	}
	if (r->method != EVHTTP_REQ_GET && r->method != EVHTTP_REQ_HEAD &&
	    (!same_origin(r) || !csrf_ok(s, r))) {
		log_warnx("console: call refused: missing or wrong CSRF token "
		    "or cross-origin request (req=%s)", r->id);
		http_error(r, 403, "csrf_token_invalid", NULL, "%s",
		    "a call that changes state with the session cookie needs "
		    "the session's X-CSRF-Token header, from this origin");
		return CONSOLE_AUTH_REPLIED;
	}
	s->seen_us = http_now_us();
	return CONSOLE_AUTH_OK;
}

/* --- routes --- */

static void
security_headers(struct req *r)
{
	http_add_header(r, "Content-Security-Policy", CONSOLE_CSP);
	http_add_header(r, "X-Content-Type-Options", "nosniff");
	http_add_header(r, "X-Frame-Options", "DENY");
	http_add_header(r, "Referrer-Policy", "same-origin");
	http_add_header(r, "Cross-Origin-Opener-Policy", "same-origin");
	http_add_header(r, "Strict-Transport-Security", "max-age=31536000");
}

static void
route_login(struct req *r)
{
	struct console	*c = r->srv->console;
	const char	*ctype = http_header(r, "Content-Type");
	const char	*body;
	char		 token[TOKEN_FIELD_MAX], bearer[TOKEN_FIELD_MAX + 8];
	char		 cookie[SESSION_HEX + 1], set[256];
	size_t		 len;
	bool		 ok;

	if (r->method != EVHTTP_REQ_POST) {
		http_method_not_allowed(r, "POST");
		return;
	}
	if (!same_origin(r)) {
		http_error(r, 403, "cross_origin", NULL, "%s",
		    "log in from this server's own login page");
		return;
	}
	if (ctype == NULL || strncmp(ctype,
	    "application/x-www-form-urlencoded", 33) != 0) {
		http_error(r, 415, "unsupported_media_type", NULL, "%s",
		    "send the login form as "
		    "application/x-www-form-urlencoded");
		return;
	}
	body = http_body(r, &len);
	if (len > WEBFORM_BODY_MAX) {
		http_error(r, 413, "body_too_large", NULL,
		    "the login form is larger than %d bytes", WEBFORM_BODY_MAX);
		return;
	}
	ok = webform_field(body, len, "token", token, sizeof(token)) == 0;
	if (ok) {
		snprintf(bearer, sizeof(bearer), "Bearer %s", token);
		ok = auth_admin(r->srv->admin_hash, bearer) == AUTH_OK;
	}
	OPENSSL_cleanse(token, sizeof(token));
	OPENSSL_cleanse(bearer, sizeof(bearer));
	security_headers(r);
	if (!ok) {
		log_warnx("console: login refused (req=%s)", r->id);
		http_add_header(r, "Location", "/login.html#failed");
		http_reply(r, 303, "text/plain", "", 0);
		return;
	}
	(void)session_new(c, cookie);
	snprintf(set, sizeof(set), "%s=%s; Max-Age=%d; Path=/; Secure; "
	    "HttpOnly; SameSite=Strict", CONSOLE_COOKIE, cookie, c->ttl_s);
	OPENSSL_cleanse(cookie, sizeof(cookie));
	http_add_header(r, "Set-Cookie", set);
	OPENSSL_cleanse(set, sizeof(set));
	http_add_header(r, "Location", "/");
	log_info("console: session started (req=%s)", r->id);
	http_reply(r, 303, "text/plain", "", 0);
}

static void
route_logout(struct req *r)
{
	struct session	*s;

	if (r->method != EVHTTP_REQ_POST) {
		http_method_not_allowed(r, "POST");
		return;
	}
	if ((s = session_find(r->srv->console, r)) != NULL) {
		if (!same_origin(r) || !csrf_ok(s, r)) {
			http_error(r, 403, "csrf_token_invalid", NULL, "%s",
			    "logging out needs the session's X-CSRF-Token "
			    "header");
			return;
		}
		OPENSSL_cleanse(s, sizeof(*s));
	}
	http_add_header(r, "Set-Cookie", CONSOLE_COOKIE "=; Max-Age=0; "
	    "Path=/; Secure; HttpOnly; SameSite=Strict");
	http_reply_json(r, 200, json_pack("{s:s}", "status", "logged_out"));
}

/* The page reads its CSRF token here (same-origin only: no CORS). */
static void
route_session(struct req *r)
{
	struct session	*s;

	if (r->method != EVHTTP_REQ_GET) {
		http_method_not_allowed(r, "GET");
		return;
	}
	if ((s = session_find(r->srv->console, r)) == NULL) {
		http_error(r, 401, "session_expired", NULL, "%s",
		    "no console session; log in");
		return;
	}
	s->seen_us = http_now_us();
	http_reply_json(r, 200, json_pack("{s:s, s:I}", "csrf_token", s->csrf,
	    "expires_at", (json_int_t)s->wall_expires));
}

static void
route_asset(struct req *r)
{
	const struct asset *a;

	/* A path that is no asset is not found whatever the method (the
	 * tenant API's POST routes are simply not on this port). */
	security_headers(r);
	if ((a = asset_find(r->srv->console, r)) == NULL) {
		http_error(r, 404, "not_found", NULL, "no route for '%.200s'",
		    r->path);
		return;
	}
	if (r->method != EVHTTP_REQ_GET && r->method != EVHTTP_REQ_HEAD) {
		http_method_not_allowed(r, "GET, HEAD");
		return;
	}
	http_reply(r, 200, a->ctype, a->data, a->len);
}

/* --- exports --- */

struct console *
console_new(const char *web_dir)
{
	struct console	*c = xcalloc(1, sizeof(*c));
	int		 fd;

	c->idle_s = env_seconds("MAAS_CONSOLE_IDLE_S", CONSOLE_IDLE_S);
	c->ttl_s = env_seconds("MAAS_CONSOLE_TTL_S", CONSOLE_TTL_S);

	if (web_dir == NULL) {
		log_warnx("console: no web directory found; the console "
		    "pages are not served (use --web-dir)");
		return c;
	}
	if ((fd = open(web_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_warn("console: cannot open web directory '%s'", web_dir);
		return c;
	}
	load_dir(c, fd, "", 0);
	log_info("console: %zu asset(s), %zu bytes from '%s'", c->n_assets,
	    c->total, web_dir);
	return c;
}

void
console_free(struct console *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_assets; i++)
		free(c->assets[i].data);
	free(c->assets);
	OPENSSL_cleanse(c->sessions, sizeof(c->sessions));
	free(c);
}

size_t
console_assets(const struct console *c)
{
	return c == NULL ? 0 : c->n_assets;
}

void
console_handle(struct req *r)
{
	if (r->n_parts == 1 && strcmp(r->parts[0], "login") == 0)
		route_login(r);
	else if (r->n_parts == 1 && strcmp(r->parts[0], "logout") == 0)
		route_logout(r);
	else if (r->n_parts == 1 && strcmp(r->parts[0], "session") == 0)
		route_session(r);
	else
		route_asset(r);
}
