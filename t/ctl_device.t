#!/usr/bin/env bash
# ctl_device.t - heraldctl device add|remove|list (SPEC §8) against the private MariaDB of t/run:
# add, move a token to another user (said in the answer), platform change, remove, list as JSON
# Lines and as a table, and the errors with their exit codes. User ids start with "ctld_".
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_ctl
plan 36

tmp=$(mktemp -d /tmp/herald-ctl-device.XXXXXX)
sql_init "$tmp"
cleanup() {
	sql "DELETE FROM users WHERE user_id LIKE 'ctld\\_%'" 2> /dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "heraldctl db migrate failed"
sql "DELETE FROM users WHERE user_id LIKE 'ctld\\_%'; DELETE FROM devices WHERE token LIKE 'ctld-%'" ||
	bail "cannot clean up"
"$ctl" user add ctld_a > /dev/null && "$ctl" user add ctld_b > /dev/null || bail "user add failed"

# run ARGS - heraldctl ARGS; stdout in $out, stderr in $err, status in $rc
run() { "$ctl" "$@" > "$tmp/out" 2> "$tmp/err"; rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err"); }
devs() { sql "SELECT CONCAT(user_id, ':', platform, ':', token) FROM devices WHERE token LIKE 'ctld-%' ORDER BY token" | tr '\n' ' '; }

# --- add, again, platform change, move ------------------------------------------------------
run device add ctld_a --platform ios --token ctld-t1
is "$rc/$out" '0/{"result":"added","user_id":"ctld_a","platform":"ios","token":"ctld-t1"}' \
	"device add: JSON answer, result added"
is "$(devs)" "ctld_a:ios:ctld-t1 " "the row is there"
run device add ctld_a --platform ios --token ctld-t1
is "$rc/$out" '0/{"result":"unchanged","user_id":"ctld_a","platform":"ios","token":"ctld-t1"}' \
	"adding it again: unchanged"
run device add ctld_a --platform android --token ctld-t1
is "$rc/$out" '0/{"result":"updated","user_id":"ctld_a","platform":"android","token":"ctld-t1"}' \
	"the same token with another platform: updated"
run device add ctld_b --platform ios --token ctld-t1
is "$rc/$out" '0/{"result":"moved","user_id":"ctld_b","platform":"ios","token":"ctld-t1","previous_user_id":"ctld_a"}' \
	"a token another user holds moves, and the answer says from whom"
is "$(devs)" "ctld_b:ios:ctld-t1 " "one row, now ctld_b's"
run device add ctld_a --platform android --token ctld-t2
run device add ctld_a --platform ios --token 'ctld-t3:AbC/+=_~'
is "$rc" 0 "a token with punctuation is accepted"
is "$(devs)" "ctld_b:ios:ctld-t1 ctld_a:android:ctld-t2 ctld_a:ios:ctld-t3:AbC/+=_~ " "three devices in all"
run user show ctld_a
is "$out" '{"user_id":"ctld_a","timezone":"UTC","devices":[{"platform":"android","token":"ctld-t2"},{"platform":"ios","token":"ctld-t3:AbC/+=_~"}],"preferences":{}}' \
	"user show lists the user's devices"

# --- list -------------------------------------------------------------------------------------
run device list ctld_a
is "$rc/$(printf '%s\n' "$out" | wc -l)" "0/2" "device list: one JSON line per device"
is "$(printf '%s\n' "$out" | jq -r '"\(.platform) \(.token)"' | tr '\n' ' ')" "android ctld-t2 ios ctld-t3:AbC/+=_~ " \
	"oldest first, with platform and token"
like "$(printf '%s\n' "$out" | head -1 | jq -r .created_at)" '^20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-9:]{8}\.[0-9]{6}Z$' \
	"created_at in RFC 3339 UTC"
run device list ctld_a --format table
is "$rc/$(printf '%s\n' "$out" | head -1 | tr -s ' ')" "0/PLATFORM TOKEN ADDED" "--format table: a header"
is "$(printf '%s\n' "$out" | sed -n '2,3p' | awk '{ print $1, $2 }' | tr '\n' ' ')" "android ctld-t2 ios ctld-t3:AbC/+=_~ " \
	"a row per device"
is "$(printf '%s\n' "$out" | tail -1)" "(2 devices)" "and the count"
"$ctl" user add ctld_c > /dev/null
run device list ctld_c
is "$rc/$out" "0/" "a user without devices: nothing, exit 0"
run device list ctld_c --format table
is "$rc/$(printf '%s\n' "$out" | tail -1)" "0/(0 devices)" "the table says 0 devices"
run device list ctld_nobody
is "$rc/$err" "1/heraldctl device list: no user 'ctld_nobody'" "list of an unknown user: exit 1"
run device list ctld_a --format csv
is "$rc" 64 "an unknown --format: EX_USAGE"

# --- remove -----------------------------------------------------------------------------------
run device remove ctld-t2
is "$rc/$out" '0/{"result":"removed","user_id":"ctld_a","platform":"android","token":"ctld-t2"}' \
	"device remove: JSON naming the user it belonged to"
is "$(devs)" "ctld_b:ios:ctld-t1 ctld_a:ios:ctld-t3:AbC/+=_~ " "the row is gone, the others stay"
run device remove ctld-t2
is "$rc/$err" "1/heraldctl device remove: no device with that token" "removing it again: exit 1"

# --- errors -----------------------------------------------------------------------------------
run device add ctld_nobody --platform ios --token ctld-t9
is "$rc/$err" "1/heraldctl device add: no user 'ctld_nobody' (heraldctl user add creates one)" \
	"an unknown user: exit 1, saying so"
is "$(sql "SELECT COUNT(*) FROM devices WHERE token = 'ctld-t9'")" 0 "nothing written"
run device add ctld_a --platform windows --token ctld-t9
is "$rc" 64 "a bad platform: EX_USAGE"
is "$err" "heraldctl device add: --platform 'windows': must be ios or android (heraldctl device --help shows the usage)" \
	"naming the option and the choices"
run device add ctld_a --platform ios --token 'ctld t9'
is "$rc/$err" "65/heraldctl device add: --token: must be 1-512 printable ASCII characters without spaces" \
	"a token with a space: EX_DATAERR"
run device add ctld_a --platform ios --token "$(printf 'x%.0s' $(seq 513))"
is "$rc" 65 "a 513-character token: EX_DATAERR"
run device add ctld_a --platform ios --token "ctld-é"
is "$rc" 65 "a non-ASCII token: EX_DATAERR"
run device add ctld_a --token ctld-t9
is "$rc/$err" "64/heraldctl device add: --platform is required (ios or android) (heraldctl device --help shows the usage)" \
	"no --platform: EX_USAGE"
run device add --platform ios --token ctld-t9
is "$rc" 64 "no USER: EX_USAGE"
run device remove 'bad token'
is "$rc" 65 "device remove of a malformed token: EX_DATAERR"
run device frobnicate
is "$rc" 64 "an unknown subcommand: EX_USAGE"
run device --help
like "$rc/$out" "^0/usage: heraldctl device add USER --platform ios\|android --token TOKEN" "device --help"
HERALD_MYSQL_URL=mysql://herald:herald@127.0.0.1:1/herald run device list ctld_a
is "$rc" 69 "the database unreachable: EX_UNAVAILABLE"
hostile="ctld_x'; DROP TABLE devices; --"
"$ctl" user add "$hostile" > /dev/null
run device add "$hostile" --platform ios --token "ctld-');--"
is "$rc/$(sql "SELECT user_id FROM devices WHERE token = 'ctld-'');--'")" "0/$hostile" \
	"SQL metacharacters in the user and token are just data"
