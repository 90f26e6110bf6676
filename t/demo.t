#!/usr/bin/env bash
# demo.t - the README's first command, ./demo, end to end with its state in a scratch directory
# (HERALD_DEMO_DIR; its own stack on free ports, beside the runner's) and the tested build
# (HERALD_DEMO_BUILDDIR): it exits 0; its table of statuses per channel matches the database and
# the outcome the sample batch is built for; the SMTP sink got one message per email `done`;
# hedy's email went through a retry; every webhook was signed; heraldd, the peers and the stack
# keep running until the printed `./demo stop`, which leaves nothing behind. A second run starts
# afresh over the first, still running one (on a terminal: the progress bar); a failing run says
# where and stops what it started.
. "$HERALD_SRCDIR/t/lib/tap.sh"
plan 38

tmp=$(mktemp -d /tmp/herald-demo-t.XXXXXX)
d=$tmp/demo
demo=$HERALD_SRCDIR/demo
export HERALD_DEMO_DIR=$d HERALD_DEMO_BUILDDIR=$HERALD_BUILDDIR
unset HERALD_CONFIG
cleanup() {
	"$demo" stop > /dev/null 2>&1
	HERALD_DEMO_DIR=$tmp/fail "$demo" stop > /dev/null 2>&1
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT

# sql QUERY - on the demo's database
sql() { mariadb --defaults-file="$d/stack/mariadb/my.cnf" herald -N -B -e "$1"; }
# running - the processes whose command line names the scratch directory, one "PID ARGS" a line
running() { ps -eo pid=,args= | grep -F "$tmp/" | grep -v grep || true; }
# pids_alive [DIR] - how many of the demo's pid files (in DIR, default $d) name a live process
pids_alive() {
	local n=0 f st dir=${1:-$d}
	for f in "$dir"/run/*.pid "$dir"/stack/rabbitmq/rabbitmq.pid "$dir"/stack/mariadb/mariadbd.pid; do
		[ -s "$f" ] || continue
		st=$(ps -o stat= -p "$(cat "$f")" 2> /dev/null) && [ "${st#Z}" = "$st" ] && n=$((n + 1))
	done
	echo $n
}
# table_counts FILE - the per-channel table as "channel status count" lines (no zero counts)
table_counts() {
	awk -F '|' '/^\|/ { for (i = 2; i < NF; i++) { gsub(/ /, "", $i); c[i] = $i }
		if (c[2] == "channel") { for (i = 3; i < NF; i++) h[i] = c[i]; next }
		for (i = 3; i < NF; i++) if (c[i] != "0") print c[2], h[i], c[i] }' "$1" | sort
}

# --- the first run -------------------------------------------------------------------------------
t0=$(date +%s)
out1=$(timeout 300 "$demo" 2> "$tmp/err1")   # kept in memory
rc=$?
secs=$(($(date +%s) - t0))
is "$rc" 0 "./demo exits 0 (in $secs s)"
[ "$rc" = 0 ] || { sed 's/^/# /' "$tmp/err1" | tail -n 30; bail "the demo failed"; }
[ "$secs" -lt 180 ]
ok $? "it took under 3 minutes ($secs s)"
like "$out1" "== statuses per channel" "it prints the table of statuses per channel"

# the table against the database
table_counts "$d/table.txt" > "$tmp/table"
sql "SELECT channel, status, COUNT(*) FROM notifications GROUP BY channel, status
	UNION ALL SELECT 'all', status, COUNT(*) FROM notifications GROUP BY status
	UNION ALL SELECT channel, 'total', COUNT(*) FROM notifications GROUP BY channel
	UNION ALL SELECT 'all', 'total', COUNT(*) FROM notifications" | tr '\t' ' ' | sort > "$tmp/db"
is "$(diff "$tmp/table" "$tmp/db" && echo same)" same "every number of the table is the database's"
[ "$(wc -l < "$tmp/table")" -ge 30 ]
ok $? "the table has its numbers ($(wc -l < "$tmp/table") non-zero cells)"
grep -q '^| channel ' <<< "$out1" && grep -q '^| email ' <<< "$out1" && grep -q '^| all ' <<< "$out1"
ok $? "the printed table has a row per channel and one for all"

# the outcome the sample users and batch are built for (see the demo's "why" lines)
row() { awk -v c="$1" '$1 == c { printf "%s%s=%s", (n++ ? " " : ""), $2, $3 }' "$tmp/db"; }
is "$(row email)" "done=62 duplicate=1 failed=1 invalid_user=1 opt_out=1 paused=1 rate_limited=1 suppressed=1 total=69" "email"
is "$(row sms)" "deferred=1 done=59 duplicate=1 no_address=2 opt_out=2 paused=1 total=66" "sms"
is "$(row push)" "done=53 duplicate=1 failed=1 no_address=6 opt_out=1 paused=1 total=63" "push"
is "$(row webhook)" "done=54 duplicate=1 failed=1 no_address=6 opt_out=1 paused=1 total=64" "webhook"
like "$out1" "line 9 refused: " "the refused line is reported"

# what the peers got
is "$(jq -r 'select(.n) | 1' "$d/mail.jsonl" | grep -c .)" "$(sql "SELECT COUNT(*) FROM notifications WHERE channel = 'email' AND status = 'done'")" \
	"the SMTP sink got one message per email done"
is "$(find "$d/mail" -name "*.eml" | wc -l)" 62 "each one as a file in mail/"
like "$out1" "List-Unsubscribe: <http://127.0.0.1/unsubscribe" "one message's headers are shown (the sale's, with List-Unsubscribe)"
is "$(jq -r 'select(.status == 200) | 1' "$d/webhooks.jsonl" | grep -c .)/$(jq -r 'select(.sig_ok) | 1' "$d/webhooks.jsonl" | grep -c .)" "54/55" \
	"webhooks: 54 answered 200, all 55 requests signed (barbara's 400 too)"
is "$(sql "SELECT reason FROM suppressions WHERE address = 'frances@bounce.example.net'")" bounce \
	"the 550 for frances suppressed her address"
is "$(sql "SELECT COUNT(*) FROM devices WHERE user_id = 'joan'")" 0 "joan's unregistered device is removed"

# the trail
tx=$(jq -r 'select(.transaction_id) | .transaction_id' "$d/sent.jsonl" | sed -n 2p)
like "$(sql "SELECT GROUP_CONCAT(a.new_status ORDER BY a.id) FROM notification_audit a JOIN notifications n
	ON n.id = a.notification_id WHERE n.transaction_id = '$tx' AND n.channel = 'email'")" "^(queued,)?ready,retry,ready,done$" \
	"hedy's email: (queued,) ready, retry (the 451), ready, done"
trail=$(sed -n '/== the audit trail/,/== the delivered mail/p' <<< "$out1")
like "$trail" "email +ready -> retry +attempt 1 +email\.[0-9]+ +SMTP 451" "the printed trail shows the retry and why"
like "$trail" "email +ready -> done +attempt 2 +email\.[0-9]+ +sink accepted it: <$tx" "and the delivery, with the Message-ID"

# --- left running, then a second run over it ------------------------------------------------------
is "$(pids_alive)" 7 "heraldd, the 4 peers, RabbitMQ and MariaDB keep running"
like "$(tail -n 1 <<< "$out1")" "^  HERALD_DEMO_DIR=$d \./demo stop$" "the last line is the command that stops everything"
# the printed "Try them" lines work as printed (from the source directory)
sed -n '/^heraldd, the stack and the four peers keep running/,/^Stop everything/p' <<< "$out1" | sed '1d;$d' > "$tmp/try.sh"
out=$(cd "$HERALD_SRCDIR" && bash -e "$tmp/try.sh" 2>&1)
is "$?/$(wc -l < "$tmp/try.sh")" 0/3 "the 3 printed lines to try it run as printed"
is "$(grep -c '^{"transaction_id":"[0-9a-f-]\{36\}","channel":"[a-z]*","status":' <<< "$out")/$(tail -n 1 <<< "$out" | jq -r .status)" \
	3/received "heraldctl history lists ada's 3 newest notifications, herald-send sends her one"
heraldd1=$(cat "$d/run/heraldd.pid")
# on a terminal this time (script(1) gives it one), for herald-send's progress bar
timeout 300 script -qefc "$demo" "$tmp/out2" > /dev/null 2>&1
rc=$?
is "$rc" 0 "a second run over the running first one exits 0"
[ "$rc" = 0 ] || tail -n 15 "$tmp/out2" | sed 's/^/# /'
like "$(tr '\r' '\n' < "$tmp/out2" | grep -a ' accepted, ' | tail -n 1)" "^72 done, 71 accepted, 1 rejected, 0 failed" \
	"on a terminal, herald-send draws its progress bar"
! kill -0 "$heraldd1" 2> /dev/null
ok $? "it stopped the first run's heraldd"
table_counts "$d/table.txt" > "$tmp/table2"
is "$(diff "$tmp/table" "$tmp/table2" && echo same)" same "and shows the same table (a fresh stack, the same story)"

# --- ./demo stop -----------------------------------------------------------------------------------
out=$("$demo" stop 2>&1)
is "$?" 0 "./demo stop exits 0"
like "$out" "stopped heraldd .*stopped the stack" "it says what it stopped"
is "$(pids_alive)/$(running | wc -l)" "0/0" "nothing of the demo runs any more"
"$demo" stop > /dev/null 2>&1
is "$?" 0 "./demo stop again: nothing to do, exit 0"

# --- a failure after the stack and the peers are up: where, and nothing left running -------------
mkdir -p "$tmp/fake"
ln -s "$HERALD_BUILDDIR/heraldctl" "$HERALD_BUILDDIR/herald-send" "$tmp/fake/"
printf '#!/bin/sh\necho "heraldd: a broken build" >&2\nexit 1\n' > "$tmp/fake/heraldd"
chmod +x "$tmp/fake/heraldd"
out=$(HERALD_DEMO_DIR=$tmp/fail HERALD_DEMO_BUILDDIR=$tmp/fake timeout 200 "$demo" 2>&1)
is "$?" 1 "heraldd dies at start: the demo exits 1"
like "$out" "demo: heraldd exited.*FAILED at step 'heraldd [^']*' \(exit 1\); logs are in $tmp/fail.*stopped the stack" \
	"it says what failed, at which step, where the logs are, and stops what it started"
is "$(pids_alive "$tmp/fail")/$(running | wc -l)" "0/0" "nothing of it runs any more"
like "$(cat "$tmp/fail/heraldd.log")" "a broken build" "heraldd's log is kept"
out=$(HERALD_DEMO_BUILDDIR=$tmp/nosuch timeout 60 "$demo" 2>&1)
is "$?" 1 "a build directory that does not exist: exit 1"
like "$out" "HERALD_DEMO_BUILDDIR=$tmp/nosuch: no such directory.*FAILED at step 'build'" "the message names the setting and the step"
