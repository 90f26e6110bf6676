#!/usr/bin/env bash
# ctl_template.t - heraldctl template add|show|list|test (SPEC §6) against the private MariaDB
# and broker of t/run: fields per channel, versions (also under concurrent adds), the locale
# fallback of workers/render.c, refused input that stores nothing, SQL metacharacters kept as
# they are, and one webhook worker (heraldd --worker webhook) sending the latest version to a
# real local receiver (t/lib/receiver.py) and recording that version. Names start with "ctlt".
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
need_ctl
plan 69

tmp=$(mktemp -d /tmp/herald-ctl-template.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
sql_init "$tmp"
p=ctlt$$
cleanup() {
	wk_kill worker
	for pid in ${lpid:-} ${rpids:-}; do kill "$pid" 2> /dev/null; done
	[ -n "${rpid:-}" ] && kill "$rpid" 2> /dev/null && wait "$rpid" 2> /dev/null
	sql "DELETE FROM templates WHERE name LIKE 'ctlt%'; DELETE FROM users WHERE user_id LIKE 'ctlt%'" 2> /dev/null
	"$peek" "$HERALD_AMQP_URL" herald.webhook.v1 > /dev/null 2>&1
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "heraldctl db migrate failed"
sql "DELETE FROM templates WHERE name LIKE 'ctlt%'; DELETE FROM users WHERE user_id LIKE 'ctlt%'"

secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
conf=$tmp/herald.conf
cat > "$conf" <<EOF
limits = { sms_body_max = 20; };
log = { level = "info"; };
channels = { webhook = { allow_private = true;
	providers = ( { name = "hooks"; type = "webhook"; secrets = [ "$secret" ]; timeout = 2; } ); }; };
EOF
chmod 600 "$conf"
export HERALD_CONFIG=$conf

# run ARGS - heraldctl ARGS; stdout in $out, stderr in $err, status in $rc
run() { "$ctl" "$@" > "$tmp/out" 2> "$tmp/err"; rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err"); }
# j JSON FILTER - jq -r FILTER of JSON
j() { printf '%s' "$1" | jq -r "$2"; }
# stored NAME - "channel/locale/version ..." of NAME's rows
stored() {
	sql "SELECT CONCAT(channel, '/', locale, '/', version) FROM templates WHERE name = '$1'
		ORDER BY channel, locale, version" | tr '\n' ' ' | sed 's/ $//'
}

sql "INSERT INTO users (user_id, first_name, last_name, email, phone, locale, timezone) VALUES
	('${p}_ada', 'Ada', 'Lovelace', 'ada@example.org', '+441632960961', NULL, 'Europe/London'),
	('${p}_frca', 'Émile', NULL, NULL, NULL, 'fr-CA', 'UTC'),
	('${p}_frbe', 'Luc', NULL, NULL, NULL, 'fr-BE', 'UTC'),
	('${p}_de', 'Jana', NULL, NULL, NULL, 'de', 'UTC')" || bail "cannot insert users"

# --- add, show, test per channel -------------------------------------------------------------
run template add "${p}_mail" --channel email --subject 'Order {{order}}' \
	--body $'Hi {{first_name}},\nyour order {{order}} shipped.' --html '<p>Hi {{first_name}}, {{note}}</p>'
is "$rc/$out" "0/{\"name\":\"${p}_mail\",\"channel\":\"email\",\"locale\":\"\",\"version\":1}" \
	"add email: prints name, channel, locale and version 1"
run template show "${p}_mail" --channel email
is "$rc/$(j "$out" '[.version, .subject, .body, .html] | @json')" \
	'0/[1,"Order {{order}}","Hi {{first_name}},\nyour order {{order}} shipped.","<p>Hi {{first_name}}, {{note}}</p>"]' \
	"show email: the stored subject, body and html"
like "$(j "$out" .created_at)" '^20[0-9-]+T[0-9:.]+Z$' "show: created_at in RFC 3339"
run template test "${p}_mail" --channel email --user "${p}_ada" --data '{"order":"A-42","note":"<b>&</b>"}'
is "$rc/$(j "$out" '[.version, .locale, .subject, .body, .html] | @json')" \
	'0/[1,"","Order A-42","Hi Ada,\nyour order A-42 shipped.","<p>Hi Ada, &lt;b&gt;&amp;&lt;/b&gt;</p>"]' \
	"test email: rendered from data and profile, HTML escaped in html only"

run template add "${p}_sms" --channel sms --body 'Code {{code}}'
is "$rc/$(j "$out" .version)" "0/1" "add sms"
run template test "${p}_sms" --channel sms --user "${p}_ada" --data '{"code":"1234"}'
is "$rc/$(j "$out" '[.body, .subject] | @json')" '0/["Code 1234",null]' "test sms: the body (sms has no subject)"
run template test "${p}_sms" --channel sms --user "${p}_ada" --data '{"code":"12345678901234567890"}'
like "$rc/$err" '^65/.*sms.body: 25 characters after rendering, over limits.sms_body_max 20' \
	"test sms: a body over the config's limit is a render error (exit 65)"

run template add "${p}_push" --channel push --subject 'Hello {{first_name}}' --body 'Order {{order}}' \
	--data '{"screen":"orders","n":[1,2]}'
is "$rc/$(j "$out" .version)" "0/1" "add push with data"
run template test "${p}_push" --channel push --user "${p}_ada" --data '{"order":"B-7"}'
is "$rc/$(j "$out" '[.subject, .body, .data] | @json')" '0/["Hello Ada","Order B-7",{"screen":"orders","n":[1,2]}]' \
	"test push: title, body and the data object"

run template add "${p}_hook" --channel webhook --subject 'order.{{state}}'
is "$rc/$(j "$out" .version)" "0/1" "add webhook"
run template show "${p}_hook" --channel webhook
is "$(j "$out" 'keys | join(",")')" "channel,created_at,locale,name,subject,version" \
	"show webhook: only the webhook's field (subject, the event)"

# --- versions ------------------------------------------------------------------------------------
run template add "${p}_hook" --channel webhook --subject 'v2 order.{{state}}'
run template add "${p}_hook" --channel webhook --subject 'v3 {{first_name}} {{order}}'
is "$(j "$out" .version)" 3 "a third add is version 3"
run template show "${p}_hook" --channel webhook
is "$(j "$out" '[.version, .subject] | @json')" '[3,"v3 {{first_name}} {{order}}"]' "show: the latest by default"
run template show "${p}_hook" --channel webhook --version 1
is "$(j "$out" '[.version, .subject] | @json')" '[1,"order.{{state}}"]' "show --version 1: the first"
run template show "${p}_hook" --channel webhook --version 9
like "$rc/$err" "^1/.*no template '${p}_hook' for channel webhook, locale '', version 9" \
	"show a version that does not exist: exit 1, named"
run template show "${p}_hook" --channel sms
is "$rc" 1 "show for a channel without that template: exit 1"

# eight adds at once get distinct versions: a session holds the table locked until all eight
# wait to read the highest version, so that they read it together and collide on the insert
mkfifo "$tmp/lock.in"
"$_sql_client" --defaults-file="$_sql_cnf" -N -B -n "$_sql_db" < "$tmp/lock.in" > "$tmp/lock.out" 2>&1 &
lpid=$!
exec 9> "$tmp/lock.in"
echo "LOCK TABLES templates WRITE; SELECT 'locked';" >&9
for _ in $(seq 100); do grep -q locked "$tmp/lock.out" && break; sleep 0.1; done
for i in 1 2 3 4 5 6 7 8; do
	"$ctl" template add "${p}_race" --channel webhook --subject "r$i" > "$tmp/race$i" 2> "$tmp/race$i.err" &
	rpids="${rpids:-} $!"
done
for _ in $(seq 200); do
	[ "$(sql "SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE '%MAX(version)%' AND id <> CONNECTION_ID()")" = 8 ] && break
	sleep 0.05
done
is "$(sql "SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE '%MAX(version)%' AND id <> CONNECTION_ID()")" 8 \
	"eight adds wait for the locked table"
echo "UNLOCK TABLES;" >&9
exec 9>&-
wait $rpids $lpid
is "$(cat "$tmp"/race[1-8] | jq -r .version | sort -n | tr '\n' ' ')" "1 2 3 4 5 6 7 8 " \
	"eight concurrent adds: versions 1 to 8, each once"
is "$(sql "SELECT COUNT(*), COUNT(DISTINCT version), COUNT(DISTINCT subject) FROM templates WHERE name = '${p}_race'" | tr '\t' /)" \
	"8/8/8" "eight rows stored, none lost"
want=$(for i in 1 2 3 4 5 6 7 8; do echo "$(jq -r .version "$tmp/race$i"):r$i"; done | sort -n | paste -sd, -)
is "$(sql "SELECT GROUP_CONCAT(CONCAT(version, ':', subject) ORDER BY version) FROM templates WHERE name = '${p}_race'")" \
	"$want" "each add's printed version holds its own subject"
is "$(cat "$tmp"/race[1-8].err)" "" "no add reported an error"

# --- list --------------------------------------------------------------------------------------
run template add "${p}_hook" --channel webhook --locale fr --subject 'fr {{first_name}}'
run template list --name "${p}_"
is "$rc/$(printf '%s\n' "$out" | jq -r '"\(.name)|\(.channel)|\(.locale)|\(.version)|\(.versions)"' | tr '\n' ' ')" \
	"0/${p}_hook|webhook||3|3 ${p}_hook|webhook|fr|1|1 ${p}_mail|email||1|1 ${p}_push|push||1|1 ${p}_race|webhook||8|8 ${p}_sms|sms||1|1 " \
	"list --name: one line per (name, channel, locale), latest version and count"
run template list --name "${p}_" --channel webhook
is "$(printf '%s\n' "$out" | jq -r .name | sort -u | tr '\n' ' ')" "${p}_hook ${p}_race " "list --channel"
run template list --name "${p}_" --channel webhook --format table
is "$(printf '%s\n' "$out" | head -1 | tr -s ' ')" "NAME CHANNEL LOCALE VERSION VERSIONS UPDATED" "table: header"
like "$(printf '%s\n' "$out" | sed -n 2p)" "^${p}_hook +webhook +\(default\) +3 +3 +20[0-9-]+T" "table: a row, the default locale named"
is "$(printf '%s\n' "$out" | wc -l)" 4 "table: header and three rows"
run template list --format xml
like "$rc/$err" "^64/.*--format 'xml': json or table" "list --format xml: refused"

# --- locale fallback (render.c: locale, its language, then the default) -------------------------
run template add "${p}_loc" --channel sms --body 'default {{first_name}}'
run template add "${p}_loc" --channel sms --locale fr --body 'fr {{first_name}}'
run template add "${p}_loc" --channel sms --locale fr-CA --body 'fr-CA {{first_name}}'
run template add "${p}_loc" --channel sms --locale fr-CA --body 'fr-CA v2 {{first_name}}'
r=""
for u in frca frbe de ada; do
	run template test "${p}_loc" --channel sms --user "${p}_$u"
	r="$r$(j "$out" '"\(.locale):\(.version):\(.body)"')|"
done
is "$r" "fr-CA:2:fr-CA v2 Émile|fr:1:fr Luc|:1:default Jana|:1:default Ada|" \
	"fr-CA user: fr-CA (latest); fr-BE: the language fr; de and no locale: the default"
run template test "${p}_loc" --channel sms --user "${p}_ada" --locale fr-CA
is "$(j "$out" '"\(.user_locale):\(.locale):\(.body)"')" "fr-CA:fr-CA:fr-CA v2 Ada" "test --locale: as if the user's locale were fr-CA"
run template add "${p}_fronly" --channel sms --locale fr --body 'fr only'
run template test "${p}_fronly" --channel sms --user "${p}_de"
like "$rc/$err" "^1/.*template ${p}_fronly: none stored for channel sms" \
	"no version for the locale, its language or the default: exit 1, named"

# --- refused input stores nothing -------------------------------------------------------------
run template add "${p}_bad" --channel fax --body x
like "$rc/$err" "^64/.*--channel 'fax': unknown channel" "unknown channel: exit 64, named"
run template add "${p}_bad" --channel email --body x
like "$rc/$err" "^64/.*email templates need --subject" "email without a subject: refused, naming it"
run template add "${p}_bad" --channel webhook
like "$rc/$err" "^64/.*webhook templates need --subject \(the event\)" "webhook without an event: refused"
run template add "${p}_bad" --channel sms --body x --html '<p>x</p>'
like "$rc/$err" "^64/.*--html: sms templates have no html" "a field the channel does not have: refused"
run template add "${p}_bad" --channel email --subject s --body $'Hi {{first_name}}\n{{#items}}x{{/item}}'
like "$rc/$err" '^65/.*--body: line 2, byte 29: close "item" does not match section "items"' \
	"bad syntax in --body: exit 65, naming the field, line and byte"
printf 'Hello\n\nthere {{name}\n' > "$tmp/body.txt"
run template add "${p}_bad" --channel sms --body-file "$tmp/body.txt"
like "$rc/$err" "^65/.*--body-file $tmp/body.txt: line 3, byte 13: unclosed tag" \
	"bad syntax in --body-file: the file and the line"
run template add "${p}_bad" --channel email --subject '{{#a}}' --body x
like "$rc/$err" '^65/.*--subject: line 1, byte 0: unclosed section "a"' "bad syntax in --subject"
run template add "${p}_bad" --channel push --body x --data '["a"]'
like "$rc/$err" "^65/.*--data: must be a JSON object" "data not an object: refused"
run template add "${p}_bad" --channel push --body x --data '{"a":1,}'
like "$rc/$err" "^65/.*--data: .*byte 8" "data not JSON: refused with the byte"
run template add "${p}_bad" --channel email --subject $'two\nlines' --body x
like "$rc/$err" "^65/.*--subject: byte 3: a control character" "a subject with a line break: refused"
run template add "${p}_bad" --channel webhook --subject ''
like "$rc/$err" "^65/.*--subject: empty" "an empty field: refused"
run template add "${p}_bad" --channel sms --body-file "$tmp/nonexistent"
like "$rc/$err" "^66/.*--body-file $tmp/nonexistent: No such file" "a missing --body-file: exit 66"
run template add "${p}_bad" --channel sms --body x --body-file "$tmp/body.txt"
like "$rc/$err" "^64/.*--body and --body-file: give one of them" "--body with --body-file: refused"
run template add "${p}_bad" --channel sms --locale 'fr CA' --body x
like "$rc/$err" "^64/.*--locale 'fr CA': not a locale tag" "a bad locale: refused"
run template add "ctlt'; DROP TABLE templates; --" --channel sms --body x
like "$rc/$err" "^64/.*NAME 'ctlt'; DROP TABLE templates; --': must be 1-64 characters" \
	"a name a request could not use: refused"
is "$(stored "${p}_bad")/$(sql "SELECT COUNT(*) FROM templates WHERE name LIKE 'ctlt''%'")" "/0" \
	"nothing was stored by the refused adds"
run template test "${p}_sms" --channel sms --user "${p}_nobody"
like "$rc/$err" "^1/.*no user '${p}_nobody'" "test for an unknown user: exit 1, named"
run template test "${p}_sms" --channel sms --user "${p}_ada" --data '[1]'
like "$rc/$err" "^65/.*--data: must be a JSON object" "test --data not an object: refused"
run template test "${p}_sms" --channel sms --user "${p}_ada"
like "$rc/$err" "^65/.*template ${p}_sms v1 body: line 1, byte 5: missing variable \"code\"" \
	"test with a variable missing: exit 65, naming template, version, field and variable"
run template show "${p}_sms"
like "$rc/$err" "^64/.*--channel is required" "show without --channel: refused"
run template frob
like "$rc/$err" "^64/.*unknown subcommand 'frob'" "an unknown subcommand: refused"
run template --help
like "$rc/$out" "^0/usage: heraldctl template add NAME --channel CH" "template --help"

# --- SQL metacharacters are data ---------------------------------------------------------------
meta=$'it\'s "q" \\ \\\' ; DROP TABLE templates; -- % _ \\n {{first_name}} `x` $(id)'
run template add "${p}_m.e-t_a" --channel email --subject "$meta" --body "$meta" --html "$meta"
is "$rc/$(j "$out" .version)" "0/1" "add with quotes, backslashes, ; -- % _ in every field"
run template show "${p}_m.e-t_a" --channel email
is "$(j "$out" .subject)" "$meta" "show: the subject exactly as given"
is "$(sql "SELECT body = subject AND html = subject FROM templates WHERE name = '${p}_m.e-t_a'")" 1 \
	"stored: body and html identical to it"
is "$(sql "SHOW TABLES LIKE 'templates'")/$(stored "${p}_hook")" "templates/webhook//1 webhook//2 webhook//3 webhook/fr/1" \
	"the templates table and its other rows are still there"
run template test "${p}_m.e-t_a" --channel email --user "${p}_ada"
is "$(j "$out" .subject)" "${meta/\{\{first_name\}\}/Ada}" "test: rendered, the rest untouched"
sql "INSERT INTO templates (name, channel, locale, version, subject) VALUES ('ctltXother', 'webhook', '', 1, 'x')"
run template list --name 'ctlt_'
is "$(printf '%s\n' "$out" | jq -r .name | grep -c ctltXother)" 0 "list --name: '_' is a character, not a LIKE wildcard"
run template list --name "${p}_m.e"
is "$(printf '%s\n' "$out" | jq -r .name)" "${p}_m.e-t_a" "list --name with '.', '-', '_'"

# --- end to end: a webhook worker sends the latest version and records it -----------------------
wk_receiver --secret "$secret"
sql "UPDATE users SET webhook_url = '$hook/ok' WHERE user_id IN ('${p}_ada', '${p}_frbe')"
wk_start worker --worker webhook
run template add "${p}_e2e" --channel webhook --subject 'v1 {{first_name}} {{order}}'
run template add "${p}_e2e" --channel webhook --subject 'v2 {{first_name}} {{order}}'
run template add "${p}_e2e" --channel webhook --locale fr --subject 'fr {{first_name}} {{order}}'
tx=$(wk_tx "$("$send" --json "{\"user_id\":\"${p}_ada\",\"template\":\"${p}_e2e\",\"channels\":{\"webhook\":{}},\"data\":{\"order\":\"A-42\"}}")")
like "$tx" '^[0-9a-f-]{36}$' "sent a notification naming the template"
is "$(wk_wait "$tx" webhook 20)" done "the worker delivered it"
h=$(grep "$tx" "$tmp/hooks.jsonl" | tail -1)
is "$(j "$h" .json.event)/$(j "$h" .sig_ok)" "v2 Ada A-42/true" "the receiver got the latest version, rendered (signed)"
run template test "${p}_e2e" --channel webhook --user "${p}_ada" --data '{"order":"A-42"}'
is "$(j "$out" .subject)" "$(j "$h" .json.event)" "template test rendered exactly what the worker sent"
is "$(sql "SELECT template_version FROM notifications WHERE transaction_id = '$tx' AND channel = 'webhook'")" 2 \
	"the notification records version 2"
is "$(sql "SELECT JSON_VALUE(a.detail, '$.template_version') FROM notification_audit a JOIN notifications n
	ON n.id = a.notification_id WHERE n.transaction_id = '$tx' AND a.new_status = 'done'")" 2 \
	"the done audit row's detail has template_version 2"
run template add "${p}_e2e" --channel webhook --subject 'v3 {{first_name}} {{order}}'
tx=$(wk_tx "$("$send" --json "{\"user_id\":\"${p}_ada\",\"template\":\"${p}_e2e\",\"channels\":{\"webhook\":{}},\"data\":{\"order\":\"A-43\"}}")")
tx2=$(wk_tx "$("$send" --json "{\"user_id\":\"${p}_frbe\",\"template\":\"${p}_e2e\",\"channels\":{\"webhook\":{}},\"data\":{\"order\":\"A-44\"}}")")
is "$(wk_wait "$tx" webhook 20)/$(wk_wait "$tx2" webhook 20)" done/done "two more delivered"
is "$(j "$(grep "$tx" "$tmp/hooks.jsonl" | tail -1)" .json.event)/$(sql "SELECT template_version FROM notifications WHERE transaction_id = '$tx'")" \
	"v3 Ada A-43/3" "a version added while the worker runs is the next one sent, and recorded"
is "$(j "$(grep "$tx2" "$tmp/hooks.jsonl" | tail -1)" .json.event)/$(sql "SELECT JSON_VALUE(a.detail, '$.template_version') FROM notification_audit a JOIN notifications n ON n.id = a.notification_id WHERE n.transaction_id = '$tx2' AND a.new_status = 'done'")" \
	"fr Luc A-44/1" "a fr-BE user gets the fr template, its version 1 in the audit"
wk_stop worker
is $? 0 "worker: SIGTERM exits 0"
done_testing
