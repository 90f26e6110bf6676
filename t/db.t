#!/usr/bin/env bash
# db.t - shared/db against the private MariaDB of t/run: runs t/itest/db_reconnect, whose TAP
# is this test's (prepared round trips, hostile data, a killed connection outside and inside a
# transaction, the atomic cap increment, connect timeouts). It creates and drops itest_* tables.
[ -n "${HERALD_MYSQL_URL:-}" ] || { echo "Bail out! no HERALD_MYSQL_URL: run through t/run"; exit 1; }
prog="$HERALD_BUILDDIR/t/itest/db_reconnect"
[ -x "$prog" ] || { echo "Bail out! $prog not built (make check builds it)"; exit 1; }
exec "$prog"
