#!/usr/bin/env bash
# memory.sh - memory (issue 9, benchmark 3): PSS of the heraldd master and of each child (webhook
# workers, ledger, outbox, scheduler, metrics) before, during and after draining N webhook
# notifications. Targets: <= 16 MiB a worker, no growth.
#
#   bench/memory.sh [N]           N notifications (default 1000000)
#
# Environment:
#   HERALD_BUILDDIR   build directory (default .). Use a -O2 build without sanitizers.
#   BENCH_USERS, BENCH_CAP, BENCH_TIMEOUT, BENCH_KEEP, BENCH_RESULTS, BENCH_BUFFER_POOL: e2e.sh's
#   BENCH_EVERY       seconds between samples while draining (default 5)
#   BENCH_SERIES      the samples (default bench/memory.dat): seconds since the first publish,
#                     pid, kind, PSS KiB, notifications done
#   BENCH_GROWTH      KiB of RSS growth still called "none" (default 512: allocator noise)
#
# PSS from /proc/PID/smaps_rollup (shared pages divided among the processes sharing them: the
# master and its forked children share their code). "before": the master and its children
# idle with workers up; "during": a sample every BENCH_EVERY s while herald-send --bulk publishes
# the N requests and the master drains them; "early" is the first sample with at least 10 % of
# N done; "after": 3 s after the last row is done. Growth = after - early, per process, of PSS,
# RSS and USS (Private_Clean + Private_Dirty). "No growth" is judged on RSS: a forked process's
# PSS and USS also change when pages it shares with the master and its siblings are copied on
# write or left by another process, with no allocation of its own (seen: the master's USS
# 0.2 -> 2.4 MiB at a constant RSS of 10.5 MiB).
# Checks: N done, nginx got N, no child replaced during the run (a respawned worker would hide
# growth), master exit 0.
set -uo pipefail
BENCH_NAME=memory.sh
. "$(dirname "$0")/lib.sh"
bench_init

N=${1:-1000000}
USERS=${BENCH_USERS:-10000}
CAP=${BENCH_CAP:-10000000}
EVERY=${BENCH_EVERY:-5}
GROWTH=${BENCH_GROWTH:-512}
SERIES=${BENCH_SERIES:-$src/bench/memory.dat}
bench_count N "$N"; bench_count BENCH_USERS "$USERS"; bench_count BENCH_CAP "$CAP"; bench_count BENCH_EVERY "$EVERY"
bench_make bench/raw_publish

echo "memory: $N webhook notifications, $USERS users, $machine, $(date -u +%FT%TZ)"
bench_stack
bench_nginx
bench_users "$USERS" "$tmp/users.jsonl"
bench_import "$tmp/users.jsonl"
bench_caps "$CAP"
bench_bulk "$N" "$USERS" normal mem "$tmp/bulk.jsonl"
bench_master_conf
bench_master_start
sleep 2
done_sql="SELECT COUNT(*) FROM notifications WHERE batch_id = 'mem' AND status = 'done'"
# sample PHASE T DONE - one line per process: "T PID KIND PSS DONE PHASE RSS USS" (KiB)
sample() {
	local pid kind m
	m=$(bench_mem "$master_pid")
	printf '%s %s master %s %s %s %s\n' "$2" "$master_pid" "${m%% *}" "$3" "$1" "${m#* }"
	bench_children | while read -r pid kind; do
		m=$(bench_mem "$pid")
		printf '%s %s %s %s %s %s %s\n' "$2" "$pid" "${kind:-unknown}" "${m%% *}" "$3" "$1" "${m#* }"
	done
}
sample before 0 0 > "$tmp/samples"
kids0=$(bench_children | sort | tr '\n' ' ')
t0=$(now)
( bench_send "$tmp/bulk.jsonl" ) &
sender=$!
bench_bg "$sender"
last=-1 since=$t0
while :; do
	t=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
	d=$(sql "$done_sql")
	sample during "$t" "$d" >> "$tmp/samples"
	# reap herald-send as soon as it ends: by the end of a long drain its pid may belong to
	# another process (pid_max 32768), and bench_stop would signal that one
	if [ -n "$sender" ] && ! alive "$sender"; then
		bench_stop "$sender" || warn "herald-send --bulk failed"
		sender=
	fi
	[ "$d" -ge "$N" ] && break
	if [ "$d" != "$last" ]; then last=$d since=$(now)
	elif awk -v a="$since" -v b="$(now)" -v t="$TIMEOUT" 'BEGIN { exit !(b - a > t) }'; then
		warn "stuck at $d of $N done for ${TIMEOUT}s"; break
	fi
	sleep "$EVERY"
