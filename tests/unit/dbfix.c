/* tests/unit/dbfix.c - see dbfix.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

#include <cmocka.h>
#include <event2/event.h>

#include "tests/unit/dbfix.h"

void
dbfix_done(void *arg, enum db_status st, json_t *row)
{
	struct dbfix	*f = arg;

	f->done = true;
	f->st = st;
	f->row = row;
}

void
dbfix_wait(struct dbfix *f)
{
	struct timeval	tv = { 0, 10000 };

	for (int i = 0; i < 10000 && !f->done; i++) {
		event_base_loopexit(f->base, &tv);
		event_base_dispatch(f->base);
	}
	assert_true(f->done);
	f->done = false;
}

struct dbfix *
dbfix_open(const char *tag)
{
	struct dbfix	*f = calloc(1, sizeof(*f));
	char		 path[128];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/maas-%s-XXXXXX", tag);
	assert_non_null(mkdtemp(f->dir));
	snprintf(path, sizeof(path), "%s/maas.db", f->dir);
	f->base = event_base_new();
	assert_non_null(f->db = db_open(path, f->base));
	db_tenant_create(f->db, "acme", "test", dbfix_done, f);
	dbfix_wait(f);
	assert_int_equal(f->st, DB_OK);
	snprintf(f->tenant, sizeof(f->tenant), "%s",
	    json_string_value(json_object_get(f->row, "id")));
	json_decref(f->row);
	return f;
}

void
dbfix_close(struct dbfix *f)
{
	char	cmd[128];

	db_close(f->db);
	event_base_free(f->base);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
}
