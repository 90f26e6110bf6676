#!/usr/bin/env bash
# admit.t - workers/admit against the private MariaDB of t/run: runs t/itest/admit, whose TAP is
# this test's (every verdict of §4 steps 1-6, slot give-back, the cap under 4 processes).
[ -n "${HERALD_MYSQL_URL:-}" ] || { echo "Bail out! no HERALD_MYSQL_URL: run through t/run"; exit 1; }
prog="$HERALD_BUILDDIR/t/itest/admit"
[ -x "$prog" ] || { echo "Bail out! $prog not built (make check builds it)"; exit 1; }
# the schema first, so the test runs alone as well as after others
HERALD_SQL_DIR=${HERALD_SQL_DIR:-$HERALD_SRCDIR/sql} "$HERALD_BUILDDIR/heraldctl" db migrate > /dev/null ||
	{ echo "Bail out! db migrate failed"; exit 1; }
exec "$prog"
