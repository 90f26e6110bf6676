#!/usr/bin/env bash
# ops.t - operating heraldd (SPEC §9) as root: the drop to heraldd.user after opening what needs
# root (control socket, pid file, log file), the master and its children run as that user and
# cannot regain root, SIGUSR1 reopens a moved log file and SIGHUP rereads the config as that
# user, the pid file (content, removal, a second instance refused, a stale one replaced), -d,
# a config holding secrets that others can read refused (heraldd and heraldctl), an unknown user
# refused, and a start as non-root that drops nothing. Runs as root: it creates a system user.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
plan 40
[ "$(id -u)" = 0 ] || bail "ops.t needs root (it creates a system user and drops to it)"

tmp=$(mktemp -d /tmp/herald-ops-t.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
u=hrldops$$
pids=()
cleanup() {
	local p
	for p in "${pids[@]}" $(pgrep -u "$u" 2> /dev/null); do kill -KILL "$p" 2> /dev/null; done
	sleep 0.3
	userdel "$u" 2> /dev/null
	getent group "$u" > /dev/null && groupdel "$u" 2> /dev/null
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
useradd --system --no-create-home --home-dir / --shell /usr/sbin/nologin --user-group "$u" ||
	bail "useradd $u failed"
uid=$(id -u "$u") gid=$(id -g "$u")
"$ctl" db migrate > /dev/null || bail "db migrate failed"

# the test dir is root's; the user gets its run and log directories, as systemd's would be
chmod 711 "$tmp"
mkdir "$tmp/run" "$tmp/log"
chown "$u:$u" "$tmp/run" "$tmp/log"
# conf NAME [LOG] [EXTRA] - a master config (heraldd.user $HUSER, else $u; no metrics port: tests
# run side by side), mode 0640 root:$u as the sample recommends
conf() {
	local logline=""
	[ -n "${2:-}" ] && logline="log = { file = \"$2\"; };"
	cat > "$tmp/$1.conf" <<EOF
$logline
metrics = { listen = ""; };
heraldd = { user = "${HUSER:-$u}"; pidfile = "$tmp/run/heraldd.pid"; control = "$tmp/run/$1.sock";
	grace = 5; respawn_backoff_max = 2; };
channels = { email = { workers = 0; }; sms = { workers = 0; }; push = { workers = 0; };
	webhook = { workers = 1; allow_private = true;
		providers = ( { name = "hooks"; type = "webhook"; } ); }; };
${3:-}
EOF
	chown "root:$u" "$tmp/$1.conf"
	chmod 640 "$tmp/$1.conf"
}
# wait_sock PATH - until the control socket PATH exists (10 s, times HERALD_T_TIMEOUT)
wait_sock() { for _ in $(seq "$(tlimit 100)"); do [ -S "$1" ] && return 0; sleep 0.1; done; return 1; }
# children PID - the pids of PID's children
children() { pgrep -P "$1" | tr '\n' ' '; }
# uids PID - "real effective saved fs" uids of PID
uids() { awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$1/status"; }
log="$tmp/log/herald.log"

# --- 1. root: open, drop, run as the user ----------------------------------------------------
conf a "$log" 'unsubscribe = { secret = "0123456789abcdef0123456789"; };'
"$heraldd" -c "$tmp/a.conf" > "$tmp/a.out" 2>&1 &
pid=$!
pids+=("$pid")
wait_sock "$tmp/run/a.sock"
ok $? "heraldd started as root opens its control socket"
is "$(cat "$tmp/run/heraldd.pid" 2> /dev/null)" "$pid" "the pid file holds the master's pid"
is "$(stat -c %U "$tmp/run/heraldd.pid" "$tmp/run/a.sock" "$log" | sort -u | tr '\n' ' ')" "$u " \
	"pid file, control socket and log file belong to the user"
for _ in $(seq "$(tlimit 100)"); do [ "$(children "$pid" | wc -w)" -ge 4 ] && break; sleep 0.1; done
kids=$(children "$pid")
is "$(echo "$kids" | wc -w)" 4 "the master has its 4 children (ledger, outbox, scheduler, webhook)"
is "$(ps -o user:32= -p "$pid")" "$u" "the master runs as $u"
is "$(for k in $kids; do ps -o user:32= -p "$k"; done | sort -u | tr -d ' \n')" "$u" \
	"every child runs as $u"
is "$(uids "$pid")" "$uid $uid $uid $uid" "real, effective, saved and fs uid are $u's: no way back to root"
is "$(awk '/^Gid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")" "$gid $gid $gid $gid" \
	"every gid is $u's group"
grep -Eq '^Groups:.*\b0\b' "/proc/$pid/status"
is $? 1 "no supplementary group root"
like "$(cat "$log")" "event=privileges_dropped user=$u uid=$uid gid=$gid" "the drop is logged"
for _ in $(seq "$(tlimit 100)"); do
	[ "$("$ctl" workers --socket "$tmp/run/a.sock" 2> /dev/null | jq -r '.channels.webhook.running')" = 1 ] && break
	sleep 0.1
done
is "$("$ctl" workers --socket "$tmp/run/a.sock" | jq -r '"\(.pid) \(.channels.webhook.running)"')" \
	"$pid 1" "heraldctl workers answers on the socket"

# --- 2. logrotate: move the file, SIGUSR1, then SIGHUP rereads the config as the user ---------
mv "$log" "$log.1"
kill -USR1 "$pid"
for _ in $(seq "$(tlimit 50)"); do [ -f "$log" ] && break; sleep 0.1; done
[ -f "$log" ]
ok $? "SIGUSR1: the master creates a new log file (as $u, in its directory)"
kill -HUP "$pid"
for _ in $(seq "$(tlimit 100)"); do grep -q 'event=reloading' "$log" 2> /dev/null && break; sleep 0.1; done
like "$(cat "$log" 2> /dev/null)" "event=reloading generation=2" \
	"SIGHUP after the drop: the 0640 root:$u config (with a secret) is read again, logged in the new file"
is "$(stat -c %U "$log")" "$u" "the new log file belongs to $u"
grep -q 'event=reloading' "$log.1"
is $? 1 "nothing is written to the moved file after SIGUSR1"

# --- 3. a second heraldd with the same pid file is refused ---------------------------------------
conf b ""
timeout "$(tlimit 20)" "$heraldd" -c "$tmp/b.conf" > "$tmp/b.out" 2>&1
is $? 73 "a second heraldd with the same pid file exits 73"
like "$(cat "$tmp/b.out")" "event=already_running path=$tmp/run/heraldd.pid pid=$pid" \
	"the refusal names the pid file and the running heraldd"
is "$(cat "$tmp/run/heraldd.pid")/$([ -S "$tmp/run/b.sock" ] && echo sock)" "$pid/" \
	"the pid file is left alone and the refused one's socket removed"

# --- 4. SIGTERM: pid file and socket removed -------------------------------------------------
kill -TERM "$pid"
wait "$pid"
is $? 0 "SIGTERM: the master exits 0"
is "$(ls "$tmp/run")" "" "pid file and control socket are removed at exit (by $u)"
is "$(pgrep -u "$u" | wc -l)" 0 "no process of $u is left"

# --- 5. -d over a stale pid file ----------------------------------------------------------------
sh -c 'echo $$' > "$tmp/run/heraldd.pid"
stale=$(cat "$tmp/run/heraldd.pid")
chown "$u:$u" "$tmp/run/heraldd.pid"
timeout "$(tlimit 20)" "$heraldd" -d -c "$tmp/a.conf" > "$tmp/d.out" 2>&1
is $? 0 "heraldd -d: the starting process exits 0 once the daemon is ready"
dpid=$(cat "$tmp/run/heraldd.pid" 2> /dev/null)
pids+=("$dpid")
[ -n "$dpid" ] && [ "$dpid" != "$stale" ] && kill -0 "$dpid" 2> /dev/null
ok $? "a stale pid file is replaced: it holds the live daemon ($dpid)"
like "$(cat "$log")" "event=pidfile_stale path=$tmp/run/heraldd.pid pid=$stale" "the stale pid file is logged"
is "$(ps -o user:32=,tty= -p "$dpid" | tr -s ' ')" "$u ?" "the daemon runs as $u without a terminal"
[ "$(ps -o sid= -p "$dpid" | tr -d ' ')" != "$(ps -o sid= -p $$ | tr -d ' ')" ] &&
	[ "$(ps -o ppid= -p "$dpid" | tr -d ' ')" != $$ ] && [ "$(readlink "/proc/$dpid/cwd")" = / ]
ok $? "the daemon has its own session, is not the shell's child and works from /"
wait_sock "$tmp/run/a.sock" && "$ctl" workers --socket "$tmp/run/a.sock" > /dev/null
ok $? "the daemon answers on its control socket"
timeout "$(tlimit 20)" "$heraldd" -d -c "$tmp/b.conf" > "$tmp/d2.out" 2>&1
is $? 73 "heraldd -d while one runs: the starter gets the daemon's exit status 73"
like "$(cat "$tmp/d2.out")" "event=already_running" "and its error on the terminal"
kill -TERM "$dpid"
for _ in $(seq "$(tlimit 150)"); do kill -0 "$dpid" 2> /dev/null || break; sleep 0.1; done
! kill -0 "$dpid" 2> /dev/null && [ ! -e "$tmp/run/heraldd.pid" ]
ok $? "SIGTERM: the daemon stops and removes its pid file"

# --- 6. secrets others can read ------------------------------------------------------------------
conf c "" 'unsubscribe = { secret = "0123456789abcdef0123456789"; };'
chmod 644 "$tmp/c.conf"
timeout "$(tlimit 20)" "$heraldd" -c "$tmp/c.conf" > "$tmp/c.out" 2>&1
is $? 78 "a config with a secret, mode 0644: heraldd exits 78"
like "$(cat "$tmp/c.out")" "$tmp/c.conf: mode 0644: holds secrets \(unsubscribe.secret, \.\.\.\) that others can read" \
	"the message names the file, its mode and the secret key"
"$ctl" -c "$tmp/c.conf" workers > "$tmp/c2.out" 2>&1
is "$?/$(grep -c 'c.conf: mode 0644: holds secrets' "$tmp/c2.out")" "78/1" "heraldctl refuses it too"
chgrp "$(id -gn nobody)" "$tmp/c.conf"; chmod 640 "$tmp/c.conf"
timeout "$(tlimit 20)" "$heraldd" -c "$tmp/c.conf" > "$tmp/c.out" 2>&1
is "$?/$(grep -c 'group can read' "$tmp/c.out")" "78/1" \
	"mode 0640 with a group that is neither root nor heraldd's: refused"
[ ! -e "$tmp/run/heraldd.pid" ] && [ ! -e "$tmp/run/c.sock" ]
ok $? "refused before anything is opened"
printf 'not a key\n' > "$tmp/client.key"; printf 'not a cert\n' > "$tmp/client.pem"
chmod 644 "$tmp/client.key"
conf k "" "broker = { tls = { cert_file = \"$tmp/client.pem\"; key_file = \"$tmp/client.key\"; }; };"
timeout "$(tlimit 20)" "$heraldd" -c "$tmp/k.conf" > "$tmp/k.out" 2>&1
is "$?/$(grep -c "broker.tls.key_file $tmp/client.key: readable by others (mode 0644)" "$tmp/k.out")" \
	"78/1" "a broker client key readable by others: refused, naming it"

# --- 7. an unknown user ----------------------------------------------------------------------------
HUSER=nosuch$$ conf d ""
timeout "$(tlimit 20)" "$heraldd" -c "$tmp/d.conf" > "$tmp/d.out" 2>&1
is $? 78 "heraldd.user names no user: exit 78"
like "$(cat "$tmp/d.out")" "d.conf: heraldd.user: no such user 'nosuch$$'" "the message names the user"

# --- 8. started as the user itself: no drop, said at info ------------------------------------------
conf e "$tmp/log/e.log"
setpriv --reuid="$u" --regid="$u" --init-groups "$heraldd" -c "$tmp/e.conf" > "$tmp/e.out" 2>&1 &
epid=$!
pids+=("$epid")
wait_sock "$tmp/run/e.sock"
like "$(cat "$tmp/log/e.log" 2> /dev/null)" "level=info .*event=no_privilege_drop uid=$uid" \
	"started as $u: no drop, said at info"
kill -TERM "$epid"
wait "$epid"
is $? 0 "and it stops with 0"
done_testing
