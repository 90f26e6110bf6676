#!/usr/bin/env bash
# caps.t - the daily cap under contention (§4 step 6): 1,000 notifications for one user whose
# webhook cap is 3, consumed by 4 worker processes at once, against the private broker and
# database and a real HTTP receiver: exactly 3 done, 997 rate_limited, 3 requests received;
# a slot is given back when the delivery fails permanently; and a full cap of a deferring
# category and a full client quota, found in the transaction that records the message ready,
# record deferred (with its copy kept) and rate_limited, holding no slot; and the cap is judged
# before the template is rendered (§4 step 6 before step 7).
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
plan 24

tmp=$(mktemp -d /tmp/herald-caps-t.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
sql_init "$tmp"
cleanup() {
	for i in 1 2 3 4; do wk_kill "w$i"; done
	wk_kill ledger
	[ -n "${rpid:-}" ] && kill "$rpid" 2> /dev/null
	"$peek" "$HERALD_AMQP_URL" herald.webhook.v1 > /dev/null 2>&1
	"$peek" "$HERALD_AMQP_URL" herald.webhook.v1.parked > /dev/null 2>&1
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "db migrate failed"

wk_receiver

conf=$tmp/herald.conf
cat > "$conf" <<EOT
broker = { prefetch = 50; };
log = { level = "info"; };
caps = { webhook = 3; };
channels = { webhook = { allow_private = true; providers = ( { name = "hooks"; type = "webhook"; } ); }; };
EOT
chmod 600 "$conf"
export HERALD_CONFIG=$conf

p=cap$$
sql "INSERT INTO users (user_id, webhook_url, timezone) VALUES
	('${p}_many', '$hook/ok?u=${p}_many', 'UTC'), ('${p}_bad', '$hook/fail400?u=${p}_bad', 'UTC')" ||
	bail "cannot insert users"

# --- 1,000 for one user, 4 workers at once ----------------------------------------------------
for i in $(seq 1000); do
	printf '{"user_id":"%s","channels":{"webhook":{"event":"n%d"}}}\n' "${p}_many" "$i"
done > "$tmp/bulk.jsonl"
"$send" --bulk "$tmp/bulk.jsonl" > "$tmp/sent.jsonl"
is $? 0 "1,000 notifications accepted"
# all four consume the same queue from the start: they race for the slots
for i in 1 2 3 4; do wk_start "w$i" --worker webhook; done
final() {
	sql "SELECT COUNT(*) FROM notifications WHERE user_id = '$1' AND status IN ($finals)"
}
for _ in $(seq 600); do [ "$(final "${p}_many")" -ge 1000 ] && break; sleep 0.1; done
is "$(final "${p}_many")" 1000 "all 1,000 reached a final status"
is "$(sql "SELECT CONCAT(status, '=', COUNT(*)) FROM notifications WHERE user_id = '${p}_many'
	GROUP BY status ORDER BY status" | tr '\n' ' ')" "done=3 rate_limited=997 " \
	"exactly 3 done, 997 rate_limited"
is "$(grep -c "u=${p}_many" "$tmp/hooks.jsonl")" 3 "the receiver got exactly 3"
is "$(sql "SELECT n FROM daily_counters WHERE scope = 'cap' AND subject = 'u:${p}_many' AND channel = 'webhook'")" 3 \
	"the day's counter holds 3 slots"
like "$(sql "SELECT detail FROM notifications WHERE user_id = '${p}_many' AND status = 'rate_limited' LIMIT 1")" \
	'"reason": *"daily_cap"' "rate_limited names the daily cap"
is "$(sql "SELECT COUNT(DISTINCT a.worker) FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
	WHERE n.user_id = '${p}_many'")" 4 "all 4 workers took part"

# --- a permanent failure gives its slot back ----------------------------------------------------
# one at a time, so each ends before the next is admitted
one() { wk_wait "$(wk_tx "$("$send" --json "{\"user_id\":\"${p}_bad\",\"channels\":{\"webhook\":{\"event\":\"e\"}}}")")" webhook; }
r=""; for i in 1 2 3; do r="$r$(one) "; done
is "$r" "failed failed failed " "cap 3, receiver answers 400: three failed"
is "$(grep -c "u=${p}_bad" "$tmp/hooks.jsonl")" 3 "all three were sent"
is "$(sql "SELECT IFNULL(SUM(n), 0) FROM daily_counters WHERE scope = 'cap' AND subject = 'u:${p}_bad'")" 0 \
	"their slots were given back"
sql "UPDATE users SET webhook_url = '$hook/ok?u=${p}_bad' WHERE user_id = '${p}_bad'"
r=""; for i in 1 2 3 4; do r="$r$(one) "; done
is "$r" "done done done rate_limited " "then the full cap is free again: 3 done, the 4th rate_limited"
is "$(sql "SELECT n FROM daily_counters WHERE scope = 'cap' AND subject = 'u:${p}_bad' AND channel = 'webhook'")" 3 \
	"the counter holds the 3 delivered"
rc=""; for i in 1 2 3 4; do wk_stop "w$i"; rc="$rc$?"; done
is "$rc" 0000 "the 4 workers stop on SIGTERM with 0"

# --- a deferring category's cap, a client quota ------------------------------------------------
# the broker user guest sends as client guest; its quota counter is the day's, so start it at 0
sql "DELETE FROM daily_counters WHERE scope = 'quota' AND subject = 'guest' AND channel = 'webhook'"
cat > "$tmp/limits.conf" <<EOT
broker = { prefetch = 50; };
log = { level = "info"; };
caps = { webhook = 2; };
categories = { digest = { priority = 2; cap_policy = "defer"; }; };
clients = { guest = { quotas = { webhook = 3; }; }; };
channels = { webhook = { allow_private = true; providers = ( { name = "hooks"; type = "webhook"; } ); }; };
EOT
chmod 600 "$tmp/limits.conf"
export HERALD_CONFIG=$tmp/limits.conf
sql "INSERT INTO users (user_id, webhook_url, timezone) VALUES ('${p}_d', '$hook/ok?u=${p}_d', 'UTC'),
	('${p}_q1', '$hook/ok?u=${p}_q1', 'UTC'), ('${p}_q2', '$hook/ok?u=${p}_q2', 'UTC')" ||
	bail "cannot insert users"
wk_start w5 --worker webhook
# one at a time: USER CATEGORY STATUS [EVENT] -> "TXID STATUS"
lim() {
	local tx
	tx=$(wk_tx "$("$send" --json "{\"user_id\":\"$1\",\"category\":\"$2\",\"channels\":{\"webhook\":{\"event\":\"${4:-e}\"}}}")")
	wk_wait_status "$tx" webhook "$3" > /dev/null
	echo "$tx $(wk_status "$tx" webhook)"
}
r=""; for i in 1 2 3; do set -- $(lim "${p}_d" digest "$([ "$i" = 3 ] && echo deferred || echo done)"); r="$r$2 "; dtx=$1; done
is "$r" "done done deferred " "cap 2 of a deferring category: the 3rd is deferred"
like "$(sql "SELECT detail FROM notifications WHERE transaction_id = '$dtx'")" '"reason": *"daily_cap"' \
	"deferred names the daily cap"
is "$(sql "SELECT COUNT(*) FROM deferred_messages d JOIN notifications n ON n.id = d.notification_id
	WHERE n.transaction_id = '$dtx'")/$(sql "SELECT DATE(deferred_until) > UTC_DATE() FROM notifications
	WHERE transaction_id = '$dtx'")" "1/1" "its copy is kept for the scheduler, until the next day"
is "$(sql "SELECT COUNT(*) FROM counter_reservations WHERE transaction_id = '$dtx'")/$(sql "SELECT n FROM daily_counters
	WHERE scope = 'cap' AND subject = 'u:${p}_d' AND channel = 'webhook'")" "0/2" \
	"the deferred one holds no slot; the cap counter holds the 2 delivered"
# §4: the cap (step 6) is judged before rendering (step 7)
set -- $(lim "${p}_d" notifications rate_limited '{{nope}}')
is "$2" rate_limited "over the cap with a template that cannot render: rate_limited, as step 6 comes first"
set -- $(lim "${p}_q1" notifications failed '{{nope}}'); ftx=$1
is "$2/$(sql "SELECT COUNT(*) FROM counter_reservations WHERE transaction_id = '$ftx'")/$(sql "SELECT IFNULL(SUM(n), 0)
	FROM daily_counters WHERE scope = 'cap' AND subject = 'u:${p}_q1'")/$(sql "SELECT n FROM daily_counters
	WHERE scope = 'quota' AND subject = 'guest' AND channel = 'webhook'")" "failed/0/0/2" \
	"under the cap, a render error: failed, its slots given back (cap 0, quota still 2)"
set -- $(lim "${p}_q1" notifications done); is "$2" done "the quota's 3rd slot: done"
set -- $(lim "${p}_q2" notifications rate_limited); qtx=$1
is "$2" rate_limited "the client's quota of 3 is full: the 4th of the client is rate_limited"
like "$(sql "SELECT detail FROM notifications WHERE transaction_id = '$qtx'")" '"reason": *"client_quota"' \
	"rate_limited names the client quota"
is "$(sql "SELECT COUNT(*) FROM counter_reservations WHERE transaction_id = '$qtx'")/$(sql "SELECT IFNULL(SUM(n), 0)
	FROM daily_counters WHERE scope = 'cap' AND subject = 'u:${p}_q2'")/$(sql "SELECT n FROM daily_counters
	WHERE scope = 'quota' AND subject = 'guest' AND channel = 'webhook'")" "0/0/3" \
	"it holds no slot: its cap slot was given back, the quota counter holds the 3 delivered"
wk_stop w5; is $? 0 "the worker stops on SIGTERM with 0"
done_testing
