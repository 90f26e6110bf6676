#!/usr/bin/env bash
# scheduler.t - the scheduler (§4 step 5, §3) against the private broker and database, a webhook
# worker and a real HTTP receiver (t/lib/receiver.py): send_at (deferred, not sent before, sent
# after, the whole trail and its events); quiet hours (deferred to the window's end, sent once it
# is over); expired and cancelled while deferred (ended by the scheduler, never sent); the
# published message carries the producer's priority, id and headers; a copy whose row is still
# deferred (a commit that failed after the publish) sends nothing and the next round requeues
# it once; two schedulers at once on 200 due messages requeue each exactly once.
# The scheduler runs alone through t/itest/sched_run (scheduler_main), as heraldd's master
# would run it.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
plan 50

tmp=$(mktemp -d /tmp/herald-scheduler-t.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
sql_init "$tmp"
srun="$HERALD_BUILDDIR/t/itest/sched_run"
# sc_start NAME / sc_stop NAME - a scheduler in the background, log in $tmp/NAME.log
sc_start() { "$srun" >> "$tmp/$1.log" 2>&1 & echo $! > "$tmp/$1.pid"; }
sc_stop() { wk_stop "$1"; }
cleanup() {
	wk_kill worker
	for s in s1 s2 s3; do wk_kill "$s"; done
	[ -n "${rpid:-}" ] && kill "$rpid" 2> /dev/null
	for q in herald.webhook.v1 herald.webhook.v1.parked t.sched.events; do
		"$peek" "$HERALD_AMQP_URL" "$q" > /dev/null 2>&1
	done
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "db migrate failed"
[ -x "$srun" ] || bail "$srun not built"

wk_receiver
: > "$tmp/hooks.jsonl"
got() { grep -c "$1" "$tmp/hooks.jsonl" 2> /dev/null || true; }

conf=$tmp/herald.conf
cat > "$conf" <<EOF
broker = { prefetch = 50; confirm_timeout = 10; };
log = { level = "debug"; };
scheduler = { interval = 1; };
quiet_hours = { channels = [ "sms", "push", "webhook" ]; };
channels = { webhook = { allow_private = true; providers = ( { name = "hooks"; type = "webhook"; } ); }; };
EOF
chmod 600 "$conf"
export HERALD_CONFIG=$conf
"$peek" "$HERALD_AMQP_URL" t.sched.events --bind herald.events '#' || bail "cannot bind t.sched.events"
: > "$tmp/events.all"
# events TXID - "routing previous" of the events for TXID, in order
events() {
	"$peek" "$HERALD_AMQP_URL" t.sched.events 2> /dev/null >> "$tmp/events.all"
	grep "$1" "$tmp/events.all" | sed -n 's/.*"channel":"\([a-z]*\)".*"status":"\([a-z_]*\)","previous":"\{0,1\}\([a-z_]*\)"\{0,1\},.*/\1.\2 \3/p' |
		tr '\n' ' ' | sed 's/ $//'
}
p=sch$$
sql "INSERT INTO users (user_id, webhook_url, timezone) VALUES ('${p}_a', '$hook/ok?u=${p}_a', 'UTC'),
	('${p}_q', '$hook/ok?u=${p}_q', 'UTC'), ('${p}_m', '$hook/ok?u=${p}_m', 'UTC'),
	('${p}_x', '$hook/ok?u=${p}_x', 'UTC')" || bail "cannot insert users"
hsend() { wk_tx "$("$send" --json "$1")"; }
# iso SECS - RFC 3339 UTC time SECS seconds from now, with microseconds
iso() { date -u -d "now + $1 seconds" +%Y-%m-%dT%H:%M:%S.%6NZ; }
# due TXID - make the deferred row due now (the time has come)
due() { sql "UPDATE notifications SET deferred_until = NOW(6) WHERE transaction_id = '$1' AND status = 'deferred'"; }
stored() { sql "SELECT COUNT(*) FROM deferred_messages d JOIN notifications n ON n.id = d.notification_id WHERE n.transaction_id = '$1'"; }
bysched() {
	sql "SELECT COUNT(*) FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
		WHERE n.transaction_id = '$1' AND a.old_status = 'deferred' AND a.worker LIKE 'scheduler.%' AND a.host <> ''"
}

wk_start worker --worker webhook
sc_start s1

echo "# t=$SECONDS"
# --- send_at 3 s ahead ---------------------------------------------------------------------------
at=$(iso 3)
tx=$(hsend "{\"user_id\":\"${p}_a\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"send_at\":\"$at\",\"priority\":\"high\"}")
is "$(wk_wait_status "$tx" webhook deferred 5 && echo deferred)" deferred "send_at 3 s ahead: deferred"
is "$(got "$tx")" 0 "not sent while deferred"
is "$(stored "$tx")" 1 "the message is stored"
is "$(wk_wait "$tx" webhook 15)" done "sent after send_at: done"
is "$(got "$tx")" 1 "the receiver got it once"
t=$(grep "$tx" "$tmp/hooks.jsonl" | head -1 | sed -n 's/.*"t": *\([0-9.]*\).*/\1/p')
is "$(awk -v t="$t" -v s="$(date -d "$at" +%s.%N)" 'BEGIN { print (t >= s ? "after" : "before " t " < " s) }')" after \
	"it arrived no earlier than send_at"
is "$(wk_trail "$tx" webhook)" "->deferred deferred>queued queued>ready ready>done" \
	"audit: deferred, queued (scheduler), ready, done"
is "$(bysched "$tx")" 1 "the deferred → queued row names the scheduler and its host"
like "$(sql "SELECT a.detail FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
	WHERE n.transaction_id = '$tx' AND a.new_status = 'queued'")" '"reason": *"due"' "queued detail: due"
is "$(stored "$tx")/$(sql "SELECT IFNULL(deferred_until, 'NULL') FROM notifications WHERE transaction_id = '$tx'")" \
	"0/NULL" "the stored message is gone, deferred_until cleared"
sleep 1.2
is "$(events "$tx")" "webhook.deferred null webhook.queued deferred webhook.ready queued webhook.done ready" \
	"events: deferred, queued, ready, done"

echo "# t=$SECONDS"
# --- quiet hours ---------------------------------------------------------------------------------
# a window from the last minute to two minutes ahead (UTC): the deferral ends at its end; the
# end is then brought forward (the window is over) rather than waited for
now=$(date -u +%s); m=$(( (now % 86400) / 60 ))
qs=$(( (m + 1439) % 1440 )) qe=$(( (m + 2) % 1440 ))
qend=$(date -u -d "@$(( now - now % 60 + 120 ))" '+%Y-%m-%d %H:%M:%S.000000')
sql "INSERT INTO quiet_hours (user_id, start_minute, end_minute) VALUES ('${p}_q', $qs, $qe)"
tx=$(hsend "{\"user_id\":\"${p}_q\",\"channels\":{\"webhook\":{\"event\":\"e\"}}}")
is "$(wk_wait_status "$tx" webhook deferred 5 && echo deferred)" deferred "inside quiet hours: deferred"
is "$(sql "SELECT deferred_until FROM notifications WHERE transaction_id = '$tx'")" "$qend" \
	"deferred until the window ends"
like "$(sql "SELECT detail FROM notifications WHERE transaction_id = '$tx'")" '"reason": *"quiet_hours"' \
	"detail: quiet_hours"
sleep 1.5
is "$(wk_status "$tx" webhook)/$(got "$tx")" "deferred/0" "not due: the scheduler leaves it, nothing sent"
sql "DELETE FROM quiet_hours WHERE user_id = '${p}_q'"
due "$tx"
is "$(wk_wait "$tx" webhook 10)" done "the window over: requeued and done"
is "$(got "$tx")/$(wk_trail "$tx" webhook)" "1/->deferred deferred>queued queued>ready ready>done" \
	"sent once, full trail"

echo "# t=$SECONDS"
# --- expired while deferred ------------------------------------------------------------------------
# quiet hours defer it for minutes; its ttl of 2 s ends first (send_at after expires_at is refused
# at the producer)
sql "INSERT INTO quiet_hours (user_id, start_minute, end_minute) VALUES ('${p}_x', $qs, $qe)"
tx=$(hsend "{\"user_id\":\"${p}_x\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"ttl\":2}")
is "$(wk_wait_status "$tx" webhook deferred 5 && echo deferred)" deferred "quiet hours, ttl 2 s: deferred"
is "$(sql "SELECT deferred_until = expires_at FROM notifications WHERE transaction_id = '$tx'")" 1 \
	"deferred until its expiry, which comes before the window's end"
is "$(wk_wait "$tx" webhook 10)" expired "expired while deferred: the scheduler ends it expired at its expiry"
is "$(got "$tx")/$(wk_trail "$tx" webhook)/$(bysched "$tx")" "0/->deferred deferred>expired/1" \
	"never sent; audit deferred → expired by the scheduler"
is "$(stored "$tx")" 0 "the stored message is deleted"
sleep 1.2
is "$(events "$tx")" "webhook.deferred null webhook.expired deferred" "events: deferred, expired"

echo "# t=$SECONDS"
# --- cancelled while deferred (batch and transaction) ------------------------------------------------
txb=$(hsend "{\"user_id\":\"${p}_a\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"send_at\":\"$(iso 60)\",\"batch_id\":\"cb-$p\"}")
txc=$(hsend "{\"user_id\":\"${p}_a\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"send_at\":\"$(iso 60)\"}")
wk_wait_status "$txb" webhook deferred 5 && wk_wait_status "$txc" webhook deferred 5
is $? 0 "two more deferred"
sql "INSERT INTO cancellations (kind, target) VALUES ('batch', 'cb-$p'), ('transaction', '$txc')"
due "$txb"; due "$txc"
is "$(wk_wait "$txb" webhook 10)/$(wk_wait "$txc" webhook 10)" "cancelled/cancelled" \
	"a cancelled batch and transaction while deferred: cancelled"
is "$(got "$txb")/$(got "$txc")/$(wk_trail "$txb" webhook)/$(bysched "$txc")" "0/0/->deferred deferred>cancelled/1" \
	"never sent; audit deferred → cancelled by the scheduler"
is "$(stored "$txb")$(stored "$txc")" 00 "their stored messages are deleted"

echo "# t=$SECONDS"
# --- what the scheduler publishes --------------------------------------------------------------------
tx=$(hsend "{\"user_id\":\"${p}_m\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"send_at\":\"$(iso 60)\",
	\"priority\":7,\"batch_id\":\"pb-$p\",\"idempotency_key\":\"k-$p\"}")
wk_wait_status "$tx" webhook deferred 5
wk_stop worker; is $? 0 "worker stopped (SIGTERM, 0)"
orig=$(sql "SELECT d.body FROM deferred_messages d JOIN notifications n ON n.id = d.notification_id WHERE n.transaction_id = '$tx'")
due "$tx"
for _ in $(seq 50); do [ "$(wk_status "$tx" webhook)" = queued ] && break; sleep 0.1; done
is "$(wk_status "$tx" webhook)" queued "requeued while no worker runs: queued"
m=$("$peek" "$HERALD_AMQP_URL" herald.webhook.v1 2> /dev/null)
like "$m" "prio=7	mode=2	" "published persistent with the producer's priority"
like "$m" "$tx:webhook" "message id: txid:channel"
like "$m" "x-herald-txid=$tx	x-herald-attempt=0	x-herald-channel=webhook	x-herald-client=[^	]+	x-herald-category=notifications	x-herald-batch=pb-$p	x-herald-idempotency-key=k-$p" \
	"the producer's headers"
is "$(printf '%s' "$m" | sed -n 's/.*body=//p')" "$orig" "the body as received"

echo "# t=$SECONDS"
# --- a copy whose row is still deferred (the commit failed after the publish) -------------------------
sc_stop s1; is $? 0 "scheduler stopped (SIGTERM, 0)"
wk_start worker --worker webhook
at=$(iso 2)
tx=$(hsend "{\"user_id\":\"${p}_a\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"send_at\":\"$at\"}")
wk_wait_status "$tx" webhook deferred 5
sleep 2.1     # due now, and no scheduler runs
body=$(sql "SELECT d.body FROM deferred_messages d JOIN notifications n ON n.id = d.notification_id WHERE n.transaction_id = '$tx'")
amqp-publish -u "$HERALD_AMQP_URL" -e herald -r webhook -p -b "$body" -H "x-herald-txid: $tx"
sleep 1.5
is "$(got "$tx")/$(wk_status "$tx" webhook)/$(wk_trail "$tx" webhook)" "0/deferred/->deferred" \
	"the copy meets a deferred row: nothing sent, nothing recorded"
is "$("$peek" "$HERALD_AMQP_URL" herald.webhook.v1 2> /dev/null | grep -c "$tx")" 0 "the copy was acked"
is "$(stored "$tx")" 1 "the stored message is kept"
sc_start s1
is "$(wk_wait "$tx" webhook 10)" done "the next round requeues it: done"
is "$(got "$tx")/$(wk_trail "$tx" webhook)" "1/->deferred deferred>queued queued>ready ready>done" \
	"sent exactly once, one requeue"
sc_stop s1

echo "# t=$SECONDS"
# --- two schedulers at once on 200 due messages ------------------------------------------------------
at=$(iso 8)
for i in $(seq 200); do
	printf '{"user_id":"%s","channels":{"webhook":{"event":"m%d"}},"send_at":"%s","batch_id":"two-%s"}\n' \
		"${p}_m" "$i" "$at" "$p"
done > "$tmp/bulk.jsonl"
"$send" --bulk "$tmp/bulk.jsonl" > "$tmp/sent.jsonl"
is $? 0 "200 accepted"
nb() { sql "SELECT COUNT(*) FROM notifications WHERE batch_id = 'two-$p' AND status = '$1'"; }
for _ in $(seq 80); do [ "$(nb deferred)" = 200 ] && break; sleep 0.1; done
is "$(nb deferred)" 200 "200 deferred"
# all due at once, then both schedulers start together
left=$(awk -v s="$(date -d "$at" +%s.%N)" -v n="$(date +%s.%N)" 'BEGIN { d = s - n + 0.2; print (d > 0 ? d : 0) }')
sleep "$left"
sc_start s2; sc_start s3
for _ in $(seq 200); do [ "$(nb done)" = 200 ] && break; sleep 0.1; done
is "$(nb done)" 200 "all 200 done"
is "$(grep "u=${p}_m" "$tmp/hooks.jsonl" | grep -c '"m[0-9]*"')" 200 "the receiver got 200"
is "$(grep "u=${p}_m" "$tmp/hooks.jsonl" | grep '"m[0-9]*"' | grep -o '"webhook-id": *"[^"]*"' | sort -u | wc -l)" \
	200 "200 distinct webhook-ids"
is "$(sql "SELECT COUNT(*) FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
	WHERE n.batch_id = 'two-$p' AND a.old_status = 'deferred' AND a.new_status = 'queued'")" 200 \
	"each requeued exactly once"
echo "# schedulers that took part: $(sql "SELECT COUNT(DISTINCT a.worker) FROM notification_audit a
	JOIN notifications n ON n.id = a.notification_id WHERE n.batch_id = 'two-$p' AND a.new_status = 'queued'")"
is "$(sql "SELECT COUNT(*) FROM deferred_messages d JOIN notifications n ON n.id = d.notification_id
	WHERE n.batch_id = 'two-$p'")" 0 "no stored message left"

rc=""; for s in s2 s3; do sc_stop "$s"; rc="$rc$?"; done
is "$rc" 00 "both schedulers stop on SIGTERM with 0"
wk_stop worker; is $? 0 "worker: SIGTERM exits 0"
grep -q 'AddressSanitizer\|runtime error\|ERROR' "$tmp"/s*.log "$tmp/worker.log"; is $? 1 \
	"no error or sanitizer report in the scheduler and worker logs"
like "$(cat "$tmp"/s*.log)" 'event=scheduler_round taken=[0-9]+ requeued=' "rounds are logged key=value"
done_testing
