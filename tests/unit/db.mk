# tests/unit/db.mk - unit tests of db/ (real SQLite files, real event_base).
UNIT_TESTS += test_db
test_db_SRCS := tests/unit/test_db.c $(DB_SRCS) $(COMMON_SRCS)
test_db_PKGS := sqlite3 jansson libevent openssl
