/* tests/unit/dbfix.h - a fixture for unit tests that need a real SQLite
 * database: a temporary directory, an event loop, db_open() and one tenant,
 * plus a way to wait for a db callback.  dbfix_done is the callback to pass
 * with the fixture as its argument; dbfix_wait runs the loop until it came
 * and leaves its status and row in the fixture (the row is the caller's). */
#ifndef TESTS_UNIT_DBFIX_H
#define TESTS_UNIT_DBFIX_H
#include <stdbool.h>

#include <jansson.h>

#include "db/db.h"

struct event_base;

struct dbfix {
	char			 dir[64];
	struct event_base	*base;
	struct db		*db;
	char			 tenant[64];
	bool			 done;
	enum db_status		 st;
	json_t			*row;
};

/* A fresh database in /tmp/maas-<tag>-XXXXXX with tenant "acme". */
struct dbfix	*dbfix_open(const char *tag);
void		 dbfix_close(struct dbfix *);	/* and removes the directory */
void		 dbfix_done(void *arg, enum db_status, json_t *row);
void		 dbfix_wait(struct dbfix *);
#endif
