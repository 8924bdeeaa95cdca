# db/module.mk - SQLite store.
DB_SRCS := db/db.c db/schema.c
