#!/usr/bin/env bash
# ctl_stats.t - heraldctl stats (SPEC §9) against the private broker and database and a local
# webhook receiver (t/lib/receiver.py): queue depths while no worker runs, a rate between two
# samples, retry-tier and parking counts, heraldd "unavailable" and then its workers alive, the
# statuses per channel after deliveries, the table showing the same numbers, and the errors.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
plan 31

tmp=$(mktemp -d /tmp/herald-ctl-stats.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
. "$HERALD_SRCDIR/t/lib/master.sh"
sql_init "$tmp"
p=cst$$
queues="herald.webhook.v1 herald.webhook.v1.parked herald.webhook.v1.delay.21600s herald.ledger.v1"
cleanup() {
	[ -f "$tmp/a.pid" ] && kill -KILL "$(cat "$tmp/a.pid")" 2> /dev/null
	[ -n "${spid:-}" ] && kill "$spid" 2> /dev/null
	sleep 0.3
	[ -n "${rpid:-}" ] && kill "$rpid" 2> /dev/null
	for q in $queues; do amqp-delete-queue -u "$HERALD_AMQP_URL" -q "$q" > /dev/null 2>&1; done
	sql "DELETE FROM notifications WHERE user_id LIKE '${p}\\_%'; DELETE FROM users WHERE user_id LIKE '${p}\\_%'" 2> /dev/null
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "db migrate failed"
for q in $queues; do amqp-delete-queue -u "$HERALD_AMQP_URL" -q "$q" > /dev/null 2>&1; done

wk_receiver
sql "INSERT INTO users (user_id, webhook_url, timezone) VALUES ('${p}_0', '$hook/ok?u=0', 'UTC'),
	('${p}_1', '$hook/ok?u=1', 'UTC'), ('${p}_2', '$hook/ok?u=2', 'UTC')" || bail "cannot insert users"

# stats ARGS - heraldctl stats ARGS; stdout in $out (and $tmp/out), stderr in $err, status in $rc
stats() { "$ctl" stats "$@" > "$tmp/out" 2> "$tmp/err"; rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err"); }
# j EXPR - a jq EXPR of the last JSON answer
j() { jq -r "$1" "$tmp/out"; }

# --- no heraldd: depths of the queues -----------------------------------------------------------
stats --interval 0 --socket "$tmp/none.sock"
is "$rc" 0 "stats without heraldd and without the webhook queues: exit 0"
is "$(j '.channels.webhook.queue.ready')/$(j '.heraldd')/$(j '.channels.webhook.workers_alive')" "null/unavailable/unavailable" \
	"a queue that does not exist is null; heraldd and its workers unavailable"
bulk q$p 6 3
is $? 0 "herald-send: 6 webhook notifications accepted (no worker runs)"
amqp-declare-queue -u "$HERALD_AMQP_URL" -d -q herald.webhook.v1.parked > /dev/null 2>&1
amqp-publish -u "$HERALD_AMQP_URL" -r herald.webhook.v1.parked -b parked1 &&
	amqp-publish -u "$HERALD_AMQP_URL" -r herald.webhook.v1.parked -b parked2
ok $? "two messages put in the parking queue"
amqp-publish -u "$HERALD_AMQP_URL" -r herald.webhook.v1.delay.21600s -b tier1
ok $? "one message put in the 6 h retry tier"
stats --interval 0 --socket "$tmp/none.sock"
is "$rc" 0 "stats: exit 0"
is "$(j '.channels.webhook.queue | "\(.ready) \(.consumers) \(.retry) \(.parked)"')" "6 0 1 2" \
	"webhook: 6 ready, 0 consumers, 1 in the retry tiers, 2 parked"
is "$(j '.interval')/$(j '.channels.webhook.rate_per_s.ready')" "null/null" "--interval 0: no rates"
like "$(j .at)" '^20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-9:]{8}\.[0-9]{6}Z$' "at: RFC 3339 UTC"
is "$(j '.channels | keys | join(",")')" "email,push,sms,webhook" "every channel is there"
is "$(j '.heraldd_error')" "$tmp/none.sock: No such file or directory" "why heraldd is unavailable"

# a rate: 4 more accepted between the two samples 8 s apart (sent 3 s after the start, when
# the first sample has been taken): +0.5 per second
"$ctl" stats --interval 8 --socket "$tmp/none.sock" > "$tmp/rate.out" 2>&1 &
spid=$!
sleep 3
bulk r$p 4 3
wait "$spid"
is "$?" 0 "stats --interval 8: exit 0"
spid=
is "$(jq -r '"\(.interval) \(.channels.webhook.queue.ready) \(.channels.webhook.rate_per_s.ready) \(.channels.webhook.rate_per_s.parked)"' "$tmp/rate.out")" \
	"8 10 0.5 0" "the ready count's change per second between the samples (4 in 8 s), 0 for parked"

# --- statuses before the workers run -------------------------------------------------------
stats --interval 0 --socket "$tmp/none.sock"
done_h0=$(j '.channels.webhook.statuses.last_hour.done // 0')
done_d0=$(j '.channels.webhook.statuses.last_day.done // 0')

# --- heraldd running: workers alive, deliveries, statuses ----------------------------------
mconf a 2
mstart a; ok $? "heraldd starts"
ok "$(wait_running a 2; echo $?)" "2 webhook workers running"
wait_final "q$p" 6 60 && wait_final "r$p" 4 60
ok $? "the 10 waiting notifications were delivered"
# the tier and parked messages stay; the channel queue drains to 0
for _ in $(seq 50); do
	stats --interval 0 --socket "$tmp/a.sock"
	[ "$(j '.channels.webhook.queue.ready')" = 0 ] && break
	sleep 0.1
done
is "$rc/$(j .heraldd)" "0/running" "stats sees heraldd running"
is "$(j '.channels.webhook.workers_alive')/$(j '.channels.email.workers_alive')" "2/0" \
	"workers alive: 2 for webhook, 0 for email (no provider)"
is "$(j '.channels.webhook.queue | "\(.ready) \(.consumers) \(.retry) \(.parked)"')" "0 2 1 2" \
	"the channel queue drained, 2 consumers; the tier and parked messages stay"
is "$(j '.channels.webhook.statuses.last_hour.done')" $((done_h0 + 10)) "10 more done in the last hour"
is "$(j '.channels.webhook.statuses.last_day.done')" $((done_d0 + 10)) "and in the last day"
is "$(sql "SELECT COUNT(*) FROM notifications WHERE user_id LIKE '${p}\\_%' AND status = 'done' AND channel = 'webhook'")" 10 \
	"the database agrees: 10 done"

# --- the table shows the same numbers ------------------------------------------------------------
cp "$tmp/out" "$tmp/json"
stats --interval 0 --socket "$tmp/a.sock" --format table
is "$rc" 0 "--format table: exit 0"
is "$(awk '$1 == "webhook" && NF == 9 { print $2, $3, $4, $5, $9 }' "$tmp/out")" \
	"$(jq -r '.channels.webhook | "\(.queue.ready) \(.queue.consumers) \(.queue.retry) \(.queue.parked) \(.workers_alive)"' "$tmp/json")" \
	"the webhook row: ready, consumers, retry, parked and workers as in the JSON"
is "$(awk '$1 == "webhook" && $2 == "done" { print $3, $4 }' "$tmp/out")" \
	"$(jq -r '.channels.webhook.statuses | "\(.last_hour.done) \(.last_day.done)"' "$tmp/json")" \
	"the webhook done row: last hour and last day as in the JSON"
like "$(head -1 "$tmp/out")" "^herald stats at .*; heraldd running$" "a heading saying heraldd runs"
mstop a
is $? 0 "heraldd stops"

# --- errors -----------------------------------------------------------------------------------------
stats --format xml
is "$rc" 64 "--format xml: EX_USAGE"
stats --interval -1
is "$rc/$err" "64/heraldctl stats: --interval '-1': not a number of seconds from 0 to 60 (heraldctl stats --help shows the usage)" \
	"a negative interval: EX_USAGE naming it"
HERALD_AMQP_URL=amqp://guest:guest@127.0.0.1:1 stats --interval 0
is "$rc" 69 "the broker unreachable: EX_UNAVAILABLE"
HERALD_MYSQL_URL=mysql://herald:herald@127.0.0.1:1/herald stats --interval 0
is "$rc" 69 "the database unreachable: EX_UNAVAILABLE"
