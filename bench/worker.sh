#!/usr/bin/env bash
# worker.sh - webhook worker throughput: N notifications queued beforehand, W `heraldd --worker
# webhook` processes started, time until all N rows of `notifications` are `done`; messages/s.
#
#   bench/worker.sh [N]            N notifications (default 20000), to BENCH_USERS users
#
# Environment:
#   HERALD_BUILDDIR    build directory holding heraldd, herald-send, heraldctl (default .);
#                      bench/raw_publish is made there if missing
#   BENCH_RUNS         runs of each configuration, medians reported (default 3)
#   BENCH_WORKERS      worker process counts, each at BENCH_PREFETCH (default "1 4")
#   BENCH_PREFETCH     broker.prefetch for those (default 50)
#   BENCH_IN_FLIGHT    channels.webhook.in_flight of the workers (default: heraldd's default)
#   BENCH_PREFETCHES   extra W=1 runs at these prefetch values, e.g. "10 50 200" (default none)
#   BENCH_USERS        distinct users, all with a webhook_url at the receiver (default 1000)
#   BENCH_RECEIVER     sink: bench/http_sink.c (libmicrohttpd, built here with cc), or
#                      python: t/lib/receiver.py (the tests' receiver) (default sink)
#   BENCH_SINK_THREADS http_sink's thread pool (default 1)
#   BENCH_LEDGER       1: run `heraldd --ledger` until all N are `queued` before the clock starts,
#                      as in production where the ledger records within a second (default);
#                      0: no ledger (its queue is purged), the worker inserts each row itself
#   BENCH_TIMEOUT      give up on a run after this many seconds without progress (default 60)
#   BENCH_LOGLEVEL     the workers' log.level (default info)
#   BENCH_KEEP         1: keep the scratch directory (logs, configs) and print its path
#
# Always a private stack (scripts/stack.sh) in a scratch directory, stopped at the end: each run
# truncates the notification tables and purges the queues. Every run is checked: exactly N rows
# `done` (no other status), the receiver got exactly N POSTs, the channel and parking queues and
# the event outbox are empty, every worker exited 0. Per run it also prints the MariaDB
# statements and commits per message (SHOW GLOBAL STATUS deltas; the 0.2 s poll adds ~6
# statements a second) and the CPU each process used, as % of one core over the run.
set -uo pipefail

N=${1:-20000}
RUNS=${BENCH_RUNS:-3}
WORKERS=${BENCH_WORKERS:-1 4}
PREFETCH=${BENCH_PREFETCH:-50}
PREFETCHES=${BENCH_PREFETCHES:-}
USERS=${BENCH_USERS:-1000}
RECEIVER=${BENCH_RECEIVER:-sink}
SINK_THREADS=${BENCH_SINK_THREADS:-1}
LEDGER=${BENCH_LEDGER:-1}
TIMEOUT=${BENCH_TIMEOUT:-60}
LOGLEVEL=${BENCH_LOGLEVEL:-info}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
B=$(cd "${HERALD_BUILDDIR:-.}" && pwd)
heraldd=$B/heraldd send=$B/herald-send ctl=$B/heraldctl raw=$B/bench/raw_publish
die() { echo "worker.sh: $*" >&2; exit 1; }
warn() { echo "worker.sh: $*" >&2; }

for p in "$heraldd" "$send" "$ctl"; do
	[ -x "$p" ] || die "$p not found: run from the build directory or set HERALD_BUILDDIR"
done
[ -x "$raw" ] || make -C "$B" bench/raw_publish > /dev/null || die "cannot make bench/raw_publish"
case $RECEIVER in sink|python) ;; *) die "BENCH_RECEIVER: sink or python" ;; esac

