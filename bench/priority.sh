#!/usr/bin/env bash
# priority.sh - priority under bulk load (issue 9, benchmark 2): N `low` webhook notifications
# queued and draining, then H `high` ones sent one every INTERVAL ms; the time from each high
# one's send to its receipt at the receiver: p50, p99, max (target p99 <= 50 ms).
#
#   bench/priority.sh [N]         N low notifications (default 1000000)
#
# Environment:
#   HERALD_BUILDDIR   build directory (default .); bench/raw_publish and bench/hi_sender are
#                     made there if missing. Use a -O2 build without sanitizers.
#   BENCH_HIGH        high notifications (default 1000); BENCH_INTERVAL ms between them (10)
#   BENCH_USERS       users (default 10000); BENCH_CAP the webhook daily cap (default 10000000)
#   BENCH_WARM        seconds of draining before the first high one, once the ledger has
#                     recorded the backlog (default 3)
#   BENCH_SERIES      the latency series (default bench/priority.dat): seconds since the first
#                     high send, latency in ms, low notifications done so far
#   BENCH_TIMEOUT, BENCH_KEEP, BENCH_RESULTS, BENCH_BUFFER_POOL as in e2e.sh
#
# Sequence: private stack, nginx, users and caps as e2e.sh; herald-send --bulk queues the N low
# requests (priority "low") before the master starts, so the whole backlog waits in the queue;
# the master (defaults) starts and drains; after BENCH_WARM s, bench/hi_sender (libherald,
# herald_submit on a fixed 10 ms schedule, confirms taken as they come) sends the high ones
# (priority "high") and records each one's wall-clock send time and transaction id; nginx logs each POST's $msec and
# webhook-id (TXID:webhook). Latency = $msec - send time (ms resolution; both the same clock).
# Checks: every high one received exactly once and `done`; the low backlog was still draining
# when the last high one arrived (else the figure is not "under load" and the run says so).
set -uo pipefail
BENCH_NAME=priority.sh
. "$(dirname "$0")/lib.sh"
bench_init

N=${1:-1000000}
H=${BENCH_HIGH:-1000}
INTERVAL=${BENCH_INTERVAL:-10}
USERS=${BENCH_USERS:-10000}
CAP=${BENCH_CAP:-10000000}
WARM=${BENCH_WARM:-3}
SERIES=${BENCH_SERIES:-$src/bench/priority.dat}
bench_make bench/raw_publish
bench_make bench/hi_sender
bench_count N "$N"; bench_count BENCH_HIGH "$H"; bench_count BENCH_INTERVAL "$INTERVAL"
bench_count BENCH_USERS "$USERS"; bench_count BENCH_CAP "$CAP"

echo "priority: $N low queued, $H high one every $INTERVAL ms, $USERS users, $machine, $(date -u +%FT%TZ)"
bench_stack
bench_nginx
bench_users "$USERS" "$tmp/users.jsonl"
bench_import "$tmp/users.jsonl"
bench_caps "$CAP"
bench_bulk "$N" "$USERS" low low "$tmp/low.jsonl"
t0=$(now)
bench_send "$tmp/low.jsonl"
echo "$N low queued by herald-send --bulk in $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"

bench_master_conf
bench_master_start
# a backlog built up over time has been recorded by the ledger long before: wait until it has
# caught up here too, so the high ones measure the workers, not a ledger inserting a million rows
for ((i = 0; i < 600; i++)); do
	case " $(bench_queues) " in *" herald.ledger.v1=0 "*) break ;; esac
	sleep 1
done
echo "ledger caught up after $i s"
sleep "$WARM"
low0=$(sql "SELECT COUNT(*) FROM notifications WHERE batch_id = 'low' AND status = 'done'")
HERALD_CONFIG=$tmp/send.conf "$B/bench/hi_sender" -b high "$H" "$INTERVAL" bench "$USERS" > "$tmp/sent.txt" ||
	die "hi_sender failed"
bench_wait_sql high "SELECT COUNT(*) FROM notifications WHERE batch_id = 'high' AND status = 'done'" "$H" ||
	warn "not every high notification was done"
sleep 0.5
low1=$(sql "SELECT COUNT(*) FROM notifications WHERE batch_id = 'low' AND status = 'done'")
bench_master_stop; rc=$?

