#!/usr/bin/env bash
# ctl_purge.t - heraldctl purge (SPEC §7) on 1,000,000 notification rows while a heraldd master
# delivers webhooks to a local receiver. It runs in a database of its own (herald_purge_PID,
# dropped at the end), so the counts are exact and no other test's rows are touched.
# Rows by id % 10: 0-4 old (100 days) and final: they go; 5 old and not final (queued,
# deferred); 6 created 100 days ago but changed a day ago (final); 7-8 recent and done; 9 recent
# retry: those stay. One audit row per notification; device outcomes and deferred leftovers on
# some of each kind; idempotency claims, daily counters, reservations and cancellations old
# and new. PURGE_T_ROWS (a multiple of 1000, at least 1000) makes it smaller for a quick run.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
plan 25

rows=${PURGE_T_ROWS:-1000000}
half=$((rows / 2)) tenth=$((rows / 10))
tmp=$(mktemp -d /tmp/herald-ctl-purge.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
. "$HERALD_SRCDIR/t/lib/master.sh"
dbname=herald_purge_$$
sql_init "$tmp"
sql "CREATE DATABASE $dbname CHARACTER SET utf8mb4" || bail "cannot create database $dbname"
cleanup() {
	[ -n "${ppid_:-}" ] && kill "$ppid_" 2> /dev/null
	[ -f "$tmp/a.pid" ] && kill -KILL "$(cat "$tmp/a.pid")" 2> /dev/null
	[ -n "${rpid:-}" ] && kill "$rpid" 2> /dev/null
	wait 2> /dev/null
	for q in herald.webhook.v1 herald.webhook.v1.parked herald.ledger.v1; do
		amqp-delete-queue -u "$HERALD_AMQP_URL" -q "$q" > /dev/null 2>&1
	done
	sql "DROP DATABASE IF EXISTS $dbname" 2> /dev/null
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
export HERALD_MYSQL_URL=${HERALD_MYSQL_URL%/*}/$dbname
sql_init "$tmp"
"$ctl" db migrate > /dev/null || bail "db migrate failed"

# run ARGS - heraldctl ARGS; stdout in $out, stderr in $err, status in $rc
run() { "$ctl" "$@" > "$tmp/out" 2> "$tmp/err"; rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err"); }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# --- the rows -------------------------------------------------------------------------------
t0=$(now)
sql "INSERT INTO notifications (transaction_id, channel, status, user_id, client_id, category,
	priority, batch_id, created_at, updated_at)
	SELECT CONCAT('0000c71b-0000-4000-8000-', LPAD(seq, 12, '0')), 'webhook',
	 ELT(seq % 10 + 1, 'done', 'failed', 'expired', 'cancelled', 'opt_out',
	     IF(seq % 20 = 5, 'queued', 'deferred'), 'done', 'done', 'done', 'retry'),
	 'u', 'c', 'reminders', 0, CONCAT('fill', seq % 10),
	 IF(seq % 10 < 7, NOW(6) - INTERVAL 100 DAY, NOW(6) - INTERVAL 1 HOUR),
	 IF(seq % 10 < 6, NOW(6) - INTERVAL 100 DAY, NOW(6) - INTERVAL 1 HOUR)
	FROM seq_1_to_$rows" || bail "filling notifications failed"
t1=$(now)
sql "SET SESSION foreign_key_checks = 0;
	INSERT INTO notification_audit (notification_id, old_status, new_status, changed_at, host, worker)
	SELECT id, NULL, status, created_at, 'h', 'w' FROM notifications;
	INSERT INTO device_outcomes (notification_id, token, platform, outcome)
	SELECT id, CONCAT('tok', id), 'ios', 'accepted' FROM notifications WHERE id <= 10000;
	INSERT INTO deferred_messages (notification_id, body)
	SELECT id, 'x' FROM notifications WHERE id <= 1000 AND (id % 10 < 5 OR status = 'deferred')" \
	|| bail "filling audit rows failed"
t2=$(now)
echo "# filled $rows notifications in $(secs "$t0" "$t1") s, $rows audit rows and the rest in $(secs "$t1" "$t2") s"
# the expected counts (ids are 1..rows, seq = id)
dev=$((rows < 10000 ? rows : 10000))
gone_dev=$((dev / 2)) gone_def=500
tx() { printf '0000c71b-0000-4000-8000-%012d' "$1"; }
sql "INSERT INTO idempotency_claims (client_id, idempotency_key, recipient, transaction_id, expires_at) VALUES
	('c', 'k1', 'u', '$(tx 1)', NOW(6) - INTERVAL 1 DAY), ('c', 'k2', 'u', '$(tx 2)', NOW(6) - INTERVAL 1 SECOND),
	('c', 'k3', 'u', '$(tx 3)', NOW(6) - INTERVAL 200 DAY), ('c', 'k4', 'u', '$(tx 4)', NOW(6) + INTERVAL 1 HOUR),
	('c', 'k5', 'u', '$(tx 5)', NOW(6) + INTERVAL 1 DAY);
	INSERT INTO daily_counters (scope, subject, channel, day, n) VALUES
	('cap', 'u', 'email', CURDATE() - INTERVAL 100 DAY, 3), ('cap', 'u', 'email', CURDATE() - INTERVAL 93 DAY, 3),
	('cap', 'u', 'email', CURDATE() - INTERVAL 91 DAY, 1), ('cap', 'u', 'email', CURDATE(), 1);
	INSERT INTO counter_reservations (transaction_id, channel, scope, subject, day) VALUES
	('$(tx 1)', 'email', 'cap', 'u', CURDATE() - INTERVAL 100 DAY), ('$(tx 2)', 'email', 'cap', 'u', CURDATE() - INTERVAL 91 DAY),
	('$(tx 3)', 'email', 'cap', 'u', CURDATE());
	INSERT INTO cancellations (kind, target, created_at) VALUES
	('transaction', '$(tx 3)', NOW(6) - INTERVAL 100 DAY), ('transaction', '$(tx 5)', NOW(6) - INTERVAL 100 DAY),
	('batch', 'fill0', NOW(6) - INTERVAL 100 DAY), ('batch', 'fill5', NOW(6) - INTERVAL 100 DAY),
	('transaction', '$(tx 13)', NOW(6) - INTERVAL 1 DAY)" || bail "filling the other tables failed"

# --- argument errors ------------------------------------------------------------------------
run purge --older-than 5x
is "$rc/$(grep -c "older-than '5x'" <<< "$err")" "64/1" "--older-than 5x: usage error naming it"
run purge --older-than 2099-01-01
is "$rc/$(grep -c 'in the future' <<< "$err")" "64/1" "a cut-off in the future: refused"
run purge --batch 0
is "$rc/$(grep -c -- "--batch '0'" <<< "$err")" "64/1" "--batch 0: usage error"

# --- dry run: the counts, nothing deleted ---------------------------------------------------
printf 'retention = { days = 200; };\n' > "$tmp/r200.conf"
run -c "$tmp/r200.conf" purge --dry-run
is "$rc/$(jq -r '"\(.notifications)/\(.dry_run)"' <<< "$out")" "0/0/true" \
	"no --older-than: retention.days of the config (200 days: none of them)"
t3=$(now)
run purge --older-than 90d --dry-run
t4=$(now)
echo "# dry run over $rows rows: $(secs "$t3" "$t4") s"
is "$rc/$(jq -c 'del(.cutoff, .seconds, .batches)' <<< "$out")" \
	"0/{\"dry_run\":true,\"notifications\":$half,\"audit\":$half,\"device_outcomes\":$gone_dev,\"deferred_messages\":$gone_def,\"idempotency_claims\":3,\"daily_counters\":2,\"counter_reservations\":1,\"cancellations\":2}" \
	"--dry-run counts what would go"
is "$(sql "SELECT COUNT(*) FROM notifications")" "$rows" "--dry-run deleted nothing"

# --- purge while a master delivers ---------------------------------------------------------
wk_receiver
p=prg$$
urows=""
for i in $(seq 0 19); do urows="$urows,('${p}_$i', '$hook/ok?u=$i', 'UTC')"; done
sql "INSERT INTO users (user_id, webhook_url, timezone) VALUES ${urows#,}" || bail "cannot insert users"
mconf a 2
mstart a || bail "heraldd did not start: $(tail -5 "$tmp/a.log")"
wait_running a 2 || bail "the webhook workers did not start"
# the server's row lock counters (global: they cannot be reset without RELOAD; this test is
# what runs on the private stack meanwhile)
lockstat() { sql "SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_row_lock_waits', 'Innodb_row_lock_time')" | sort | cut -f2 | paste -sd' '; }
read -r ltime0 waits0 < <(lockstat)
"$ctl" purge --older-than 90d --batch 1000 > "$tmp/purge.out" 2> "$tmp/purge.err" &
ppid_=$!
t5=$(now)
bulk "cc$p" 1000 20
sleep 1
bulk "cd$p" 1000 20
wait "$ppid_"
prc=$?
ppid_=""
t6=$(now)
out=$(cat "$tmp/purge.out")
echo "# purge (and the sends with it) took $(secs "$t5" "$t6") s"
echo "# purge of $half notifications and $half audit rows: $(jq -r .seconds <<< "$out") s (by the command), $(jq -r .batches <<< "$out") batches"
is "$prc/$(jq -c 'del(.cutoff, .seconds, .batches)' <<< "$out")" \
	"0/{\"dry_run\":false,\"notifications\":$half,\"audit\":$half,\"device_outcomes\":$gone_dev,\"deferred_messages\":$gone_def,\"idempotency_claims\":3,\"daily_counters\":2,\"counter_reservations\":1,\"cancellations\":2}" \
	"purge: the counts printed as JSON"
ok "$([ "$(jq -r .batches <<< "$out")" -ge $((half / 1000)) ]; echo $?)" \
	"in batches of at most 1000 notifications (at least $((half / 1000)) of them)"
ok "$(wait_final "cc$p" 1000 90; echo $?)" "the 1,000 sent as the purge started are final"
ok "$(wait_final "cd$p" 1000 90; echo $?)" "the 1,000 sent during the purge are final"
is "$(sql "SELECT COUNT(*) FROM notifications WHERE batch_id IN ('cc$p', 'cd$p') AND status = 'done'")" 2000 \
	"every concurrent delivery done, none stalled or failed"
is "$(hooks "cc$p")/$(hooks "cd$p")" "1000/1000/1000/1000" "the receiver got each exactly once"
read -r ltime1 waits1 < <(lockstat)
lockmax=$(sql "SHOW GLOBAL STATUS LIKE 'Innodb_row_lock_time_max'" | cut -f2)
lat=$(sql "SELECT ROUND(MAX(TIMESTAMPDIFF(MICROSECOND, r.changed_at, d.changed_at)) / 1e6, 3)
	FROM notifications n JOIN notification_audit r ON r.notification_id = n.id AND r.new_status = 'ready'
	JOIN notification_audit d ON d.notification_id = n.id AND d.new_status = 'done'
	WHERE n.batch_id IN ('cc$p', 'cd$p')")
echo "# while purging: $(grep -c 'event=record_retry' "$tmp/a.log") record_retry lines in the heraldd log;" \
	"$((waits1 - waits0)) row lock waits on the server, $((ltime1 - ltime0)) ms in all" \
	"(the longest since the server started: ${lockmax} ms); longest ready->done of a concurrent" \
	"delivery ${lat} s"

# --- what is left ---------------------------------------------------------------------------
is "$(sql "SELECT COUNT(*) FROM notifications WHERE batch_id IN ('fill0','fill1','fill2','fill3','fill4')")" 0 \
	"the old final notifications are gone"
is "$(sql "SELECT COUNT(*) FROM notifications WHERE batch_id = 'fill5' AND status IN ('queued', 'deferred')")" "$tenth" \
	"the old queued and deferred ones stay"
is "$(sql "SELECT COUNT(*) FROM notifications WHERE batch_id = 'fill6'")" "$tenth" \
	"old ones changed recently stay"
is "$(sql "SELECT COUNT(*) FROM notifications WHERE batch_id IN ('fill7', 'fill8', 'fill9')")" "$((3 * tenth))" \
	"the recent ones stay (done and retry)"
is "$(sql "SELECT COUNT(*) FROM notification_audit a JOIN notifications n ON n.id = a.notification_id WHERE n.batch_id LIKE 'fill%'")/$(sql "SELECT COUNT(*) FROM notification_audit a LEFT JOIN notifications n ON n.id = a.notification_id WHERE n.id IS NULL")" \
	"$half/0" "their audit rows stay; no audit row is left without its notification"
is "$(sql "SELECT COUNT(*) FROM device_outcomes")/$(sql "SELECT COUNT(*) FROM deferred_messages")" \
	"$((dev - gone_dev))/50" "device outcomes and deferred messages of the kept ones stay"
is "$(sql "SELECT GROUP_CONCAT(idempotency_key ORDER BY idempotency_key) FROM idempotency_claims")" "k4,k5" \
	"expired idempotency claims go, live ones stay"
is "$(sql "SELECT GROUP_CONCAT(DATEDIFF(CURDATE(), day) ORDER BY day) FROM daily_counters")" "91,0" \
	"daily counters of days before the cut-off's date - 2 go"
is "$(sql "SELECT GROUP_CONCAT(DATEDIFF(CURDATE(), day) ORDER BY day) FROM counter_reservations")" "91,0" \
	"counter reservations likewise"
is "$(sql "SELECT GROUP_CONCAT(target ORDER BY target) FROM cancellations")" "$(tx 5),$(tx 13),fill5" \
	"old cancellations go unless something of theirs is still open; recent ones stay"

# --- again: nothing left to do; table format -------------------------------------------------
run purge --older-than 90d
is "$rc/$(jq -c '[.notifications, .audit, .idempotency_claims, .daily_counters, .cancellations, .batches]' <<< "$out")" \
	"0/[0,0,0,0,0,0]" "a second purge finds nothing"
run purge --older-than 2026-01-01 --dry-run --format table
is "$rc/$(awk 'NR == 1 { print $1 "," $2 } $1 == "notifications" { print $2 }' <<< "$out" | paste -sd/)" \
	"0/WHAT,VALUE/0" "--format table: WHAT VALUE rows"
mstop a
is $? 0 "heraldd stops cleanly"
