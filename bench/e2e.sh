#!/usr/bin/env bash
# e2e.sh - end to end (issue 9, benchmark 1): N webhook notifications to USERS users with
# preferences and a daily cap, drained by a heraldd master at its defaults into nginx answering
# 204; against a raw rabbitmq-c publisher/consumer pair moving the same messages through the
# same queues on the same broker (and POSTing each to the same nginx).
#
#   bench/e2e.sh [N]              N notifications (default 200000)
#
# Environment:
#   HERALD_BUILDDIR   build directory with heraldd, herald-send, heraldctl (default .); bench/
#                     raw_publish is made there if missing. Use a -O2 build without sanitizers.
#   BENCH_USERS       users in the database (default 10000); notification i goes to user i % USERS
#   BENCH_IMPORT      how the users get in: ctl (heraldctl user import of a generated JSON Lines
#                     file), sql (INSERT .. SELECT, the same rows), auto (default: ctl up to
#                     100000 users, sql above)
#   BENCH_CAP         the webhook daily cap set with heraldctl caps (default 1000000: every
#                     notification passes it, but each one reserves a slot)
#   BENCH_RAW         1: run the raw baseline first (default); 0: skip it
#   BENCH_RAW_POST    1: the raw consumer POSTs each channel message to nginx (default), 0: acks only
#   BENCH_SERIES      the time series file (default bench/e2e.dat): seconds since the first
#                     publish, receiver hits so far, notifications done so far
#   BENCH_BUFFER_POOL InnoDB buffer pool of the private stack (default 128M)
#   BENCH_TIMEOUT     give up after this many seconds without progress (default 120)
#   BENCH_KEEP        1: keep the scratch directory (logs, configs)
#   BENCH_RESULTS     append the result row there instead of bench/results.md
#
# Sequence: private stack; nginx (apt-get install nginx-light if missing); users imported with
# heraldctl user import; caps set; the raw pair: raw_publish -C publishes the N encoded
# messages and their ledger copies (persistent, confirms, window 1000) while its forked consumer
# acks both queues and POSTs each channel message to nginx /raw; then the master is started
# (and idle, workers up), and herald-send --bulk publishes the N requests WHILE it drains: the
# clock runs from the start of herald-send to the last nginx hit (its $msec), and separately to
# the last row `done`. Checks: exactly N rows, all done; nginx got N POSTs with N distinct
# webhook-ids; the queues and event_outbox empty; the master exited 0 on SIGTERM.
set -uo pipefail
BENCH_NAME=e2e.sh
. "$(dirname "$0")/lib.sh"
bench_init

N=${1:-200000}
USERS=${BENCH_USERS:-10000}
CAP=${BENCH_CAP:-1000000}
RAW=${BENCH_RAW:-1}
IMPORT=${BENCH_IMPORT:-auto}
SERIES=${BENCH_SERIES:-$src/bench/e2e.dat}
bench_count N "$N"; bench_count BENCH_USERS "$USERS"; bench_count BENCH_CAP "$CAP"
bench_make bench/raw_publish

echo "e2e: $N webhook notifications, $USERS users, cap $CAP, $machine, $(date -u +%FT%TZ)"
bench_stack
bench_nginx
if [ "$IMPORT" = ctl ] || { [ "$IMPORT" = auto ] && [ "$USERS" -le 100000 ]; }; then
	bench_users "$USERS" "$tmp/users.jsonl"
	bench_import "$tmp/users.jsonl"
else
	bench_users_sql "$USERS"
fi
bench_caps "$CAP"
bench_bulk "$N" "$USERS" normal e2e "$tmp/bulk.jsonl"

# the raw pair
raw_rate=- raw_line=
if [ "$RAW" = 1 ]; then
	hook=
	[ "${BENCH_RAW_POST:-1}" = 1 ] && hook="-u http://127.0.0.1:$ngx_port/raw"
	# shellcheck disable=SC2086
	raw_line=$("$raw" -C $hook "$HERALD_AMQP_URL" "$tmp/bulk.jsonl") || die "raw_publish failed: $raw_line"
	raw_rate=$(echo "$raw_line" | awk '{ for (i = 1; i < NF; i++) if ($i == "pair_rate") print $(i + 1) }')
	q=$(bench_queues)
	[ "$q" = "herald.webhook.v1=0 herald.ledger.v1=0 herald.webhook.v1.parked=0" ] || die "after the raw pair: $q"
	if [ -n "$hook" ]; then
		got=$(wc -l < "$ngx_raw")
		[ "$got" = "$N" ] || die "the raw pair: nginx got $got POSTs, want $N"
	fi
	echo "raw pair: $raw_line"
fi

