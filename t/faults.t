#!/usr/bin/env bash
# faults.t - nothing lost (SPEC §11) with faults injected into a running heraldd: workers killed
# every 200 ms, the master killed, RabbitMQ stopped and started, MariaDB stopped for 10 s, a
# receiver that refuses some users, poison messages next to good ones. Each run sends a known
# batch to a real local receiver (t/lib/receiver.py) that records every delivery, injects the
# fault, lets the system settle and reconciles: every notification final, each delivered, at
# most one duplicate per kill (recognised by webhook-id), one done audit row each.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
[ -n "${HERALD_STACK_DIR:-}" ] || bail "no HERALD_STACK_DIR: run through t/run"
plan 33

tmp=$(mktemp -d /tmp/herald-faults-t.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
. "$HERALD_SRCDIR/t/lib/master.sh"
sql_init "$tmp"
stack="$HERALD_SRCDIR/scripts/stack.sh"
cleanup() {
	# whatever happened, the servers are up again for the tests after this one
	"$stack" start-broker "$HERALD_STACK_DIR" > /dev/null 2>&1
	"$stack" start-db "$HERALD_STACK_DIR" > /dev/null 2>&1
	for n in a e; do [ -f "$tmp/$n.pid" ] && kill -KILL "$(cat "$tmp/$n.pid")" 2> /dev/null; done
	sleep 0.5
	[ -n "${rpid:-}" ] && kill "$rpid" 2> /dev/null
	for q in herald.webhook.v1 herald.webhook.v1.parked herald.ledger.v1; do
		amqp-delete-queue -u "$HERALD_AMQP_URL" -q "$q" > /dev/null 2>&1
	done
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "db migrate failed"

echo 200 > "$tmp/mode"
wk_receiver --mode-file "$tmp/mode"

p=flt$$
rows=""
# slow users (0.03 s an answer) keep the first run going through 10 s of kills; fast ones the rest
for i in $(seq 0 19); do
	rows="$rows,('${p}_$i', '$hook/ok?sleep=0.03&u=$i', 'UTC'),('${p}_f$i', '$hook/ok?sleep=0.02&u=f$i', 'UTC')"
done
sql "INSERT INTO users (user_id, webhook_url, timezone) VALUES ${rows#,},
	('${p}_bad', '$hook/fail400?bad', 'UTC'), ('${p}_mode', '$hook/mode', 'UTC'),
	('${p}_quiet', '$hook/ok?quiet', 'UTC')" || bail "cannot insert users"

# fsend BATCH N [slow] - N notifications over 20 (fast or slow) users, priorities low, normal
# and high in turn
fsend() {
	local i prio=(low normal high) u=${p}_f
	[ "${3:-}" = slow ] && u=${p}_
	for ((i = 0; i < $2; i++)); do
		printf '{"user_id":"%s%d","channels":{"webhook":{"event":"e%d"}},"batch_id":"%s","priority":"%s"}\n' \
			"$u" $((i % 20)) "$i" "$1" "${prio[i % 3]}"
	done > "$tmp/$1.jsonl"
	"$send" --bulk "$tmp/$1.jsonl" > "$tmp/$1.out" || bail "herald-send refused batch $1"
}
# reconcile BATCH N KILLS WHAT - the checks after a fault (2 results): a kill may deliver again
# what the killed process had sent and not yet recorded, at most one delivery with the default
# in_flight = 1 (SPEC §11), so at most KILLS duplicate deliveries in all
reconcile() {
	local fin done req dist aud most
	wait_final "$1" "$2" 150
	fin=$(final "$1")
	done=$(sql "SELECT COUNT(*) FROM notifications WHERE batch_id = '$1' AND status = 'done'")
	IFS=/ read -r req dist <<< "$(hooks "$1")"
	aud=$(sql "SELECT COUNT(*) FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
		WHERE n.batch_id = '$1' AND a.new_status = 'done'")
	most=$(jq -r --arg b "$1" 'select(.json.batch_id == $b) | .headers["webhook-id"]' "$tmp/hooks.jsonl" |
		sort | uniq -c | sort -rn | awk 'NR == 1 { print $1 + 0 } END { if (NR == 0) print 0 }')
	echo "# $4: sent=$2 final=$fin done=$done delivered=$dist duplicates=$((req - dist)) most=$most parked=0 failed=$((fin - done))"
	is "$fin/$done/$dist/$aud" "$2/$2/$2/$2" "$4: all $2 final and done, each delivered, one done audit row each"
	ok "$([ $((req - dist)) -le "$3" ] && [ "$most" -le $((1 + $3)) ]; echo $?)" \
		"$4: $((req - dist)) duplicate deliveries (at most $3, one per kill), all with the first webhook-id"
}

MCONF_IN_FLIGHT=1    # heraldd's default: SPEC §11's one duplicate per kill
mconf a 4 'retry = { tiers = [ 1, 2, 4 ]; };'
mstart a || bail "heraldd did not start: $(cat "$tmp/a.log")"
wait_running a 4 || bail "the workers did not start"

# --- 1. SIGKILL a random worker every 200 ms for 10 s ----------------------------------------
fsend k$p 2000 slow
sleep 0.5
kills=0 tries=0
end=$((SECONDS + 10))
while [ $SECONDS -lt $end ]; do
	tries=$((tries + 1))
	mapfile -t w < <(grep -o 'kind=webhook pid=[0-9]*' "$tmp/a.log" | cut -d= -f3 |
		while read -r k; do kill -0 "$k" 2> /dev/null && echo "$k"; done)
	if [ ${#w[@]} -gt 0 ]; then
		kill -KILL "${w[RANDOM % ${#w[@]}]}" 2> /dev/null && kills=$((kills + 1))
	fi
	sleep 0.2
done
# a try finds no live worker while the master's respawn backoff holds them back
ok "$([ $kills -ge 10 ]; echo $?)" "killed a worker $kills times in 10 s ($tries tries, one every 200 ms)"
reconcile "k$p" 2000 "$kills" "workers killed"

# --- 2. SIGKILL the master mid-run, then start heraldd again -----------------------------------
fsend m$p 2000
sleep 1
kill -KILL "$(cat "$tmp/a.pid")"
wait "$(cat "$tmp/a.pid")" 2> /dev/null
sleep 1
mstart a
ok $? "heraldd starts again after SIGKILL"
reconcile "m$p" 2000 1 "master killed"

# --- 3. RabbitMQ stopped and started mid-run ----------------------------------------------------
fsend b$p 2000
sleep 1
"$stack" stop-broker "$HERALD_STACK_DIR" > /dev/null 2>&1
sleep 1
"$stack" start-broker "$HERALD_STACK_DIR" > "$tmp/broker.log" 2>&1
ok $? "RabbitMQ stopped and started again"
reconcile "b$p" 2000 1 "broker restarted"
is "$(pgrep -c -P "$(cat "$tmp/a.pid")")" 7 "the same master still runs its 7 children"

# --- 4. MariaDB stopped for 10 s mid-run ----------------------------------------------------------
fsend d$p 2000
sleep 1
"$stack" stop-db "$HERALD_STACK_DIR" > /dev/null 2>&1
sleep 10
"$stack" start-db "$HERALD_STACK_DIR" > "$tmp/db.log" 2>&1
ok $? "MariaDB stopped for 10 s and started again"
reconcile "d$p" 2000 1 "database stopped"

# --- 6. permanent refusals are not retried, the rest keeps flowing ---------------------------------
for i in $(seq 100); do
	printf '{"user_id":"%s_bad","channels":{"webhook":{"event":"b%d"}},"batch_id":"r%s"}\n' "$p" "$i" "$p"
done > "$tmp/bad.jsonl"
"$send" --bulk "$tmp/bad.jsonl" > /dev/null
fsend g$p 300
wait_final "r$p" 100 60
is "$(sql "SELECT CONCAT(status, '/', attempt, '=', COUNT(*)) FROM notifications WHERE batch_id = 'r$p' GROUP BY status, attempt")" \
	"failed/1=100" "400 for a user: all 100 failed at the first attempt"
is "$(jq -r 'select(.path == "/fail400" and .query == "bad") | .path' "$tmp/hooks.jsonl" | grep -c .)" 100 \
	"each was sent once, not retried"
reconcile "g$p" 300 0 "next to refusals"

# --- 7. poison next to good messages ---------------------------------------------------------------
t1=$(cat /proc/sys/kernel/random/uuid) t2=$(cat /proc/sys/kernel/random/uuid) t3=$(cat /proc/sys/kernel/random/uuid)
pub() { amqp-publish -u "$HERALD_AMQP_URL" -e herald -r webhook -p "$@"; }
pub -b 'not json at all' -H "x-herald-txid: $t1" -H "x-herald-client: guest"
pub -b '{"v":1,"txid":"'"$t2"'","channel":"webhook"}' -H "x-herald-txid: $t2"
# 10 MB of x (the stack's broker takes messages up to 16 MiB, its max_message_size)
head -c 10000000 /dev/zero | tr '\0' 'x' > "$tmp/big"
pub -H "x-herald-txid: $t3" < "$tmp/big"
pub -b '{"oops":'
fsend q$p 300
for t in $t1 $t2 $t3; do wk_wait "$t" webhook 30 > /dev/null; done
is "$(sql "SELECT COUNT(*) FROM notifications WHERE transaction_id IN ('$t1', '$t2', '$t3')
	AND status = 'failed' AND detail LIKE '%undecodable%'")" 3 \
	"poison with a readable transaction id (not JSON, wrong shape, 10 MB of x): failed, undecodable"
reconcile "q$p" 300 0 "next to poison"
mstop a; is $? 0 "heraldd stops with 0"
parked=$("$peek" "$HERALD_AMQP_URL" herald.webhook.v1.parked 2> /dev/null | cut -c1-300)
is "$(printf '%s\n' "$parked" | grep -c -e "$t1" -e "$t2" -e "$t3" -e 'oops')" 4 \
	"all four poison messages are parked, none lost"
# --- 5. a receiver that answers 500, then 429 with Retry-After, then times out, then recovers ----
# every message in flight at once, so each meets the 500s: this run is about the retry tiers
MCONF_IN_FLIGHT=50 MCONF_TIMEOUT=1 mconf e 4 'retry = { tiers = [ 1, 2, 3, 4, 5, 6, 8, 10 ]; };
quiet_hours = { channels = [ "webhook" ]; };'
mstart e || bail "heraldd did not start: $(cat "$tmp/e.log")"
for i in $(seq 200); do
	printf '{"user_id":"%s_mode","channels":{"webhook":{"event":"t%d"}},"batch_id":"t%s"}\n' "$p" "$i" "$p"
done > "$tmp/t.jsonl"
echo 500 > "$tmp/mode"
"$send" --bulk "$tmp/t.jsonl" > /dev/null
sleep 2; echo '429 1' > "$tmp/mode"
sleep 2; echo 'sleep 2' > "$tmp/mode"
sleep 3; echo 200 > "$tmp/mode"
wait_final "t$p" 200 90
is "$(sql "SELECT CONCAT(status, '=', COUNT(*)) FROM notifications WHERE batch_id = 't$p' GROUP BY status")" \
	"done=200" "500, 429, timeouts, then 200: all 200 delivered"
is "$(sql "SELECT COUNT(DISTINCT n.id) FROM notifications n JOIN notification_audit a ON a.notification_id = n.id
	WHERE n.batch_id = 't$p' AND a.new_status = 'retry'")/$(sql "SELECT MAX(attempt) <= 8 FROM notifications WHERE batch_id = 't$p'")" \
	"200/1" "each went through retry, within the 8 tiers"
echo "# transient faults: $(jq -r 'select(.path == "/mode") | .status' "$tmp/hooks.jsonl" | sort | uniq -c | tr -s ' \n' ' ')(answers), attempts $(sql "SELECT CONCAT(MIN(attempt), '..', MAX(attempt)) FROM notifications WHERE batch_id = 't$p'")"
is "$("$peek" "$HERALD_AMQP_URL" herald.webhook.v1.parked 2> /dev/null | grep -c "x-herald-batch")" 0 \
	"nothing parked"

# --- 8. send_at and quiet hours: delivered when due, not before; expired and cancelled never ----
later=$(date -u -d '+8 seconds' +%Y-%m-%dT%H:%M:%SZ)
cancel_at=$(date -u -d '+60 seconds' +%Y-%m-%dT%H:%M:%SZ)     # cancelled long before it is due
for i in $(seq 50); do
	printf '{"user_id":"%s_f%d","channels":{"webhook":{"event":"s%d"}},"batch_id":"s%s","send_at":"%s"}\n' "$p" $((i % 20)) "$i" "$p" "$later"
done > "$tmp/s.jsonl"
for i in $(seq 10); do
	printf '{"user_id":"%s_f%d","channels":{"webhook":{"event":"c%d"}},"batch_id":"c%s","send_at":"%s"}\n' "$p" $((i % 20)) "$i" "$p" "$cancel_at"
done > "$tmp/c.jsonl"
now_min=$(( $(date -u +%-H) * 60 + $(date -u +%-M) ))
sql "INSERT INTO quiet_hours (user_id, start_minute, end_minute) VALUES ('${p}_quiet', $(( (now_min + 1439) % 1440 )), $(( (now_min + 30) % 1440 )))"
for i in $(seq 10); do
	printf '{"user_id":"%s_quiet","channels":{"webhook":{"event":"x%d"}},"batch_id":"x%s","ttl":3}\n' "$p" "$i" "$p"
done > "$tmp/x.jsonl"
"$send" --bulk "$tmp/s.jsonl" > /dev/null && "$send" --bulk "$tmp/c.jsonl" > /dev/null &&
	"$send" --bulk "$tmp/x.jsonl" > /dev/null
ok $? "70 scheduled and 10 in quiet hours with a 3 s TTL accepted"
"$ctl" cancel --batch "c$p" > /dev/null
wait_final "s$p" 50 60
# what the database recorded before send_at, whatever the machine's speed
is "$(sql "SELECT COUNT(*) FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
	WHERE n.batch_id = 's$p' AND a.new_status IN ($finals, 'ready') AND a.changed_at < '$(date -u -d "$later" '+%F %T')'")" \
	0 "before send_at: none was made ready or final"
wait_final "x$p" 10 60
first=$(jq -r --arg b "s$p" 'select(.json.batch_id == $b) | .t' "$tmp/hooks.jsonl" | sort -n | head -1)
is "$(sql "SELECT CONCAT(status, '=', COUNT(*)) FROM notifications WHERE batch_id = 's$p' GROUP BY status")/$(hooks "s$p")" \
	"done=50/50/50" "after send_at: all 50 delivered once"
ok "$(awk -v f="$first" -v d="$(date -u -d "$later" +%s)" 'BEGIN { exit !(f >= d) }'; echo $?)" \
	"and none before it"
is "$(sql "SELECT CONCAT(status, '=', COUNT(*)) FROM notifications WHERE batch_id = 'c$p' GROUP BY status")/$(hooks "c$p")" \
	"cancelled=10/0/0" "cancelled while deferred: never delivered"
is "$(sql "SELECT CONCAT(status, '=', COUNT(*)) FROM notifications WHERE batch_id = 'x$p' GROUP BY status")/$(hooks "x$p")" \
	"expired=10/0/0" "deferred by quiet hours past their TTL: expired, never delivered"
mstop e; is $? 0 "heraldd stops with 0"
grep -q 'AddressSanitizer\|runtime error\|LeakSanitizer' "$tmp"/a.log "$tmp"/e.log
is $? 1 "no sanitizer report in heraldd's logs"
done_testing
