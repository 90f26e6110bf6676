#!/usr/bin/env bash
# ctl_format.t - heraldctl --format json|table: every command that prints rows (status [--trail],
# history, user show, prefs get, caps get, suppress list, parked list, workers, purge) prints the
# same values as a table as in its JSON. A checker reads each table by its header's column
# positions (display width: East Asian wide characters count 2, combining marks 0), so a
# misaligned column or a changed value fails; names with wide and combining characters sit in
# columns that have more columns after them. Bad --format values and --help texts too.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
need_ctl
plan 26

tmp=$(mktemp -d /tmp/herald-ctl-format.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
sql_init "$tmp"
p=ctlf$$
cleanup() {
	[ -n "${spid:-}" ] && kill "$spid" 2> /dev/null
	sql "DELETE FROM users WHERE user_id LIKE '$p%'; DELETE FROM suppressions WHERE address LIKE '%$p%';
		DELETE FROM notifications WHERE user_id LIKE '$p%'" 2> /dev/null
	"$ctl" parked drop webhook > /dev/null 2>&1
	amqp-delete-queue -u "$HERALD_AMQP_URL" -q herald.webhook.v1 > /dev/null 2>&1
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "db migrate failed"

cat > "$tmp/tcheck.py" <<'PY'
"""tcheck.py MODE [KEYCOL] JSON TABLE - "ok" when TABLE shows JSON's values, else what differs.
MODE rows: JSON is JSON Lines (or one array) of objects, one row each, headers the keys upper-cased
in order of appearance; kv KEYCOL[:VALCOL]: an object, KEYCOL and VALUE (VALCOL) per member; keyed KEYCOL: an
object of objects (members that are not objects left out), KEYCOL and the inner keys per member.
Cells: strings as they are, null "-", anything else compact JSON; "" for a key a row lacks."""
import json, sys, unicodedata

def width(ch):
    o = ord(ch)
    if unicodedata.combining(ch) or 0x200b <= o <= 0x200f or o == 0xfeff or 0xfe00 <= o <= 0xfe0f:
        return 0
    return 2 if unicodedata.east_asian_width(ch) in "WF" else 1

def cell(v):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)

def parse(lines):
    hdr = lines[0]
    starts = [i for i, c in enumerate(hdr) if c != " " and (i == 0 or hdr[i - 1] == " ")]
    names = hdr.split()
    rows = []
    for line in lines[1:]:
        chars, pos = [], 0
        for ch in line:
            chars.append((pos, ch))
            pos += width(ch)
        row = []
        for k, st in enumerate(starts):
            end = starts[k + 1] if k + 1 < len(starts) else 1 << 30
            text = "".join(ch for p, ch in chars if st <= p < end)
            if k + 1 < len(starts) and text and not text.endswith(" "):
                sys.exit("not aligned: %r" % line)
            row.append(text.rstrip(" "))
        rows.append(row)
    return names, rows

mode = sys.argv[1]
keycol = sys.argv[2] if mode != "rows" else None
valcol = "value"
if keycol is not None and ":" in keycol:
    keycol, valcol = keycol.split(":", 1)
jtext = open(sys.argv[-2], encoding="utf-8").read()
lines = open(sys.argv[-1], encoding="utf-8").read().split("\n")
if lines and lines[-1] == "":
    lines.pop()
if mode == "rows":
    jtext = jtext.strip()
    objs = json.loads(jtext) if jtext.startswith("[") else [json.loads(l) for l in jtext.split("\n") if l]
elif mode == "kv":
    objs = [{keycol: k, valcol: v} for k, v in json.loads(jtext).items()]
else:
    objs = [dict([(keycol, k)] + list(v.items())) for k, v in json.loads(jtext).items() if isinstance(v, dict)]
keys = []
for o in objs:
    for k in o:
        if k not in keys:
            keys.append(k)
want_rows = [[cell(o[k]) if k in o else "" for k in keys] for o in objs]
if not objs:
    print("ok" if not lines else "a table for no rows: %r" % lines)
    sys.exit(0)
names, rows = parse(lines)
if names != [k.upper() for k in keys]:
    sys.exit("headers %s, want %s" % (names, [k.upper() for k in keys]))
if rows != want_rows:
    for g, w in zip(rows + [None] * len(want_rows), want_rows + [None] * len(rows)):
        if g != w:
            sys.exit("row %s, want %s" % (g, w))
print("ok")
PY
# tcheck MODE [KEYCOL] - compare $tmp/j (JSON) and $tmp/t (table)
tcheck() { /usr/bin/python3 "$tmp/tcheck.py" "$@" "$tmp/j" "$tmp/t" 2>&1; }
# both NAME ARGS... - heraldctl ARGS into $tmp/j, then ARGS --format table into $tmp/t; "rc/rc"
both() {
	"$ctl" "$@" > "$tmp/j" 2> "$tmp/err"
	local a=$?
	"$ctl" "$@" --format table > "$tmp/t" 2>> "$tmp/err"
	echo "$a/$?"
}

# --- users, preferences, caps, suppressions --------------------------------------------------
"$ctl" user add --json "{\"user_id\":\"${p}_1\",\"first_name\":\"Zoë 日本語\",\"last_name\":\"Cafe\u0301\",\"email\":\"z$p@example.org\",\"phone\":\"+441632960961\",\"locale\":\"ja\",\"devices\":[{\"platform\":\"ios\",\"token\":\"tok$p\"}],\"preferences\":{\"email\":true,\"marketing\":false,\"marketing.push\":true},\"quiet_hours\":\"22:00-07:00\"}" > /dev/null \
	|| bail "user add failed"
is "$(both user show "${p}_1")" 0/0 "user show: 0 both ways"
is "$(tcheck kv field)" ok "user show --format table: FIELD VALUE rows, the JSON's values"
is "$(head -1 "$tmp/t")" "FIELD        VALUE" "the header: FIELD VALUE, aligned"
is "$(both prefs get "${p}_1")" 0/0 "prefs get: 0 both ways"
is "$(tcheck kv key)" ok "prefs get --format table: KEY VALUE rows"
is "$(both caps get)" 0/0 "caps get: 0 both ways"
is "$(tcheck keyed channel)" ok "caps get --format table: one row per channel"
is "$(both caps get --client "${p}shop")" 0/0 "caps get --client: 0 both ways"
is "$(tcheck keyed channel)/$(head -1 "$tmp/t" | tr -s ' ')" "ok/CHANNEL CAP SOURCE SCOPE QUOTA QUOTA_SOURCE" \
	"caps get --client --format table: quotas as columns"
"$ctl" suppress add "a$p@example.org" --detail "日本語 bounce" > /dev/null &&
	"$ctl" suppress add "b$p@example.org" --detail "x" > /dev/null &&
	"$ctl" suppress add "+4416329$((RANDOM % 900 + 100))1" --detail "$p" > /dev/null || bail "suppress add failed"
is "$(both suppress list --channel email)" 0/0 "suppress list: 0 both ways"
is "$(tcheck rows)/$(grep -c "$p" "$tmp/t")" ok/2 "suppress list --format table: a wide DETAIL column stays aligned"

# --- status, history -----------------------------------------------------------------------
tx=$(printf 'c71bf000-0000-4000-8000-%012d' $$)
sql "INSERT INTO notifications (transaction_id, channel, status, user_id, client_id, category, priority,
	batch_id, metadata, attempt, created_at) VALUES
	('$tx', 'email', 'done', '${p}_1', 'shop', 'reminders', 5, 'b$p', '{\"order\":\"日本\",\"n\":1}', 1, NOW(6) - INTERVAL 2 MINUTE),
	('$tx', 'sms', 'failed', '${p}_1', 'shop', 'reminders', 5, 'b$p', NULL, 3, NOW(6) - INTERVAL 2 MINUTE);
	INSERT INTO notifications (transaction_id, channel, status, user_id, client_id, category, priority, created_at)
	VALUES ('$(printf 'c71bf000-0000-4000-8001-%012d' $$)', 'webhook', 'queued', '${p}_1', 'shop', 'notifications', 0, NOW(6));
	INSERT INTO notification_audit (notification_id, old_status, new_status, host, worker, attempt, detail)
	SELECT id, NULL, 'queued', 'h1', 'ledger', 0, NULL FROM notifications WHERE transaction_id = '$tx';
	INSERT INTO notification_audit (notification_id, old_status, new_status, host, worker, attempt, detail)
	SELECT id, 'queued', status, 'h1', 'webhook/1', attempt, '{\"error\":\"550 no such user\"}' FROM notifications WHERE transaction_id = '$tx'" \
	|| bail "cannot insert notifications"
