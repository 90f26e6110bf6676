#!/usr/bin/env bash
# metrics.t - heraldd's Prometheus metrics (SPEC §9; workers/metrics.c, workers/metricsd.c)
# against the private broker and database and a local webhook receiver: the metrics child serves
# GET /metrics on metrics.listen (libmicrohttpd); every scrape is parsed strictly (text format
# 0.0.4: line syntax, HELP/TYPE before samples, counters, histogram buckets); the counters move
# by exactly what was sent (received, delivered, retried, failed, by status, latency count); the
# queue depth shows a backlog while the channel has no workers; workers alive match heraldctl
# workers; a killed metrics child comes back with the counts kept; a listen address that is not
# loopback is refused at start and at reload.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
plan 40

tmp=$(mktemp -d /tmp/herald-metrics-t.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
. "$HERALD_SRCDIR/t/lib/master.sh"
sql_init "$tmp"
cleanup() {
	[ -f "$tmp/a.pid" ] && kill -KILL "$(cat "$tmp/a.pid")" 2> /dev/null
	sleep 0.5
	[ -n "${rpid:-}" ] && kill "$rpid" 2> /dev/null
	for q in herald.webhook.v1 herald.webhook.v1.parked herald.ledger.v1; do
		amqp-delete-queue -u "$HERALD_AMQP_URL" -q "$q" > /dev/null 2>&1
	done
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "db migrate failed"

# prom.py FILE - parse an exposition strictly; print its samples as one JSON object
# {"name{l1=\"v1\",l2=\"v2\"}": value} (labels sorted), or exit 1 naming the line at fault
cat > "$tmp/prom.py" <<'PY'
import json, math, re, sys

NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*'
VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r'^(' + NAME + r')(?:\{((?:' + LABEL + r'=' + VALUE + r')(?:,' + LABEL + r'='
                    + VALUE + r')*,?)?\})? (\S+)(?: (-?\d+))?$')
PAIR = re.compile(r'(' + LABEL + r')=(' + VALUE + r')')
TYPES = ('counter', 'gauge', 'histogram', 'summary', 'untyped')

def fail(n, line, why):
    print('line %d: %s: %r' % (n, why, line))
    sys.exit(1)

def num(s):
    if s in ('+Inf', 'Inf'):
        return math.inf
    if s == '-Inf':
        return -math.inf
    if s == 'NaN':
        return math.nan
    if not re.match(r'^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$', s):
        raise ValueError(s)
    return float(s)

text = open(sys.argv[1], encoding='utf-8').read()
if not text.endswith('\n'):
    fail(0, text[-40:], 'no final newline')
types, helps, done, out, hist = {}, set(), set(), {}, {}
current = None
for n, line in enumerate(text.split('\n')[:-1], 1):
    if line.startswith('#'):
        m = re.match(r'^# (HELP|TYPE) (' + NAME + r') (.*)$', line)
        if not m:
            if line.startswith('# HELP') or line.startswith('# TYPE'):
                fail(n, line, 'bad HELP/TYPE line')
            continue
        kind, name, rest = m.groups()
        if not name.startswith('herald_'):
            fail(n, line, 'family without the herald_ prefix')
        if name in done:
            fail(n, line, 'family seen before (not contiguous)')
        if current is not None and current != name:
            done.add(current)
        current = name
        if kind == 'HELP':
            if name in helps or rest == '':
                fail(n, line, 'second or empty HELP')
            helps.add(name)
        else:
            if name in types or rest not in TYPES:
                fail(n, line, 'second TYPE or unknown type')
            if any(k.split('{')[0] in (name, name + '_bucket', name + '_sum', name + '_count')
                   for k in out):
                fail(n, line, 'TYPE after samples of its family')
            if rest == 'counter' and not name.endswith('_total'):
                fail(n, line, 'counter without _total')
            types[name] = rest
        continue
    if line == '':
        fail(n, line, 'empty line')
    m = SAMPLE.match(line)
    if not m:
        fail(n, line, 'bad sample syntax')
    name, labels, value, _ = m.groups()
    family = name
    if name not in types:
        for suf in ('_bucket', '_sum', '_count'):
            if name.endswith(suf) and types.get(name[:-len(suf)]) == 'histogram':
                family = name[:-len(suf)]
    if family not in types:
        fail(n, line, 'sample before (or without) its TYPE')
    if family != current:
        fail(n, line, 'sample outside its family block')
    pairs = PAIR.findall(labels or '')
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        fail(n, line, 'repeated label')
    try:
        v = num(value)
    except ValueError:
        fail(n, line, 'bad value')
    if types[family] == 'counter' and not v >= 0:
        fail(n, line, 'negative counter')
    key = name + ('{' + ','.join('%s=%s' % p for p in sorted(pairs)) + '}' if pairs else '')
    if key in out:
        fail(n, line, 'duplicate series')
    out[key] = v
    if types[family] == 'histogram':
        rest = tuple(sorted(p for p in pairs if p[0] != 'le'))
        h = hist.setdefault((family, rest), {'b': [], 'sum': None, 'count': None, 'line': n})
        if name.endswith('_bucket'):
            le = [v2 for k2, v2 in pairs if k2 == 'le']
            if len(le) != 1:
                fail(n, line, 'bucket without le')
            h['b'].append((num(le[0][1:-1]), v))
        elif name.endswith('_sum'):
            h['sum'] = v
        else:
            h['count'] = v
for (family, rest), h in hist.items():
    b = h['b']
    where = '%s%s' % (family, dict(rest))
    if not b or b[-1][0] != math.inf:
        fail(h['line'], where, 'no +Inf bucket last')
    if any(b[i][0] >= b[i + 1][0] for i in range(len(b) - 1)):
        fail(h['line'], where, 'le not increasing')
    if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
        fail(h['line'], where, 'bucket counts not monotonic')
    if h['count'] is None or h['sum'] is None or h['count'] != b[-1][1]:
        fail(h['line'], where, '+Inf bucket differs from _count (or no _sum/_count)')
print(json.dumps(out))
PY

port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
murl="http://127.0.0.1:$port/metrics"
# scrape - GET /metrics, parse it strictly into $tmp/m.json; non-zero (the parser's complaint in
# $tmp/m.err) when the answer is not a valid exposition
scrape() {
	curl -s -f -m 5 -D "$tmp/m.hdr" -o "$tmp/m.txt" "$murl" || { echo "curl failed" > "$tmp/m.err"; return 1; }
	/usr/bin/python3 "$tmp/prom.py" "$tmp/m.txt" > "$tmp/m.json" 2> "$tmp/m.err" ||
		{ cat "$tmp/m.json" >> "$tmp/m.err"; return 1; }
}
# m SERIES - its value in the last scrape, as an integer when it is one ("" when absent)
m() { jq -r --arg k "$1" '.[$k] // empty | if . == floor then floor else . end' "$tmp/m.json"; }
# mwait SERIES VALUE [SECS] - scrape until SERIES has VALUE
mwait() {
	local i
	for ((i = 0; i < ${3:-20} * 5; i++)); do
		scrape && [ "$(m "$1")" = "$2" ] && return 0
		sleep 0.2
	done
	return 1
}
W='{channel="webhook"}'

wk_receiver

p=met$$
rows=""
for i in $(seq 0 19); do rows="$rows,('${p}_ok$i', '$hook/ok?u=$i', 'UTC')"; done
for i in $(seq 0 4); do rows="$rows,('${p}_re$i', '$hook/seq/${p}re$i/503,200', 'UTC')"; done
for i in $(seq 0 2); do rows="$rows,('${p}_no$i', '$hook/fail400?u=$i', 'UTC')"; done
for i in $(seq 0 9); do rows="$rows,('${p}_bk$i', '$hook/ok?bk=$i', 'UTC')"; done
sql "INSERT INTO users (user_id, webhook_url, timezone) VALUES ${rows#,}" || bail "cannot insert users"
# send BATCH USER... - one webhook notification per user, in one bulk run
send() {
	local b=$1 u
	shift
	for u in "$@"; do
		printf '{"user_id":"%s","channels":{"webhook":{"event":"m"}},"batch_id":"%s"}\n' "$u" "$b"
	done > "$tmp/$b.jsonl"
	"$send" --bulk "$tmp/$b.jsonl" > "$tmp/$b.out"
}

# --- serving: the exposition, workers alive ----------------------------------------------------
MCONF_METRICS="127.0.0.1:$port" mconf a 2 'retry = { tiers = [ 1, 2 ]; };'
mstart a; ok $? "heraldd starts with metrics.listen = 127.0.0.1:$port"
ok "$(mwait "herald_workers$(printf '{kind="%s"}' metrics)" 1; echo $?)" \
	"the metrics child runs and answers GET /metrics"
grep -q "event=metrics_listening listen=127.0.0.1:$port" "$tmp/a.log"
ok $? "heraldd logs where the metrics are served"
like "$(tr -d '\r' < "$tmp/m.hdr" | grep -i '^content-type:')" 'text/plain; version=0\.0\.4' \
	"Content-Type: text/plain; version=0.0.4"
scrape; ok $? "the exposition parses strictly: $(cat "$tmp/m.err" 2> /dev/null)"
is "$(grep -c '^# TYPE' "$tmp/m.txt")/$(grep -c '^# HELP' "$tmp/m.txt")" "12/12" \
	"12 families, each with HELP and TYPE"
is "$(grep '^# TYPE' "$tmp/m.txt" | awk '{print $3 "=" $4}' | grep -E 'received|delivered|failed_|retried|status_total|queue_depth|delivery_seconds' | tr '\n' ' ')" \
	"herald_received_total=counter herald_delivered_total=counter herald_failed_total=counter herald_retried_total=counter herald_status_total=counter herald_queue_depth=gauge herald_delivery_seconds=histogram " \
	"the §9 families and their types"
wait_running a 2 > /dev/null
scrape
k='{kind="%s"}'
is "$(for x in webhook ledger outbox scheduler metrics email; do m "herald_workers$(printf "$k" $x)"; done | tr '\n' ' ')" \
	"2 1 1 1 1 0 " "workers alive: 2 webhook, one ledger, outbox, scheduler, metrics; no email"
is "$(m "herald_workers$(printf "$k" webhook)")/$(m "herald_workers_target$W")" \
	"$(wjson a '"\(.channels.webhook.running)/\(.channels.webhook.workers)"')" \
	"webhook workers alive and target match heraldctl workers"
ok "$(mwait "herald_queue_depth$W" 0; echo $?)" "queue depth from the broker: webhook 0"
is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")/$(curl -s -o /dev/null -w '%{http_code}' -X POST "$murl")" \
	"404/405" "another path: 404; POST: 405"

# --- counters move by what was sent --------------------------------------------------------------
scrape
declare -A before
for s in "herald_received_total$W" "herald_delivered_total$W" "herald_retried_total$W" \
	"herald_failed_total$W" 'herald_status_total{channel="webhook",status="ready"}' \
	'herald_status_total{channel="webhook",status="done"}' "herald_delivery_seconds_count$W"; do
	before[$s]=$(m "$s")
done
# delta SERIES - its change since the scrape before the traffic
delta() { echo $(($(m "$1") - ${before[$1]})); }
users=()
for i in $(seq 0 19); do users+=("${p}_ok$i"); done
for i in $(seq 0 4); do users+=("${p}_re$i"); done
for i in $(seq 0 2); do users+=("${p}_no$i"); done
send c$p "${users[@]}"
is $? 0 "28 notifications accepted: 20 to /ok, 5 to 503-then-200, 3 to 400"
wait_final "c$p" 28 60
is "$(sql "SELECT CONCAT(status, '=', COUNT(*)) FROM notifications WHERE batch_id = 'c$p' GROUP BY status ORDER BY status")" \
	"$(printf 'done=25\nfailed=3')" "the database: 25 done, 3 failed"
mwait "herald_delivered_total$W" $((before["herald_delivered_total$W"] + 25)) 10
is "$(delta "herald_received_total$W")" 33 "received +33 (the 5 retried ones came back)"
is "$(delta "herald_delivered_total$W")" 25 "delivered +25"
is "$(delta "herald_retried_total$W")" 5 "retried +5"
is "$(delta "herald_failed_total$W")" 3 "failed +3"
is "$(delta 'herald_status_total{channel="webhook",status="ready"}')/$(delta 'herald_status_total{channel="webhook",status="done"}')" \
	"33/25" "by status: ready +33, done +25"
is "$(delta "herald_delivery_seconds_count$W")" 33 "latency histogram: one observation per provider call (33)"
ok "$(jq -r --arg k "herald_delivery_seconds_sum$W" '.[$k] > 0' "$tmp/m.json" | grep -qx true; echo $?)" \
	"latency sum above 0"
is "$(m 'herald_received_total{channel="email"}')/$(m 'herald_delivered_total{channel="sms"}')" "0/0" \
	"other channels stay at 0"

# --- a backlog while the channel has no workers -------------------------------------------------
"$ctl" workers --socket "$tmp/a.sock" webhook 0 > /dev/null
ok "$(mwait "herald_workers$(printf "$k" webhook)" 0; echo $?)" "workers webhook 0: webhook workers alive 0"
is "$(m "herald_workers_target$W")" 0 "and the target 0"
users=()
for i in $(seq 0 39); do users+=("${p}_bk$((i % 10))"); done
send b$p "${users[@]}"
ok "$(mwait "herald_queue_depth$W" 40 15; echo $?)" "40 sent: queue depth 40 (got $(m "herald_queue_depth$W"))"
d0=$(m "herald_delivered_total$W")
"$ctl" workers --socket "$tmp/a.sock" webhook 2 > /dev/null
ok "$(mwait "herald_delivered_total$W" $((d0 + 40)) 30; echo $?)" "workers back: delivered +40"
ok "$(mwait "herald_queue_depth$W" 0 15; echo $?)" "and queue depth back to 0"
is "$(m "herald_workers$(printf "$k" webhook)")" 2 "webhook workers alive 2 again"
scrape; ok $? "still a strict exposition after traffic: $(cat "$tmp/m.err" 2> /dev/null)"
# the parser itself: each of these broken copies of that scrape is refused
broken=""
for edit in '/^# TYPE herald_received_total /d' \
	's/^\(herald_delivery_seconds_bucket{channel="webhook",le="0.005"}\) .*/\1 999999/' \
	's/^\(herald_delivery_seconds_count{channel="webhook"}\) \(.*\)/\1 1\2/' \
	's/^herald_workers{kind="ledger"} /herald_workers{kind="ledger} /' \
	'/^# TYPE herald_status_total /{h;d};/^herald_status_total{channel="email",status="queued"}/G'; do
	sed "$edit" "$tmp/m.txt" > "$tmp/bad.txt"
	cmp -s "$tmp/m.txt" "$tmp/bad.txt" && broken="${broken}unchanged " && continue
	/usr/bin/python3 "$tmp/prom.py" "$tmp/bad.txt" > /dev/null 2>&1 && broken="${broken}accepted " || broken="${broken}refused "
done
is "$broken" "refused refused refused refused refused " \
	"the parser refuses: no TYPE, buckets not monotonic, +Inf != count, a bad label, TYPE after samples"

# --- the metrics child is supervised; the counts live in the master's shared memory -------------
mpid=$(sed -n 's/.*event=child_started kind=metrics pid=\([0-9]*\).*/\1/p' "$tmp/a.log" | tail -1)
r0=$(m "herald_received_total$W")
kill -KILL "$mpid"
for _ in $(seq 50); do
	[ "$(sed -n 's/.*event=child_started kind=metrics pid=\([0-9]*\).*/\1/p' "$tmp/a.log" | tail -1)" != "$mpid" ] && break
	sleep 0.1
done
ok "$(mwait "herald_received_total$W" "$r0" 10; echo $?)" \
	"a killed metrics child is started again and serves the same counts ($r0)"

# --- a listen address that is not loopback ------------------------------------------------------
for bad in 0.0.0.0 192.0.2.1 '[::]'; do
	MCONF_METRICS="$bad:$port" mconf bad 1
	timeout 10 "$heraldd" -c "$tmp/bad.conf" > "$tmp/bad.log" 2>&1
	rc=$?
	is "$rc/$(grep -cF "metrics.listen: $bad is not a loopback address" "$tmp/bad.log")" "78/1" \
		"metrics.listen = $bad:$port: refused at start (EX_CONFIG), the message names key and address"
done
cp "$tmp/a.conf" "$tmp/a.good"
sed -i "s/listen = \"127.0.0.1:$port\"/listen = \"0.0.0.0:$port\"/" "$tmp/a.conf"
kill -HUP "$(cat "$tmp/a.pid")"
for _ in $(seq 50); do grep -q 'event=reload_refused' "$tmp/a.log" && break; sleep 0.1; done
like "$(grep 'event=reload_refused' "$tmp/a.log")" "metrics.listen: 0.0.0.0 is not a loopback" \
	"SIGHUP with a non-loopback address: refused"
scrape; ok $? "and the metrics are still served on loopback"
! ss -Hltn "( sport = :$port )" | awk '{print $4}' | grep -qv "^127\.0\.0\.1:"
ok $? "the metrics port listens on 127.0.0.1 only"
# a valid reload: the new generation's metrics child takes the port over, the counts stay
r0=$(m "herald_received_total$W")
cp "$tmp/a.good" "$tmp/a.conf"
kill -HUP "$(cat "$tmp/a.pid")"
for _ in $(seq 100); do grep -q 'event=child_started kind=metrics pid=[0-9]* generation=2' "$tmp/a.log" && break; sleep 0.1; done
for _ in $(seq 100); do [ "$(grep -c 'event=metrics_listening' "$tmp/a.log")" -ge 3 ] && break; sleep 0.1; done
scrape
is "$(grep -c 'event=metrics_listening' "$tmp/a.log")/$(grep -c 'event=metrics_listen_failed' "$tmp/a.log")/$(m "herald_received_total$W")" \
	"3/0/$r0" "a valid SIGHUP: the new metrics child serves on the same port, the counts stay"

mstop a
is $? 0 "heraldd stops (exit 0)"
curl -s -m 2 -o /dev/null "$murl"
rc=$?
[ "$rc" -ne 0 ]; ok $? "and the metrics port is closed"
grep -q 'AddressSanitizer\|runtime error\|LeakSanitizer' "$tmp"/*.log
is $? 1 "no sanitizer report in any heraldd log"