# latency: join sends and receipts by transaction id
awk 'NR == FNR { sent[$2] = $1; next }
	{ id = $2; sub(/:webhook$/, "", id) }
	id in sent { n[id]++; if (n[id] == 1) printf "%.6f %.1f\n", sent[id], 1000 * ($1 - sent[id]) }' \
	"$tmp/sent.txt" "$ngx_hits" | sort -g > "$tmp/lat.txt"
first=$(head -1 "$tmp/lat.txt" | cut -d' ' -f1)
{
	echo "# priority.sh $(date -u +%FT%TZ) N=$N low, $H high every $INTERVAL ms: seconds since the first high send, send-to-receipt ms"
	awk -v f="$first" '{ printf "%.3f %s\n", $1 - f, $2 }' "$tmp/lat.txt"
} > "$SERIES"
bad=0
got=$(wc -l < "$tmp/lat.txt")
sent=$(wc -l < "$tmp/sent.txt")
if [ "$sent" != "$H" ] || [ "$got" != "$H" ]; then warn "sent $sent, received $got high notifications, want $H"; bad=1; fi
dup=$(awk 'NR == FNR { sent[$2] = 1; next } { id = $2; sub(/:webhook$/, "", id) } id in sent' "$tmp/sent.txt" "$ngx_hits" | wc -l)
[ "$dup" = "$got" ] || { warn "$((dup - got)) high notifications received more than once"; bad=1; }
st=$(sql "SELECT CONCAT(status, '=', COUNT(*)) FROM notifications WHERE batch_id = 'high' GROUP BY status" | tr '\n' ' ')
[ "$st" = "done=$H " ] || { warn "high statuses: $st(want done=$H)"; bad=1; }
[ "$rc" = 0 ] || { warn "the master exited $rc"; bad=1; }
loaded=yes
if [ "$low1" -ge "$N" ]; then
	loaded=no
	warn "the low backlog ($N) drained before the last high one arrived: not measured under load; raise N"
	bad=1
fi

cut -d' ' -f2 "$tmp/lat.txt" | sort -g > "$tmp/ms.txt"
p50=$(pct 50 < "$tmp/ms.txt") p99=$(pct 99 < "$tmp/ms.txt") max=$(tail -1 "$tmp/ms.txt")
lowrate=$((low1 - low0))
span=$(awk 'NR == 1 { a = $1 } { b = $1 } END { printf "%.2f", b - a }' "$tmp/sent.txt")
echo "high: $sent sent over $span s (scheduled: $(awk -v h="$H" -v i="$INTERVAL" 'BEGIN { printf "%.2f", (h - 1) * i / 1000 }') s)"
echo "high send -> receipt: p50 $p50 ms, p99 $p99 ms, max $max ms over $got (target p99 <= 50 ms: $(awk -v p="$p99" 'BEGIN { print p <= 50 ? "met" : "MISSED" }'))"
echo "low: $low0 done before the first high send, $low1 after the last high receipt ($lowrate meanwhile), $((N - low1)) still queued (under load: $loaded)"
# the high ones alone arrive at 1000 / INTERVAL a second: above what the workers deliver, they
# queue behind each other and the latency measures throughput, not priority
hrate=$(awk -v i="$INTERVAL" 'BEGIN { printf "%.0f", 1000 / i }')
drate=$(awk -v s="$span" -v a="$lowrate" -v h="$got" -v l="$(awk 'NR == 1 { a = $1 } { r = $1 + $2 / 1000; if (r > b) b = r } END { print b - a }' "$tmp/lat.txt")" \
	'BEGIN { printf "%.0f", (a + h) / l }')
echo "delivered meanwhile: $drate notifications/s (low and high) against $hrate high ones sent a second$(awk -v d="$drate" -v h="$hrate" 'BEGIN { if (d < h) printf ": the high ones alone exceed the throughput, so they queue behind each other and the latency measures throughput; BENCH_INTERVAL=%d isolates priority", 2000 / d + 1 }')"
if [ $bad = 0 ]; then echo "checks: passed (every high one done and received once, the backlog still draining, master exit 0)"
else warn "checks FAILED (BENCH_KEEP=1 keeps the logs)"; fi
echo "series: $SERIES"
bench_result priority.sh "$N low + $H high" "p50 $p50 ms, p99 $p99 ms, max $max ms; $((N - low1)) low still queued at the end$([ $bad = 0 ] || echo ", CHECKS FAILED")"
exit $bad
