#!/usr/bin/env bash
# ctl_cancel.t - heraldctl cancel TXID | --batch B (SPEC §7) against the private broker and
# database: queued notifications (recorded by the ledger while no worker runs) end cancelled at
# once with their audit row and event; a webhook worker started afterwards sends nothing for
# them and cancels a message of the batch sent later; a deferred one is cancelled and its stored
# message deleted; a ready one (in flight) is left to the worker; bad input and no database.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
need_ctl
plan 41

tmp=$(mktemp -d /tmp/herald-ctl-cancel.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
sql_init "$tmp"
cleanup() {
	wk_kill worker
	wk_kill ledger
	[ -n "${rpid:-}" ] && kill "$rpid" 2> /dev/null
	for q in herald.webhook.v1 herald.ledger.v1 t.ctl_cancel.events; do
		"$peek" "$HERALD_AMQP_URL" "$q" > /dev/null 2>&1
	done
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "db migrate failed"

secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
wk_receiver --secret "$secret" --slow 4
: > "$tmp/hooks.jsonl"
got() { grep -c "$1" "$tmp/hooks.jsonl" 2> /dev/null || true; }

conf=$tmp/herald.conf
cat > "$conf" <<EOF
broker = { prefetch = 20; confirm_timeout = 10; };
log = { level = "info"; };
channels = { webhook = { allow_private = true;
	providers = ( { name = "hooks"; type = "webhook"; secrets = [ "$secret" ]; timeout = 8; } ); }; };
EOF
chmod 600 "$conf"
export HERALD_CONFIG=$conf
"$peek" "$HERALD_AMQP_URL" t.ctl_cancel.events --bind herald.events '#' || bail "cannot bind t.ctl_cancel.events"
: > "$tmp/events.all"
# events TXID - "routing-key previous" of the events published for TXID so far, in order
events() {
	"$peek" "$HERALD_AMQP_URL" t.ctl_cancel.events 2> /dev/null >> "$tmp/events.all"
	grep "$1" "$tmp/events.all" | sed -n 's/.*body=//p' | python3 -c 'import json,sys
for l in sys.stdin:
    e=json.loads(l); print(e["channel"]+"."+e["status"], e["previous"])' | tr '\n' ' ' | sed 's/ $//'
}

# run ARGS - heraldctl ARGS; stdout in $out, stderr in $err, status in $rc
run() { "$ctl" "$@" > "$tmp/out" 2> "$tmp/err"; rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err"); cat "$tmp/err" >> "$tmp/ctl.err"; }
: > "$tmp/ctl.err"
p=ctlc$$
sql "INSERT INTO users (user_id, webhook_url) VALUES ('${p}_ok', '$hook/ok?u=$p'),
	('${p}_slow', '$hook/slow?u=$p')" || bail "cannot insert users"
hsend() { wk_tx "$("$send" --json "$1")"; }
req() { printf '{"user_id":"%s","channels":{"webhook":{"event":"e"}}%s}' "$1" "${2:+,$2}"; }

# --- bad input first: nothing may be written ---------------------------------------------------
run cancel
is "$rc" 64 "cancel without TXID or --batch: exit 64 (EX_USAGE)"
like "$err" 'give either TXID or --batch B' "... saying what is missing"
run cancel not-a-uuid
is "$rc" 64 "a malformed TXID: exit 64"
like "$err" "'not-a-uuid': not a transaction id" "... naming the argument"
run cancel 3f0c6b8e-1d2a-4c55-9e1f-0a1b2c3d4e5f --batch b
is "$rc" 64 "TXID and --batch together: exit 64"
run cancel --batch ''
is "$rc" 64 "an empty batch id: exit 64"
run cancel --batch "$(printf 'x%.0s' $(seq 129))"
is "$rc" 64 "a batch id over 128 bytes: exit 64"
run cancel --batch "$(printf 'a\tb')"
is "$rc/$(sql "SELECT COUNT(*) FROM cancellations WHERE target = CONCAT('a', CHAR(9), 'b')")" 64/0 \
	"a batch id with a control character: exit 64, nothing recorded"
HERALD_MYSQL_URL=mysql://herald:herald@127.0.0.1:1/herald run cancel 3f0c6b8e-1d2a-4c55-9e1f-0a1b2c3d4e5f
is "$rc" 69 "no database: exit 69 (EX_UNAVAILABLE)"
like "$err" '127\.0\.0\.1:1' "... naming the server"

# --- queued (ledger alone) --------------------------------------------------------------------
wk_start ledger --ledger
tx=$(hsend "$(req "${p}_ok")")
b1=$(hsend "$(req "${p}_ok" "\"batch_id\":\"cb-$p\"")")
b2=$(hsend "$(req "${p}_ok" "\"batch_id\":\"cb-$p\"")")
keep=$(hsend "$(req "${p}_ok" "\"batch_id\":\"other-$p\"")")
for t in "$tx" "$b1" "$b2" "$keep"; do wk_wait_status "$t" webhook queued 15 || bail "$t not queued by the ledger"; done
[ -n "$tx" ] && [ -n "$b1" ] && [ -n "$b2" ]; ok $? "four notifications queued by the ledger"

run cancel "$(printf '%s' "$tx" | tr a-f A-F)"
is "$rc" 0 "cancel TXID (upper case accepted): exit 0"
like "$out" "^\\{\"transaction_id\":\"$tx\",\"cancelled\":1,\"in_flight\":0,\"retry\":0,\"final_before\":0,\"later\":\"[^\"]+\"\\}\$" \
	"one JSON line: 1 cancelled now, the rest later"
is "$(wk_status "$tx" webhook)" cancelled "the transaction is cancelled"
is "$(wk_trail "$tx" webhook)" "->queued queued>cancelled" "audit: queued → cancelled"
like "$(sql "SELECT CONCAT(a.host, ' ', a.worker, ' ', a.detail) FROM notification_audit a JOIN notifications n
	ON n.id = a.notification_id WHERE n.transaction_id = '$tx' AND a.new_status = 'cancelled'")" \
	'^[^ ]+ heraldctl \{"reason": ?"cancelled", ?"by": ?"heraldctl cancel", ?"kind": ?"transaction"\}$' \
	"the audit row names heraldctl and why"
is "$(sql "SELECT COUNT(*) FROM cancellations WHERE kind = 'transaction' AND target = '$tx'")" 1 \
	"the cancellation is recorded for the workers"
ev=$(sql "SELECT body FROM event_outbox WHERE routing_key = 'webhook.cancelled' AND body LIKE '%$tx%'")
if [ -n "$ev" ]; then
	like "$ev" "\"transaction_id\":\"$tx\",\"channel\":\"webhook\",\"user_id\":\"${p}_ok\".*\"status\":\"cancelled\",\"previous\":\"queued\",\"attempt\":" \
		"the §3 event is in the outbox"
else
	sleep 1.5
	is "$(events "$tx")" "webhook.queued None webhook.cancelled queued" "the §3 event was published"
fi
run cancel "$tx"
like "$rc/$out" '^0/.*"cancelled":0,.*"final_before":1,' "cancel again: nothing more, safe to repeat"

run cancel --batch "cb-$p"
like "$rc/$out" "^0/\\{\"batch_id\":\"cb-$p\",\"cancelled\":2," "cancel --batch: both queued ones cancelled"
is "$(wk_status "$b1" webhook)/$(wk_status "$b2" webhook)/$(wk_status "$keep" webhook)" \
	cancelled/cancelled/queued "the batch's two are cancelled, another batch's is not"
is "$(wk_trail "$b2" webhook)" "->queued queued>cancelled" "batch: audit queued → cancelled"

# --- the worker meets them: nothing sent; a later message of the batch is cancelled --------------
wk_start worker --worker webhook
is "$(wk_wait "$keep" webhook 20)" done "the worker delivers the one not cancelled"
b3=$(hsend "$(req "${p}_ok" "\"batch_id\":\"cb-$p\"")")
is "$(wk_wait "$b3" webhook 20)" cancelled "a message of the batch sent after cancel: cancelled by the worker"
is "$(got "$tx")/$(got "$b1")/$(got "$b2")/$(got "$b3")" 0/0/0/0 "nothing of the cancelled ones was sent"
is "$(got "$keep")" 1 "the other one was sent"
is "$(wk_trail "$tx" webhook)" "->queued queued>cancelled" "the worker wrote nothing for the cancelled transaction"
sleep 1.5
is "$(events "$b1")" "webhook.queued None webhook.cancelled queued" "events of a batch message: queued, cancelled"

# --- deferred: cancelled now, its stored message deleted ----------------------------------------
later=$(date -u -d '+2 hours' +%Y-%m-%dT%H:%M:%SZ)
td=$(hsend "$(req "${p}_ok" "\"send_at\":\"$later\"")")
wk_wait_status "$td" webhook deferred 15
is "$(wk_status "$td" webhook)" deferred "send_at in 2 h: deferred"
run cancel "$td"
like "$rc/$out" '^0/.*"cancelled":1,' "cancel a deferred transaction"
is "$(wk_status "$td" webhook)/$(sql "SELECT COUNT(*) FROM deferred_messages d JOIN notifications n
	ON n.id = d.notification_id WHERE n.transaction_id = '$td'")" cancelled/0 \
	"deferred → cancelled, the stored message deleted"
like "$(wk_trail "$td" webhook)" 'deferred>cancelled$' "audit: deferred → cancelled"
is "$(sql "SELECT deferred_until IS NULL FROM notifications WHERE transaction_id = '$td'")" 1 \
	"no due time left for the scheduler"

# --- ready (in flight): left to the worker ---------------------------------------------------------
ts=$(hsend "$(req "${p}_slow")")
for _ in $(seq 100); do [ "$(wk_status "$ts" webhook)" = ready ] && break; sleep 0.1; done
is "$(wk_status "$ts" webhook)" ready "a slow delivery is ready (in flight)"
run cancel "$ts"
like "$rc/$out" '^0/.*"cancelled":0,"in_flight":1,' "cancel: nothing cancelled now, one in flight"
is "$(wk_wait "$ts" webhook 20)" done "the worker finishes the in-flight one"
like "$(wk_trail "$ts" webhook)" '^(->queued queued>ready|->ready) ready>done$' "in flight: cancel wrote nothing"

# --- an unknown transaction: recorded for later ------------------------------------------------------
ux=$(cat /proc/sys/kernel/random/uuid)
run cancel "$ux"
like "$rc/$out" "^0/\\{\"transaction_id\":\"$ux\",\"cancelled\":0,\"in_flight\":0," \
	"an id not recorded yet: nothing now, cancelled when met"

wk_stop worker; is $? 0 "worker: SIGTERM exits 0"
wk_stop ledger; is $? 0 "ledger: SIGTERM exits 0"
grep -q 'AddressSanitizer\|runtime error\|LeakSanitizer' "$tmp/ctl.err" "$tmp/worker.log"
is $? 1 "no sanitizer report from heraldctl or the worker"
done_testing
