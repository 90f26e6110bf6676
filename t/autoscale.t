#!/usr/bin/env bash
# autoscale.t - autoscale of the webhook channel between workers_min 1 and workers_max 4 (SPEC §9;
# workers/autoscale.c, the master's autoscale tick) against the private broker and database and
# a slow local webhook receiver, with short intervals: a count set by heraldctl within the range
# holds for one cool-down and then shrinks back on an empty queue; a backlog of 1,200 slow
# deliveries grows the channel (logged, in the metrics) without passing the maximum; once the
# queue is empty it shrinks one worker per cool-down down to the minimum; nothing is lost or sent
# twice meanwhile. A count outside the range and a config without hysteresis are refused.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
plan 23

tmp=$(mktemp -d /tmp/herald-autoscale-t.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
. "$HERALD_SRCDIR/t/lib/master.sh"
sql_init "$tmp"
cleanup() {
	[ -f "$tmp/a.pid" ] && kill -KILL "$(cat "$tmp/a.pid")" 2> /dev/null
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
p=asc$$
rows=""
for i in $(seq 0 49); do rows="$rows,('${p}_$i', '$hook/ok?sleep=0.05&u=$i', 'UTC')"; done
sql "INSERT INTO users (user_id, webhook_url, timezone) VALUES ${rows#,}" || bail "cannot insert users"

port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# aconf NAME [AUTOSCALE_KEYS] - a master config with webhook workers autoscaled between 1 and 4
aconf() {
	cat > "$tmp/$1.conf" <<EOF
broker = { prefetch = 20; };
log = { level = "info"; };
metrics = { listen = "127.0.0.1:$port"; depth_interval = 1; };
autoscale = { ${2:-interval = 1; up_depth = 100; down_depth = 0; sustain = 2; cooldown = 3;} };
heraldd = { user = "root"; control = "$tmp/$1.sock"; grace = 5; respawn_backoff_max = 2; };
channels = { webhook = { workers = 1; workers_min = 1; workers_max = 4; allow_private = true;
	in_flight = 20; providers = ( { name = "hooks"; type = "webhook"; timeout = 30; } ); }; };
EOF
	chmod 600 "$tmp/$1.conf"
}
# m SERIES - its value now at GET /metrics ("" when absent)
m() {
	curl -s -m 5 "http://127.0.0.1:$port/metrics" | awk -v k="$1" 'index($0, k " ") == 1 { print $2 }'
}
# mwait SERIES VALUE [SECS] - until SERIES has VALUE
mwait() {
	local i
	for ((i = 0; i < ${3:-20} * 5; i++)); do
		[ "$(m "$1")" = "$2" ] && return 0
		sleep 0.2
	done
	return 1
}
# scales - the autoscale log lines so far as "FROM>TO" words
scales() { sed -n 's/.*event=autoscale channel=webhook from=\([0-9]*\) to=\([0-9]*\) .*/\1>\2/p' "$tmp/a.log" | tr '\n' ' '; }
# logwait REGEX [SECS] - until the log has a line matching REGEX
logwait() {
	local i
	for ((i = 0; i < ${2:-20} * 10; i++)); do
		grep -qE "$1" "$tmp/a.log" && return 0
		sleep 0.1
	done
	return 1
}
W='{channel="webhook"}'

# --- refused: no gap between the thresholds ----------------------------------------------------
aconf bad "up_depth = 50; down_depth = 50;"
timeout 10 "$heraldd" -c "$tmp/bad.conf" > "$tmp/bad.log" 2>&1
is "$?/$(grep -c 'autoscale: down_depth must be below up_depth' "$tmp/bad.log")" "78/1" \
	"down_depth = up_depth: refused at start, naming the key"

# --- start: the range, a count by hand --------------------------------------------------------------
aconf a
mstart a; ok $? "heraldd starts with webhook autoscaled 1..4"
ok "$(wait_running a 1; echo $?)" "one webhook worker (workers = 1)"
is "$(wjson a '.channels.webhook.autoscale | "\(.min)..\(.max)"')" "1..4" "heraldctl workers shows the range"
ok "$(mwait "herald_autoscale_enabled$W" 1; echo $?)" "metric herald_autoscale_enabled 1"
is "$(m "herald_workers_target$W")" 1 "metric herald_workers_target 1"
"$ctl" workers --socket "$tmp/a.sock" webhook 5 > /dev/null 2> "$tmp/err"
is "$?/$(grep -c 'autoscales between 1 and 4 workers' "$tmp/err")" "65/1" \
	"workers webhook 5: refused, outside 1..4"
is "$("$ctl" workers --socket "$tmp/a.sock" webhook 2)" '{"channel":"webhook","workers":2,"previous":1}' \
	"workers webhook 2: within the range, taken"
ok "$(wait_running a 2; echo $?)" "2 webhook workers run"
logwait 'event=autoscale channel=webhook from=2 to=1 depth=0' 15
ok $? "after the cool-down an empty queue takes it back to 1 (logged with the depth)"
ok "$(wait_running a 1; echo $?)" "1 webhook worker runs"

# --- a backlog grows the channel -------------------------------------------------------------------
for ((i = 0; i < 1200; i++)); do
	printf '{"user_id":"%s_%d","channels":{"webhook":{"event":"e%d"}},"batch_id":"b%s"}\n' "$p" $((i % 50)) "$i" "$p"
done > "$tmp/b.jsonl"
"$send" --bulk "$tmp/b.jsonl" > "$tmp/b.out"
is $? 0 "1,200 slow notifications accepted"
logwait 'event=autoscale channel=webhook from=1 to=[234] depth=[0-9]+' 30
ok $? "the backlog grows the channel: $(grep -o 'event=autoscale channel=webhook from=1 .*' "$tmp/a.log" | tail -1)"
ok "$(mwait "herald_workers_target$W" 4 30; echo $?)" "metric herald_workers_target reaches 4"
ok "$(mwait 'herald_workers{kind="webhook"}' 4 10; echo $?)" "4 webhook workers alive (metric)"
like "$(m 'herald_autoscale_changes_total{channel="webhook",direction="up"}')" '^[1-9]' \
	"metric herald_autoscale_changes_total{direction=up} counts it"

# --- the queue empties: one worker fewer per cool-down, down to the minimum ------------------------
wait_final "b$p" 1200 60
is "$(final "b$p")/$(hooks "b$p")" "1200/1200/1200" "all 1,200 final; the receiver got each exactly once"
logwait 'from=2 to=1 depth=0' 90
mwait "herald_workers_target$W" 1 10
like "$(scales)" '^2>1 ([123]>[234] )+4>3 3>2 2>1 $' \
	"up (never past 4), then down one at a time: $(scales)"
# the cool-down: no two changes closer than autoscale.cooldown (3 s)
gaps=$(grep 'event=autoscale channel=webhook' "$tmp/a.log" | sed 's/^ts=\([^ ]*\) .*/\1/' |
	while read -r t; do date -d "$t" +%s.%N; done |
	awk 'NR > 1 && $1 - prev < 2.9 { bad++ } { prev = $1 } END { print bad + 0 }')
is "$gaps" 0 "no two autoscale changes within the cool-down"
ok "$(wait_running a 1; echo $?)" "1 webhook worker runs again (the minimum)"
n=$(grep -c 'event=autoscale channel=webhook' "$tmp/a.log")
sleep 4
is "$(grep -c 'event=autoscale channel=webhook' "$tmp/a.log")/$(m "herald_workers_target$W")" "$n/1" \
	"at the minimum with an empty queue: no further change"

mstop a
is $? 0 "heraldd stops (exit 0)"
grep -q 'AddressSanitizer\|runtime error\|LeakSanitizer' "$tmp"/*.log
is $? 1 "no sanitizer report in any heraldd log"