# herald: the master at its defaults, then publish while it drains
bench_master_conf
bench_master_start
workers=$(bench_wcount)
: > "$SERIES.tmp"
cpu0=$(bench_cpu_snap)
t0=$(now)
(       # a sample a second (on the second since t0; a slow query skips ticks)
	k=0
	while :; do
		printf '%s %s %s\n' "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')" \
			"$(wc -l < "$ngx_hits")" \
			"$(sql "SELECT COUNT(*) FROM notifications WHERE batch_id = 'e2e' AND status = 'done'")"
		read -r k w <<< "$(awk -v a="$t0" -v b="$(now)" -v k="$k" 'BEGIN { k++; while (a + k < b) k++; printf "%d %.3f", k, a + k - b }')"
		sleep "$w"
	done >> "$SERIES.tmp"
) &
sampler=$!
bench_bg "$sampler"
bench_send "$tmp/bulk.jsonl"
t_pub=$(now)
bench_wait_sql drain "SELECT COUNT(*) FROM notifications WHERE batch_id = 'e2e' AND status = 'done'" "$N" ||
	warn "the drain stopped short"
t_done=$(now)
cpu1=$(bench_cpu_snap)
bench_stop "$sampler"
sleep 0.5
last_hit=$(tail -1 "$ngx_hits" | cut -d' ' -f1)
bad=0
# the outbox worker publishes the last events within a moment
for _ in $(seq 1 100); do [ "$(sql "SELECT COUNT(*) FROM event_outbox")" = 0 ] && break; sleep 0.2; done
bench_master_stop; rc=$?
[ "$rc" = 0 ] || { warn "the master exited $rc"; bad=1; }
{ echo "# e2e.sh $(date -u +%FT%TZ) N=$N users=$USERS: seconds since the first publish, receiver hits, rows done"; cat "$SERIES.tmp"; } > "$SERIES"
rm -f "$SERIES.tmp"

# checks
st=$(sql "SELECT CONCAT(status, '=', COUNT(*)) FROM notifications WHERE batch_id = 'e2e' GROUP BY status ORDER BY status" | tr '\n' ' ')
[ "$st" = "done=$N " ] || { warn "statuses: $st(want done=$N)"; bad=1; }
hits=$(wc -l < "$ngx_hits")
ids=$(cut -d' ' -f2 "$ngx_hits" | sort -u | wc -l)
if [ "$hits" != "$N" ] || [ "$ids" != "$N" ]; then warn "nginx got $hits POSTs, $ids distinct webhook-ids, want $N"; bad=1; fi
non204=$(awk '$3 != 204' "$ngx_hits" | wc -l)
[ "$non204" = 0 ] || { warn "$non204 requests not answered 204"; bad=1; }
q=$(bench_queues)
[ "$q" = "herald.webhook.v1=0 herald.ledger.v1=0 herald.webhook.v1.parked=0" ] || { warn "queues after the run: $q"; bad=1; }
ob=$(sql "SELECT COUNT(*) FROM event_outbox")
[ "$ob" = 0 ] || { warn "$ob events left in event_outbox"; bad=1; }

read -r pub_s hit_s done_s rate rate_done <<< "$(awk -v a="$t0" -v p="$t_pub" -v h="$last_hit" -v d="$t_done" -v n="$N" \
	'BEGIN { printf "%.2f %.2f %.2f %.0f %.0f", p - a, h - a, d - a, n / (h - a), n / (d - a) }')"
echo "herald: $workers webhook workers (default config); herald-send --bulk $pub_s s; last receiver hit at $hit_s s, last row done at $done_s s (0.2 s poll) after the first publish"
echo "herald: $rate notifications/s (to the last hit; $rate_done to the last row done)"
cpurep=$(bench_cpu_report "$cpu0" "$cpu1")
echo "herald: CPU % of one core from the first publish to the last row done: $cpurep"
verdict=
if [ "$RAW" = 1 ]; then
	ratio=$(awk -v a="$rate" -v b="$raw_rate" 'BEGIN { printf "%.1f", 100 * a / b }')
	echo "raw pair: $raw_rate msgs/s; herald/raw = $ratio % (target >= 50 %: $(awk -v r="$ratio" 'BEGIN { print r >= 50 ? "met" : "MISSED" }'))"
	verdict="raw $raw_rate/s, ratio $ratio %, "
fi
echo "target >= 5000 notifications/s: $(awk -v r="$rate" 'BEGIN { print r >= 5000 ? "met" : "MISSED" }')"
if [ $bad = 0 ]; then echo "checks: passed (N done, N received once each, queues and outbox empty, master exit 0)"
else warn "checks FAILED (BENCH_KEEP=1 keeps the logs)"; fi
echo "series: $SERIES"
bench_result e2e.sh "$N" "herald ${rate}/s (${rate_done}/s to last done), ${verdict}$USERS users, $workers workers; CPU % of a core: ${cpurep//,/;}$([ $bad = 0 ] || echo ", CHECKS FAILED")"
echo "e2e-result herald=$rate raw=$raw_rate ok=$((1 - bad))"
exit $bad