done
[ -z "$sender" ] || bench_stop "$sender" || warn "herald-send --bulk failed"
sleep 3
t=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
sample after "$t" "$(sql "$done_sql")" >> "$tmp/samples"
kids1=$(bench_children | sort | tr '\n' ' ')
bench_master_stop; rc=$?
{ echo "# memory.sh $(date -u +%FT%TZ) N=$N: seconds since the first publish, pid, kind, PSS KiB, done, phase, RSS KiB, USS KiB"; cat "$tmp/samples"; } > "$SERIES"

bad=0
st=$(sql "SELECT CONCAT(status, '=', COUNT(*)) FROM notifications WHERE batch_id = 'mem' GROUP BY status" | tr '\n' ' ')
[ "$st" = "done=$N " ] || { warn "statuses: $st(want done=$N)"; bad=1; }
hits=$(wc -l < "$ngx_hits")
[ "$hits" = "$N" ] || { warn "nginx got $hits POSTs, want $N"; bad=1; }
[ "$kids0" = "$kids1" ] || { warn "children changed during the run: before $kids0, after $kids1"; bad=1; }
[ "$rc" = 0 ] || { warn "the master exited $rc"; bad=1; }

# per process: before, early (first sample >= 10 % done), max, after, growth
awk -v n="$N" -v g="$GROWTH" '
	{ k = $2; kind[k] = $3 }
	$6 == "before" { before[k] = $4 }
	$6 == "during" && !(k in early) && $5 >= n / 10 { early[k] = $4; earlyu[k] = $8; earlyr[k] = $7 }
	$6 == "after" { after[k] = $4; afteru[k] = $8; afterr[k] = $7 }
	$4 > max[k] { max[k] = $4 }
	$7 > rss[k] { rss[k] = $7 }
	$8 > uss[k] { uss[k] = $8 }
	END {
		printf "PSS in MiB; max RSS and USS (private) beside it\n"
		printf "%-8s %-10s %8s %8s %8s %8s %8s %8s %8s %8s %8s\n", "pid", "kind", "before", "early", "max", "after", "growth", "maxRSS", "maxUSS", "RSSgrow", "USSgrow"
		for (k in kind) {
			gr = (k in early && k in after) ? after[k] - early[k] : 0
			ugr = (k in early && k in after) ? afteru[k] - earlyu[k] : 0
			rgr = (k in early && k in after) ? afterr[k] - earlyr[k] : 0
			printf "%-8s %-10s %8.1f %8.1f %8.1f %8.1f %+8.1f %8.1f %8.1f %+8.1f %+8.1f%s\n", k, kind[k], before[k] / 1024,
				early[k] / 1024, max[k] / 1024, after[k] / 1024, gr / 1024, rss[k] / 1024, uss[k] / 1024,
				rgr / 1024, ugr / 1024, (rgr > g ? "  GROWTH" : "")
			if (ugr > allugr) allugr = ugr
			if (rgr > allrgr) allrgr = rgr
			if (kind[k] == "webhook") {
				if (max[k] > wmax) wmax = max[k]
				if (rss[k] > wrss) wrss = rss[k]
				if (uss[k] > wuss) wuss = uss[k]
				if (gr > wgr) wgr = gr
			}
			if (gr > allgr) allgr = gr
		}
		printf "summary %.1f %.1f %.1f %.1f %.1f %.1f %.1f\n", wmax / 1024, wgr / 1024, allgr / 1024, wrss / 1024, wuss / 1024, allugr / 1024, allrgr / 1024
	}' "$tmp/samples" > "$tmp/table"
grep -v '^summary' "$tmp/table" | sed -n '1,2p'
grep -v '^summary' "$tmp/table" | sed '1,2d' | sort -k2,2 -k1,1n
read -r _ wmax wgr allgr wrss wuss allugr allrgr < <(grep '^summary' "$tmp/table")
echo "webhook workers: max PSS $wmax MiB (target <= 16: $(awk -v m="$wmax" 'BEGIN { print m <= 16 ? "met" : "MISSED" }'); max RSS $wrss, USS $wuss MiB)"
echo "growth after - early, largest: RSS $allrgr MiB (no growth, RSS within $GROWTH KiB in every process: $(awk -v a="$allrgr" -v g="$GROWTH" 'BEGIN { print a * 1024 <= g ? "met" : "MISSED" }')); PSS $allgr MiB (webhook workers $wgr); USS $allugr MiB. PSS and USS also move when pages shared among the forked processes change hands (copy on write, a sibling's exit), with no allocation; RSS does not"
if [ $bad = 0 ]; then echo "checks: passed (N done, nginx got N, no child replaced, master exit 0)"
else warn "checks FAILED (BENCH_KEEP=1 keeps the logs)"; fi
echo "series: $SERIES"
bench_result memory.sh "$N" "webhook worker PSS max $wmax MiB (RSS $wrss, USS $wuss), PSS growth $wgr MiB (any process $allgr MiB), RSS growth any process $allrgr MiB, USS $allugr MiB$([ $bad = 0 ] || echo ", CHECKS FAILED")"
exit $bad
