#!/usr/bin/env bash
# send.t - herald-send and libherald against the private broker: what lands in which queue
# (priority, persistence, headers, user_id, the ledger copy once), fan-out, "to", bulk with bad
# lines, client checks, exit codes, a topology conflict, a broker restart.
. "$HERALD_SRCDIR/t/lib/tap.sh"
need_stack
plan 63

send="$HERALD_BUILDDIR/herald-send"
peek="$HERALD_BUILDDIR/t/itest/qpeek"
tmp=$(mktemp -d /tmp/herald-send-t.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export HERALD_CONFIG="$tmp/none.conf"     # absent: conf_load refuses it, so write one
printf 'broker = { confirm_timeout = 10; };\n' > "$HERALD_CONFIG"

# drain - empty every herald queue of this test
drain() {
	local q
	for q in herald.email.v1 herald.sms.v1 herald.push.v1 herald.webhook.v1 herald.ledger.v1; do
		"$peek" "$HERALD_AMQP_URL" "$q" > /dev/null 2>&1
	done
}
# peekq Q - the messages of queue Q, one line each (taken off the queue)
peekq() { "$peek" "$HERALD_AMQP_URL" "$1" 2>/dev/null; }
# field LINE KEY - the value of KEY in a qpeek line
field() { printf '%s\n' "$1" | tr '\t' '\n' | sed -n "s/^$2=//p" | head -1; }

out=$("$send" --help); ok $? "--help exits 0"
like "$out" "--bulk FILE" "--help shows the usage"
"$send" --user u1 > /dev/null 2>&1; is $? 2 "usage error exits 2"

drain
out=$("$send" --user u1 --channel email,sms --subject Hi --body Hello --batch b1 \
	--idempotency-key k1 --ttl 60 --data order=A-42)
is $? 0 "flags mode: exit 0"
like "$out" '^\{"status":"received","transaction_id":"[0-9a-f-]{36}"\}$' "flags mode: received"
tx=$(printf '%s' "$out" | sed 's/.*"transaction_id":"\([^"]*\)".*/\1/')
m=$(peekq herald.email.v1)
is "$(printf '%s\n' "$m" | grep -c .)" 1 "one message in herald.email.v1"
is "$(field "$m" prio)/$(field "$m" mode)/$(field "$m" ct)" "4/2/application/json" \
	"default category priority 4, persistent, application/json"
is "$(field "$m" id)" "$tx:email" "message id is txid:channel"
is "$(field "$m" user)" "guest" "user_id property is the broker user"
is "$(field "$m" x-herald-txid)/$(field "$m" x-herald-attempt)/$(field "$m" x-herald-client)" \
	"$tx/0/guest" "headers: txid, attempt 0, client"
is "$(field "$m" x-herald-category)/$(field "$m" x-herald-batch)/$(field "$m" x-herald-idempotency-key)" \
	"notifications/b1/k1" "headers: category, batch, idempotency key"
like "$(field "$m" x-herald-expires)" '^[0-9]{16}$' "header x-herald-expires in microseconds"
like "$(field "$m" body)" '"data":\{"order":"A-42"\}' "body carries --data"
is "$(peekq herald.sms.v1 | grep -c "$tx:sms")" 1 "one message in herald.sms.v1"
l=$(peekq herald.ledger.v1)
is "$(printf '%s\n' "$l" | grep -c .)" 2 "ledger: exactly one record per message"
is "$(printf '%s\n' "$l" | tr '\t' '\n' | sed -n 's/^id=//p' | sort | tr '\n' ' ')" \
	"$tx:email:ledger $tx:sms:ledger " "ledger records name txid:channel"

# priorities
drain
"$send" --json '{"user_id":"u","channels":{"push":{"title":"t","body":"b"}},"category":"transactional"}' > /dev/null
"$send" --json '{"user_id":"u","channels":{"push":{"title":"t","body":"b"}},"category":"marketing"}' > /dev/null
"$send" --json '{"user_id":"u","channels":{"push":{"title":"t","body":"b"}},"category":"marketing","priority":"high"}' > /dev/null
"$send" --user u --channel push --subject t --body b --priority low > /dev/null
"$send" --user u --channel push --subject t --body b --priority 7 > /dev/null
is "$(peekq herald.push.v1 | while read -r x; do field "$x" prio; done | tr '\n' ' ')" \
	"8 8 7 1 1 " "priorities: transactional 8, marketing 1, high 8, low 1, 7 (queue order by priority)"

# user_ids fan-out
drain
ids=$(seq 1 1000 | sed 's/.*/"u&"/' | paste -sd, -)
out=$("$send" --json "{\"user_ids\":[$ids],\"channels\":{\"webhook\":{\"event\":\"e\"}}}")
is $? 0 "1000 user_ids: exit 0"
is "$(printf '%s' "$out" | grep -o '"u[0-9]*":"[0-9a-f-]\{36\}"' | sort -u | wc -l)" 1000 "1000 transaction ids"
m=$(peekq herald.webhook.v1)
is "$(printf '%s\n' "$m" | grep -c .)" 1000 "1000 messages in herald.webhook.v1"
is "$(printf '%s\n' "$m" | tr '\t' '\n' | sed -n 's/^x-herald-txid=//p' | sort -u | wc -l)" 1000 \
	"one distinct txid per recipient"
is "$(peekq herald.ledger.v1 | grep -c .)" 1000 "1000 ledger records"

# to
drain
out=$("$send" --json '{"to":{"email":"a@example.com"},"channels":{"email":{"subject":"s","body":"b"}}}')
is $? 0 "to: exit 0"
like "$(peekq herald.email.v1)" '"to":\{"email":"a@example.com"\}' "to: the address travels in the body"

# invalid requests
out=$("$send" --json '{"user_id":"u","channels":{"fax":{}}}')
is $? 1 "invalid request: exit 1"
like "$out" '^\{"error":true,"status":"invalid_request","message":".+","field":"channels.fax"\}$' \
	"invalid request: the JSON error names the field"

# client checks
out=$("$send" --json '{"user_id":"u","channels":{"sms":{"body":"b"}},"client_id":"shop"}')
is $? 1 "unmapped broker user may not send as another client"
like "$out" '"field":"client_id"' "the refusal names client_id"
printf 'broker = { users = { guest = ["shop", "news"]; }; };\n' > "$tmp/users.conf"
drain
out=$("$send" -c "$tmp/users.conf" --json '{"user_id":"u","channels":{"sms":{"body":"b"}},"client_id":"news"}')
is $? 0 "a mapped client is accepted"
is "$(field "$(peekq herald.sms.v1)" x-herald-client)" "news" "client header is the named client"
out=$("$send" -c "$tmp/users.conf" --json '{"user_id":"u","channels":{"sms":{"body":"b"}},"client_id":"other"}')
is $? 1 "a client outside the map is refused"
"$send" -c "$tmp/users.conf" --json '{"user_id":"u","channels":{"sms":{"body":"b"}}}' > /dev/null
is "$(field "$(peekq herald.sms.v1)" x-herald-client)" "shop" "no client_id: the first mapped client"

# bulk: 10000 lines, 50 bad ones scattered
drain
: > "$tmp/bulk.jsonl"; bad=""
for i in $(seq 1 10000); do
	if [ $((i % 200)) -eq 37 ]; then
		echo '{"user_id":"u'$i'","channels":{"email":{"subject":"s"}},"oops":1}' >> "$tmp/bulk.jsonl"
		bad="$bad$i "
	else
		echo '{"user_id":"u'$i'","channels":{"email":{"subject":"s","body":"b"}}}' >> "$tmp/bulk.jsonl"
	fi
done
"$send" --bulk "$tmp/bulk.jsonl" --idempotency-prefix camp1 > "$tmp/bulk.out" 2> "$tmp/bulk.err"
is $? 1 "bulk with bad lines: exit 1"
is "$(wc -l < "$tmp/bulk.out")" 10000 "one result per input line"
is "$(grep -c '"status":"received"' "$tmp/bulk.out")" 9950 "9950 received"
is "$(grep -o '"line":[0-9]*' "$tmp/bulk.out" | cut -d: -f2 | tr '\n' ' ')" "$bad" \
	"errors carry the right line numbers"
m=$(peekq herald.email.v1)
is "$(printf '%s\n' "$m" | grep -c .)" 9950 "9950 messages queued"
is "$(printf '%s\n' "$m" | grep -c 'x-herald-idempotency-key=camp1	')" 9950 \
	"--idempotency-prefix gives each line the key"
is "$(printf '%s\n' "$m" | tr '\t' '\n' | sed -n 's/^x-herald-txid=//p' | sort -u | wc -l)" 9950 \
	"nothing duplicated"
is "$(peekq herald.ledger.v1 | grep -c .)" 9950 "9950 ledger records"
is "$(head -c 0 "$tmp/bulk.err"; grep -c . "$tmp/bulk.err")" 0 "no progress bar when stderr is not a terminal"

if command -v script > /dev/null; then
	head -5 "$tmp/bulk.jsonl" > "$tmp/five.jsonl"
	script -qec "'$send' --bulk '$tmp/five.jsonl' > /dev/null" /dev/null > "$tmp/pty.out" 2>&1
	like "$(cat "$tmp/pty.out")" "5 done, 5 accepted, 0 rejected, 0 failed, [0-9]+/s" \
		"a progress line with the rate under a terminal"
else
	ok 0 "# SKIP script(1) not installed"
fi
drain

# the connection cut from the broker side during a bulk run: every line answered once, the
# unconfirmed messages resent with their ids (duplicates allowed, nothing lost)
rmqctl() {
	( . "$HERALD_STACK_DIR/ports"; export HOME=$HERALD_STACK_DIR/rabbitmq/home ERL_EPMD_PORT=$((AMQP_PORT + 2))
	  /usr/lib/rabbitmq/bin/rabbitmqctl -n "herald-$AMQP_PORT@localhost" "$@" )
}
drain
seq 1 30000 | sed 's/.*/{"user_id":"c&","channels":{"sms":{"body":"b"}}}/' > "$tmp/cut.jsonl"
"$send" --bulk "$tmp/cut.jsonl" > "$tmp/cut.out" 2> "$tmp/cut.err" &
pid=$!
sleep 1.5
rmqctl close_all_connections "herald send.t cut" > "$tmp/cut.ctl" 2>&1
like "$(cat "$tmp/cut.ctl")" "Closed 1 connections" "the broker closed the producer's connection"
wait $pid
is $? 0 "cut during bulk: exit 0 after reconnecting"
is "$(grep -c '"status":"received"' "$tmp/cut.out")/$(wc -l < "$tmp/cut.out")" "30000/30000" \
	"every line answered once, all received"
peekq herald.sms.v1 | tr '\t' '\n' | sed -n 's/^x-herald-txid=//p' | sort -u > "$tmp/cut.q"
grep -o '"transaction_id":"[^"]*"' "$tmp/cut.out" | cut -d'"' -f4 | sort -u > "$tmp/cut.a"
is "$(wc -l < "$tmp/cut.q")/$(comm -23 "$tmp/cut.a" "$tmp/cut.q" | wc -l)" "30000/0" \
	"every received transaction is in the queue"
drain

# a blocked broker (resource alarm) is reported after blocked_timeout, not a hang
printf 'broker = { confirm_timeout = 5; blocked_timeout = 2; };\n' > "$tmp/blocked.conf"
rmqctl set_disk_free_limit 10000GB > /dev/null 2>&1; sleep 2
start=$(date +%s)
out=$("$send" -c "$tmp/blocked.conf" --user u --channel sms --body b 2> /dev/null)
is $? 3 "blocked broker: exit 3"
like "$out" '"status":"broker_blocked"' "blocked broker: reported as such"
[ $(($(date +%s) - start)) -le 6 ]; ok $? "blocked broker: answered within the bounded wait"
rmqctl set_disk_free_limit 50MB > /dev/null 2>&1; sleep 1
"$send" --user u --channel sms --body b > /dev/null
is $? 0 "alarm cleared: sending works again"
drain

# a nack hits exactly the requests whose messages the broker refused
rmqctl set_policy t-nack '^herald\.webhook\.v1$' '{"max-length":0,"overflow":"reject-publish"}' --priority 1 \
	--apply-to queues > /dev/null 2>&1
for i in $(seq 1 300); do
	if [ $((i % 3)) -eq 0 ]; then echo '{"user_id":"w'$i'","channels":{"webhook":{"event":"e"}}}'
	else echo '{"user_id":"s'$i'","channels":{"sms":{"body":"b"}}}'; fi
done > "$tmp/nack.jsonl"
"$send" --bulk "$tmp/nack.jsonl" > "$tmp/nack.out" 2> /dev/null
is $? 3 "refused messages: exit 3"
is "$(grep -c '"status":"received"' "$tmp/nack.out")" 200 "the other requests are received"
is "$(grep -o '"status":"refused".*"line":[0-9]*' "$tmp/nack.out" | sed 's/.*"line"://' | awk '$1 % 3 == 0' | wc -l)" \
	100 "each refusal names a line of a refused request"
l=$(peekq herald.ledger.v1)
is "$(printf '%s\n' "$l" | grep -c ':sms:ledger')/$(printf '%s\n' "$l" | grep -c .)" "200/200" \
	"the ledger holds the received requests only, not the refused ones"
rmqctl clear_policy t-nack > /dev/null 2>&1
drain

# --rate paces the run
head -20 "$tmp/cut.jsonl" > "$tmp/rate.jsonl"
t0=$(date +%s%N); "$send" --bulk "$tmp/rate.jsonl" --rate 20 > /dev/null; t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
[ "$ms" -ge 900 ] && [ "$ms" -le "$(tlimit 4000)" ]; ok $? "--rate 20: 20 lines take about a second (${ms} ms)"
drain

# no broker
start=$(date +%s)
HERALD_AMQP_URL=amqp://guest:guest@127.0.0.1:1 "$send" --user u --channel sms --body b > /dev/null 2>&1
is $? 3 "no broker: exit 3"
[ $(($(date +%s) - start)) -le 5 ]; ok $? "no broker: answered at once"

# a queue with other arguments: a migration is needed
amqp-delete-queue -u "$HERALD_AMQP_URL" -q herald.push.v1 > /dev/null 2>&1
amqp-declare-queue -u "$HERALD_AMQP_URL" -q herald.push.v1 -d > /dev/null 2>&1
err=$("$send" --user u --channel sms --body b 2>&1 > /dev/null)
is $? 3 "inequivalent queue arguments: exit 3"
like "$err" "herald.push.v1.*406.*migration" "the error names the queue and the migration"
amqp-delete-queue -u "$HERALD_AMQP_URL" -q herald.push.v1 > /dev/null 2>&1

# messages survive a broker restart; the next send after it works
drain
out=$("$send" --user survivor --channel email --subject s --body b); ok $? "sent before the restart"
"$HERALD_SRCDIR/scripts/stack.sh" restart-broker "$HERALD_STACK_DIR" > /dev/null 2>&1
ok $? "broker restarted"
like "$(peekq herald.email.v1)" '"user_id":"survivor"' "the accepted message survived the restart"
"$send" --user after --channel email --subject s --body b > /dev/null
is $? 0 "a send after the restart works"
drain
done_testing
