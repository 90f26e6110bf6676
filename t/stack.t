#!/usr/bin/env bash
# stack.t - the private stack: both servers answer on loopback, and a second stack started
# beside it is isolated from it and stops cleanly.
. "$HERALD_SRCDIR/t/lib/tap.sh"
need_stack
plan 9

# amqp_url_port / mysql_url_port - the port of a §12 URL
port_of() { local u=${1##*@}; u=${u%%/*}; echo "${u##*:}"; }
a_port=$(port_of "$HERALD_AMQP_URL"); m_port=$(port_of "$HERALD_MYSQL_URL")

amqp-declare-queue -u "$HERALD_AMQP_URL" -q herald.t.stack -d > /dev/null 2>&1
ok $? "broker answers on 127.0.0.1:$a_port"
mariadb -h127.0.0.1 -P"$m_port" -uherald -pherald herald -e 'CREATE TABLE IF NOT EXISTS t_stack (a INT)' 2>&1
ok $? "database answers on 127.0.0.1:$m_port as herald"
listen=$(ss -Hltn "( sport = :$a_port or sport = :$m_port )" | awk '{print $4}' | sort -u | tr '\n' ' ')
like "$listen" "^127\.0\.0\.1:[0-9]+ 127\.0\.0\.1:[0-9]+ $" "both listen on loopback only"

two=$(mktemp -d /tmp/herald-stack2.XXXXXX)
trap '"$HERALD_SRCDIR/scripts/stack.sh" down "$two" >/dev/null 2>&1; rm -rf "$two"' EXIT
out=$("$HERALD_SRCDIR/scripts/stack.sh" up "$two" 2>&1)
ok $? "a second stack starts beside the first"
like "$out" "HERALD_AMQP_URL=amqp://guest:guest@127\.0\.0\.1:[0-9]+" "it prints the broker URL"
eval "$("$HERALD_SRCDIR/scripts/stack.sh" env "$two")"
a2=$(port_of "$HERALD_AMQP_URL"); m2=$(port_of "$HERALD_MYSQL_URL")
[ "$a2" != "$a_port" ] && [ "$m2" != "$m_port" ]
ok $? "on other ports"
mariadb -h127.0.0.1 -P"$m2" -uherald -pherald herald -N -e "SHOW TABLES LIKE 't_stack'" > "$two/t" 2>&1
is "$(cat "$two/t")" "" "a table of the first database is not in the second"
like "$(amqp-get -u "$HERALD_AMQP_URL" -q herald.t.stack 2>&1)" "NOT_FOUND" \
	"a queue of the first broker is not in the second"
pids="$(cat "$two/rabbitmq/rabbitmq.pid" 2>/dev/null) $(cat "$two/mariadb/server.pid" 2>/dev/null)"   # no newline in the first
"$HERALD_SRCDIR/scripts/stack.sh" down "$two" > /dev/null 2>&1
running=""
for p in $pids; do st=$(ps -o stat= -p "$p" 2>/dev/null); [ -z "$st" ] || [ "${st#Z}" != "$st" ] || running="$running $p"; done
( exec 3<>"/dev/tcp/127.0.0.1/$a2" ) 2>/dev/null || ( exec 3<>"/dev/tcp/127.0.0.1/$m2" ) 2>/dev/null
[ $? -ne 0 ] && [ "$(echo $pids | wc -w)" = 2 ] && [ -z "$running" ]
ok $? "the second stack stops its two servers and frees its ports"
done_testing
