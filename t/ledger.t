#!/usr/bin/env bash
# ledger.t - heraldd --ledger against the private stack: one `queued` row, audit row and outbox
# event per accepted message; a row a worker wrote first is left alone; redelivery (kill -9),
# duplicate records and a second ledger add nothing; undecodable records are parked or
# rejected without stopping it; SIGTERM flushes and exits 0; a status lookup finds a new
# notification quickly while 100,000 messages wait in the channel queue.
. "$HERALD_SRCDIR/t/lib/tap.sh"
need_stack
plan 45

heraldd="$HERALD_BUILDDIR/heraldd"
send="$HERALD_BUILDDIR/herald-send"
peek="$HERALD_BUILDDIR/t/itest/qpeek"
tmp=$(mktemp -d /tmp/herald-ledger-t.XXXXXX)
pids=""
cleanup() {
	local p
	for p in $pids; do kill -KILL "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
export HERALD_CONFIG="$tmp/herald.conf"
printf 'broker = { confirm_timeout = 10; };\nlog = { level = "debug"; };\n' > "$HERALD_CONFIG"
[ -x "$heraldd" ] || bail "$heraldd not built"

# sql - run SQL on the stack's database, tab-separated rows without headers
u=${HERALD_MYSQL_URL#mysql://}; m_user=${u%%:*}; u=${u#*:}; m_pass=${u%%@*}; u=${u#*@}
m_host=${u%%:*}; u=${u#*:}; m_port=${u%%/*}; m_db=${u#*/}
sql() { mariadb -h"$m_host" -P"$m_port" -u"$m_user" -p"$m_pass" "$m_db" -N -B -e "$1"; }
# start_ledger LOG [CONF] - heraldd --ledger in the background; its pid in $lpid
start_ledger() {
	HERALD_CONFIG=${2:-$HERALD_CONFIG} "$heraldd" --ledger 2>> "$1" &
	lpid=$!
	pids="$pids $lpid"
}
# wait_sql QUERY WANT SECS - poll until QUERY prints WANT; 0 when it did
wait_sql() {
	local i
	for i in $(seq 1 $(($3 * 10))); do
		[ "$(sql "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
# drain - empty the queues this test fills
drain() {
	local q
	for q in herald.ledger.v1 herald.email.v1 herald.sms.v1 herald.push.v1 herald.email.v1.parked \
		herald.sms.v1.parked; do
		"$peek" "$HERALD_AMQP_URL" "$q" > /dev/null 2>&1
	done
}
txid() { printf '%s' "$1" | sed -n 's/.*"transaction_id":"\([0-9a-f-]*\)".*/\1/p'; }
field() { printf '%s\n' "$1" | tr '\t' '\n' | sed -n "s/^$2=//p" | head -1; }

HERALD_SQL_DIR="$HERALD_SRCDIR/sql" "$HERALD_BUILDDIR/heraldctl" db migrate > /dev/null 2>&1
ok $? "schema migrated"
"$heraldd" --ledger --worker webhook > /dev/null 2>&1; is $? 64 "--ledger and --worker together: exit 64"
"$heraldd" --worker fax > /dev/null 2>&1; is $? 64 "unknown channel: exit 64"
drain
# a fresh run: this test's rows go by batch ids lt-*; the 100,000 get one of their own per run
# (deleting them again would cost more than the rest of the test)
sql "DELETE FROM notifications WHERE batch_id IN ('lt-1', 'lt-2', 'lt-3', 'lt-5')"
big=lt-4-$$-$RANDOM
sql "DELETE FROM event_outbox WHERE body LIKE '%\"batch_id\":\"lt-%'"

# --- accepted messages with no worker running ------------------------------------------
r1=$("$send" --json '{"user_ids":["lt-u1","lt-u2"],"channels":{"email":{"subject":"s","body":"b"},"sms":{"body":"b"}},"batch_id":"lt-1","category":"marketing","metadata":{"k":"v","n":[1,2]}}')
t1=$(printf '%s' "$r1" | sed -n 's/.*"lt-u1":"\([0-9a-f-]*\)".*/\1/p')
t2=$(printf '%s' "$r1" | sed -n 's/.*"lt-u2":"\([0-9a-f-]*\)".*/\1/p')
t3=$(txid "$("$send" --json '{"to":{"email":"lt@example.com"},"channels":{"email":{"subject":"s","body":"b"}},"batch_id":"lt-1","priority":"high","send_at":"2030-01-02T03:04:05.5Z"}')")
t4=$(txid "$("$send" --json '{"user_id":"lt-u4","channels":{"push":{"title":"t","body":"b"}},"batch_id":"lt-1"}')")
[ -n "$t1" ] && [ -n "$t2" ] && [ -n "$t3" ] && [ -n "$t4" ]; ok $? "requests accepted"
# a worker was first for t4: its own row and first audit row
sql "INSERT INTO notifications (transaction_id, channel, status, user_id, client_id, category, priority, batch_id, attempt) VALUES ('$t4', 'push', 'done', 'lt-u4', 'guest', 'notifications', 4, 'lt-1', 1);
INSERT INTO notification_audit (notification_id, old_status, new_status, host, worker, attempt) SELECT id, NULL, 'done', 'h', 'email.1', 1 FROM notifications WHERE transaction_id = '$t4'"
# undecodable records: one naming its channel, one naming none
amqp-publish -u "$HERALD_AMQP_URL" -e herald -r ledger -p -H "x-herald-channel: email" -b 'not json {' 2>/dev/null
amqp-publish -u "$HERALD_AMQP_URL" -e herald -r ledger -p -b '{"v":1}' 2>/dev/null

log="$tmp/ledger.log"
start_ledger "$log"
wait_sql "SELECT COUNT(*) FROM notifications WHERE batch_id = 'lt-1' AND status = 'queued'" 5 15
ok $? "five queued rows recorded"
is "$(sql "SELECT COUNT(*) FROM notifications WHERE transaction_id IN ('$t1','$t2','$t3','$t4')")" 6 \
	"one row per (transaction, channel), nothing else"
is "$(sql "SELECT CONCAT_WS('|', status, user_id, client_id, category, priority, batch_id, metadata, attempt, IFNULL(recipient,'-'), IFNULL(send_at,'-'))
	FROM notifications WHERE transaction_id = '$t1' AND channel = 'sms'")" \
	'queued|lt-u1|guest|marketing|1|lt-1|{"k":"v","n":[1,2]}|0|-|-' "fields of a user_ids row"
is "$(sql "SELECT CONCAT_WS('|', channel, IFNULL(user_id,'-'), recipient, priority, send_at, IFNULL(metadata,'-'))
	FROM notifications WHERE transaction_id = '$t3'")" \
	'email|-|lt@example.com|8|2030-01-02 03:04:05.500000|-' "fields of a \"to\" row (recipient, priority, send_at)"
is "$(sql "SELECT COUNT(*) FROM notifications WHERE transaction_id = '$t1' AND created_at > UTC_TIMESTAMP(6) - INTERVAL 5 MINUTE AND created_at <= UTC_TIMESTAMP(6)")" 2 \
	"created_at is the acceptance time"
is "$(sql "SELECT GROUP_CONCAT(DISTINCT CONCAT_WS('|', IFNULL(a.old_status,'NULL'), a.new_status, a.attempt, a.worker LIKE 'ledger.%', a.host <> '') ) , COUNT(*)
	FROM notification_audit a JOIN notifications n ON n.id = a.notification_id WHERE n.batch_id = 'lt-1' AND n.status = 'queued'")" \
	"NULL|queued|0|1|1	5" "one audit row each: NULL -> queued, attempt 0, host and worker ledger.PID"
ev=$(sql "SELECT routing_key, body FROM event_outbox WHERE body LIKE '%\"batch_id\":\"lt-1\"%' ORDER BY id")
is "$(printf '%s\n' "$ev" | grep -c .)" 5 "five queued events in the outbox"
is "$(printf '%s\n' "$ev" | cut -f1 | sort | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' ')" \
	"email.queued=3 sms.queued=2 " "routing keys CHANNEL.queued"
e=$(printf '%s\n' "$ev" | grep "\"$t1\",\"channel\":\"sms\"" | cut -f2)
like "$e" "^\{\"transaction_id\":\"$t1\",\"channel\":\"sms\",\"user_id\":\"lt-u1\",\"client_id\":\"guest\",\"category\":\"marketing\",\"batch_id\":\"lt-1\",\"metadata\":\{\"k\":\"v\",\"n\":\[1,2\]\},\"status\":\"queued\",\"previous\":null,\"attempt\":0,\"at\":\"[0-9-]{10}T[0-9:]{8}\.[0-9]{6}Z\",\"detail\":null\}$" \
	"event body per §3"
like "$(printf '%s\n' "$ev" | grep "\"$t3\"" | cut -f2)" '"user_id":null,.*"metadata":null,' "event of a \"to\" row: user_id and metadata null"
is "$(sql "SELECT CONCAT(status, '/', attempt) FROM notifications WHERE transaction_id = '$t4'")" "done/1" \
	"a row a worker wrote first is left untouched"
is "$(sql "SELECT COUNT(*) FROM notification_audit a JOIN notifications n ON n.id = a.notification_id WHERE n.transaction_id = '$t4'")" 1 \
	"... with no audit row added"
is "$(sql "SELECT COUNT(*) FROM event_outbox WHERE body LIKE '%$t4%'")" 0 "... and no event"
sleep 0.5
p=$("$peek" "$HERALD_AMQP_URL" herald.email.v1.parked 2>/dev/null)
is "$(printf '%s\n' "$p" | grep -c .)" 1 "undecodable record naming a channel: parked in herald.email.v1.parked"
is "$(field "$p" x-herald-source)/$(field "$p" body)" "ledger/not json {" "... with x-herald-source=ledger and its body"
like "$(field "$p" x-herald-parked-reason)" "^ledger: undecodable record" "... and the reason"
like "$(cat "$log")" "level=error .*event=record_rejected .*note=\"no channel to park it in" \
	"undecodable record naming no channel: logged at error and rejected"
kill -0 "$lpid" 2>/dev/null; ok $? "the ledger goes on after them"
is "$("$peek" "$HERALD_AMQP_URL" herald.ledger.v1 2>/dev/null | grep -c .)" 0 "nothing left in the ledger queue"

# --- duplicates: the channel copies carry the same body; publish them to the ledger again ----
bodies=$("$peek" "$HERALD_AMQP_URL" herald.email.v1 2>/dev/null | tr '\t' '\n' | sed -n 's/^body=//p')
is "$(printf '%s\n' "$bodies" | grep -c lt-1)" 3 "three lt-1 channel copies taken from herald.email.v1"
printf '%s\n' "$bodies" | grep lt-1 | amqp-publish -u "$HERALD_AMQP_URL" -e herald -r ledger -p -l 2>/dev/null
printf '%s\n' "$bodies" | grep lt-1 | amqp-publish -u "$HERALD_AMQP_URL" -e herald -r ledger -p -l 2>/dev/null
for _ in $(seq 1 50); do grep -q "inserted=0" "$log" && break; sleep 0.1; done
sleep 0.3
is "$(sql "SELECT COUNT(*), (SELECT COUNT(*) FROM notification_audit a JOIN notifications n ON n.id = a.notification_id WHERE n.batch_id = 'lt-1'),
	(SELECT COUNT(*) FROM event_outbox WHERE body LIKE '%\"batch_id\":\"lt-1\"%') FROM notifications WHERE batch_id = 'lt-1'")" "6	6	5" \
	"records delivered again (twice, in one batch) add no row, audit row or event"

# --- a record the database refuses as data (category longer than the column) is parked ----
b=$("$peek" "$HERALD_AMQP_URL" herald.sms.v1 2>/dev/null | tr '\t' '\n' | sed -n 's/^body=//p' | grep "\"$t1\"" | head -1)
t7=$(cat /proc/sys/kernel/random/uuid)
printf '%s\n' "$b" | sed "s/$t1/$t7/; s/\"category\":\"marketing\"/\"category\":\"a_category_longer_than_the_32_byte_column\"/" |
	amqp-publish -u "$HERALD_AMQP_URL" -e herald -r ledger -p -l 2>/dev/null
for _ in $(seq 1 50); do grep -q "event=record_parked msgid=$t7" "$log" && break; sleep 0.1; done
p=$("$peek" "$HERALD_AMQP_URL" herald.sms.v1.parked 2>/dev/null)
is "$(field "$p" id)/$(field "$p" x-herald-source)" "$t7:sms:ledger/ledger" "a record the database refuses is parked in herald.sms.v1.parked"
like "$(field "$p" x-herald-parked-reason)" "database refused the record: Data too long for column 'category'" "... with the database's reason"
is "$(sql "SELECT COUNT(*) FROM notifications WHERE transaction_id = '$t7'")" 0 "... and nothing truncated is stored"

# --- SIGTERM flushes the batch it holds -------------------------------------------------
kill -TERM "$lpid"; wait "$lpid"; is $? 0 "SIGTERM: exit 0"
printf 'broker = { confirm_timeout = 10; };\nlog = { level = "debug"; };\nledger = { batch = 10000; flush_ms = 60000; };\n' > "$tmp/slow.conf"
start_ledger "$tmp/slow.log" "$tmp/slow.conf"
for _ in $(seq 1 100); do grep -q "event=consuming" "$tmp/slow.log" && break; sleep 0.1; done
t5=$(txid "$("$send" --json '{"user_id":"lt-u5","channels":{"sms":{"body":"b"}},"batch_id":"lt-2"}')")
sleep 1
is "$(sql "SELECT COUNT(*) FROM notifications WHERE transaction_id = '$t5'")" 0 "flush_ms 60 s: not recorded yet"
kill -TERM "$lpid"; wait "$lpid"; is $? 0 "SIGTERM with a batch held: exit 0"
is "$(sql "SELECT status FROM notifications WHERE transaction_id = '$t5'")" queued "... after recording it"
is "$("$peek" "$HERALD_AMQP_URL" herald.ledger.v1 2>/dev/null | grep -c .)" 0 "... and acking it"

# --- kill -9 mid-run, restart with two ledgers: no duplicates --------------------------
seq 1 3000 | awk '{printf "{\"user_id\":\"lt-k%d\",\"channels\":{\"email\":{\"subject\":\"s\",\"body\":\"b\"}},\"batch_id\":\"lt-3\"}\n", $1}' > "$tmp/k.jsonl"
"$send" --bulk "$tmp/k.jsonl" > "$tmp/k.out"; is $? 0 "3000 more requests accepted"
printf 'broker = { confirm_timeout = 10; };\nlog = { level = "debug"; };\nledger = { batch = 20; flush_ms = 50; };\n' > "$tmp/small.conf"
start_ledger "$tmp/k1.log" "$tmp/small.conf"
for _ in $(seq 1 100); do [ "$(grep -c "event=batch" "$tmp/k1.log")" -ge 5 ] && break; sleep 0.05; done
kill -KILL "$lpid"; wait "$lpid" 2>/dev/null
n=$(sql "SELECT COUNT(*) FROM notifications WHERE batch_id = 'lt-3'")
[ "$n" -gt 0 ] && [ "$n" -lt 3000 ]; ok $? "killed (-9) mid-run with $n of 3000 recorded"
start_ledger "$tmp/k2.log" "$tmp/small.conf"; a=$lpid
start_ledger "$tmp/k3.log"; b=$lpid
wait_sql "SELECT COUNT(*) FROM notifications WHERE batch_id = 'lt-3'" 3000 30
ok $? "two ledgers after the restart record the rest"
echo "# records found recorded already (committed, unacked at the kill, redelivered): $(cat "$tmp/k2.log" "$tmp/k3.log" |
	sed -n 's/.*event=batch records=\([0-9]*\) inserted=\([0-9]*\).*/\1 \2/p' | awk '{ d += $1 - $2 } END { print d + 0 }')"
sleep 0.5
is "$(sql "SELECT COUNT(*), COUNT(DISTINCT transaction_id) FROM notifications WHERE batch_id = 'lt-3'")" "3000	3000" "no duplicate rows"
is "$(sql "SELECT COUNT(*), COUNT(DISTINCT a.notification_id) FROM notification_audit a JOIN notifications n ON n.id = a.notification_id WHERE n.batch_id = 'lt-3'")" \
	"3000	3000" "exactly one audit row each"
is "$(sql "SELECT COUNT(*) FROM event_outbox WHERE body LIKE '%\"batch_id\":\"lt-3\"%'")" 3000 "exactly one event each"
kill -TERM "$a" "$b"; wait "$a"; ra=$?; wait "$b"; is "$ra/$?" "0/0" "both exit 0 on SIGTERM"

# --- 100,000 messages waiting in the channel queue: a new one is visible quickly --------
start_ledger "$tmp/big.log"
seq 1 100000 | awk '{printf "{\"user_id\":\"lt-b%d\",\"channels\":{\"email\":{\"subject\":\"s\",\"body\":\"b\"}},\"batch_id\":\"%s\"}\n", $1, b}' b="$big" > "$tmp/big.jsonl"
s0=$(date +%s.%N)
"$send" --bulk "$tmp/big.jsonl" > "$tmp/big.out"; is $? 0 "100,000 requests accepted"
s1=$(date +%s.%N)
echo "# herald-send --bulk: 100000 requests in $(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.1f", b - a }') s"
t6=$(txid "$("$send" --json '{"user_id":"lt-u6","channels":{"email":{"subject":"s","body":"b"}},"batch_id":"lt-5"}')")
s2=$(date +%s.%N)
wait_sql "SELECT status FROM notifications WHERE transaction_id = '$t6'" queued 10
ok $? "status queued within 10 s with 100,000 messages in herald.email.v1"
s3=$(date +%s.%N)
echo "# status lookup latency after acceptance: $(awk -v a="$s2" -v b="$s3" 'BEGIN { printf "%.0f", (b - a) * 1000 }') ms (polled every 100 ms)"
wait_sql "SELECT COUNT(*) FROM notifications WHERE batch_id = '$big'" 100000 30
ok $? "all 100,000 recorded"
kill -TERM "$lpid"; wait "$lpid"; is $? 0 "SIGTERM: exit 0"
! grep -q "Sanitizer\|runtime error" "$tmp"/*.log; ok $? "no sanitizer report in the ledger logs"

# leave the queues and the outbox clean for the tests after this one
bash "$HERALD_SRCDIR/scripts/stack.sh" ctl "$HERALD_STACK_DIR" purge_queue herald.email.v1 > /dev/null 2>&1
drain
sql "DELETE FROM event_outbox WHERE body LIKE '%\"batch_id\":\"lt-%'"
done_testing
