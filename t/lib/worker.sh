# worker.sh - helpers for the worker tests (sourced after tap.sh and sql.sh, with $tmp set)
# wk_conf FILE EXTRA       a config for webhook workers reaching the local receiver
# wk_start NAME ARGS...    start heraldd ARGS in the background, log in $tmp/NAME.log, pid in
#                          $tmp/NAME.pid
# wk_stop NAME             SIGTERM it and wait (exit status returned)
# wk_kill NAME             SIGKILL it
# wk_wait TXID CH [SECS]   wait until (TXID, CH) has a final status; print it
# wk_status TXID CH        the status now ("" when no row)
# wk_trail TXID CH         the audit trail "old>new old>new ..." (old "-" when none)
# wk_tx OUT                the transaction_id of a herald-send answer
# wk_receiver ARGS...      start t/lib/receiver.py (log $tmp/hooks.jsonl, more ARGS) in the
#                          background: its pid in $rpid, its base URL in $hook
heraldd="$HERALD_BUILDDIR/heraldd"
send="$HERALD_BUILDDIR/herald-send"
ctl="$HERALD_BUILDDIR/heraldctl"
peek="$HERALD_BUILDDIR/t/itest/qpeek"
finals="'done','failed','opt_out','paused','rate_limited','invalid_user','no_address','suppressed','duplicate','expired','cancelled'"

wk_start() {
	local name=$1
	shift
	"$heraldd" "$@" >> "$tmp/$name.log" 2>&1 &
	echo $! > "$tmp/$name.pid"
}
wk_stop() {
	local pid rc
	pid=$(cat "$tmp/$1.pid" 2> /dev/null) || return 0
	kill -TERM "$pid" 2> /dev/null
	wait "$pid"
	rc=$?
	rm -f "$tmp/$1.pid"
	return $rc
}
wk_kill() {
	local pid
	pid=$(cat "$tmp/$1.pid" 2> /dev/null) || return 0
	kill -KILL "$pid" 2> /dev/null
	wait "$pid" 2> /dev/null
	rm -f "$tmp/$1.pid"
}
wk_status() {
	sql "SELECT status FROM notifications WHERE transaction_id = '$1' AND channel = '$2'"
}
wk_wait() {
	local i st n=$(($(tlimit "${3:-20}") * 10))
	for ((i = 0; i < n; i++)); do
		st=$(sql "SELECT status FROM notifications WHERE transaction_id = '$1' AND channel = '$2' AND status IN ($finals)")
		[ -n "$st" ] && { echo "$st"; return 0; }
		sleep 0.1
	done
	wk_status "$1" "$2"
	return 1
}
# wk_wait_status TXID CH STATUS [SECS] - wait until (TXID, CH) has STATUS
wk_wait_status() {
	local i n=$(($(tlimit "${4:-20}") * 10))
	for ((i = 0; i < n; i++)); do
		[ "$(wk_status "$1" "$2")" = "$3" ] && return 0
		sleep 0.1
	done
	return 1
}
wk_trail() {
	sql "SELECT CONCAT(IFNULL(a.old_status, '-'), '>', a.new_status) FROM notification_audit a
		JOIN notifications n ON n.id = a.notification_id
		WHERE n.transaction_id = '$1' AND n.channel = '$2' ORDER BY a.id" | tr '\n' ' ' | sed 's/ $//'
}
wk_tx() { printf '%s' "$1" | sed -n 's/.*"transaction_id":"\([0-9a-f-]\{36\}\)".*/\1/p'; }
wk_receiver() {
	python3 "$HERALD_SRCDIR/t/lib/receiver.py" --port-file "$tmp/port" --log "$tmp/hooks.jsonl" \
		"$@" > "$tmp/receiver.log" 2>&1 &
	rpid=$!
	for _ in $(seq "$(tlimit 50)"); do [ -s "$tmp/port" ] && break; sleep 0.1; done
	[ -s "$tmp/port" ] || bail "receiver did not start: $(cat "$tmp/receiver.log")"
	hook="http://127.0.0.1:$(cat "$tmp/port")"
}
