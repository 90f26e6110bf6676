#!/usr/bin/env bash
# ctl_users.t - heraldctl user add|show|import|delete, prefs get|set, pause|unpause against the
# private MariaDB of t/run. Every user id starts with "ctlu_", removed at the end.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_ctl
plan 77

tmp=$(mktemp -d /tmp/herald-ctl-users.XXXXXX)
sql_init "$tmp"
cleanup() {
	sql "DELETE FROM notifications WHERE user_id LIKE 'ctlu\\_%'; DELETE FROM users WHERE user_id LIKE 'ctlu\\_%'" 2> /dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "heraldctl db migrate failed"
cleanup; mkdir -p "$tmp"; sql_init "$tmp"

# run ARGS - heraldctl ARGS; stdout in $out, stderr in $err, status in $rc
run() { "$ctl" "$@" > "$tmp/out" 2> "$tmp/err"; rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err"); }

# --- user add / show ----------------------------------------------------------------------
run user add ctlu_ada --first-name Ada --last-name Lovelace --email Ada@Example.ORG \
	--phone +441632960961 --timezone Europe/London --locale en-GB \
	--webhook-url https://hooks.example.org/h --quiet-hours 22:00-07:00
is "$rc" 0 "user add with every option succeeds"
is "$(sql "SELECT first_name, last_name, email, phone, timezone, locale, webhook_url FROM users WHERE user_id = 'ctlu_ada'")" \
	"Ada	Lovelace	ada@example.org	+441632960961	Europe/London	en-GB	https://hooks.example.org/h" \
	"the row holds every field, the email lower-cased"
is "$(sql "SELECT start_minute, end_minute FROM quiet_hours WHERE user_id = 'ctlu_ada'")" "1320	420" \
	"quiet hours stored as minutes (22:00-07:00 is 1320, 420)"
run user show ctlu_ada
is "$out" '{"user_id":"ctlu_ada","first_name":"Ada","last_name":"Lovelace","email":"ada@example.org","phone":"+441632960961","timezone":"Europe/London","locale":"en-GB","webhook_url":"https://hooks.example.org/h","devices":[],"preferences":{},"quiet_hours":"22:00-07:00"}' \
	"user show prints the §8 record"
run user add ctlu_ada
is "$rc/$err" "1/heraldctl user add: user 'ctlu_ada' already exists (user import updates a user)" \
	"adding an existing user: exit 1, saying so"
run user add ctlu_bad --email not-an-email
is "$rc" 65 "a bad email: EX_DATAERR"
is "$err" "heraldctl user add: --email: not a valid email address" "naming the option"
run user add ctlu_bad --phone 0044123
is "$rc/$err" "65/heraldctl user add: --phone: not an E.164 phone number (+ and 2-15 digits)" "a bad phone"
run user add ctlu_bad --timezone Mars/Olympus_Mons
is "$rc/$err" "65/heraldctl user add: --timezone: unknown time zone (an IANA name such as Europe/London)" \
	"an unknown time zone"
run user add ctlu_bad --quiet-hours 25:00-07:00
is "$rc" 65 "bad quiet hours: EX_DATAERR"
run user add ctlu_bad --colour blue
is "$rc" 64 "an unknown option: EX_USAGE"
like "$err" "unknown option '--colour'" "naming it"
run user add
is "$rc" 64 "user add without USER: EX_USAGE"
is "$(sql "SELECT COUNT(*) FROM users WHERE user_id = 'ctlu_bad'")" 0 "no rejected user was written"
run user add --json '{"user_id":"ctlu_json","email":"j@example.org","devices":[{"platform":"ios","token":"ctlu-tok-j"}],"preferences":{"sms":false}}'
is "$rc" 0 "user add --json succeeds"
run user show ctlu_json
is "$out" '{"user_id":"ctlu_json","email":"j@example.org","timezone":"UTC","devices":[{"platform":"ios","token":"ctlu-tok-j"}],"preferences":{"sms":false}}' \
	"with its devices and preferences; timezone defaults to UTC"
run user add ctlu_other --json '{"user_id":"ctlu_json2"}'
is "$rc" 64 "USER and --json user_id differing: EX_USAGE"
run user add --json '{"user_id":"ctlu_j3","nickname":"x"}'
is "$rc/$err" "65/heraldctl user add: --json: nickname: unknown key" "an unknown record key is refused"
run user add --json '{"user_id":"ctlu_j4",'
like "$rc/$err" "65/heraldctl user add: --json: json: " "bad JSON in --json: EX_DATAERR"
hostile="ctlu_x'; DROP TABLE users; -- \"\\ é"
run user add "$hostile" --first-name "Zoë 'Robert'); --"
is "$rc" 0 "a user id full of SQL and JSON metacharacters is just data"
run user show "$hostile"
is "$out" '{"user_id":"ctlu_x'"'"'; DROP TABLE users; -- \"\\ é","first_name":"Zoë '"'"'Robert'"'"'); --","timezone":"UTC","devices":[],"preferences":{}}' \
	"and reads back exactly, JSON-escaped"
run user add "$(printf 'ctlu_ctl\001')"
is "$rc/$err" "65/heraldctl user add: USER: must be a string of 1-191 bytes without control characters or a trailing space" \
	"a control character in USER is refused"
run user show ctlu_nobody
is "$rc/$err" "1/heraldctl user show: no user 'ctlu_nobody'" "user show of an unknown user: exit 1"

# --- user import --------------------------------------------------------------------------
cat > "$tmp/users.jsonl" <<'EOF'
{"user_id":"ctlu_i1","first_name":"Ada","last_name":"Lovelace","email":"ADA@example.org","phone":"+441632960961","timezone":"Europe/London","locale":"en","webhook_url":"https://hooks.example.org/herald","devices":[{"platform":"android","token":"ctlu-tok-a"},{"platform":"ios","token":"ctlu-tok-b"}],"preferences":{"email":true,"sms":false,"marketing":false,"marketing.push":true},"quiet_hours":"22:00-07:00"}
{"user_id":"ctlu_i2","email":"not-an-email"}

{"user_id":"ctlu_i3","phone":"+0123"}
{"user_id":"ctlu_i4","timezone":"Nowhere/Atlantis"}
{"user_id":"ctlu_i5","preferences":{"fax":true}}
{"user_id":"ctlu_i6", oops}
{"user_id":"ctlu_i7","email":"a@example.org","email":"b@example.org"}
{"user_id":"ctlu_i8","first_name":"Grace","devices":[{"platform":"ios","token":"ctlu-tok-c"}],"preferences":{"reminders.sms":false}}
{"user_id":"ctlu_i9","devices":[{"platform":"blackberry","token":"x"}]}
{"first_name":"nobody"}
{"user_id":"ctlu_i10","preferences":{"marketing.fax":true}}
EOF
printf '{"user_id":"ctlu_i11","first_name":"\xc3\x28"}\n' >> "$tmp/users.jsonl"
run user import "$tmp/users.jsonl"
is "$rc" 1 "an import with rejected lines exits 1"
is "$out" "$tmp/users.jsonl: 2 added, 0 updated, 0 unchanged, 10 rejected" "its summary counts them"
is "$(grep -c . "$tmp/err")" 10 "one message per rejected line"
like "$err" "users.jsonl:2: email: not a valid email address" "bad email, with its line number"
like "$err" "users.jsonl:4: phone: not an E.164 phone number" "bad phone (line numbers count blank lines)"
like "$err" "users.jsonl:5: timezone: unknown time zone" "bad time zone"
like "$err" "users.jsonl:6: preferences.fax: not a channel \(email, sms, push, webhook\) or a configured category" \
	"unknown preference key"
like "$err" "users.jsonl:7: json: " "bad JSON"
like "$err" "users.jsonl:8: email: duplicate key" "a duplicate key"
like "$err" "users.jsonl:10: devices\[0\]\.platform: must be \"ios\" or \"android\"" "a bad device platform"
like "$err" "users.jsonl:11: user_id: required" "a record without user_id"
like "$err" "users.jsonl:12: preferences.marketing.fax: 'fax' is not a channel" "a bad CATEGORY.CHANNEL key"
like "$err" "users.jsonl:13: first_name: .*UTF-8" "invalid UTF-8"
run user show ctlu_i1
is "$out" '{"user_id":"ctlu_i1","first_name":"Ada","last_name":"Lovelace","email":"ada@example.org","phone":"+441632960961","timezone":"Europe/London","locale":"en","webhook_url":"https://hooks.example.org/herald","devices":[{"platform":"android","token":"ctlu-tok-a"},{"platform":"ios","token":"ctlu-tok-b"}],"preferences":{"email":true,"marketing":false,"marketing.push":true,"sms":false},"quiet_hours":"22:00-07:00"}' \
	"the valid lines were imported in full"
is "$(sql "SELECT COUNT(*) FROM users WHERE user_id IN ('ctlu_i2','ctlu_i3','ctlu_i4','ctlu_i5','ctlu_i7','ctlu_i9','ctlu_i10','ctlu_i11')")" 0 \
	"and no rejected line was"
sql "SELECT * FROM users u LEFT JOIN devices d USING (user_id) LEFT JOIN preferences p USING (user_id) LEFT JOIN quiet_hours q USING (user_id) WHERE u.user_id LIKE 'ctlu\\_i%' ORDER BY 1, d.token, p.pref_key" > "$tmp/before"
run user import "$tmp/users.jsonl"
is "$out" "$tmp/users.jsonl: 0 added, 0 updated, 2 unchanged, 10 rejected" "importing again changes nothing"
sql "SELECT * FROM users u LEFT JOIN devices d USING (user_id) LEFT JOIN preferences p USING (user_id) LEFT JOIN quiet_hours q USING (user_id) WHERE u.user_id LIKE 'ctlu\\_i%' ORDER BY 1, d.token, p.pref_key" > "$tmp/after"
cmp -s "$tmp/before" "$tmp/after"
ok $? "every row (updated_at included) is as it was"

# a second file: fields absent stay, null clears, sets replace, a token moves
cat > "$tmp/update.jsonl" <<'EOF'
{"user_id":"ctlu_i8","devices":[{"platform":"ios","token":"ctlu-tok-c"},{"platform":"android","token":"ctlu-tok-b"}]}
{"user_id":"ctlu_i1","phone":null,"timezone":null,"preferences":{"sms":true},"quiet_hours":null}
EOF
run user import - < "$tmp/update.jsonl"
is "$rc/$out" "0/stdin: 0 added, 2 updated, 0 unchanged, 0 rejected" "import from stdin (-)"
is "$(sql "SELECT user_id FROM devices WHERE token = 'ctlu-tok-b'")" "ctlu_i8" "a token met in an import moves to that user"
is "$(sql "SELECT token FROM devices WHERE user_id = 'ctlu_i1'")" "ctlu-tok-a" "and leaves the other user's devices"
run user show ctlu_i1
is "$out" '{"user_id":"ctlu_i1","first_name":"Ada","last_name":"Lovelace","email":"ada@example.org","timezone":"UTC","locale":"en","webhook_url":"https://hooks.example.org/herald","devices":[{"platform":"android","token":"ctlu-tok-a"}],"preferences":{"sms":true}}' \
	"null cleared phone and quiet hours, timezone went back to UTC, preferences replaced, the rest kept"
is "$(sql "SELECT first_name, IFNULL(phone,'-'), timezone FROM users WHERE user_id = 'ctlu_i8'")" "Grace	-	UTC" \
	"a record without a field keeps the stored value"
run user show ctlu_i8
is "$out" '{"user_id":"ctlu_i8","first_name":"Grace","timezone":"UTC","devices":[{"platform":"android","token":"ctlu-tok-b"},{"platform":"ios","token":"ctlu-tok-c"}],"preferences":{"reminders.sms":false}}' \
	"user show lists the moved device (devices in the order first registered)"
run user import "$tmp/no-such-file"
is "$rc" 66 "a missing import file: EX_NOINPUT"
like "$err" "no-such-file: No such file or directory" "naming it"
run user show ctlu_i1
"$ctl" user show ctlu_i1 | "$ctl" user import - > /dev/null
is "$?/$("$ctl" user show ctlu_i1)" "0/$out" "user show output imports back unchanged"

# --- prefs ----------------------------------------------------------------------------------
run prefs set ctlu_ada email=off sms=true marketing=off marketing.push=on reminders.sms=false
is "$rc/$out" '0/{"email":false,"marketing":false,"marketing.push":true,"reminders.sms":false,"sms":true}' \
	"prefs set prints the preferences afterwards"
run prefs get ctlu_ada
is "$out" '{"email":false,"marketing":false,"marketing.push":true,"reminders.sms":false,"sms":true}' "prefs get"
is "$(sql "SELECT pref_key, enabled FROM preferences WHERE user_id = 'ctlu_ada' ORDER BY pref_key" | tr '\t\n' '= ')" \
	"email=0 marketing=0 marketing.push=1 reminders.sms=0 sms=1 " "one row per key"
run prefs set ctlu_ada marketing=default sms=on
is "$out" '{"email":false,"marketing.push":true,"reminders.sms":false,"sms":true}' "key=default deletes the row"
run prefs set ctlu_ada fax=on
is "$rc/$err" "64/heraldctl prefs set: key 'fax': not a channel (email, sms, push, webhook) or a configured category (heraldctl prefs --help shows the usage)" \
	"an unknown key: EX_USAGE naming it"
run prefs set ctlu_ada email=maybe
is "$rc" 64 "a bad value: EX_USAGE"
like "$err" "key 'email': value 'maybe'" "naming key and value"
run prefs set ctlu_ada digest=off
is "$rc" 64 "a category the config does not have is refused"
printf 'categories = { digest = { priority = 2; }; };\n' > "$tmp/herald.conf"
run -c "$tmp/herald.conf" prefs set ctlu_ada digest=off digest.email=on
is "$rc/$out" '0/{"digest":false,"digest.email":true,"email":false,"marketing.push":true,"reminders.sms":false,"sms":true}' \
	"a category configured in the file is accepted"
run prefs set ctlu_nobody email=off
is "$rc/$err" "1/heraldctl prefs set: no user 'ctlu_nobody'" "prefs set on an unknown user: exit 1"
run prefs get ctlu_nobody
is "$rc" 1 "prefs get on an unknown user: exit 1"

# --- pause / unpause ----------------------------------------------------------------------
run pause ctlu_ada
is "$rc/$out" "0/user ctlu_ada paused until unpaused" "pause without --until"
is "$(sql "SELECT paused_until FROM users WHERE user_id = 'ctlu_ada'")" "9999-12-31 23:59:59.000000" \
	"stored as 9999-12-31 23:59:59"
run pause ctlu_ada --until 2099-06-01T12:00:00+02:00
is "$(sql "SELECT paused_until FROM users WHERE user_id = 'ctlu_ada'")" "2099-06-01 10:00:00.000000" \
	"--until is stored in UTC"
like "$("$ctl" user show ctlu_ada)" '"paused_until":"2099-06-01T10:00:00.000000Z"}$' "user show prints paused_until"
run pause ctlu_ada --until yesterday
is "$rc" 64 "a bad --until: EX_USAGE"
like "$err" "--until 'yesterday': not an RFC 3339 time" "naming it"
run pause ctlu_ada --until 2001-01-01T00:00:00Z
like "$rc/$err" "64/.*in the past" "a past --until is refused"
run unpause ctlu_ada
is "$rc/$(sql "SELECT IFNULL(paused_until, 'NULL') FROM users WHERE user_id = 'ctlu_ada'")" "0/NULL" "unpause clears it"
run pause ctlu_nobody
is "$rc" 1 "pause of an unknown user: exit 1"

# --- user delete --------------------------------------------------------------------------
for u in ctlu_ada ctlu_json; do
	sql "INSERT INTO notifications (transaction_id, channel, status, user_id, client_id, category, priority) VALUES (UUID(), 'email', 'done', '$u', 'c', 'notifications', 4)"
done
sql "INSERT INTO notification_audit (notification_id, new_status, host, worker) SELECT id, 'done', 'h', 'w' FROM notifications WHERE user_id = 'ctlu_ada'"
run user delete ctlu_json
is "$rc/$out" "0/deleted user ctlu_json" "user delete"
is "$(sql "SELECT (SELECT COUNT(*) FROM users WHERE user_id = 'ctlu_json'), (SELECT COUNT(*) FROM devices WHERE token = 'ctlu-tok-j'), (SELECT COUNT(*) FROM preferences WHERE user_id = 'ctlu_json'), (SELECT COUNT(*) FROM notifications WHERE user_id = 'ctlu_json')")" \
	"0	0	0	1" "removes the user, its devices and preferences, and keeps its history"
run user delete ctlu_ada --erase-history
is "$rc/$out" "0/deleted user ctlu_ada and 1 notification row" "user delete --erase-history"
is "$(sql "SELECT (SELECT COUNT(*) FROM notifications WHERE user_id = 'ctlu_ada'), (SELECT COUNT(*) FROM quiet_hours WHERE user_id = 'ctlu_ada'), (SELECT COUNT(*) FROM notification_audit a LEFT JOIN notifications n ON n.id = a.notification_id WHERE n.id IS NULL)")" \
	"0	0	0" "removes its notifications, and their audit rows with them"
run user delete ctlu_ada
is "$rc/$err" "1/heraldctl user delete: no user 'ctlu_ada'" "deleting an unknown user: exit 1"

# --- errors of the environment ------------------------------------------------------------
run user frobnicate
is "$rc" 64 "an unknown user subcommand: EX_USAGE"
HERALD_MYSQL_URL=mysql://herald:herald@127.0.0.1:1/herald run user show ctlu_i1
is "$rc" 69 "no database server: EX_UNAVAILABLE"
HERALD_MYSQL_URL= run user show ctlu_i1
is "$rc" 78 "no MySQL URL: EX_CONFIG"
done_testing
