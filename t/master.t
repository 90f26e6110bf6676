#!/usr/bin/env bash
# master.t - heraldd's master (SPEC §1, §9, §11) against the private broker and database and a
# real local webhook receiver (t/lib/receiver.py): it forks the ledger, the outbox worker and the
# configured workers, reports channels without a provider, shows and changes worker counts live
# (heraldctl workers), reloads on SIGHUP (a broken file keeps the running config), drains on
# SIGTERM, takes its children with it when killed, throttles a crash loop; two masters (as two
# hosts) keep a cap exact; a high-priority message overtakes a backlog.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
plan 40

tmp=$(mktemp -d /tmp/herald-master-t.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
. "$HERALD_SRCDIR/t/lib/master.sh"
sql_init "$tmp"
cleanup() {
	for n in a b c; do
		[ -f "$tmp/$n.pid" ] && kill -KILL "$(cat "$tmp/$n.pid")" 2> /dev/null
	done
	sleep 0.5
	[ -n "${rpid:-}" ] && kill "$rpid" 2> /dev/null
	for q in herald.webhook.v1 herald.webhook.v1.parked herald.ledger.v1; do
		amqp-delete-queue -u "$HERALD_AMQP_URL" -q "$q" > /dev/null 2>&1
	done
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "db migrate failed"

wk_receiver

p=mst$$
rows=""
for i in $(seq 0 29); do rows="$rows,('${p}_$i', '$hook/ok?sleep=0.2&u=$i', 'UTC')"; done
sql "INSERT INTO users (user_id, webhook_url, timezone) VALUES ${rows#,},
	('${p}_cap', '$hook/ok?cap', 'UTC'), ('${p}_fast', '$hook/ok?fast', 'UTC')" || bail "cannot insert users"

# --- start: children, channels without a provider, the control socket ------------------------
mconf a 2
mstart a; ok $? "heraldd starts and opens its control socket"
is "$(stat -c %a "$tmp/a.sock")" 600 "the control socket is mode 0600"
ok "$(wait_running a 2; echo $?)" "heraldctl workers: 2 webhook workers running"
is "$(wjson a '"\(.ledger.running)/\(.outbox.running)/\(.channels.email.state)"')" "1/1/no_provider" \
	"one ledger, one outbox worker; email has no provider"
grep -q 'event=channel_not_started channel=email' "$tmp/a.log"
ok $? "heraldd says at start that email is not started"
"$ctl" workers --socket "$tmp/a.sock" push 2 > /dev/null 2> "$tmp/err"
is "$?/$(grep -c 'no usable provider' "$tmp/err")" "65/1" "workers push 2: refused, no usable provider"
"$ctl" workers --socket "$tmp/a.sock" webhook 999 > /dev/null 2>&1
is $? 64 "workers webhook 999: usage error"
"$ctl" workers --socket "$tmp/nothing.sock" > /dev/null 2>&1
is $? 69 "no heraldd at the socket: EX_UNAVAILABLE"

# --- live worker changes and reloads under load: nothing lost, nothing twice ------------------
bulk lw$p 3000 30
is $? 0 "3,000 notifications accepted"
sleep 1
is "$("$ctl" workers --socket "$tmp/a.sock" webhook 6)" '{"channel":"webhook","workers":6,"previous":2}' \
	"workers webhook 6 answers with the previous count"
ok "$(wait_running a 6; echo $?)" "6 webhook workers run"
sleep 1
"$ctl" workers --socket "$tmp/a.sock" webhook 1 > /dev/null
ok "$(wait_running a 1; echo $?)" "down to 1: the other 5 drained and exited"
cp "$tmp/a.conf" "$tmp/a.good"
sed -i 's/workers = 2;/workers = "many";/' "$tmp/a.conf"
kill -HUP "$(cat "$tmp/a.pid")"
sleep 0.5
like "$(grep 'event=reload_refused' "$tmp/a.log")" "a.conf:[0-9]+: channels.webhook.workers" \
	"SIGHUP with a broken file: refused, naming file, line and key"
is "$(wjson a '"\(.generation)/\(.channels.webhook.running)"')" "1/1" "and the running configuration stays"
mconf a 3
kill -HUP "$(cat "$tmp/a.pid")"
ok "$(wait_running a 3; echo $?)" "SIGHUP with a valid file (3 workers): the new generation runs"
is "$(wjson a .generation)" 2 "generation 2"
wait_final "lw$p" 3000 90
is "$(final "lw$p")" 3000 "all 3,000 final"
is "$(sql "SELECT CONCAT(status, '=', COUNT(*)) FROM notifications WHERE batch_id = 'lw$p' GROUP BY status")" \
	"done=3000" "all done"
is "$(hooks "lw$p")" "3000/3000" "the receiver got each exactly once"
is "$(sql "SELECT COUNT(*) FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
	WHERE n.batch_id = 'lw$p' AND a.new_status = 'done'")" 3000 "one done audit row each"

# --- SIGTERM under load: final or still queued, none left ready ------------------------------
bulk st$p 1000 30
sleep 1
mstop a; is $? 0 "SIGTERM under load: heraldd drains and exits 0"
is "$(pgrep -f "heraldd -c $tmp/a.conf" | wc -l)" 0 "no child is left"
is "$(sql "SELECT COUNT(*) FROM notifications WHERE batch_id = 'st$p' AND status NOT IN ('done', 'queued')")" 0 \
	"every message is done or still queued (none left ready)"
n_done=$(sql "SELECT COUNT(*) FROM notifications WHERE batch_id = 'st$p' AND status = 'done'")
mstart a
wait_final "st$p" 1000 90
is "$(final "st$p")/$(hooks "st$p")" "1000/1000/1000" \
	"restarted: all 1,000 final, each delivered once ($n_done before the stop)"

# --- SIGKILL of the master: the children follow; a restart finishes the rest -----------------
bulk sk$p 1000 30
sleep 1
kids=$(pgrep -P "$(cat "$tmp/a.pid")" | tr '\n' ' ')
kill -KILL "$(cat "$tmp/a.pid")"
wait "$(cat "$tmp/a.pid")" 2> /dev/null
rm -f "$tmp/a.pid"
t0=$(date +%s)
for _ in $(seq 150); do
	alive=0
	for k in $kids; do kill -0 "$k" 2> /dev/null && alive=1; done
	[ $alive = 0 ] && break
	sleep 0.1
done
is "$alive" 0 "SIGKILL of the master: its $(echo $kids | wc -w) children exit too"
ok "$([ $(($(date +%s) - t0)) -le "$(tlimit 8)" ]; echo $?)" "within the grace (5 s) and a little"
mstart a
wait_final "sk$p" 1000 90
is "$(final "sk$p")/$(hooks "sk$p")" "1000/1000/1000" "restarted: all 1,000 final, each delivered once"
mstop a; is $? 0 "stopped"

# --- two masters (two hosts), 4 workers each: a cap of 3 stays exact ---------------------------
mconf a 4 'caps = { webhook = 3; };'
mconf b 4 'caps = { webhook = 3; };'
for i in $(seq 1000); do printf '{"user_id":"%s_cap","channels":{"webhook":{"event":"c%d"}},"batch_id":"cap%s"}\n' "$p" "$i" "$p"; done > "$tmp/cap.jsonl"
"$send" --bulk "$tmp/cap.jsonl" > /dev/null
is $? 0 "1,000 for one user accepted"
mstart a && mstart b
ok $? "two masters run side by side"
wait_final "cap$p" 1000 90
is "$(sql "SELECT CONCAT(status, '=', COUNT(*)) FROM notifications WHERE batch_id = 'cap$p' GROUP BY status ORDER BY status" | tr '\n' ' ')" \
	"done=3 rate_limited=997 " "exactly 3 done, 997 rate_limited"
is "$(hooks "cap$p")" "3/3" "the receiver got 3"
is "$(sql "SELECT COUNT(DISTINCT SUBSTRING_INDEX(a.worker, '.', -1)) > 4 FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
	WHERE n.batch_id = 'cap$p'")" 1 "workers of both masters took part"
mstop b; mstop a

# --- priority: a high message overtakes a backlog of 5,000 low ones ----------------------------
mconf a 1
for i in $(seq 5000); do printf '{"user_id":"%s_fast","channels":{"webhook":{"event":"l%d"}},"batch_id":"pr%s","priority":"low"}\n' "$p" "$i" "$p"; done > "$tmp/low.jsonl"
"$send" --bulk "$tmp/low.jsonl" > /dev/null
mstart a
wait_final "pr$p" 200 60
tx=$(wk_tx "$("$send" --json "{\"user_id\":\"${p}_fast\",\"channels\":{\"webhook\":{\"event\":\"high\"}},\"batch_id\":\"hi$p\",\"priority\":\"high\"}")")
# the audit row id when the high message was in the queue (confirmed)
mark=$(sql "SELECT MAX(id) FROM notification_audit")
is "$(wk_wait "$tx" webhook 30)" done "the high message is done"
hi=$(sql "SELECT MIN(a.id) FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
	WHERE n.transaction_id = '$tx' AND a.new_status = 'ready'")
after=$(sql "SELECT COUNT(*) FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
	WHERE n.batch_id = 'pr$p' AND a.new_status = 'ready' AND a.id > $mark AND a.id < $hi")
left=$(sql "SELECT 5000 - COUNT(*) FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
	WHERE n.batch_id = 'pr$p' AND a.new_status = 'ready' AND a.id < $hi")
echo "# the high message was taken after $after low ones that were queued before it (prefetch 20); $left low ones were still waiting"
ok "$([ "$after" -le 40 ] && [ "$left" -gt 1000 ]; echo $?)" \
	"it waited behind at most the prefetch window (and the window in flight), not the backlog"
mstop a
amqp-delete-queue -u "$HERALD_AMQP_URL" -q herald.webhook.v1 > /dev/null

# --- a crash loop is throttled and logged -------------------------------------------------------
mconf c 2 'mysql = { url = "mysql://herald:herald@127.0.0.1:1/herald"; connect_timeout = 1; };'
HERALD_MYSQL_URL= mstart c
sleep "$(tlimit 6)"       # (longer under valgrind: HERALD_T_TIMEOUT)
n=$(grep -c 'event=child_started kind=webhook' "$tmp/c.log")
ok "$([ "$n" -ge 4 ] && [ "$n" -le "$(tlimit 16)" ]; echo $?)" "workers that die before their first ack are respawned with backoff ($n starts in $(tlimit 6) s)"
grep -q 'level=error.*event=crash_loop kind=webhook' "$tmp/c.log"
ok $? "the crash loop is logged at error level"
mstop c; is $? 0 "and SIGTERM still stops it with 0"

# --- bad configuration at start ------------------------------------------------------------------
printf 'heraldd = { grace = 0; };\n' > "$tmp/bad.conf"
chmod 600 "$tmp/bad.conf"
"$heraldd" -c "$tmp/bad.conf" > "$tmp/bad.out" 2>&1
is "$?/$(grep -c 'bad.conf:1.*grace' "$tmp/bad.out")" "78/1" "a bad file at start: exit 78 naming file, line and key"
grep -q 'AddressSanitizer\|runtime error\|LeakSanitizer' "$tmp"/*.log
is $? 1 "no sanitizer report in any heraldd log"
done_testing
