# master.sh - helpers for tests that run heraldd masters (sourced after worker.sh, with $tmp
# set, the receiver's log in $tmp/hooks.jsonl and the user-id prefix in $p)
# mconf NAME WORKERS [EXTRA]   a master config $tmp/NAME.conf (control socket $tmp/NAME.sock)
# mstart NAME / mstop NAME     start one in the background (log $tmp/NAME.log) / SIGTERM it
# wjson NAME EXPR              a jq EXPR of its heraldctl workers answer
# wait_running NAME N          until N webhook workers run and none drains
# final BATCH, wait_final BATCH N [SECS]   final statuses of a batch
# hooks BATCH                  "requests/distinct webhook-ids" the receiver got for BATCH
# bulk BATCH N USERS [EXTRA_JSON]          send N notifications over users ${p}_0..USERS-1
# mconf NAME WORKERS [EXTRA] - a master config: control socket $tmp/NAME.sock, webhook workers
# (their calls time out after $MCONF_TIMEOUT s, default 30; $MCONF_IN_FLIGHT deliveries in flight
# per worker, default 20: these tests are about processes, t/faults.t sets 1, the default;
# metrics served on $MCONF_METRICS, default "" (off): tests run side by side)
mconf() {
	cat > "$tmp/$1.conf" <<EOF
broker = { prefetch = 20; };
log = { level = "info"; };
metrics = { listen = "${MCONF_METRICS:-}"; depth_interval = 1; };
heraldd = { user = "root"; control = "$tmp/$1.sock"; grace = 5; respawn_backoff_max = 2; };
channels = { webhook = { workers = $2; allow_private = true; in_flight = ${MCONF_IN_FLIGHT:-20};
	providers = ( { name = "hooks"; type = "webhook"; timeout = ${MCONF_TIMEOUT:-30}; } ); }; };
${3:-}
EOF
	chmod 600 "$tmp/$1.conf"
}
# mstart NAME - start a master with $tmp/NAME.conf, log in $tmp/NAME.log
mstart() {
	"$heraldd" -c "$tmp/$1.conf" >> "$tmp/$1.log" 2>&1 &
	echo $! > "$tmp/$1.pid"
	for _ in $(seq "$(tlimit 50)"); do [ -S "$tmp/$1.sock" ] && return 0; sleep 0.1; done
	return 1
}
# mstop NAME - SIGTERM, wait; its exit status
mstop() {
	local pid rc
	pid=$(cat "$tmp/$1.pid") || return 1
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	rm -f "$tmp/$1.pid"
	return $rc
}
# wjson NAME EXPR - a value of heraldctl workers for master NAME (jq EXPR)
wjson() { "$ctl" workers --socket "$tmp/$1.sock" | jq -r "$2"; }
# wait_running NAME N - until N webhook workers run and none drains
wait_running() {
	for _ in $(seq "$(tlimit 100)"); do
		[ "$(wjson "$1" '.channels.webhook | "\(.running)/\(.draining)"')" = "$2/0" ] && return 0
		sleep 0.1
	done
	return 1
}
# final BATCH - how many of BATCH have a final status
final() { sql "SELECT COUNT(*) FROM notifications WHERE batch_id = '$1' AND status IN ($finals)"; }
# wait_final BATCH N [SECS] - until N of BATCH are final
wait_final() {
	local i
	for ((i = 0; i < $(tlimit "${3:-60}") * 10; i++)); do
		[ "$(final "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
# hooks BATCH - "requests/distinct webhook-ids" the receiver got for BATCH
hooks() {
	jq -r --arg b "$1" 'select(.json.batch_id == $b) | .headers["webhook-id"]' "$tmp/hooks.jsonl" |
		awk '{ n++; if (!seen[$0]++) d++ } END { printf "%d/%d", n, d }'
}
# bulk BATCH N USERS [EXTRA_JSON] - send N webhook notifications spread over USERS users
bulk() {
	local i
	for ((i = 0; i < $2; i++)); do
		printf '{"user_id":"%s_%d","channels":{"webhook":{"event":"e%d"}},"batch_id":"%s"%s}\n' \
			"$p" $((i % $3)) "$i" "$1" "${4:-}"
	done > "$tmp/$1.jsonl"
	"$send" --bulk "$tmp/$1.jsonl" > "$tmp/$1.out"
}

