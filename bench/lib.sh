# lib.sh - what bench/e2e.sh, priority.sh, memory.sh and datasize.sh share (sourced, after
# setting BENCH_NAME; starts nothing). Sets here, src, B (the build directory), the programs'
# paths and machine (cores, RAM, load average now).
#
#   bench_init            check the programs; tmp (a scratch directory removed at exit unless
#                         BENCH_KEEP=1); at exit every process started through bench_bg is
#                         stopped, the private stack last
#   die/warn MSG          stderr, prefixed with the script's name
#   bench_pkg CMD PKG     apt-get install PKG when CMD is missing (benches install their own
#                         extras; scripts/deps.sh does not list them)
#   bench_count NAME V    die unless V is a positive integer (NAME: the setting, in the error)
#   bench_make PROG       make PROG (an EXTRA_PROGRAMS entry, e.g. bench/raw_publish) in $B
#   bench_bg PID          stop PID at exit; bench_stop PID: SIGTERM, wait, its exit status
#   bench_stack           the private stack in $tmp/stack (BENCH_BUFFER_POOL: InnoDB buffer
#                         pool, default the stack's 128M), the schema; sql/sqlc helpers;
#                         BENCH_QUEUE_POLICY: a policy for herald's queues, e.g.
#                         '{"queue-mode":"default"}' or '{"queue-version":2}', set above the
#                         stack's own herald-lazy policy (default: that one, lazy queues)
#   bench_nginx           nginx on a free loopback port ($ngx_port): every request answered 204
#                         at once; /hook logged to $ngx_hits, /raw to $ngx_raw, one line per
#                         request: "MSEC WEBHOOK-ID STATUS" (MSEC: seconds since the epoch, ms)
#   bench_users N FILE    N users bench-0..N-1 as JSON Lines (webhook_url at nginx, preferences)
#   bench_import FILE     heraldctl user import; prints rows/s
#   bench_users_sql N     the same users with bulk SQL (for a million)
#   bench_caps CAP        heraldctl caps set webhook=CAP (a daily cap per user, all clients)
#   bench_bulk N USERS PRIO BATCH FILE   N webhook requests spread over the users
#   bench_master_conf     $tmp/master.conf: heraldd's defaults, plus connection and webhook
#                         provider settings only (BENCH_WORKERS: another webhook worker
#                         count, for diagnosis; the result row names it);
#                         bench_master_start / bench_master_stop
#   bench_children        "PID KIND" of the master's children (KIND: webhook, ledger, outbox...)
#   bench_wait_sql WHAT SQL N   poll SQL (a count) until >= N; 1 after BENCH_TIMEOUT s
#                         without progress
#   bench_cpu_snap, bench_cpu_report   CPU used by heraldd, mariadbd, beam, nginx, the rest
#   bench_pss PID         proportional set size in KiB (/proc/PID/smaps_rollup); bench_mem PID:
#                         "PSS RSS USS" KiB
#   bench_result FIELDS   append a row to bench/results.md (date, commit, machine, FIELDS)
#   bench_queues          "queue=count ..." of the webhook, ledger and parking queues
#   now, median, pct P (of sorted numbers on stdin)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
B=$(cd "${HERALD_BUILDDIR:-.}" && pwd)
heraldd=$B/heraldd send=$B/herald-send ctl=$B/heraldctl raw=$B/bench/raw_publish
TIMEOUT=${BENCH_TIMEOUT:-120}

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }
warn() { echo "$BENCH_NAME: $*" >&2; }
now() { date +%s.%N; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# pct P - the P-th percentile (nearest rank) of the sorted numbers on stdin
pct() { awk -v p="$1" '{ v[NR] = $1 } END { i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; print v[i] }'; }

bench_pkg() {
	command -v "$1" > /dev/null && return 0
	warn "$1 missing: apt-get install $2 (a benchmark's own extra, not in scripts/deps.sh)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" > "$tmp/apt.log" 2>&1 ||
		{ cat "$tmp/apt.log" >&2; die "apt-get install $2 failed"; }
}
# bench_count NAME VALUE - VALUE must be a positive integer, else die naming NAME
bench_count() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1: a positive integer, not '$2'"; }
bench_make() { [ -x "$B/$1" ] || make -C "$B" "$1" > /dev/null || die "cannot make $1"; }

bench_pids=()
# alive PID - runs and is no zombie
alive() { local st; st=$(ps -o stat= -p "$1" 2> /dev/null) && [ -n "$st" ] && [ "${st#Z}" = "$st" ]; }
bench_bg() { bench_pids+=("$1"); }
# bench_stop PID - SIGTERM, SIGKILL after 60 s, reap; its exit status (137 after SIGKILL)
bench_stop() {
	local i p keep=()
	kill -TERM "$1" 2> /dev/null
	for ((i = 0; i < 600; i++)); do alive "$1" || break; sleep 0.1; done
	if alive "$1"; then
		warn "pid $1 still runs 60 s after SIGTERM: SIGKILL"
		kill -KILL "$1" 2> /dev/null
	fi
	wait "$1" 2> /dev/null
	i=$?
	for p in "${bench_pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	bench_pids=("${keep[@]}")
	return $i
}
bench_cleanup() {
	local p
	for p in "${bench_pids[@]}"; do kill -TERM "$p" 2> /dev/null; done
	for p in "${bench_pids[@]}"; do bench_stop "$p"; done
	[ -f "$stack/ports" ] && "$src/scripts/stack.sh" down "$stack" > /dev/null 2>&1
	if [ "${BENCH_KEEP:-0}" = 1 ]; then warn "kept $tmp"; else rm -rf "$tmp"; fi
}
# bench_init - check the programs, make the scratch directory, arm the cleanup
bench_init() {
	local p
	for p in "$heraldd" "$send" "$ctl"; do
		[ -x "$p" ] || die "$p not found: run from the build directory or set HERALD_BUILDDIR"
	done
	tmp=$(mktemp -d "/tmp/herald-$BENCH_NAME.XXXXXX")
	stack=$tmp/stack
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

bench_stack() {
	unset HERALD_AMQP_URL HERALD_MYSQL_URL HERALD_CONFIG
	eval "$(HERALD_STACK_BUFFER_POOL=${BENCH_BUFFER_POOL:-} "$src/scripts/stack.sh" up "$stack")" ||
		die "the private stack did not start"
	export HERALD_AMQP_URL HERALD_MYSQL_URL
	HERALD_SQL_DIR=$src/sql "$ctl" db migrate > "$tmp/migrate.log" 2>&1 ||
		{ cat "$tmp/migrate.log" >&2; die "db migrate failed"; }
	printf 'broker = { confirm_timeout = 60; };\n' > "$tmp/send.conf"
	# declare the topology (herald-send does on connect), then start from empty queues
	echo '{"user_id":"warmup","channels":{"webhook":{"event":"warmup"}}}' > "$tmp/one.jsonl"
	HERALD_CONFIG=$tmp/send.conf "$send" --bulk "$tmp/one.jsonl" > /dev/null ||
		die "herald-send cannot reach $HERALD_AMQP_URL"
	"$raw" -p "$HERALD_AMQP_URL" herald.webhook.v1 herald.ledger.v1 || die "purge failed"
	# BENCH_QUEUE_POLICY: a RabbitMQ policy definition for herald's queues (a queue argument
	# would clash with the declared queues: 406 PRECONDITION_FAILED)
	if [ -n "${BENCH_QUEUE_POLICY:-}" ]; then
		"$src/scripts/stack.sh" ctl "$stack" set_policy herald-bench '^herald\.' \
			"$BENCH_QUEUE_POLICY" --priority 1 --apply-to queues > "$tmp/policy.log" 2>&1 ||
			{ cat "$tmp/policy.log" >&2; die "BENCH_QUEUE_POLICY '$BENCH_QUEUE_POLICY' refused"; }
	fi
}
sqlc() { mariadb --defaults-file="$stack/mariadb/my.cnf" -N -B herald "$@"; }
sql() { sqlc -e "$1"; }
bench_queues() {
	"$raw" -c "$HERALD_AMQP_URL" herald.webhook.v1 herald.ledger.v1 herald.webhook.v1.parked |
		awk '{ printf "%s%s=%s", (NR > 1 ? " " : ""), $1, $2 }'
}

# free_port - a free port on 127.0.0.1
free_port() {
	local i p
	for i in $(seq 1 50); do
		p=$((30000 + RANDOM % 20000))
		(exec 3<> "/dev/tcp/127.0.0.1/$p") 2> /dev/null || { echo "$p"; return 0; }
	done
	return 1
}

bench_nginx() {
	local d=$tmp/nginx i
	bench_pkg nginx nginx-light
	mkdir -p "$d/tmp"
	ngx_port=$(free_port) || die "no free port"
	ngx_hits=$d/hook.log ngx_raw=$d/raw.log
	: > "$ngx_hits"; : > "$ngx_raw"
	cat > "$d/nginx.conf" <<EOF
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
	log_format hits '\$msec \$http_webhook_id \$status';
	access_log off;
	client_body_temp_path $d/tmp/body;
	proxy_temp_path $d/tmp/proxy;
	fastcgi_temp_path $d/tmp/fastcgi;
	uwsgi_temp_path $d/tmp/uwsgi;
	scgi_temp_path $d/tmp/scgi;
	keepalive_requests 1000000;
	keepalive_timeout 120s;
	server {
		listen 127.0.0.1:$ngx_port;
		location /hook { access_log $ngx_hits hits; return 204; }
		location /raw { access_log $ngx_raw hits; return 204; }
		location / { return 404; }
	}
}
EOF
	nginx -p "$d" -c "$d/nginx.conf" -g 'daemon off;' > "$d/stdout.log" 2>&1 &
	ngx_pid=$!
	bench_bg "$ngx_pid"
	for ((i = 0; i < 100; i++)); do
		curl -s -o /dev/null -X POST "http://127.0.0.1:$ngx_port/" && return 0
		alive "$ngx_pid" || break
		sleep 0.05
	done
	cat "$d/error.log" "$d/stdout.log" >&2
	die "nginx did not start"
}

# bench_users N FILE - N users with a webhook URL at nginx and preferences: the webhook channel
# and the category on, marketing off (4 rows in preferences a user)
bench_users() {
	awk -v n="$1" -v u="http://127.0.0.1:$ngx_port/hook" 'BEGIN { for (i = 0; i < n; i++)
		printf "{\"user_id\":\"bench-%d\",\"first_name\":\"User%d\",\"timezone\":\"UTC\",\"locale\":\"en\"," \
		"\"webhook_url\":\"%s\",\"preferences\":{\"webhook\":true,\"notifications\":true," \
		"\"marketing\":false,\"marketing.webhook\":false}}\n", i, i, u }' > "$2"
}
bench_import() {
	local t0 t1 n
	n=$(wc -l < "$1")
	t0=$(now)
	"$ctl" user import "$1" > "$tmp/import.log" 2>&1 || { tail -5 "$tmp/import.log" >&2; die "user import failed"; }
	t1=$(now)
	[ "$(sql "SELECT COUNT(*) FROM users WHERE user_id LIKE 'bench-%'")" = "$n" ] || die "user import: not $n users"
	awk -v a="$t0" -v b="$t1" -v n="$n" 'BEGIN { printf "%d users imported in %.1f s (%.0f/s)\n", n, b - a, n / (b - a) }'
}
# bench_users_sql N - the same N users and preferences as bench_users + bench_import, written
# with INSERT .. SELECT from MariaDB's sequence engine: a million in tens of seconds, where
# heraldctl user import (one upsert per record, 500 a transaction) takes many minutes
bench_users_sql() {
	local t0 t1 last=$(($1 - 1))
	t0=$(now)
	sql "INSERT INTO users (user_id, first_name, timezone, locale, webhook_url)
		SELECT CONCAT('bench-', seq), CONCAT('User', seq), 'UTC', 'en', 'http://127.0.0.1:$ngx_port/hook'
		FROM seq_0_to_$last;
		INSERT INTO preferences (user_id, pref_key, enabled)
		SELECT CONCAT('bench-', s.seq), k.pref_key, k.enabled FROM seq_0_to_$last s
		CROSS JOIN (SELECT 'webhook' AS pref_key, 1 AS enabled UNION ALL SELECT 'notifications', 1
			UNION ALL SELECT 'marketing', 0 UNION ALL SELECT 'marketing.webhook', 0) k;" ||
		die "inserting $1 users failed"
	t1=$(now)
	awk -v a="$t0" -v b="$t1" -v n="$1" 'BEGIN { printf "%d users inserted with SQL in %.1f s (%.0f/s)\n", n, b - a, n / (b - a) }'
}
bench_caps() { "$ctl" caps set "webhook=$1" > "$tmp/caps.log" 2>&1 || { cat "$tmp/caps.log" >&2; die "caps set failed"; }; }
# bench_bulk N USERS PRIO BATCH FILE - N requests (category notifications, PRIO, some data) to
# users bench-(i % USERS)
bench_bulk() {
	awk -v n="$1" -v u="$2" -v p="$3" -v b="$4" 'BEGIN { for (i = 1; i <= n; i++)
		printf "{\"user_id\":\"bench-%d\",\"channels\":{\"webhook\":{\"event\":\"order.shipped\"}}," \
		"\"category\":\"notifications\",\"priority\":\"%s\",\"data\":{\"order\":\"A-%d\",\"carrier\":\"DHL\"}," \
		"\"batch_id\":\"%s\"}\n", i % u, p, i, b }' > "$5"
}
# bench_send FILE - herald-send --bulk FILE; dies unless every line was received
bench_send() {
	local ok n
	n=$(wc -l < "$1")
	HERALD_CONFIG=$tmp/send.conf "$send" --bulk "$1" > "$1.replies"
	ok=$(grep -c '"status":"received"' "$1.replies")
	[ "$ok" = "$n" ] || die "herald-send: $ok of $n received"
}

