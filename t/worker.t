#!/usr/bin/env bash
# worker.t - one webhook worker (heraldd --worker webhook) against the private broker, the
# private database and a real local HTTP receiver (t/lib/receiver.py, which checks the
# Standard Webhooks signature with Python's hmac): every status of §4 a worker reaches, with
# its audit rows, its event on herald.events and what the receiver got or did not get; `to`
# recipients; the transition table (a redelivered done message sends nothing); poison messages
# parked; the same transaction after a kill is not a duplicate.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
plan 84

tmp=$(mktemp -d /tmp/herald-worker-t.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
sql_init "$tmp"
cleanup() {
	wk_kill worker
	wk_kill ledger
	[ -n "${rpid:-}" ] && kill "$rpid" 2> /dev/null
	for q in herald.webhook.v1 herald.webhook.v1.parked herald.ledger.v1 t.worker.events; do
		"$peek" "$HERALD_AMQP_URL" "$q" > /dev/null 2>&1
	done
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "db migrate failed"

secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
wk_receiver --secret "$secret" --slow 3
# got TXID - requests the receiver got for TXID
got() { grep -c "\"transaction_id\": *\"$1\"\|$1" "$tmp/hooks.jsonl" 2> /dev/null || true; }
# hookline TXID - the receiver's last line for TXID
hookline() { grep "$1" "$tmp/hooks.jsonl" | tail -1; }
jget() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(json.dumps(eval("d"+sys.argv[2]), separators=(",",":")) if not isinstance(eval("d"+sys.argv[2]), str) else eval("d"+sys.argv[2]))' "$1" "$2"; }

conf=$tmp/herald.conf
cat > "$conf" <<EOF
broker = { prefetch = 20; confirm_timeout = 10; };
retry = { tiers = [ 1, 2 ]; };
preferences = { defaults = { marketing = { webhook = true; }; reminders = false; }; };
log = { level = "debug"; };
channels = { webhook = { allow_private = true;
	providers = ( { name = "hooks"; type = "webhook"; secrets = [ "$secret" ]; timeout = 2; } ); }; };
EOF
chmod 600 "$conf"
export HERALD_CONFIG=$conf
"$peek" "$HERALD_AMQP_URL" t.worker.events --bind herald.events '#' || bail "cannot bind t.worker.events"
# events TXID - "routing status previous" of the events for TXID, in order
events() {
	"$peek" "$HERALD_AMQP_URL" t.worker.events 2> /dev/null > "$tmp/events.new"
	cat "$tmp/events.new" >> "$tmp/events.all"
	grep "$1" "$tmp/events.all" | sed -n 's/.*body=//p' |
		python3 -c 'import json,sys
for l in sys.stdin:
    e=json.loads(l); print(e["channel"]+"."+e["status"], e["previous"])' | tr '\n' ' ' | sed 's/ $//'
}
: > "$tmp/events.all"

p=wkt$$
sql "INSERT INTO users (user_id, first_name, webhook_url, timezone) VALUES
	('${p}_ok', 'Ada', '$hook/ok', 'Europe/London'),
	('${p}_400', NULL, '$hook/status/400', 'UTC'),
	('${p}_503', NULL, '$hook/status/503', 'UTC'),
	('${p}_flaky', NULL, '$hook/seq/f$$/503,200', 'UTC'),
	('${p}_429', NULL, '$hook/seq/l$$/429,200?retry_after=1', 'UTC'),
	('${p}_pa', NULL, '$hook/seq/pa$$/429,200?retry_after=$(tlimit 3)', 'UTC'),
	('${p}_pb', NULL, '$hook/ok?pb', 'UTC'),
	('${p}_slow', NULL, '$hook/slow', 'UTC'),
	('${p}_nourl', NULL, NULL, 'UTC'),
	('${p}_optout', NULL, '$hook/ok', 'UTC'),
	('${p}_rem', NULL, '$hook/ok?rem', 'UTC'),
	('${p}_paused', NULL, '$hook/ok', 'UTC'),
	('${p}_supp', NULL, '$hook/ok?suppressed', 'UTC')" || bail "cannot insert users"
sql "INSERT INTO preferences (user_id, pref_key, enabled) VALUES ('${p}_optout', 'webhook', 0),
	('${p}_rem', 'reminders', 1), ('${p}_rem', 'notifications.webhook', 0)"
sql "UPDATE users SET paused_until = '9999-12-31 23:59:59' WHERE user_id = '${p}_paused'"
sql "INSERT INTO suppressions (address, channel, reason) VALUES ('$hook/ok?suppressed', 'webhook', 'manual')"

# hsend JSON - send one request, print its transaction id
hsend() { wk_tx "$("$send" --json "$1")"; }

wk_start worker --worker webhook
# --- done: body, signature, audit trail, event -----------------------------------------------
tx=$(hsend "{\"user_id\":\"${p}_ok\",\"channels\":{\"webhook\":{\"event\":\"order.{{state}}\"}},
	\"data\":{\"state\":\"shipped\",\"order\":\"A-42\"},\"metadata\":{\"m\":1},\"batch_id\":\"b-$p\",
	\"client_id\":\"guest\"}")
like "$tx" '^[0-9a-f-]{36}$' "sent a webhook notification"
is "$(wk_wait "$tx" webhook)" done "user with a webhook_url: done"
is "$(got "$tx")" 1 "the receiver got it once"
h=$(hookline "$tx")
is "$(jget "$h" '["sig_ok"]')" true "signature verified by Python's hmac"
b=$(jget "$h" '["body"]')
is "$(jget "$b" '["type"]')/$(jget "$b" '["event"]')/$(jget "$b" '["user_id"]')" \
	"notification/order.shipped/${p}_ok" "body: type, rendered event, user_id"
is "$(jget "$b" '["data"]')/$(jget "$b" '["metadata"]')/$(jget "$b" '["batch_id"]')" \
	'{"state":"shipped","order":"A-42"}/{"m":1}/'"b-$p" "body: data, metadata, batch_id"
is "$(jget "$h" '["headers"]["webhook-id"]')" "$tx:webhook" "webhook-id is txid:channel"
is "$(wk_trail "$tx" webhook)" "->ready ready>done" "audit: ready, then done"
is "$(sql "SELECT COUNT(*) FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
	WHERE n.transaction_id = '$tx' AND a.host <> '' AND a.worker LIKE 'webhook.%' AND a.attempt = 1")" 2 \
	"audit rows name host, worker and attempt"
is "$(sql "SELECT CONCAT(user_id, '/', client_id, '/', category, '/', batch_id, '/', provider)
	FROM notifications WHERE transaction_id = '$tx'")" "${p}_ok/guest/notifications/b-$p/hooks" \
	"notification row: user, client, category, batch, provider"
sleep 1.2
is "$(events "$tx")" "webhook.ready None webhook.done ready" "events: webhook.ready, webhook.done"

# --- to recipient ------------------------------------------------------------------------------
tx=$(hsend "{\"to\":{\"webhook_url\":\"$hook/ok?to=$p\"},\"channels\":{\"webhook\":{\"event\":\"e\"}}}")
is "$(wk_wait "$tx" webhook)" done "a to recipient: done"
is "$(sql "SELECT CONCAT(IFNULL(user_id, 'NULL'), ' ', recipient) FROM notifications WHERE transaction_id = '$tx'")" \
	"NULL $hook/ok?to=$p" "to: no user, the address recorded"
is "$(got "$tx")" 1 "to: the receiver got it"

# --- failed: permanent 4xx; transient 5xx retried through the tiers, then parked ---------------
tx=$(hsend "{\"user_id\":\"${p}_400\",\"channels\":{\"webhook\":{\"event\":\"e\"}}}")
is "$(wk_wait "$tx" webhook)" failed "HTTP 400: failed"
like "$(sql "SELECT detail FROM notifications WHERE transaction_id = '$tx'")" '"reason": *"permanent".*"http_status": *400' \
	"detail: permanent, http_status 400"
is "$(got "$tx")/$(wk_trail "$tx" webhook)" "1/->ready ready>failed" "400: sent once, not retried"
tx=$(hsend "{\"user_id\":\"${p}_503\",\"channels\":{\"webhook\":{\"event\":\"e\"}}}")
is "$(wk_wait "$tx" webhook 20)" failed "HTTP 503 on every attempt: failed after the last tier"
like "$(sql "SELECT detail FROM notifications WHERE transaction_id = '$tx'")" '"reason": *"retries exhausted".*"attempts": *3' \
	"detail: retries exhausted after 3 attempts (tiers 1 s, 2 s)"
is "$(wk_trail "$tx" webhook)" "->ready ready>retry retry>ready ready>retry retry>ready ready>failed" \
	"audit: ready, retry, ready, retry, ready, failed"
is "$(got "$tx")/$(grep "$tx" "$tmp/hooks.jsonl" | jq -r '.headers["webhook-id"]' | sort -u | wc -l)" "3/1" \
	"three attempts, all with the same webhook-id"
is "$("$peek" "$HERALD_AMQP_URL" herald.webhook.v1.parked 2> /dev/null | grep -c "$tx:webhook")" 1 \
	"503: the message is in the parking queue"
tx=$(hsend "{\"user_id\":\"${p}_flaky\",\"channels\":{\"webhook\":{\"event\":\"e\"}}}")
is "$(wk_wait "$tx" webhook 20)" done "503 once, then 200: done"
is "$(wk_trail "$tx" webhook)/$(sql "SELECT attempt FROM notifications WHERE transaction_id = '$tx'")" \
	"->ready ready>retry retry>ready ready>done/2" "audit: retry once; done at attempt 2"
tx=$(hsend "{\"user_id\":\"${p}_429\",\"channels\":{\"webhook\":{\"event\":\"e\"}}}")
is "$(wk_wait "$tx" webhook 20)" done "429 with Retry-After, then 200: done"
is "$(sql "SELECT attempt FROM notifications WHERE transaction_id = '$tx'")/$(got "$tx")" "1/2" \
	"the 429 counted no attempt"
tx=$(hsend "{\"user_id\":\"${p}_ok\",\"channels\":{\"webhook\":{\"event\":\"{{nope}}\"}}}")
is "$(wk_wait "$tx" webhook)" failed "a missing template variable: failed"
like "$(sql "SELECT detail FROM notifications WHERE transaction_id = '$tx'")" '"reason": *"render".*nope' \
	"detail names the render error and the variable"
is "$(got "$tx")" 0 "render error: nothing sent"
is "$(wk_trail "$tx" webhook)" "->failed" "render error: one audit row, no ready"
tx=$(hsend "{\"user_id\":\"${p}_ok\",\"template\":\"t_$p\",\"channels\":{\"webhook\":{}}}")
is "$(wk_wait "$tx" webhook)" failed "an unknown template: failed"
like "$(sql "SELECT detail FROM notifications WHERE transaction_id = '$tx'")" "t_$p: none stored" \
	"detail: the template is not stored"
sql "INSERT INTO templates (name, channel, locale, version, subject) VALUES
	('t_$p', 'webhook', '', 1, 'v1 {{first_name}}'), ('t_$p', 'webhook', '', 2, 'v2 {{first_name}}'),
	('t_$p', 'webhook', 'fr', 1, 'fr {{first_name}}')"
tx=$(hsend "{\"user_id\":\"${p}_ok\",\"template\":\"t_$p\",\"channels\":{\"webhook\":{}}}")
is "$(wk_wait "$tx" webhook)" done "a stored template: done"
is "$(jget "$(jget "$(hookline "$tx")" '["body"]')" '["event"]')" "v2 Ada" \
	"the newest version, rendered with the user's profile"
is "$(sql "SELECT template_version FROM notifications WHERE transaction_id = '$tx'")" 2 \
	"the version sent is recorded"

# --- ended before sending ----------------------------------------------------------------------
for c in "nobody_$p invalid_user" "${p}_nourl no_address" "${p}_supp suppressed" \
	"${p}_paused paused"; do
	set -- $c
	tx=$(hsend "{\"user_id\":\"$1\",\"channels\":{\"webhook\":{\"event\":\"e\"}}}")
	is "$(wk_wait "$tx" webhook)" "$2" "$1: $2"
	is "$(got "$tx")/$(wk_trail "$tx" webhook)" "0/->$2" "$2: nothing sent, one audit row"
done
sleep 1.2
is "$(events "$tx")" "webhook.paused None" "event webhook.paused"
tx=$(hsend "{\"user_id\":\"${p}_optout\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"category\":\"marketing\"}")
is "$(wk_wait "$tx" webhook)" opt_out "the user's webhook=false: opt_out, though the default marketing.webhook is on"
r=""
for c in reminders notifications marketing; do
	tx=$(hsend "{\"user_id\":\"${p}_rem\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"category\":\"$c\"}")
	r="$r$(wk_wait "$tx" webhook) "
done
is "$r" "done opt_out done " \
	"the user's reminders=true beats the default reminders=false; notifications.webhook=false: opt_out"
tx=$(hsend "{\"user_id\":\"${p}_ok\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"category\":\"reminders\"}")
is "$(wk_wait "$tx" webhook)" opt_out "no key of the user's: the default reminders=false applies"
tx=$(hsend "{\"user_id\":\"${p}_optout\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"category\":\"transactional\"}")
is "$(wk_wait "$tx" webhook)" done "transactional ignores the opt-out"
tx=$(hsend "{\"user_id\":\"${p}_paused\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"category\":\"transactional\"}")
is "$(wk_wait "$tx" webhook)" done "transactional ignores the pause"

# --- idempotency --------------------------------------------------------------------------------
tx1=$(hsend "{\"user_id\":\"${p}_ok\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"idempotency_key\":\"k-$p\"}")
is "$(wk_wait "$tx1" webhook)" done "first use of an idempotency key: done"
tx2=$(hsend "{\"user_id\":\"${p}_ok\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"idempotency_key\":\"k-$p\"}")
is "$(wk_wait "$tx2" webhook)" duplicate "the same key again: duplicate"
like "$(sql "SELECT detail FROM notifications WHERE transaction_id = '$tx2'")" "\"first_transaction_id\": *\"$tx1\"" \
	"duplicate names the first transaction"
is "$(got "$tx2")" 0 "duplicate: nothing sent"

# --- deferred (send_at in the future) ------------------------------------------------------------
later=$(date -u -d '+2 hours' +%Y-%m-%dT%H:%M:%SZ)
tx=$(hsend "{\"user_id\":\"${p}_ok\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"send_at\":\"$later\"}")
is "$(wk_wait_status "$tx" webhook deferred && echo deferred)" deferred "send_at in 2 h: deferred"
is "$(sql "SELECT COUNT(*) FROM deferred_messages d JOIN notifications n ON n.id = d.notification_id
	WHERE n.transaction_id = '$tx' AND n.deferred_until IS NOT NULL")" 1 "deferred: the message is stored with its due time"
is "$(got "$tx")" 0 "deferred: nothing sent yet"

# --- redelivery of a done message sends nothing (transition table) -------------------------------
tx=$(hsend "{\"user_id\":\"${p}_ok\",\"channels\":{\"webhook\":{\"event\":\"e\"}}}")
is "$(wk_wait "$tx" webhook)" done "done"
wk_stop worker; is $? 0 "SIGTERM: the worker drains and exits 0"
# resend the same message (same transaction id) through the queue
"$send" --json "{\"user_id\":\"${p}_ok\",\"channels\":{\"webhook\":{\"event\":\"e\"}}}" > /dev/null
m=$("$peek" "$HERALD_AMQP_URL" herald.webhook.v1 2> /dev/null | tail -1)
orig=$(printf '%s' "$m" | sed -n 's/.*body=//p' | sed "s/\"txid\":\"[0-9a-f-]*\"/\"txid\":\"$tx\"/")
amqp-publish -u "$HERALD_AMQP_URL" -e "" -r herald.webhook.v1 -p -b "$orig"
n0=$(got "$tx"); a0=$(wk_trail "$tx" webhook)

# --- while no worker runs: expired, cancelled, queued (ledger) -----------------------------------
txe=$(hsend "{\"user_id\":\"${p}_ok\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"ttl\":1}")
txc=$(hsend "{\"user_id\":\"${p}_ok\",\"channels\":{\"webhook\":{\"event\":\"e\"}}}")
txb=$(hsend "{\"user_id\":\"${p}_ok\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"batch_id\":\"cb-$p\"}")
sql "INSERT INTO cancellations (kind, target) VALUES ('transaction', '$txc'), ('batch', 'cb-$p')"
# poison: a body that is no note, with a txid header; and one without any header
ptx=$(cat /proc/sys/kernel/random/uuid)
amqp-publish -u "$HERALD_AMQP_URL" -e "" -r herald.webhook.v1 -p -b '{"v":1,"not":"a note"}' \
	-H "x-herald-txid: $ptx" -H "x-herald-client: guest" -H "x-herald-category: notifications"
amqp-publish -u "$HERALD_AMQP_URL" -e "" -r herald.webhook.v1 -p -b 'garbage'
wk_start ledger --ledger
is "$(wk_wait_status "$txc" webhook queued 10 && echo queued)" queued "the ledger records queued while no worker runs"
is "$(wk_trail "$txc" webhook)" "->queued" "queued: one audit row"
sleep 1.5
wk_start worker --worker webhook
is "$(wk_wait "$txe" webhook)" expired "past expires_at: expired"
is "$(wk_wait "$txc" webhook)" cancelled "a cancelled transaction: cancelled"
is "$(wk_wait "$txb" webhook)" cancelled "a cancelled batch: cancelled"
is "$(wk_trail "$txc" webhook)" "->queued queued>cancelled" "cancelled: audit queued → cancelled"
is "$(got "$txe")/$(got "$txc")/$(got "$txb")" "0/0/0" "expired and cancelled: nothing sent"
sleep 1.5
is "$(events "$txc")" "webhook.queued None webhook.cancelled queued" "events: queued (ledger), cancelled"
is "$(wk_wait "$ptx" webhook)" failed "an undecodable message with a txid header: failed"
like "$(sql "SELECT detail FROM notifications WHERE transaction_id = '$ptx'")" '"reason": *"undecodable"' \
	"detail: undecodable, with the field"
parked=$("$peek" "$HERALD_AMQP_URL" herald.webhook.v1.parked 2> /dev/null)
like "$parked" "not.*a note" "the undecodable message is parked, body intact"
like "$parked" "body=garbage" "a message without headers is parked too"
is "$(got "$tx")/$(wk_trail "$tx" webhook)" "$n0/$a0" "a redelivered done message: nothing sent, no audit row"
is "$(sql "SELECT COUNT(*) FROM notifications WHERE transaction_id = '$tx'")" 1 "still one row"

# --- the same transaction after a kill mid-delivery is not a duplicate ---------------------------
tx=$(hsend "{\"user_id\":\"${p}_slow\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"idempotency_key\":\"slow-$p\"}")
for _ in $(seq "$(tlimit 100)"); do [ "$(wk_status "$tx" webhook)" = ready ] && [ "$(got "$tx")" -ge 1 ] && break; sleep 0.1; done
is "$(wk_status "$tx" webhook)" ready "slow receiver: ready while the call runs"
wk_kill worker
sql "UPDATE users SET webhook_url = '$hook/ok?after-kill' WHERE user_id = '${p}_slow'"
wk_start worker --worker webhook
is "$(wk_wait "$tx" webhook 30)" done "redelivered after SIGKILL: done, not duplicate"
is "$(grep -c "$tx:webhook" "$tmp/hooks.jsonl")" 2 "two attempts reached the receiver"
is "$(grep "$tx:webhook" "$tmp/hooks.jsonl" | python3 -c 'import json,sys
print(len({json.loads(l)["headers"]["webhook-id"] for l in sys.stdin}))')" 1 "both with the same webhook-id"
is "$(sql "SELECT COUNT(*) FROM idempotency_claims WHERE idempotency_key = 'slow-$p' AND transaction_id = '$tx'")" 1 \
	"the claim is the transaction's own"

# --- a 429 with Retry-After pauses the destination host for every delivery ------------------------
txa=$(hsend "{\"user_id\":\"${p}_pa\",\"channels\":{\"webhook\":{\"event\":\"e\"}}}")
for _ in $(seq "$(tlimit 100)"); do [ "$(got "$txa")" -ge 1 ] && break; sleep 0.1; done
txb=$(hsend "{\"user_id\":\"${p}_pb\",\"channels\":{\"webhook\":{\"event\":\"e\"}}}")
is "$(wk_wait "$txa" webhook 20)/$(wk_wait "$txb" webhook 20)" done/done "a 429 (Retry-After: 3), then 200: both done"
ta=$(grep "$txa" "$tmp/hooks.jsonl" | head -1 | jq .t) tb=$(grep "$txb" "$tmp/hooks.jsonl" | head -1 | jq .t)
ok "$(awk -v a="$ta" -v b="$tb" 'BEGIN { exit !(b - a >= 2.5) }'; echo $?)" \
	"another message to the same host waited out the pause ($(awk -v a="$ta" -v b="$tb" 'BEGIN { printf "%.1f", b - a }') s) without being sent"
is "$(got "$txb")/$(sql "SELECT attempt FROM notifications WHERE transaction_id = '$txb'")" 1/1 \
	"it was sent once, and the pause counted no attempt"
like "$(sql "SELECT a.detail FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
	WHERE n.transaction_id = '$txb' AND a.new_status = 'retry' LIMIT 1")" 'paused for [0-9]+ s by a 429' \
	"its retry says why"

wk_stop ledger; is $? 0 "ledger: SIGTERM exits 0"
wk_stop worker; is $? 0 "worker: SIGTERM exits 0"
grep -q 'ERROR\|AddressSanitizer\|runtime error' "$tmp/worker.log"; is $? 1 "no error or sanitizer report in the worker log"
done_testing
