#!/usr/bin/env bash
# ctl_status.t - heraldctl status TXID [--trail] and heraldctl history USER against the private
# MariaDB of t/run, on notifications and audit rows written here with SQL (as the workers
# would). Every row belongs to a user id starting with "ctls_", removed at the end.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_ctl
plan 29

tmp=$(mktemp -d /tmp/herald-ctl-status.XXXXXX)
sql_init "$tmp"
"$ctl" db migrate > /dev/null || bail "heraldctl db migrate failed"
cleanup() {
	sql "DELETE FROM notifications WHERE user_id LIKE 'ctls\\_%'" 2> /dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
sql "DELETE FROM notifications WHERE user_id LIKE 'ctls\\_%'"

# run ARGS - heraldctl ARGS; stdout in $out, stderr in $err, status in $rc
run() { "$ctl" "$@" > "$tmp/out" 2> "$tmp/err"; rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err"); }
uuid() { cat /proc/sys/kernel/random/uuid; }
# q S - S quoted for SQL, or NULL when empty (test data only: no quotes inside)
q() { if [ -n "$1" ]; then printf "'%s'" "$1"; else printf NULL; fi; }
# note TXID CHANNEL STATUS USER CREATED [BATCH] - a notifications row, as the workers write it
note() {
	sql "INSERT INTO notifications (transaction_id, channel, status, user_id, client_id, category, priority, batch_id, metadata, attempt, provider_message_id, created_at, updated_at)
	     VALUES ('$1', '$2', '$3', '$4', 'ctlsshop', 'transactional', 8, $(q "$6"), '{\"order\":\"A-42\"}', 1, IF('$3' = 'done', 'prov-$2-1', NULL), '$5', '$5')"
}
# audit TXID CHANNEL OLD NEW AT DETAIL - an audit row
audit() {
	sql "INSERT INTO notification_audit (notification_id, old_status, new_status, changed_at, host, worker, attempt, detail)
	     SELECT id, $(q "$3"), '$4', '$5', 'host-a', 'email-1', 1, $(q "$6") FROM notifications WHERE transaction_id = '$1' AND channel = '$2'"
}

tx=$(uuid)
note "$tx" email done ctls_u1 "2026-11-20 10:00:00.000001"
note "$tx" sms failed ctls_u1 "2026-11-20 10:00:00.000001"
audit "$tx" email "" queued "2026-11-20 10:00:00.100000"
audit "$tx" email queued ready "2026-11-20 10:00:01.200000"
audit "$tx" email ready done "2026-11-20 10:00:01.923456" '{"provider_message_id":"prov-email-1","template_version":3}'
audit "$tx" sms "" queued "2026-11-20 10:00:00.100000"
audit "$tx" sms queued failed "2026-11-20 10:00:02.000000" '{"error":"body over 1600 characters"}'

run status "$tx"
is "$rc/$out" '0/{"email":"done","sms":"failed","push":null,"webhook":null}' \
	"status prints all four channels, null where not requested"
run status "$(echo "$tx" | tr a-f A-F)"
is "$out" '{"email":"done","sms":"failed","push":null,"webhook":null}' "an upper-case id is lower-cased first"
run status "$tx" --trail
is "$rc" 0 "status --trail succeeds"
is "$out" "{\"email\":\"done\",\"sms\":\"failed\",\"push\":null,\"webhook\":null,\"trail\":{\"email\":[{\"old_status\":null,\"new_status\":\"queued\",\"changed_at\":\"2026-11-20T10:00:00.100000Z\",\"host\":\"host-a\",\"worker\":\"email-1\",\"attempt\":1,\"detail\":null},{\"old_status\":\"queued\",\"new_status\":\"ready\",\"changed_at\":\"2026-11-20T10:00:01.200000Z\",\"host\":\"host-a\",\"worker\":\"email-1\",\"attempt\":1,\"detail\":null},{\"old_status\":\"ready\",\"new_status\":\"done\",\"changed_at\":\"2026-11-20T10:00:01.923456Z\",\"host\":\"host-a\",\"worker\":\"email-1\",\"attempt\":1,\"detail\":{\"provider_message_id\":\"prov-email-1\",\"template_version\":3}}],\"sms\":[{\"old_status\":null,\"new_status\":\"queued\",\"changed_at\":\"2026-11-20T10:00:00.100000Z\",\"host\":\"host-a\",\"worker\":\"email-1\",\"attempt\":1,\"detail\":null},{\"old_status\":\"queued\",\"new_status\":\"failed\",\"changed_at\":\"2026-11-20T10:00:02.000000Z\",\"host\":\"host-a\",\"worker\":\"email-1\",\"attempt\":1,\"detail\":{\"error\":\"body over 1600 characters\"}}]}}" \
	"--trail adds each requested channel's audit rows in order, times to the microsecond, detail as JSON"
run status "$(uuid)"
is "$rc/$out" '1/{"error":"invalid or expired transaction_id"}' "an unknown id: the error object, exit 1"
run status not-a-uuid
is "$rc/$out" '1/{"error":"invalid or expired transaction_id"}' "a malformed id: the same answer"
like "$err" "'not-a-uuid': not a transaction id" "and says why on stderr"
run status "$tx'; DROP TABLE users; --"
is "$rc/$(sql "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'users'")" "1/1" \
	"SQL in an id is just a bad id"
run status
is "$rc" 64 "status without TXID: EX_USAGE"
run status "$tx" --trial
like "$rc/$err" "64/.*unknown option '--trial'" "an unknown option is named"

# a transaction with one channel still queued, no audit rows yet (the ledger's first record)
tx2=$(uuid)
note "$tx2" push queued ctls_u1 "2026-11-21 08:00:00"
run status "$tx2" --trail
is "$out" '{"email":null,"sms":null,"push":"queued","webhook":null,"trail":{"push":[]}}' "a channel without audit rows has an empty trail"

# --- history ------------------------------------------------------------------------------
tx3=$(uuid) tx4=$(uuid)
note "$tx3" webhook done ctls_u1 "2026-11-21 09:00:00.500000" spring-sale
note "$tx4" email queued ctls_u1 "2026-11-21 09:30:00" spring-sale
note "$(uuid)" email done ctls_u2 "2026-11-21 09:45:00"
run history ctls_u1
is "$rc" 0 "history succeeds"
is "$(echo "$out" | wc -l)" 5 "one line per (transaction, channel) of that user only"
is "$(echo "$out" | head -n 1)" "{\"transaction_id\":\"$tx4\",\"channel\":\"email\",\"status\":\"queued\",\"category\":\"transactional\",\"priority\":8,\"client_id\":\"ctlsshop\",\"batch_id\":\"spring-sale\",\"metadata\":{\"order\":\"A-42\"},\"attempt\":1,\"provider_message_id\":null,\"created_at\":\"2026-11-21T09:30:00.000000Z\",\"updated_at\":\"2026-11-21T09:30:00.000000Z\"}" \
	"newest first, every field"
is "$(echo "$out" | sed -n 2p | grep -o '"provider_message_id":"[^"]*"')" '"provider_message_id":"prov-webhook-1"' \
	"with the provider message id"
is "$(echo "$out" | grep -o '"created_at":"[^"]*"' | cut -d'"' -f4 | tr '\n' ' ')" \
	"2026-11-21T09:30:00.000000Z 2026-11-21T09:00:00.500000Z 2026-11-21T08:00:00.000000Z 2026-11-20T10:00:00.000001Z 2026-11-20T10:00:00.000001Z " \
	"in created_at order, newest first"
run history ctls_u1 --limit 2
is "$(echo "$out" | wc -l)" 2 "--limit N"
run history ctls_u1 --since 2026-11-21T09:00:00.5Z
is "$(echo "$out" | grep -o '"transaction_id":"[^"]*"' | cut -d'"' -f4 | tr '\n' ' ')" "$tx4 $tx3 " "--since T keeps rows at or after T"
run history ctls_u1 --since 2026-11-21T10:00:00+01:00
is "$(echo "$out" | wc -l)" 2 "--since with an offset"
run history ctls_u1 --batch spring-sale
is "$(echo "$out" | grep -c '"batch_id":"spring-sale"')/$(echo "$out" | wc -l)" "2/2" "--batch B"
run history ctls_nobody
is "$rc/$out" "0/" "a user without history: nothing, exit 0"
run history ctls_u1 --limit 0
like "$rc/$err" "64/.*--limit '0': not a number from 1 to 1000" "--limit 0 is refused"
run history ctls_u1 --limit 1001
is "$rc" 64 "--limit above 1000 is refused"
run history ctls_u1 --limit 5x
is "$rc" 64 "--limit not a number is refused"
run history ctls_u1 --since last-week
like "$rc/$err" "64/.*--since 'last-week': not an RFC 3339 time" "a bad --since"
run history
is "$rc" 64 "history without USER: EX_USAGE"
n=$("$ctl" history ctls_u1 --limit 1000 | wc -l)
is "$n" 5 "--limit 1000 is allowed"

# the history survives the user; --erase-history removes it with its audit rows
"$ctl" user add ctls_u1 > /dev/null
"$ctl" user delete ctls_u1 > /dev/null
is "$("$ctl" history ctls_u1 | wc -l)" 5 "user delete keeps the history"
"$ctl" user add ctls_u1 > /dev/null
"$ctl" user delete ctls_u1 --erase-history > /dev/null
run status "$tx"
is "$rc/$(sql "SELECT COUNT(*) FROM notifications WHERE user_id = 'ctls_u1'")" "1/0" \
	"user delete --erase-history: the statuses are gone"
done_testing
