#!/usr/bin/env bash
# ctl_parked.t - heraldctl parked list|replay|drop (SPEC §3) against the private broker and
# database, with messages parked for real: a webhook worker whose receiver answers 503 (parked
# at once today, or after the one 1 s retry tier this config sets once retries land), poison
# bodies with an x-herald-txid header (parked as undecodable), one without headers, and a ledger
# copy (x-herald-source=ledger). list leaves them in place; replay --txid delivers one again
# (audit failed → queued → ready → done) and leaves what cannot be replayed; drop empties the
# queue; bad input and no broker.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
need_ctl
plan 55

tmp=$(mktemp -d /tmp/herald-ctl-parked.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
sql_init "$tmp"
cleanup() {
	wk_kill worker
	wk_kill ledger
	[ -n "${rpid:-}" ] && kill "$rpid" 2> /dev/null
	for q in herald.webhook.v1 herald.webhook.v1.parked herald.ledger.v1 t.ctl_parked.events; do
		"$peek" "$HERALD_AMQP_URL" "$q" > /dev/null 2>&1
	done
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "db migrate failed"

secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
wk_receiver --secret "$secret"
: > "$tmp/hooks.jsonl"
# got TXID [STATUS] - requests the receiver got for TXID (answered STATUS)
got() { grep "$1" "$tmp/hooks.jsonl" 2> /dev/null | grep -c "\"status\": *${2:-[0-9]}" || true; }

conf=$tmp/herald.conf
cat > "$conf" <<EOF
broker = { prefetch = 20; confirm_timeout = 10; };
log = { level = "info"; };
retry = { tiers = [ 1 ]; };
channels = { webhook = { allow_private = true;
	providers = ( { name = "hooks"; type = "webhook"; secrets = [ "$secret" ]; timeout = 5; } ); }; };
EOF
chmod 600 "$conf"
export HERALD_CONFIG=$conf
# start from an empty parking queue (earlier tests may have left messages there)
"$peek" "$HERALD_AMQP_URL" herald.webhook.v1.parked > /dev/null 2>&1
"$peek" "$HERALD_AMQP_URL" t.ctl_parked.events --bind herald.events '#' || bail "cannot bind t.ctl_parked.events"
: > "$tmp/events.all"
events() {
	"$peek" "$HERALD_AMQP_URL" t.ctl_parked.events 2> /dev/null >> "$tmp/events.all"
	grep "$1" "$tmp/events.all" | sed -n 's/.*body=//p' | python3 -c 'import json,sys
for l in sys.stdin:
    e=json.loads(l); print(e["channel"]+"."+e["status"], e["previous"])' | tr '\n' ' ' | sed 's/ $//'
}
run() { "$ctl" "$@" > "$tmp/out" 2> "$tmp/err"; rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err"); cat "$tmp/err" >> "$tmp/ctl.err"; }
: > "$tmp/ctl.err"
# field JSON KEY - one key of a JSON line
field() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print(json.dumps(v) if not isinstance(v, str) else v)' "$1" "$2"; }
# line_of TXID - the list line of TXID in $out
line_of() { printf '%s\n' "$out" | grep "\"txid\":\"$1\""; }

p=ctlp$$
sql "INSERT INTO users (user_id, webhook_url) VALUES ('${p}_a', '$hook/status/503?u=$p'),
	('${p}_b', '$hook/status/503?u=$p')" || bail "cannot insert users"
hsend() { wk_tx "$("$send" --json "$1")"; }

# --- bad input ----------------------------------------------------------------------------
run parked
is "$rc" 64 "parked without a subcommand: exit 64"
run parked peek webhook
is "$rc" 64 "an unknown subcommand: exit 64"
run parked list
is "$rc" 64 "list without CHANNEL: exit 64"
run parked list fax
is "$rc" 64 "an unknown channel: exit 64"
like "$err" "'fax': unknown channel" "... naming it"
run parked replay webhook --txid 1234
is "$rc" 64 "a malformed --txid: exit 64"
like "$err" "--txid '1234': not a transaction id" "... naming it"
run parked drop webhook --limit 0
is "$rc" 64 "--limit 0: exit 64"
HERALD_AMQP_URL=amqp://guest:guest@127.0.0.1:1/ run parked list webhook
is "$rc" 69 "no broker: exit 69 (EX_UNAVAILABLE)"
like "$err" '127\.0\.0\.1:1' "... naming the broker"
HERALD_AMQP_URL=amqp://guest:guest@127.0.0.1:1/ run parked drop webhook
is "$rc/$out" 69/ "no broker: drop prints no count"

# --- parked for real ------------------------------------------------------------------------------
wk_start ledger --ledger
wk_start worker --worker webhook
txa=$(hsend "{\"user_id\":\"${p}_a\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"metadata\":{\"m\":\"$p\"}}")
txb=$(hsend "{\"user_id\":\"${p}_b\",\"channels\":{\"webhook\":{\"event\":\"e\"}}}")
ptx1=$(cat /proc/sys/kernel/random/uuid)
ptx2=$(cat /proc/sys/kernel/random/uuid)
ltx=$(cat /proc/sys/kernel/random/uuid)
for t in "$ptx1" "$ptx2"; do
	amqp-publish -u "$HERALD_AMQP_URL" -e "" -r herald.webhook.v1 -p -b "{\"v\":1,\"poison\":\"$p\"}" \
		-H "x-herald-txid: $t" -H "x-herald-client: guest" -H "x-herald-category: notifications"
done
amqp-publish -u "$HERALD_AMQP_URL" -e "" -r herald.webhook.v1 -p -b "garbage-$p"
# a ledger record that does not decode: the ledger parks its copy with x-herald-source=ledger
amqp-publish -u "$HERALD_AMQP_URL" -e "" -r herald.ledger.v1 -p -b "ledger-garbage-$p" \
	-H "x-herald-channel: webhook" -H "x-herald-txid: $ltx"
is "$(wk_wait "$txa" webhook 30)/$(wk_wait "$txb" webhook 30)" failed/failed "503: both failed (parked)"
is "$(wk_wait "$ptx1" webhook)/$(wk_wait "$ptx2" webhook)" failed/failed "poison bodies: failed (parked)"
for _ in $(seq 100); do
	[ "$("$ctl" parked list webhook 2> /dev/null | wc -l)" -ge 6 ] && break
	sleep 0.1
done

# --- list -----------------------------------------------------------------------------------------
run parked list webhook
is "$rc/$(printf '%s\n' "$out" | grep -c .)" 0/6 "list: six parked messages, one JSON line each"
a=$(line_of "$txa")
is "$(field "$a" channel)/$(field "$a" source)/$(field "$a" status)" webhook/worker/failed \
	"a 503 message: channel, source worker, status failed"
like "$(field "$a" reason)" 'transient|retr|attempt|tier' "... with the reason it was parked"
like "$(field "$a" attempt)/$(field "$a" size)" '^[0-9]+/[0-9]+$' "... attempt and size"
is "$(field "$a" message_id)" "$txa:webhook" "... its message id"
l1=$(line_of "$ptx1")
is "$(field "$l1" reason)/$(field "$l1" source)/$(field "$l1" size)" "undecodable/worker/$((19 + ${#p}))" \
	"a poison body: reason undecodable, its size"
like "$(field "$l1" error)" '^undecodable: ' "... and what does not decode"
like "$(printf '%s\n' "$out" | grep '"txid":null')" '"reason":"undecodable"' "a body without headers: no txid, undecodable"
is "$(field "$(line_of "$ltx")" source)" ledger "the ledger's copy: source ledger"
run parked list webhook
is "$(printf '%s\n' "$out" | grep -c .)" 6 "list again: all six still there (non-destructive)"
run parked list webhook --txid "$(printf '%s' "$txa" | tr a-f A-F)"
is "$rc/$(printf '%s\n' "$out" | grep -c .)/$(field "$out" txid)" "0/1/$txa" "list --txid: only that one (case-insensitive)"
run parked list webhook --limit 2
is "$(printf '%s\n' "$out" | grep -c .)" 2 "list --limit 2: two lines"
run parked list email
is "$rc/$out" 0/ "list of an empty parking queue: nothing"

# --- replay --txid: delivered, audit failed → queued → ready → done -------------------------------
sql "UPDATE users SET webhook_url = '$hook/ok?u=$p' WHERE user_id IN ('${p}_a', '${p}_b')"
n503=$(got "$txa")
run parked replay webhook --txid "$txa"
is "$rc" 0 "replay --txid: exit 0"
like "$out" '^\{"channel":"webhook","replayed":1,"left":0,"ledger_copies":0,"problems":\[\],"other_txids":5\}$' \
	"replay --txid: one replayed, the other five untouched"
is "$(wk_wait_status "$txa" webhook done 20 && echo done)" done "the replayed message is delivered"
is "$(got "$txa" 200)" 1 "the receiver got it once more, answered 200"
like "$(wk_trail "$txa" webhook)" 'failed failed>queued queued>ready ready>done$' \
	"audit: failed → queued (replay) → ready → done"
like "$(sql "SELECT CONCAT(a.worker, ' ', a.detail) FROM notification_audit a JOIN notifications n
	ON n.id = a.notification_id WHERE n.transaction_id = '$txa' AND a.old_status = 'failed' AND a.new_status = 'queued'")" \
	'^heraldctl \{"reason": ?"replay", ?"by": ?"heraldctl parked replay", ?"queue": ?"herald\.webhook\.v1\.parked"\}$' \
	"the replay's audit row says replay"
sleep 1.5
like "$(events "$txa")" 'webhook.failed [a-z]+ webhook.queued failed webhook.ready queued webhook.done ready$' \
	"events: failed, queued (replay), ready, done"
like "$(grep "$txa" "$tmp/events.all" | grep '"status":"queued"' | tail -1)" "\"metadata\":\\{\"m\":\"$p\"\\}" \
	"the replay's event carries the metadata"
run parked list webhook
is "$(printf '%s\n' "$out" | grep -c .)/$(line_of "$txa" | grep -c .)" 5/0 "the replayed message left the parking queue"

# --- replay everything: what cannot be replayed stays ----------------------------------------------
run parked replay webhook
is "$rc" 1 "replay with messages that cannot be replayed: exit 1"
is "$(field "$out" replayed)/$(field "$out" left)/$(field "$out" ledger_copies)" 1/3/1 \
	"one replayed (b), three undecodable left, the ledger copy left"
like "$(field "$out" problems)" "\"txid\": \"$ptx1\", \"why\": \"undecodable: " "problems name the undecodable ones"
is "$(wk_wait_status "$txb" webhook done 20 && echo done)" done "b is delivered"
run parked list webhook
is "$(printf '%s\n' "$out" | grep -c .)" 4 "four left parked (three undecodable, the ledger copy)"
is "$(wk_status "$ptx1" webhook)" failed "an undecodable one stays failed"
wk_stop worker; is $? 0 "worker: SIGTERM exits 0"
run parked replay webhook --txid "$txa"
is "$rc/$(field "$out" replayed)/$(field "$out" other_txids)" 0/0/4 "replay of a txid no longer parked: nothing"

# --- a stale copy (its transaction done since): left parked, not delivered again ---------------------
tx=$(hsend "{\"user_id\":\"${p}_a\",\"channels\":{\"webhook\":{\"event\":\"e\"}}}")
m=$("$peek" "$HERALD_AMQP_URL" herald.webhook.v1 2> /dev/null | grep "$tx" | tail -1)
stale=$(printf '%s' "$m" | sed -n 's/.*body=//p' | sed "s/\"txid\":\"[0-9a-f-]*\"/\"txid\":\"$txa\"/")
amqp-publish -u "$HERALD_AMQP_URL" -e "" -r herald.webhook.v1.parked -p -b "$stale"
n200=$(got "$txa" 200)
run parked replay webhook --txid "$txa"
is "$rc/$(field "$out" replayed)/$(field "$out" left)" 1/0/1 "replay of a copy whose transaction is done: left, exit 1"
like "$(field "$out" problems)" 'status is done, not failed: replaying would deliver it again' "... saying why"
is "$(wk_status "$txa" webhook)/$(got "$txa" 200)" "done/$n200" "status still done, nothing sent"

# --- an interrupted replay (crash after recording queued, before publishing) is resumed ------------
orig=$(printf '%s' "$m" | sed -n 's/.*body=//p')
wk_wait_status "$tx" webhook queued 10
sql "UPDATE notifications SET status = 'failed' WHERE transaction_id = '$tx';
	INSERT INTO notification_audit (notification_id, old_status, new_status, host, worker, detail)
	SELECT id, 'failed', 'queued', 'h', 'heraldctl', '{\"reason\":\"replay\"}' FROM notifications WHERE transaction_id = '$tx';
	UPDATE notifications SET status = 'queued' WHERE transaction_id = '$tx'"
amqp-publish -u "$HERALD_AMQP_URL" -e "" -r herald.webhook.v1.parked -p -b "$orig"
run parked replay webhook --txid "$tx"
is "$rc/$(field "$out" replayed)" 0/1 "queued by an interrupted replay: replayed again"
wk_start worker --worker webhook
is "$(wk_wait "$tx" webhook 20)" done "... and delivered"
wk_stop worker

# --- drop ---------------------------------------------------------------------------------------------
run parked drop webhook --txid "$ptx1"
is "$rc/$out" "0/{\"channel\":\"webhook\",\"dropped\":1,\"other_txids\":4}" "drop --txid: one dropped"
run parked drop webhook --limit 1
is "$rc/$(field "$out" dropped)" 0/1 "drop --limit 1: one dropped"
run parked drop webhook
is "$rc/$out" '0/{"channel":"webhook","dropped":3}' "drop: the rest dropped"
run parked list webhook
is "$rc/$out" 0/ "the parking queue is empty"
is "$("$peek" "$HERALD_AMQP_URL" herald.webhook.v1.parked 2> /dev/null | grep -c .)" 0 "(the broker agrees)"

wk_stop ledger; is $? 0 "ledger: SIGTERM exits 0"
grep -q 'AddressSanitizer\|runtime error\|LeakSanitizer' "$tmp/ctl.err" "$tmp/worker.log"
is $? 1 "no sanitizer report from heraldctl or the worker"
done_testing
