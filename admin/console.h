/* admin/console.h - the web console on the admin port.
 *
 * Serves the static assets of web/ under "/" (read into memory once at
 * start, so no request touches the disk or can name a file outside the
 * tree), and lets a browser log in with the admin token:
 *
 *   POST /login     form field "token" -> 303 to "/" with the session
 *                   cookie, or 303 to "/login.html#failed"
 *   GET  /session   {"csrf_token","expires_at"} of the caller's session
 *   POST /logout    ends the session (needs X-CSRF-Token)
 *
 * Sessions live in maasd's memory only (a restart logs everyone out): the
 * cookie holds 256 random bits, the table keeps only their SHA-256, and a
 * session ends after CONSOLE_IDLE_S without use or CONSOLE_TTL_S in all
 * (shorter with MAAS_CONSOLE_IDLE_S and MAAS_CONSOLE_TTL_S, for tests).
 * The admin API accepts the cookie instead of the bearer token; a call
 * that changes state with it must carry the session's CSRF token in
 * X-CSRF-Token (and a same-origin Origin if it sends one).  Event-loop
 * thread only. */
#ifndef ADMIN_CONSOLE_H
#define ADMIN_CONSOLE_H
#include <stddef.h>

struct console;
struct req;

#define CONSOLE_COOKIE		"maas_session"
#define CONSOLE_SESSIONS_MAX	256	/* the oldest is dropped past it */
#define CONSOLE_IDLE_S		(60 * 60)
#define CONSOLE_TTL_S		(12 * 60 * 60)
#define CONSOLE_ASSETS_MAX	512	/* files */
#define CONSOLE_ASSET_BYTES	(4u << 20)	/* largest file */
#define CONSOLE_TOTAL_BYTES	(64u << 20)	/* all files */

enum console_auth {
	CONSOLE_AUTH_NONE,	/* no session cookie: try the bearer token */
	CONSOLE_AUTH_OK,	/* a live session (CSRF checked if needed) */
	CONSOLE_AUTH_REPLIED,	/* refused: 401 or 403 already sent */
};

/* Reads the asset tree at web_dir (NULL or unreadable: the console
 * answers 404 for assets, but login and sessions still work).  Caller
 * frees with console_free(). */
struct console	*console_new(const char *web_dir);
void		 console_free(struct console *);
/* Number of asset files loaded. */
size_t		 console_assets(const struct console *);
/* Answers a request on the admin port outside /admin/ and /metrics. */
void		 console_handle(struct req *);
/* Authenticates an admin API call by its session cookie. */
enum console_auth console_authorize(struct req *);
#endif