tmp=$(mktemp -d /tmp/herald-wbench.XXXXXX)
stack=$tmp/stack
pids=()          # everything started here that may still run: workers, ledger, receiver
# alive PID - runs and is no zombie
alive() { local st; st=$(ps -o stat= -p "$1" 2> /dev/null) && [ -n "$st" ] && [ "${st#Z}" = "$st" ]; }
# stop PID - SIGTERM, SIGKILL after 45 s (a worker stuck in a long database call does not drain),
# then reap it; its exit status is returned (137 after SIGKILL)
stop() {
	local i
	kill -TERM "$1" 2> /dev/null
	for ((i = 0; i < 450; i++)); do alive "$1" || break; sleep 0.1; done
	if alive "$1"; then
		warn "pid $1 still runs 45 s after SIGTERM: SIGKILL"
		kill -KILL "$1" 2> /dev/null
	fi
	wait "$1" 2> /dev/null
}
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2> /dev/null; done
	for p in "${pids[@]}"; do stop "$p"; done
	[ -f "$stack/ports" ] && "$src/scripts/stack.sh" down "$stack" > /dev/null 2>&1
	if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "worker.sh: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# forget PID (it was waited for)
forget() { local p keep=(); for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; pids=("${keep[@]}"); }

unset HERALD_AMQP_URL HERALD_MYSQL_URL
eval "$("$src/scripts/stack.sh" up "$stack")" || die "the private stack did not start"
export HERALD_AMQP_URL HERALD_MYSQL_URL
sqlc() { mariadb --defaults-file="$stack/mariadb/my.cnf" -N -B herald "$@"; }
sql() { sqlc -e "$1"; }
HERALD_SQL_DIR=$src/sql "$ctl" db migrate > "$tmp/migrate.log" 2>&1 || { cat "$tmp/migrate.log" >&2; die "db migrate failed"; }

# the receiver
recv_count() {
	if [ "$RECEIVER" = sink ]; then
		curl -sf "http://127.0.0.1:$port/count" | awk '{ print $1 }'
	else
		wc -l < "$tmp/receiver.jsonl"
	fi
}
if [ "$RECEIVER" = sink ]; then
	# shellcheck disable=SC2046
	cc -O2 -o "$tmp/http_sink" "$here/http_sink.c" $(pkg-config --cflags --libs libmicrohttpd) \
		|| die "cannot build bench/http_sink.c (apt-get install libmicrohttpd-dev)"
	"$tmp/http_sink" -t "$SINK_THREADS" "$tmp/port" > "$tmp/receiver.log" 2>&1 &
else
	: > "$tmp/receiver.jsonl"
	python3 "$src/t/lib/receiver.py" --log "$tmp/receiver.jsonl" --port-file "$tmp/port" \
		> "$tmp/receiver.log" 2>&1 &
fi
recv_pid=$!
pids+=("$recv_pid")
for _ in $(seq 1 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
[ -s "$tmp/port" ] || die "the receiver did not start: $(cat "$tmp/receiver.log")"
port=$(cat "$tmp/port")

# users and requests
awk -v u="$USERS" -v p="$port" 'BEGIN { print "INSERT INTO users (user_id, timezone, webhook_url) VALUES";
	for (i = 0; i < u; i++) printf "%s(\"bench-%d\", \"UTC\", \"http://127.0.0.1:%d/ok\")", i ? ",\n" : "", i, p;
	print ";" }' | sqlc || die "inserting the users failed"
awk -v n="$N" -v u="$USERS" 'BEGIN { for (i = 1; i <= n; i++)
	printf "{\"user_id\":\"bench-%d\",\"channels\":{\"webhook\":{\"event\":\"order.shipped\"}},"    \
	"\"data\":{\"order\":\"A-%d\",\"carrier\":\"DHL\"},\"batch_id\":\"bench\"}\n", i % u, i }' > "$tmp/bulk.jsonl"
