/* db/schema.h - numbered schema migrations of the maas database.
 *
 * Migration n (counting from 1) moves a database from PRAGMA user_version
 * n-1 to n.  Each runs in its own transaction together with the
 * user_version bump, so a crash leaves the database at a whole version.
 * Only db/db.c calls these, on the write connection, before any thread
 * shares it. */
#ifndef DB_SCHEMA_H
#define DB_SCHEMA_H

struct sqlite3;

/* Number of migrations this binary knows: the version it migrates to. */
int	schema_latest(void);
/* Applies every migration newer than the database's user_version, in
 * order.  Refuses a database newer than this binary.  On success stores the
 * resulting version in *version and returns 0; -1 after logging. */
int	schema_migrate(struct sqlite3 *, int *version);
#endif
