#!/usr/bin/env bash
# producer.sh - benchmark herald-send --bulk against a raw rabbitmq-c publisher (bench/raw_publish)
# sending the same messages to the same queues, one channel; prints requests/s and the ratio.
#
#   bench/producer.sh [N]          N requests (default 1000000), one run each
#
# Environment: HERALD_BUILDDIR (default .) holds herald-send; bench/raw_publish is made there if
# missing. HERALD_AMQP_URL: use that broker (its herald queues are purged!), else a private stack
# is started in a scratch directory and stopped at the end. BENCH_RUNS (default 1) repeats each
# side and reports the medians; BENCH_DEFER=1 makes the raw side send each ledger copy only after
# its channel copy is confirmed, as libherald does.
set -uo pipefail

N=${1:-1000000}
RUNS=${BENCH_RUNS:-1}
here=$(cd "$(dirname "$0")" && pwd)
B=$(cd "${HERALD_BUILDDIR:-.}" && pwd)
send=$B/herald-send
raw=$B/bench/raw_publish
die() { echo "producer.sh: $*" >&2; exit 1; }

[ -x "$send" ] || die "$send not found: run from the build directory or set HERALD_BUILDDIR"
[ -x "$raw" ] || make -C "$B" bench/raw_publish > /dev/null || die "cannot make bench/raw_publish"

tmp=$(mktemp -d /tmp/herald-bench.XXXXXX)
stack=
cleanup() {
	[ -n "$stack" ] && "$here/../scripts/stack.sh" down "$stack" > /dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
if [ -z "${HERALD_AMQP_URL:-}" ]; then
	stack=$tmp/stack
	eval "$("$here/../scripts/stack.sh" up "$stack")" || die "the private stack did not start"
fi
export HERALD_CONFIG=$tmp/herald.conf
printf 'broker = { confirm_timeout = 60; };\n' > "$HERALD_CONFIG"

# one channel (email), ~400-byte requests, unique users and order numbers
awk -v n="$N" 'BEGIN { for (i = 1; i <= n; i++)
	printf "{\"user_id\":\"user-%d\",\"channels\":{\"email\":{\"subject\":\"Your order A-%d has shipped\"," \
	"\"body\":\"Hello, your order A-%d left our warehouse today and should arrive within three " \
	"working days. Track it from your account page.\"}},\"category\":\"notifications\"," \
	"\"data\":{\"order\":\"A-%d\",\"carrier\":\"DHL\"},\"batch_id\":\"bench\"}\n", i % 50000, i, i, i }' \
	> "$tmp/bulk.jsonl"

queues="herald.email.v1 herald.ledger.v1"
purge() { "$raw" -p "$HERALD_AMQP_URL" $queues || die "purge failed"; }
# check WHAT - both queues hold N messages
check() {
	local out
	out=$("$raw" -c "$HERALD_AMQP_URL" $queues | awk '{ printf "%s=%s ", $1, $2 }')
	case "$out" in
	"herald.email.v1=$N herald.ledger.v1=$N ") ;;
	*) echo "producer.sh: $1: expected $N in each queue, got $out" >&2 ;;
	esac
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# declare the topology (herald-send does it on connect), then start from empty queues
echo '{"user_id":"warmup","channels":{"email":{"subject":"s","body":"b"}}}' > "$tmp/one.jsonl"
"$send" --bulk "$tmp/one.jsonl" > /dev/null || die "herald-send cannot reach $HERALD_AMQP_URL"
purge

echo "requests: $N, one channel (email) + ledger copy, $(wc -c < "$tmp/bulk.jsonl") bytes of input"
hs=() rs=()
for r in $(seq 1 "$RUNS"); do
	t0=$(date +%s.%N)
	"$send" --bulk "$tmp/bulk.jsonl" > "$tmp/replies"
	rc=$?
	t1=$(date +%s.%N)
	ok=$(grep -c '"status":"received"' "$tmp/replies")
	[ "$rc" = 0 ] && [ "$ok" = "$N" ] || echo "producer.sh: herald-send exit $rc, $ok of $N received" >&2
	check herald-send
	h=$(awk -v a="$t0" -v b="$t1" -v n="$N" 'BEGIN { printf "%.1f", n / (b - a) }')
	echo "run $r herald-send --bulk: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s, $h requests/s"
	hs+=("$h")
	purge

	out=$("$raw" ${BENCH_DEFER:+-d} "$HERALD_AMQP_URL" "$tmp/bulk.jsonl") || echo "producer.sh: raw_publish failed: $out" >&2
	check raw_publish
	r_=$(printf '%s\n' "$out" | awk '{ for (i = 1; i < NF; i++) if ($i == "rate") print $(i + 1) }')
	echo "run $r raw_publish${BENCH_DEFER:+ -d}: $(printf '%s\n' "$out" | awk '{ for (i = 1; i < NF; i++) if ($i == "seconds") print $(i + 1) }') s (publishing only), $r_ requests/s"
	rs+=("$r_")
	purge
done
h=$(printf '%s\n' "${hs[@]}" | median)
r=$(printf '%s\n' "${rs[@]}" | median)
echo "herald-send: $h requests/s; raw: $r requests/s; ratio $(awk -v a="$h" -v b="$r" 'BEGIN { printf "%.1f%%", 100 * a / b }')"