# bench_master_conf - heraldd at its defaults: only what this environment needs (no herald user
# here, the control socket and the metrics port in the scratch area: other stacks may run) and
# the webhook channel's provider, allowed to reach nginx on loopback
bench_master_conf() {
	local mp
	mp=$(free_port) || die "no free port"
	cat > "$tmp/master.conf" <<EOF
heraldd = { user = "root"; control = "$tmp/master.sock"; };
metrics = { listen = "127.0.0.1:$mp"; };
channels = { webhook = { allow_private = true; ${BENCH_WORKERS:+workers = $BENCH_WORKERS;}
	providers = ( { name = "hooks"; type = "webhook"; } ); }; };
EOF
	chmod 600 "$tmp/master.conf"
}
bench_master_start() {
	local i
	"$heraldd" -c "$tmp/master.conf" >> "$tmp/master.log" 2>&1 &
	master_pid=$!
	bench_bg "$master_pid"
	for ((i = 0; i < 300; i++)); do
		[ -S "$tmp/master.sock" ] && [ "$("$ctl" workers --socket "$tmp/master.sock" 2> /dev/null |
			jq -r '.channels.webhook | "\(.running)/\(.draining)"')" = "$(bench_wcount)/0" ] && return 0
		alive "$master_pid" || break
		sleep 0.1
	done
	tail -20 "$tmp/master.log" >&2
	die "the master did not start its workers"
}
# bench_wcount - the webhook channel's configured worker count (the default config's)
bench_wcount() { "$ctl" workers --socket "$tmp/master.sock" 2> /dev/null | jq -r '.channels.webhook.workers'; }
bench_master_stop() { bench_stop "$master_pid"; }
# (forked, not exec'd: the kind comes from the master's "event=child_started kind=K pid=P" lines)
bench_children() {
	local p
	for p in $(ps -o pid= --ppid "$master_pid"); do
		printf '%s %s\n' "$p" "$(grep -o "event=child_started kind=[^ ]* pid=$p\b" "$tmp/master.log" |
			tail -1 | sed 's/.*kind=\([^ ]*\).*/\1/')"
	done
}
bench_pss() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2> /dev/null; }
# bench_mem PID - "PSS RSS USS" in KiB (USS: Private_Clean + Private_Dirty)
bench_mem() {
	awk '/^Pss:/ { p = $2 } /^Rss:/ { r = $2 } /^Private_(Clean|Dirty):/ { u += $2 }
		END { printf "%d %d %d", p, r, u }' "/proc/$1/smaps_rollup" 2> /dev/null
}

