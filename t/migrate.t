#!/usr/bin/env bash
# migrate.t - heraldctl db migrate / db version against the private MariaDB of t/run.
# It works in a database of its own, DB_t_migrate beside the DB of HERALD_MYSQL_URL, which it
# empties and drops (kept with HERALD_T_KEEP=1): other tests share DB while this one runs, so it
# needs the right to create it (scripts/stack.sh: GRANT ALL ON `herald\_%`.* TO herald).
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_ctl
sqldir=$HERALD_SQL_DIR
client=$(command -v mariadb || command -v mysql) || bail "no mariadb/mysql client"
plan 29

tmp=$(mktemp -d /tmp/herald-migrate.XXXXXX)

# DB_t_migrate on the server of mysql://user:pass@host:port/DB; sql runs SQL in it
u=${HERALD_MYSQL_URL#mysql://}
creds=${u%@*} hostpart=${u##*@}
hp=${hostpart%%/*}
tdb=${hostpart#*/}_t_migrate
sql_init "$tmp" "$tdb"
cleanup() {
	[ "${HERALD_T_KEEP:-0}" = 1 ] ||
		"$client" --defaults-file="$tmp/my.cnf" -e "DROP DATABASE IF EXISTS \`$tdb\`" 2> /dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
"$client" --defaults-file="$tmp/my.cnf" -e "CREATE DATABASE IF NOT EXISTS \`$tdb\` CHARACTER SET utf8mb4" ||
	bail "cannot create database $tdb: the herald user needs GRANT ALL ON \`herald\\_%\`.*"
export HERALD_MYSQL_URL="mysql://$creds@$hp/$tdb"
# wipe - drop every table of the database
wipe() {
	local t drop=""
	for t in $(sql "SHOW TABLES"); do drop="$drop${drop:+, }\`$t\`"; done
	[ -z "$drop" ] || sql "SET FOREIGN_KEY_CHECKS = 0; DROP TABLE $drop"
}
# dump - every table's SHOW CREATE TABLE and the schema_migrations rows
dump() {
	local t
	for t in $(sql "SHOW TABLES"); do sql "SHOW CREATE TABLE \`$t\`"; done
	sql "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
}
# migrate - heraldctl db migrate ARGS; stdout in $out, stderr in $err, status in $rc
migrate() { "$ctl" db migrate "$@" > "$tmp/out" 2> "$tmp/err"; rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err"); }

files=$(cd "$sqldir" && ls [0-9]*_*.sql | sort -n)
last=$(echo "$files" | tail -n 1)
nfiles=$(echo "$files" | wc -l)
tables="cancellations caps client_quotas counter_reservations daily_counters deferred_messages device_outcomes devices event_outbox idempotency_claims notification_audit notifications preferences quiet_hours schema_migrations suppressions users"

wipe
is "$("$ctl" db version 2>/dev/null)" "0000" "db version on an empty database prints 0000"

migrate --dry-run
ok $rc "migrate --dry-run succeeds"
like "$out" "would apply 0001_core\.sql \([0-9]+ statements\)" "it lists what it would apply"
is "$(sql 'SHOW TABLES')" "" "and creates nothing"

migrate
ok $rc "migrate on an empty database succeeds"
like "$out" "applied 0001_core\.sql" "it says what it applied"
have=" $(sql 'SHOW TABLES' | tr '\n' ' ') " missing=""
for t in $tables; do [[ $have == *" $t "* ]] || missing="$missing $t"; done
is "$missing" "" "every table of 0001_core.sql exists"
is "$(sql 'SELECT COUNT(*) FROM schema_migrations')" "$nfiles" "each file is recorded"
is "$(sql "SELECT checksum FROM schema_migrations WHERE name = '$last'")" \
	"$(sha256sum "$sqldir/$last" | cut -d' ' -f1)" "with the SHA-256 of the file"
is "$(sql "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND (engine <> 'InnoDB' OR table_collation NOT LIKE 'utf8mb4%')")" \
	"0" "every table is InnoDB and utf8mb4"
dump > "$tmp/before"

migrate
ok $rc "migrate again succeeds"
like "$out" "up to date" "and says up to date"
dump > "$tmp/after"
cmp -s "$tmp/before" "$tmp/after"
ok $? "nothing changed (SHOW CREATE TABLE and schema_migrations identical)"
is "$("$ctl" db version)" "${last%%_*}" "db version prints the latest number"

# a file changed after it was applied
mkdir "$tmp/sql"
cp "$sqldir"/*.sql "$tmp/sql/"
echo "-- an edit after the fact" >> "$tmp/sql/0001_core.sql"
HERALD_SQL_DIR=$tmp/sql migrate
is "$rc" 65 "a changed applied file is refused (EX_DATAERR)"
like "$err" "0001_core\.sql: changed since it was applied" "naming the file"
cp "$sqldir"/0001_core.sql "$tmp/sql/"
sql "UPDATE schema_migrations SET checksum = REPEAT('0', 64) WHERE version = 1"
migrate
is "$rc" 65 "a tampered recorded checksum is refused too"
sql "UPDATE schema_migrations SET checksum = '$(sha256sum "$sqldir/0001_core.sql" | cut -d' ' -f1)' WHERE version = 1"

# a later migration, then a failing one
printf -- '-- test migration\nCREATE TABLE t_migrate_extra (a INT)\n  ENGINE=InnoDB;\n\nINSERT INTO t_migrate_extra VALUES (1);\n' > "$tmp/sql/9001_t_extra.sql"
HERALD_SQL_DIR=$tmp/sql migrate
ok $rc "a new migration is applied"
is "$(sql 'SELECT a FROM t_migrate_extra')/$(HERALD_SQL_DIR=$tmp/sql "$ctl" db version)" "1/9001" \
	"its statements ran and the version moved"
printf 'CREATE TABLE t_migrate_bad (a INT);\nSELEC oops;\n' > "$tmp/sql/9002_t_bad.sql"
HERALD_SQL_DIR=$tmp/sql migrate
is "$rc" 65 "a failing migration stops with EX_DATAERR"
like "$err" "9002_t_bad\.sql.*statement 2 \(line 2\)" "naming the file and statement number"
is "$("$ctl" db version)" "9001" "and is not recorded"

# two runs at once on a fresh database
wipe
"$ctl" db migrate > "$tmp/c1" 2>&1 & p1=$!
"$ctl" db migrate > "$tmp/c2" 2>&1 & p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
is "$r1/$r2" "0/0" "two concurrent migrates on a fresh database both succeed"
is "$(cat "$tmp/c1" "$tmp/c2" | grep -c '^applied 0001_core')/$(sql 'SELECT COUNT(*) FROM schema_migrations')" \
	"1/$nfiles" "one applied the files, each recorded once"
dump | grep -v '^[0-9]*	' > "$tmp/conc"
grep -v '^[0-9]*	' "$tmp/before" | cmp -s - "$tmp/conc"
ok $? "and the schema is the same as a single run's"

"$ctl" frobnicate > "$tmp/unknown" 2>&1
is "$?/$(grep -c "unknown command 'frobnicate'" "$tmp/unknown")" 64/1 "an unknown command exits 64, naming it"
bad=""
for c in db status history user device prefs pause unpause caps suppress template cancel stats workers \
	parked purge; do
	"$ctl" $c --help > "$tmp/help" 2>&1 && grep -q '^usage: heraldctl' "$tmp/help" || bad="$bad $c"
done
is "$bad" "" "every heraldctl command answers --help with its usage and exit 0"
HERALD_MYSQL_URL= "$ctl" db version > /dev/null 2>&1
is $? 78 "no MySQL URL: EX_CONFIG"
HERALD_MYSQL_URL=mysql://herald:herald@127.0.0.1:1/herald "$ctl" db version > /dev/null 2>&1
is $? 69 "no server there: EX_UNAVAILABLE"
done_testing