printf 'broker = { confirm_timeout = 60; };\n' > "$tmp/send.conf"
# conf P - the worker/ledger config with prefetch P (mode 600: heraldd checks)
conf() {
	local f=$tmp/worker-$1.conf
	[ -f "$f" ] || { printf 'broker = { prefetch = %s; };\nlog = { level = "%s"; };\n%s\n' "$1" "$LOGLEVEL" \
		"channels = { webhook = { allow_private = true; ${BENCH_IN_FLIGHT:+in_flight = $BENCH_IN_FLIGHT; }providers = ( { name = \"hooks\"; type = \"webhook\"; } ); }; };" \
		> "$f"; chmod 600 "$f"; }
	echo "$f"
}
queues=(herald.webhook.v1 herald.ledger.v1 herald.webhook.v1.parked)
echo '{"user_id":"bench-0","channels":{"webhook":{"event":"warmup"}}}' > "$tmp/one.jsonl"
HERALD_CONFIG=$tmp/send.conf "$send" --bulk "$tmp/one.jsonl" > /dev/null || die "herald-send cannot reach $HERALD_AMQP_URL"

# cpu PID - user+system seconds PID used so far
tck=$(getconf CLK_TCK)
cpu() { awk -v t="$tck" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$1/stat" 2> /dev/null || echo 0; }
mdb_pid=$(cat "$stack/mariadb/server.pid")
rmq_pid=$(cat "$stack/rabbitmq/rabbitmq.pid")
# sched PID - "on-cpu runqueue-wait" seconds of all PID's threads so far (/proc/PID/task/*/schedstat)
sched() { cat /proc/"$1"/task/*/schedstat 2> /dev/null | awk '{ c += $1; q += $2 } END { printf "%.3f %.3f", c / 1e9, q / 1e9 }'; }
# busy - seconds all cores spent busy so far (/proc/stat)
busy() { awk -v t="$tck" '$1 == "cpu" { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / t; exit }' /proc/stat; }
gstat() { sql "SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_commit','Com_stmt_execute','Questions','Innodb_data_fsyncs','Innodb_log_writes','Innodb_row_lock_waits','Innodb_deadlocks')" | awk '{ printf "%s=%s ", $1, $2 }'; }
sv() { printf '%s\n' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { v = $2 } END { print v + 0 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
now() { date +%s.%N; }

# wait_rows WHAT SQL - poll SQL (a count) every 0.2 s until N; 1 after TIMEOUT s without progress
wait_rows() {
	local c last=-1 since
	since=$(now)
	while :; do
		c=$(sql "$2")
		[ "$c" = "$N" ] && return 0
		if [ "$c" != "$last" ]; then last=$c since=$(now)
		elif awk -v a="$since" -v b="$(now)" -v t="$TIMEOUT" 'BEGIN { exit !(b - a > t) }'; then
			warn "$1: stuck at $c of $N for ${TIMEOUT}s"; return 1
		fi
		sleep 0.2
	done
}

# prepare - empty tables and queues, queue N requests, let the ledger record them
prepare() {
	local out ok lp
	sql "SET foreign_key_checks = 0; TRUNCATE notification_audit; TRUNCATE notifications;
		TRUNCATE event_outbox; TRUNCATE counter_reservations; TRUNCATE daily_counters;
		TRUNCATE idempotency_claims; TRUNCATE deferred_messages; TRUNCATE device_outcomes;
		SET foreign_key_checks = 1;" || die "truncate failed"
	"$raw" -p "$HERALD_AMQP_URL" "${queues[@]}" || die "purge failed"
	HERALD_CONFIG=$tmp/send.conf "$send" --bulk "$tmp/bulk.jsonl" > "$tmp/replies"
	ok=$(grep -c '"status":"received"' "$tmp/replies")
	[ "$ok" = "$N" ] || die "herald-send: $ok of $N received"
	if [ "$LEDGER" = 1 ]; then
		"$heraldd" -c "$(conf "$PREFETCH")" --ledger >> "$tmp/ledger.log" 2>&1 &
		lp=$!; pids+=("$lp")
		local t0; t0=$(now)
		wait_rows ledger "SELECT COUNT(*) FROM notifications WHERE status = 'queued'" || die "the ledger did not record $N"
		ledger_rate=$(awk -v a="$t0" -v b="$(now)" -v n="$N" 'BEGIN { printf "%.0f", n / (b - a) }')
		stop "$lp"; forget "$lp"
	else
		"$raw" -p "$HERALD_AMQP_URL" herald.ledger.v1 || die "purge failed"
	fi
	out=$("$raw" -c "$HERALD_AMQP_URL" "${queues[@]}" | awk '{ printf "%s=%s ", $1, $2 }')
	[ "$out" = "herald.webhook.v1=$N herald.ledger.v1=0 herald.webhook.v1.parked=0 " ] \
		|| die "before the run: expected $N in herald.webhook.v1 and nothing else, got $out"
}

# run W P - one timed run; prints a result line, sets rate
run() {
	local w=$1 p=$2 cfg i wp=() t0 t1 s0 s1 r0 r1 c1=() m0 m1 q0 q1 rc bad=0 out st got secs
	cfg=$(conf "$p")
	r0=$(recv_count)
	s0=$(gstat)
	m0=$(cpu "$mdb_pid") q0=$(cpu "$rmq_pid")
	local v0 b0 ms0; v0=$(cpu "$recv_pid") b0=$(busy) ms0=$(sched "$mdb_pid")
	t0=$(now)
	for ((i = 0; i < w; i++)); do
		"$heraldd" -c "$cfg" --worker webhook >> "$tmp/worker-w$w-p$p.log" 2>&1 &
		wp+=($!); pids+=($!)
	done
	wait_rows "W=$w prefetch=$p" "SELECT COUNT(*) FROM notifications WHERE batch_id = 'bench' AND status = 'done'" || bad=1
	t1=$(now)
	local ws=0 wq=0 x
	for i in "${wp[@]}"; do
		c1+=("$(cpu "$i")")
		x=$(sched "$i"); ws=$(awk -v a="$ws" -v b="${x% *}" 'BEGIN { print a + b }'); wq=$(awk -v a="$wq" -v b="${x#* }" 'BEGIN { print a + b }')
	done
	s1=$(gstat)
	m1=$(cpu "$mdb_pid") q1=$(cpu "$rmq_pid")
	local v1 b1 ms1; v1=$(cpu "$recv_pid") b1=$(busy) ms1=$(sched "$mdb_pid")
	for i in "${wp[@]}"; do kill -TERM "$i"; done
	for i in "${wp[@]}"; do
		stop "$i"; rc=$?; forget "$i"
		[ "$rc" = 0 ] || { warn "W=$w prefetch=$p: worker $i exited $rc"; bad=1; }
	done
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
	rate=$(awk -v s="$secs" -v n="$N" 'BEGIN { printf "%.0f", n / s }')
	# checks
	st=$(sql "SELECT CONCAT(status, '=', COUNT(*)) FROM notifications GROUP BY status ORDER BY status" | tr '\n' ' ')
	[ "$st" = "done=$N " ] || { warn "W=$w prefetch=$p: statuses: $st(want done=$N)"; bad=1; }
	sleep 0.3      # a POST answered after the last commit is still counted
	r1=$(recv_count); got=$((r1 - r0))
	[ "$got" = "$N" ] || { warn "W=$w prefetch=$p: the receiver got $got requests, want $N"; bad=1; }
	out=$("$raw" -c "$HERALD_AMQP_URL" "${queues[@]}" | awk '{ printf "%s=%s ", $1, $2 }')
	[ "$out" = "herald.webhook.v1=0 herald.ledger.v1=0 herald.webhook.v1.parked=0 " ] \
		|| { warn "W=$w prefetch=$p: queues after the run: $out"; bad=1; }
	i=$(sql "SELECT COUNT(*) FROM event_outbox")
	[ "$i" = 0 ] || { warn "W=$w prefetch=$p: $i events left in event_outbox"; bad=1; }
	[ $bad = 0 ] || { warn "W=$w prefetch=$p: run FAILED its checks (logs: $tmp, BENCH_KEEP=1 keeps them)"; rate=0; }
	local wcpu=0
	for i in "${c1[@]}"; do wcpu=$(awk -v a="$wcpu" -v b="$i" 'BEGIN { print a + b }'); done
	awk -v s="$secs" -v n="$N" -v w="$w" -v p="$p" -v r="$rate" \
		-v st="$(( $(sv "$s1" Com_stmt_execute) - $(sv "$s0" Com_stmt_execute) ))" \
		-v cm="$(( $(sv "$s1" Com_commit) - $(sv "$s0" Com_commit) ))" \
		-v qu="$(( $(sv "$s1" Questions) - $(sv "$s0" Questions) ))" \
		-v fs="$(( $(sv "$s1" Innodb_data_fsyncs) - $(sv "$s0" Innodb_data_fsyncs) ))" -v lw="$(( $(sv "$s1" Innodb_log_writes) - $(sv "$s0" Innodb_log_writes) ))" \
		-v lk="$(( $(sv "$s1" Innodb_row_lock_waits) - $(sv "$s0" Innodb_row_lock_waits) ))" \
		-v dl="$(( $(sv "$s1" Innodb_deadlocks) - $(sv "$s0" Innodb_deadlocks) ))" \
		-v wc="$wcpu" -v mc="$(awk -v a="$m0" -v b="$m1" 'BEGIN { print b - a }')" \
		-v qc="$(awk -v a="$q0" -v b="$q1" 'BEGIN { print b - a }')" \
		-v vc="$(awk -v a="$v0" -v b="$v1" 'BEGIN { print b - a }')" -v rl="$RECEIVER" \
		-v bc="$(awk -v a="$b0" -v b="$b1" 'BEGIN { print b - a }')" \
		-v ws="$ws" -v wq="$wq" -v mq="$(awk -v a="${ms0#* }" -v b="${ms1#* }" 'BEGIN { print b - a }')" \
		'BEGIN { printf "W=%d prefetch=%d: %.2f s, %d msgs/s | per msg: %.2f stmt executes, %.3f commits, %.2f questions, %.3f fsyncs, %.3f log writes; %d row lock waits, %d deadlocks | CPU %% of a core: workers %.0f, mariadbd %.0f, beam %.0f, %s %.0f, all others on the machine %.0f | worker threads: on-CPU %.0f%%, waiting for a CPU %.0f%%, blocked (I/O) %.0f%% of W x wall; mariadbd threads waited %.0f ms for a CPU per 1000 msgs\n",
		w, p, s, r, st / n, cm / n, qu / n, fs / n, lw / n, lk, dl, 100 * wc / s, 100 * mc / s, 100 * qc / s, rl, 100 * vc / s, 100 * (bc - wc - mc - qc - vc) / s, 100 * ws / (w * s), 100 * wq / (w * s), 100 - 100 * (ws + wq) / (w * s), 1e6 * mq / n }'
}

configs=()
for w in $WORKERS; do configs+=("$w:$PREFETCH"); done
for p in $PREFETCHES; do
	case " ${configs[*]} " in *" 1:$p "*) ;; *) configs+=("1:$p") ;; esac
done
declare -A rates
echo "notifications: $N webhook, $USERS users, receiver $RECEIVER$([ "$RECEIVER" = sink ] && echo " ($SINK_THREADS thread)"), ledger before the clock: $([ "$LEDGER" = 1 ] && echo yes || echo no), $(nproc) cores, $(date -u +%FT%TZ)"
for r in $(seq 1 "$RUNS"); do
	for c in "${configs[@]}"; do
		w=${c%:*} p=${c#*:}
		ledger_rate=-
		prepare
		run "$w" "$p" > "$tmp/line"
		echo "run $r $(cat "$tmp/line") (ledger: $ledger_rate rows/s)"
		rates[$c]="${rates[$c]:-} $rate"
	done
done
echo "medians of $RUNS runs (msgs/s; all runs in brackets):"
for c in "${configs[@]}"; do
	w=${c%:*} p=${c#*:}
	# shellcheck disable=SC2086
	m=$(printf '%s\n' ${rates[$c]} | median)
	echo "  W=$w prefetch=$p: $m [${rates[$c]# }]$(awk -v m="$m" 'BEGIN { printf " = %.1f%% of the broker'"'"'s persistent end-to-end 10,299/s, %.1f%% of MariaDB'"'"'s single-row autocommit inserts 8,157/s (1 conn, INFRA.md)", 100 * m / 10299, 100 * m / 8157 }')"
done