bench_wait_sql() {
	local c last=-1 since
	since=$(now)
	while :; do
		c=$(sql "$2")
		[ "$c" -ge "$3" ] 2> /dev/null && return 0
		if [ "$c" != "$last" ]; then last=$c since=$(now)
		elif awk -v a="$since" -v b="$(now)" -v t="$TIMEOUT" 'BEGIN { exit !(b - a > t) }'; then
			warn "$1: stuck at $c of $3 for ${TIMEOUT}s"; return 1
		fi
		sleep 0.2
	done
}

# bench_cpu PID... - user+system seconds the PIDs (each alone, not their children) used so far
bench_cpu() {
	local p
	for p in "$@"; do
		awk -v t="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / t }' "/proc/$p/stat" 2> /dev/null
	done | awk '{ s += $1 } END { printf "%.2f", s }'
}
# bench_busy - seconds all cores spent busy so far (/proc/stat)
bench_busy() { awk -v t="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / t; exit }' /proc/stat; }
# bench_cpu_snap - "heraldd mariadbd beam nginx busy time": CPU seconds so far (heraldd: the
# master and its children; nginx: its master and workers; busy: all cores) and the clock
bench_cpu_snap() {
	# shellcheck disable=SC2046
	printf '%s %s %s %s %s %s\n' "$(bench_cpu "$master_pid" $(bench_children | cut -d' ' -f1))" \
		"$(bench_cpu "$(cat "$stack/mariadb/server.pid")")" "$(bench_cpu "$(cat "$stack/rabbitmq/rabbitmq.pid")")" \
		"$(bench_cpu "$ngx_pid" $(ps -o pid= --ppid "$ngx_pid"))" "$(bench_busy)" "$(now)"
}
# bench_cpu_report SNAP0 SNAP1 - each one's CPU between the snapshots in % of one core
bench_cpu_report() {
	awk -v a="$1" -v b="$2" -v n="$(nproc)" 'BEGIN { split(a, x, " "); split(b, y, " ")
		for (i = 1; i <= 6; i++) d[i] = y[i] - x[i]
		s = d[6]
		printf "heraldd (master + children) %.0f, mariadbd %.0f, beam.smp %.0f, nginx %.0f, everything else on the machine %.0f (of %d)\n",
			100 * d[1] / s, 100 * d[2] / s, 100 * d[3] / s, 100 * d[4] / s, 100 * (d[5] - d[1] - d[2] - d[3] - d[4]) / s, 100 * n }'
}
bench_machine() {
	printf '%s cores, %s GiB, load %s' "$(nproc)" \
		"$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)" "$(cut -d' ' -f1 /proc/loadavg)"
}
# bench_result SCRIPT N FIGURES - a row of bench/results.md (BENCH_RESULTS: another file)
bench_result() {
	local f=${BENCH_RESULTS:-$src/bench/results.md} c
	c=$(git -C "$src" rev-parse --short HEAD 2> /dev/null || echo unknown)
	git -C "$src" diff --quiet HEAD 2> /dev/null || c="$c+dirty"
	[ -s "$f" ] || printf '# Benchmark results (appended by bench/*.sh)\n\n| date (UTC) | bench | commit | machine (at start) | N | figures |\n|---|---|---|---|---|---|\n' > "$f"
	printf '| %s | %s | %s | %s | %s | %s%s |\n' "$(date -u +%FT%TZ)" "$1" "$c" "$machine" "$2" "$3" \
		"; queue policy ${BENCH_QUEUE_POLICY:-lazy (scripts/stack.sh)}${BENCH_WORKERS:+; $BENCH_WORKERS webhook workers}" >> "$f"
}
machine=$(bench_machine)
