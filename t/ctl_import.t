#!/usr/bin/env bash
# ctl_import.t - heraldctl user import of 100,000 users in one run (SPEC §8) against the private
# MariaDB of t/run: the bad lines among them are reported with their line numbers, every valid
# line is imported, and a second run changes nothing. The time taken is a TAP comment only.
# A test trigger makes the database refuse one valid record (line 777) in the middle of a
# batch: that line is reported, the rest of its batch is still imported. Every user id starts
# with "ctli_", removed at the end.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_ctl
plan 18

N=100000
tmp=$(mktemp -d /tmp/herald-ctl-import.XXXXXX)
sql_init "$tmp"
cleanup() {
	sql "DROP TRIGGER IF EXISTS ctli_reject" 2> /dev/null
	sql "DELETE FROM users WHERE user_id LIKE 'ctli\\_%'" 2> /dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "heraldctl db migrate failed"
sql "DELETE FROM users WHERE user_id LIKE 'ctli\\_%'; DROP TRIGGER IF EXISTS ctli_reject" ||
	bail "cannot clean up old ctli_ users"
"$_sql_client" --defaults-file="$_sql_cnf" "$_sql_db" <<'EOSQL' || bail "cannot create the test trigger"
DELIMITER //
CREATE TRIGGER ctli_reject BEFORE INSERT ON users FOR EACH ROW BEGIN
	IF NEW.user_id = 'ctli_777' THEN
		SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'ctli: refused by a test trigger';
	END IF;
END//
DELIMITER ;
EOSQL

# N lines: every 10th user has a device, every 7th preferences, every 5th quiet hours; five bad
# lines at known places (a bad email, broken JSON, an unknown key, a bad phone, a bad zone) and
# a blank line, which is skipped but still counted as a line
awk -v n=$N 'BEGIN {
	for (i = 1; i <= n; i++) {
		if (i == 1000) { print "{\"user_id\":\"ctli_" i "\",\"email\":\"not-an-email\"}"; continue }
		if (i == 25000) { print "{\"user_id\":\"ctli_" i "\",\"email\":"; continue }
		if (i == 50000) { print "{\"user_id\":\"ctli_" i "\",\"nickname\":\"x\"}"; continue }
		if (i == 75000) { print "{\"user_id\":\"ctli_" i "\",\"phone\":\"0044123\"}"; continue }
		if (i == 99999) { print "{\"user_id\":\"ctli_" i "\",\"timezone\":\"Mars/Olympus_Mons\"}"; continue }
		if (i == 60000) { print ""; continue }
		s = "{\"user_id\":\"ctli_" i "\",\"first_name\":\"F" i "\",\"email\":\"u" i "@example.org\",\"phone\":\"+4416329" sprintf("%05d", i % 100000) "\",\"timezone\":\"Europe/London\""
		if (i % 10 == 0) s = s ",\"devices\":[{\"platform\":\"android\",\"token\":\"ctli-tok-" i "\"}]"
		if (i % 7 == 0) s = s ",\"preferences\":{\"sms\":false}"
		if (i % 5 == 0) s = s ",\"quiet_hours\":\"22:00-07:00\""
		print s "}"
	}
}' > "$tmp/users.jsonl"
is "$(wc -l < "$tmp/users.jsonl")" $N "the file has $N lines"
valid=$((N - 7))

t0=$(date +%s.%N)
"$ctl" user import "$tmp/users.jsonl" > "$tmp/out1" 2> "$tmp/err1"
rc=$?
t1=$(date +%s.%N)
echo "# first import of $N lines took $(echo "$t1 - $t0" | bc) s"
is "$rc" 1 "an import with rejected lines exits 1"
is "$(cat "$tmp/out1")" "$tmp/users.jsonl: $valid added, 0 updated, 0 unchanged, 6 rejected" \
	"the summary counts $valid added and 6 rejected"
is "$(grep -v level=error "$tmp/err1" | cut -d: -f2 | tr '\n' ' ')" "777 1000 25000 50000 75000 99999 " \
	"each bad line is reported with its line number, in order"
like "$(grep -v level=error "$tmp/err1" | sed -n 1p)" "^$tmp/users.jsonl:777: database: ctli: refused by a test trigger$" \
	"line 777, refused by the database mid-batch: reported with the database's reason"
is "$(sql "SELECT COUNT(*) FROM users WHERE user_id IN ('ctli_776', 'ctli_778', 'ctli_1001')")" 3 \
	"the rest of that batch was imported"
like "$(grep -v level=error "$tmp/err1" | sed -n 2p)" "^$tmp/users.jsonl:1000: email: not a valid email address$" \
	"line 1000: the field and the reason"
like "$(grep -v level=error "$tmp/err1" | sed -n 4p)" "^$tmp/users.jsonl:50000: nickname: unknown key$" \
	"line 50000: the unknown key named"
is "$(sql "SELECT COUNT(*) FROM users WHERE user_id LIKE 'ctli\\_%'")" $valid "$valid users in the table"
is "$(sql "SELECT COUNT(*) FROM users WHERE user_id IN ('ctli_777','ctli_1000','ctli_25000','ctli_50000','ctli_75000','ctli_99999')")" 0 \
	"no rejected line left a user"
is "$(sql "SELECT COUNT(*), COUNT(DISTINCT token) FROM devices WHERE token LIKE 'ctli-tok-%'")" "9995	9995" \
	"9,995 devices (every 10th valid line), one per token"
is "$(sql "SELECT COUNT(*) FROM preferences WHERE user_id LIKE 'ctli\\_%'")/$(sql "SELECT COUNT(*) FROM quiet_hours WHERE user_id LIKE 'ctli\\_%'")" \
	"$(awk -v n=$N 'BEGIN { for (i = 7; i <= n; i += 7) if (i != 777 && i != 50000 && i != 25000 && i != 75000 && i != 1000 && i != 60000 && i != 99999) p++; for (i = 5; i <= n; i += 5) if (i != 1000 && i != 25000 && i != 50000 && i != 75000 && i != 60000) q++; print p "/" q }')" \
	"every preference and quiet-hours row of the file"
is "$(sql "SELECT email, phone, first_name FROM users WHERE user_id = 'ctli_12345'")" \
	"u12345@example.org	+441632912345	F12345" "a sample user holds its fields"
is "$(sql "SELECT user_id FROM devices WHERE token = 'ctli-tok-100000'")" "ctli_100000" \
	"the last line's device belongs to its user"

t0=$(date +%s.%N)
"$ctl" user import "$tmp/users.jsonl" > "$tmp/out2" 2> "$tmp/err2"
rc=$?
t1=$(date +%s.%N)
echo "# second import of $N lines took $(echo "$t1 - $t0" | bc) s"
is "$rc/$(cat "$tmp/out2")" "1/$tmp/users.jsonl: 0 added, 0 updated, $valid unchanged, 6 rejected" \
	"importing again: every valid line unchanged"
is "$(grep -vc level=error "$tmp/err2")" 6 "the same six lines rejected again"
is "$(sql "SELECT COUNT(*) FROM users WHERE user_id LIKE 'ctli\\_%'")/$(sql "SELECT COUNT(*) FROM devices WHERE token LIKE 'ctli-tok-%'")" \
	"$valid/9995" "nothing duplicated: the same users and devices"
is "$(sql "SELECT COUNT(*) FROM preferences WHERE user_id LIKE 'ctli\\_%' AND enabled = 0")" \
	"$(sql "SELECT COUNT(*) FROM preferences WHERE user_id LIKE 'ctli\\_%'")" "every preference still off"