is "$(both status "$tx")" 0/0 "status: 0 both ways"
is "$(tcheck kv channel:status)/$(grep -c '^push  *-$' "$tmp/t")" ok/1 \
	"status --format table: CHANNEL STATUS rows, the JSON's statuses (null: -)"
is "$(both status "$tx" --trail)" 0/0 "status --trail: 0 both ways"
# the first table as before, then an empty line and the trail: one row per audit row
awk 'NF == 0 { exit } { print }' "$tmp/t" > "$tmp/t1"
awk 'f { print } NF == 0 { f = 1 }' "$tmp/t" > "$tmp/t2"
jq -c '[.trail | to_entries[] | .key as $c | .value[] | {channel: $c} + .]' "$tmp/j" > "$tmp/j2"
cp "$tmp/t2" "$tmp/t"
cp "$tmp/j2" "$tmp/j"
is "$(tcheck rows)/$(wc -l < "$tmp/t2")" ok/5 "status --trail --format table: the audit rows as a second table"
is "$(head -1 "$tmp/t2" | tr -s ' ')" "CHANNEL OLD_STATUS NEW_STATUS CHANGED_AT HOST WORKER ATTEMPT DETAIL" \
	"its columns"
is "$(both history "${p}_1")" 0/0 "history: 0 both ways"
is "$(tcheck rows)/$(($(wc -l < "$tmp/t") - 1))/$(wc -l < "$tmp/j")" ok/3/3 \
	"history --format table: one row per JSON line, metadata as compact JSON"

