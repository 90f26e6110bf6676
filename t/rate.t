#!/usr/bin/env bash
# rate.t - channels.webhook.rate (SPEC §5): deliveries per second per destination host, shared
# by every worker of a heraldd host; two destination hosts each get the full rate.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
plan 6

tmp=$(mktemp -d /tmp/herald-rate-t.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
. "$HERALD_SRCDIR/t/lib/master.sh"
sql_init "$tmp"
cleanup() {
	[ -f "$tmp/a.pid" ] && kill -KILL "$(cat "$tmp/a.pid")" 2> /dev/null
	[ -n "${rpid:-}" ] && kill "$rpid" 2> /dev/null
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "db migrate failed"
wk_receiver
port=$(cat "$tmp/port")

p=rt$$
sql "INSERT INTO users (user_id, webhook_url, timezone) VALUES
	('${p}_a', 'http://127.0.0.1:$port/ok?a', 'UTC'), ('${p}_b', 'http://localhost:$port/ok?b', 'UTC')" ||
	bail "cannot insert users"
mconf a 2 'channels = { webhook = { rate = 5; }; };'
# the group is there already: put rate into it
sed -i '/^channels = { webhook = { rate = 5; }; };$/d; s/workers = 2; allow_private = true;/workers = 2; rate = 5; allow_private = true;/' "$tmp/a.conf"
mstart a || bail "heraldd did not start: $(cat "$tmp/a.log")"
wait_running a 2 || bail "the workers did not start"

for u in a b; do
	for i in $(seq 20); do
		printf '{"user_id":"%s_%s","channels":{"webhook":{"event":"r%d"}},"batch_id":"r%s%s"}\n' "$p" "$u" "$i" "$u" "$p"
	done
done > "$tmp/r.jsonl"
"$send" --bulk "$tmp/r.jsonl" > /dev/null
ok $? "20 notifications to each of two destination hosts accepted"
wait_final "ra$p" 20 60; wait_final "rb$p" 20 60
is "$(final "ra$p")/$(final "rb$p")/$(hooks "ra$p")/$(hooks "rb$p")" "20/20/20/20/20/20" "all delivered once"
# times QUERY - the receiver's request times for query QUERY, sorted
times() { jq -r --arg q "$1" 'select(.query == $q) | .t' "$tmp/hooks.jsonl" | sort -n; }
span() { times "$1" | awk 'NR == 1 { f = $1 } { l = $1 } END { printf "%.2f", l - f }'; }
# most QUERY - the most requests within any 1 s
most() { times "$1" | awk '{ t[NR] = $1 } END { for (i = 1; i <= NR; i++) { n = 0; for (k = i; k <= NR && t[k] - t[i] < 1; k++) n++; if (n > m) m = n } print m + 0 }'; }
echo "# host 127.0.0.1: 20 requests over $(span a) s, at most $(most a) within 1 s; host localhost: $(span b) s, $(most b)"
ok "$(awk -v s="$(span a)" 'BEGIN { exit !(s >= 3.4) }'; echo $?)" "5 a second for one host across 2 workers: 20 take at least 3.4 s"
ok "$([ "$(most a)" -le 8 ]; echo $?)" "and never more than 5 within a second (+3 for the loop's and the network's jitter; unlimited: 20)"
first_a=$(times a | head -1) first_b=$(times b | head -1)
ok "$(awk -v a="$first_a" -v b="$first_b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1.5) }'; echo $?)" \
	"the other host is limited on its own: it did not wait for the first"
mstop a; is $? 0 "heraldd stops with 0"
done_testing
