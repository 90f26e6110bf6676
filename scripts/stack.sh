#!/usr/bin/env bash
# stack.sh - a private RabbitMQ and MariaDB on loopback, all state in one directory.
#
#   scripts/stack.sh up DIR     start both (free ports), wait until ready, print the §12 URLs
#   scripts/stack.sh down DIR   stop both cleanly (SIGKILL after a grace), leave DIR
#   scripts/stack.sh env DIR    print `export HERALD_AMQP_URL=... HERALD_MYSQL_URL=...`
#                               (and HERALD_AMQPS_URL, HERALD_MYSQLS_URL, HERALD_T_CA: the TLS
#                               listener of the broker, the database's TLS URL, their CA)
#   scripts/stack.sh restart-broker DIR | restart-db DIR   stop and start one server, same ports
#   scripts/stack.sh stop-broker DIR | start-broker DIR | stop-db DIR | start-db DIR   one step
#   scripts/stack.sh ctl DIR ARGS...   rabbitmqctl ARGS on the stack's broker (e.g. add_vhost V)
#
# Nothing of the system's services is touched; two stacks in two directories run side by side.
# HERALD_STACK_BUFFER_POOL (e.g. 1G; default 128M): MariaDB's innodb-buffer-pool-size, applied
# whenever the database starts (bench/datasize.sh holds a million users in it).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
RMQ_BIN=/usr/lib/rabbitmq/bin      # not /usr/sbin: those wrappers su to the rabbitmq user
READY_TIMEOUT=${HERALD_STACK_TIMEOUT:-90}

die() { echo "stack.sh: $*" >&2; exit 1; }

# port_free - true when nothing listens on 127.0.0.1:PORT
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_ports - a random base with base..base+2 (broker, dist, epmd), base+3 (db) and base+4
# (broker TLS) all free
pick_ports() {
	local i base
	for i in $(seq 1 50); do
		base=$((20000 + (RANDOM % 2000) * 5))
		if port_free "$base" && port_free $((base + 1)) && port_free $((base + 2)) && port_free $((base + 3)) \
			&& port_free $((base + 4)); then
			echo "$base"; return 0
		fi
	done
	return 1
}