# --- workers: a stand-in control socket answering what heraldd answers ---------------------------
cat > "$tmp/ctl.py" <<'PY'
import os, socket, sys
path, answer = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
s.bind(path + ".tmp")
os.rename(path + ".tmp", path)
s.listen(4)
while True:
    c, _ = s.accept()
    c.recv(256)
    c.sendall(answer.encode() + b"\n")
    c.close()
PY
wanswer='{"pid":4242,"generation":3,"ledger":{"running":1,"draining":0},"outbox":{"running":1,"draining":0},"channels":{"email":{"workers":2,"running":2,"draining":0,"state":"running"},"sms":{"workers":0,"running":0,"draining":0,"state":"off"},"push":{"workers":1,"running":0,"draining":0,"state":"no_provider","reason":"no usable provider"},"webhook":{"workers":3,"running":2,"draining":1,"state":"running"}}}'
/usr/bin/python3 "$tmp/ctl.py" "$tmp/w.sock" "$wanswer" &
spid=$!
for _ in $(seq 50); do [ -S "$tmp/w.sock" ] && break; sleep 0.1; done
is "$(both workers --socket "$tmp/w.sock")" 0/0 "workers: 0 both ways"
is "$(head -2 "$tmp/t" | paste -sd'|')" "heraldd pid 4242, generation 3|" "workers --format table: pid and generation first"
tail -n +3 "$tmp/t" > "$tmp/t2"
cp "$tmp/t2" "$tmp/t"
jq -c '[(.channels | to_entries[] | {name: .key} + .value), (.ledger | {name: "ledger"} + .), (.outbox | {name: "outbox"} + .)]' "$tmp/j" > "$tmp/j2"
cp "$tmp/j2" "$tmp/j"
is "$(tcheck rows)" ok "then one row per channel, the ledger and the outbox worker"
kill "$spid" 2> /dev/null
wait "$spid" 2> /dev/null
spid=""

# --- parked list ----------------------------------------------------------------------------
# herald-send declares the queues (no worker runs: the message waits in herald.webhook.v1)
printf '{"user_id":"%s_1","channels":{"webhook":{"event":"e"}}}\n' "$p" > "$tmp/one.jsonl"
"$HERALD_BUILDDIR/herald-send" --bulk "$tmp/one.jsonl" > /dev/null 2>&1 || bail "herald-send failed"
"$ctl" parked drop webhook > /dev/null 2>&1
for i in 1 2; do
	amqp-publish -u "$HERALD_AMQP_URL" -e "" -r herald.webhook.v1.parked -p -b "{\"v\":1,\"poison\":\"$p$i\"}" \
		-H "x-herald-txid: $(printf 'c71bf000-0000-4000-8002-%012d' $i)" -H "x-herald-parked-reason: 日本 reason $i" \
		-H "x-herald-attempt: $i" || bail "cannot publish to the parking queue"
done
is "$(both parked list webhook)" 0/0 "parked list: 0 both ways"
is "$(tcheck rows)/$(wc -l < "$tmp/j")" ok/2 "parked list --format table: one row per parked message"
run_rc() { "$ctl" "$@" > /dev/null 2>&1; echo $?; }
is "$(run_rc parked drop webhook --format table)" 64 "--format on parked drop: usage error"

# --- bad values, help texts -------------------------------------------------------------------
bad=""
for c in "status $tx" "history ${p}_1" "user show ${p}_1" "prefs get ${p}_1" "caps get" \
	"suppress list" "workers --socket $tmp/none.sock" "parked list webhook" "purge --dry-run"; do
	# shellcheck disable=SC2086
	r=$("$ctl" $c --format yaml 2>&1 > /dev/null; echo "rc=$?")
	case $r in *"--format 'yaml': json or table"*rc=64) ;; *) bad="$bad [$c: $r]" ;; esac
done
is "$bad" "" "--format yaml: EX_USAGE naming the value, for every command"
bad=""
for c in status history "user show" "prefs get" "caps get" "suppress list" workers "parked list" purge; do
	# shellcheck disable=SC2086
	"$ctl" $c --help | grep -q -- '--format json|table' || bad="$bad [$c]"
done
is "$bad" "" "every --help mentions --format json|table"
