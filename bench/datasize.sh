#!/usr/bin/env bash
# datasize.sh - data size (issue 9, benchmark 4): bench/e2e.sh with SMALL and with LARGE users in
# the database (default 1000 and 1000000), the buffer pool sized to hold them; both rates and the
# difference (target: within 10 %).
#
#   bench/datasize.sh [N]         N notifications per run (default 200000)
#
# Environment: BENCH_SMALL (1000), BENCH_LARGE (1000000) users; BENCH_BUFFER_POOL (default 1G:
# a million users and their 4 million preference rows take ~0.5 GB); BENCH_RAW (default 0 here:
# the raw pair does not read the database; 1 runs it in both); everything else as e2e.sh. Each
# run is a whole e2e.sh on its own fresh stack (users imported with heraldctl user import,
# 10-20k users/s), its row appended to bench/results.md; the notifications go to user
# i % USERS, so with LARGE users each one reads a different user (when N <= LARGE) and the
# pages the workers read are spread over the whole table.
set -uo pipefail
BENCH_NAME=datasize.sh
. "$(dirname "$0")/lib.sh"
N=${1:-200000}
SMALL=${BENCH_SMALL:-1000}
LARGE=${BENCH_LARGE:-1000000}
bench_count N "$N"; bench_count BENCH_SMALL "$SMALL"; bench_count BENCH_LARGE "$LARGE"
export BENCH_BUFFER_POOL=${BENCH_BUFFER_POOL:-1G} BENCH_RAW=${BENCH_RAW:-0}
tmp=$(mktemp -d /tmp/herald-datasize.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
machine=$(bench_machine)

declare -A rate
for u in "$SMALL" "$LARGE"; do
	echo "== $u users"
	BENCH_USERS=$u BENCH_SERIES=$tmp/e2e-$u.dat "$here/e2e.sh" "$N" | tee "$tmp/out-$u"
	line=$(grep '^e2e-result ' "$tmp/out-$u")
	case $line in *ok=1) ;; *) echo "datasize.sh: the run with $u users failed its checks" >&2; exit 1 ;; esac
	rate[$u]=${line#*herald=}; rate[$u]=${rate[$u]%% *}
done
diff=$(awk -v a="${rate[$SMALL]}" -v b="${rate[$LARGE]}" 'BEGIN { printf "%.1f", 100 * (b - a) / a }')
ok=$(awk -v d="$diff" 'BEGIN { print (d >= -10 && d <= 10) ? "met" : "MISSED" }')
echo "data size: $SMALL users ${rate[$SMALL]}/s, $LARGE users ${rate[$LARGE]}/s: $diff % (target within 10 %: $ok)"
bench_result datasize.sh "$N" "$SMALL users ${rate[$SMALL]}/s, $LARGE users ${rate[$LARGE]}/s: $diff % (buffer pool $BENCH_BUFFER_POOL)"