# alive - true when PID runs and is no zombie
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$st" ] && [ "${st#Z}" = "$st" ]; }

# stop_pid - SIGTERM (both servers stop cleanly on it), SIGKILL after 10 s
stop_pid() {
	local pid=$1
	alive "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 1 100); do alive "$pid" || return 0; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null
}

rmq_env() {
	local d=$1 port=$2
	export HOME=$d/rabbitmq/home
	export RABBITMQ_NODENAME=herald-$port@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$port
	export RABBITMQ_DIST_PORT=$((port + 1)) ERL_EPMD_PORT=$((port + 2)) ERL_EPMD_ADDRESS=127.0.0.1
	export RABBITMQ_MNESIA_BASE=$d/rabbitmq/mnesia RABBITMQ_LOG_BASE=$d/rabbitmq/log
	export RABBITMQ_CONFIG_FILE=$d/rabbitmq/rabbitmq RABBITMQ_ENABLED_PLUGINS_FILE=$d/rabbitmq/enabled_plugins
	export RABBITMQ_PID_FILE=$d/rabbitmq/rabbitmq.pid RABBITMQ_CONF_ENV_FILE=/dev/null
	export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
}

# tls_gen DIR - a throwaway CA and a server certificate for localhost and 127.0.0.1 in DIR/tls,
# used by both servers (so 127.1, which reaches 127.0.0.1, is a name the certificate lacks)
tls_gen() {
	local t=$1/tls
	[ -s "$t/server.pem" ] && return 0
	mkdir -p "$t" && (
	cd "$t" || exit 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
		-subj "/CN=herald test CA" -keyout ca.key -out ca.pem &&
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-subj /CN=localhost -keyout server.key -out server.csr &&
	printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' > server.ext &&
	openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 0x$RANDOM$RANDOM -days 3650 \
		-extfile server.ext -out server.pem ) > "$t/gen.log" 2>&1 || { cat "$t/gen.log" >&2; die "openssl: making the test certificates failed"; }
}

rmq_start() {
	local d=$1 port=$2 r=$1/rabbitmq
	# already running: nothing to do (starting again would orphan it)
	[ -s "$r/rabbitmq.pid" ] && kill -0 "$(cat "$r/rabbitmq.pid")" 2> /dev/null && return 0
	mkdir -p "$r/home" "$r/mnesia" "$r/log"
	tls_gen "$d"
	if [ ! -f "$r/home/.erlang.cookie" ]; then
		head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$r/home/.erlang.cookie"
		chmod 400 "$r/home/.erlang.cookie"
	fi
	# max_message_size bounds what a consumer may have to read in one blocking call (STYLE pitfalls):
	# 16 MiB, a few milliseconds on loopback, and room for the 10 MB poison message of t/faults.t
	printf 'listeners.tcp.1 = 127.0.0.1:%s\nlog.console = false\nmax_message_size = 16777216\n' \
		"$port" > "$r/rabbitmq.conf"
	printf 'listeners.ssl.1 = 127.0.0.1:%s\nssl_options.%s\nssl_options.%s\nssl_options.%s\nssl_options.verify = verify_none\n' \
		$((port + 4)) "cacertfile = $d/tls/ca.pem" "certfile = $d/tls/server.pem" "keyfile = $d/tls/server.key" \
		>> "$r/rabbitmq.conf"
	echo '[].' > "$r/enabled_plugins"
	rm -f "$r/rabbitmq.pid"
	( rmq_env "$d" "$port"; cd "$r" && exec setsid "$RMQ_BIN/rabbitmq-server" > "$r/log/stdout.log" 2>&1 < /dev/null ) &
	( rmq_env "$d" "$port"
	  local t=0
	  until [ -s "$r/rabbitmq.pid" ]; do
		sleep 0.1; t=$((t + 1)); [ $t -lt $((READY_TIMEOUT * 10)) ] || exit 1
	  done
	  "$RMQ_BIN/rabbitmqctl" -n "herald-$port@localhost" wait "$r/rabbitmq.pid" --timeout "$READY_TIMEOUT" > "$r/log/wait.log" 2>&1
	) || { tail -n 20 "$r/log/stdout.log" >&2; die "rabbitmq on 127.0.0.1:$port did not start (logs in $r/log)"; }
	# lazy queues, as README "Delivering" tells operators of RabbitMQ 3.10/3.11: the default mode's
	# paging stalls every consumer for 0.2-0.6 s under a deep backlog (BENCHMARKS.md). Once: the
	# broker keeps its policies across restarts.
	[ -f "$r/policy.done" ] && return 0
	( rmq_env "$d" "$port"
	  "$RMQ_BIN/rabbitmqctl" -n "herald-$port@localhost" set_policy herald-lazy '^herald\.' \
		'{"queue-mode":"lazy"}' --apply-to queues > "$r/log/policy.log" 2>&1
	) || { cat "$r/log/policy.log" >&2; die "rabbitmq on 127.0.0.1:$port refused the herald-lazy policy"; }
	touch "$r/policy.done"
}

rmq_stop() {
	local d=$1 port=$2 r=$1/rabbitmq
	[ -f "$r/rabbitmq.pid" ] || return 0
	stop_pid "$(cat "$r/rabbitmq.pid")"
	( rmq_env "$d" "$port"; epmd -port $((port + 2)) -kill > /dev/null 2>&1 )
	rm -f "$r/rabbitmq.pid"
}

db_start() {
	local d=$1 port=$2 m=$1/mariadb
	[ -s "$m/mariadbd.pid" ] && kill -0 "$(cat "$m/mariadbd.pid")" 2> /dev/null && return 0
	mkdir -p "$m/tmp"
	tls_gen "$d"
	# TLS offered, not required: the suite's URLs stay plain; mysqls:// (HERALD_MYSQLS_URL) uses it
	cat > "$m/my.cnf" <<CNF
[mariadbd]
datadir=$m/data
socket=$m/mysqld.sock
port=$port
bind-address=127.0.0.1
pid-file=$m/mariadbd.pid
log-error=$m/error.log
tmpdir=$m/tmp
user=root
skip-name-resolve
innodb-buffer-pool-size=${HERALD_STACK_BUFFER_POOL:-128M}
max-connections=500
ssl-ca=$d/tls/ca.pem
ssl-cert=$d/tls/server.pem
ssl-key=$d/tls/server.key
[client]
socket=$m/mysqld.sock
user=root
CNF
	local fresh=0
	if [ ! -d "$m/data/mysql" ]; then
		fresh=1
		mariadb-install-db --defaults-file="$m/my.cnf" --auth-root-authentication-method=normal \
			--skip-test-db > "$m/install.log" 2>&1 || { cat "$m/install.log" >&2; die "mariadb-install-db failed"; }
	fi
	setsid mariadbd --defaults-file="$m/my.cnf" > "$m/stdout.log" 2>&1 < /dev/null &
	echo $! > "$m/server.pid"
	local t=0
	until mariadb-admin --defaults-file="$m/my.cnf" --connect-timeout=2 ping > /dev/null 2>&1; do
		alive "$(cat "$m/server.pid")" || { tail -n 20 "$m/error.log" >&2; die "mariadbd on 127.0.0.1:$port exited"; }
		sleep 0.1; t=$((t + 1))
		[ $t -lt $((READY_TIMEOUT * 10)) ] || die "mariadbd on 127.0.0.1:$port not ready after ${READY_TIMEOUT}s"
	done
	if [ $fresh = 1 ]; then
		mariadb --defaults-file="$m/my.cnf" -e "CREATE DATABASE herald CHARACTER SET utf8mb4;
			CREATE USER 'herald'@'127.0.0.1' IDENTIFIED BY 'herald';
			CREATE USER 'herald'@'localhost' IDENTIFIED BY 'herald';
			GRANT ALL ON herald.* TO 'herald'@'127.0.0.1'; GRANT ALL ON herald.* TO 'herald'@'localhost';
			GRANT ALL ON \`herald\\_%\`.* TO 'herald'@'127.0.0.1';
			GRANT ALL ON \`herald\\_%\`.* TO 'herald'@'localhost';" \
			|| die "creating the herald database failed"
	fi
}

db_stop() {
	local m=$1/mariadb
	[ -f "$m/server.pid" ] || return 0
	stop_pid "$(cat "$m/server.pid")"
	rm -f "$m/server.pid"
}

print_env() {
	local d=$1
	# shellcheck disable=SC1091
	. "$d/ports"
	echo "export HERALD_AMQP_URL=amqp://guest:guest@127.0.0.1:$AMQP_PORT"
	echo "export HERALD_AMQPS_URL=amqps://guest:guest@localhost:$((AMQP_PORT + 4))"
	echo "export HERALD_T_CA=$d/tls/ca.pem"
	echo "export HERALD_MYSQL_URL=mysql://herald:herald@127.0.0.1:$MYSQL_PORT/herald"
	echo "export HERALD_MYSQLS_URL=mysqls://herald:herald@127.0.0.1:$MYSQL_PORT/herald"
	echo "export HERALD_STACK_DIR=$d"
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: stack.sh up|down|env|restart-broker|restart-db|ctl DIR"
mkdir -p "$dir" || die "cannot create $dir"
dir=$(cd "$dir" && pwd)

case $cmd in
up)
	[[ ${HERALD_STACK_BUFFER_POOL:-128M} =~ ^[1-9][0-9]*[KMG]?$ ]] ||
		die "HERALD_STACK_BUFFER_POOL: a size such as 512M or 1G, not '$HERALD_STACK_BUFFER_POOL'"
	"$here/deps.sh" servers || die "installing the servers failed"
	if [ -f "$dir/ports" ]; then
		# shellcheck disable=SC1091
		. "$dir/ports"
	else
		base=$(pick_ports) || die "no free ports on 127.0.0.1"
		AMQP_PORT=$base MYSQL_PORT=$((base + 3))
		printf 'AMQP_PORT=%s\nMYSQL_PORT=%s\n' "$AMQP_PORT" "$MYSQL_PORT" > "$dir/ports"
	fi
	tls_gen "$dir"     # once, before both servers (started at once) would each make it
	# both at once: the broker's ~5 s boot dominates
	rmq_start "$dir" "$AMQP_PORT" & rpid=$!
	db_start "$dir" "$MYSQL_PORT" || { wait $rpid; exit 1; }
	wait $rpid || exit 1
	print_env "$dir" | tee "$dir/env"
	;;
down)
	[ -f "$dir/ports" ] || exit 0
	# shellcheck disable=SC1091
	. "$dir/ports"
	rmq_stop "$dir" "$AMQP_PORT" & db_stop "$dir"; wait
	;;
env) print_env "$dir" ;;
ctl)
	# shellcheck disable=SC1091
	. "$dir/ports"; shift 2; rmq_env "$dir" "$AMQP_PORT"
	exec "$RMQ_BIN/rabbitmqctl" -n "herald-$AMQP_PORT@localhost" "$@" ;;
restart-broker)
	# shellcheck disable=SC1091
	. "$dir/ports"; rmq_stop "$dir" "$AMQP_PORT"; rmq_start "$dir" "$AMQP_PORT" ;;
restart-db)
	# shellcheck disable=SC1091
	. "$dir/ports"; db_stop "$dir"; db_start "$dir" "$MYSQL_PORT" ;;
stop-broker | start-broker | stop-db | start-db)
	# shellcheck disable=SC1091
	. "$dir/ports"
	case $cmd in
	stop-broker) rmq_stop "$dir" "$AMQP_PORT" ;;
	start-broker) rmq_start "$dir" "$AMQP_PORT" ;;
	stop-db) db_stop "$dir" ;;
	start-db) db_start "$dir" "$MYSQL_PORT" ;;
	esac ;;
*) die "unknown command '$cmd'" ;;
esac
