#!/usr/bin/env bash
# sms.t - the sms channel's http provider end to end: heraldd --worker sms against the private
# broker and database and a real local SMS API (t/lib/sms_peer.py), which records what it got
# (method, path, headers, credentials, body parsed as a form or JSON) and answers as told.
# Covered: a JSON provider (PUT, template, bearer, headers, a nested message id), a form provider
# (default body, basic auth), GET with the form in the query, the sender id (client, default,
# none), escaping of hostile text in form, JSON and query, the message id stored, the Twilio
# preset, 400 / 401 failed at once, 429 with Retry-After and a timeout retried, an answer that
# quotes the request kept out of the detail, failover (refused, 500, then a provider that
# delivers), and configuration errors refused at start.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
plan 78

tmp=$(mktemp -d /tmp/herald-sms-t.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
sql_init "$tmp"
ppid_=
cleanup() {
	wk_kill worker
	[ -n "$ppid_" ] && kill "$ppid_" 2> /dev/null && wait "$ppid_" 2> /dev/null
	for q in herald.sms.v1 herald.sms.v1.parked; do
		"$peek" "$HERALD_AMQP_URL" "$q" > /dev/null 2>&1
	done
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "db migrate failed"

# --- the peer ---------------------------------------------------------------------------------
SID=ACtest0123456789abcdef0123456789ab
TWPW=tw-token-9f8e7d
BASICPW=pw-secret-1a2b
TOKEN=tok-123-bearer-xyz
log=$tmp/peer.jsonl
mode=$tmp/mode
echo 201 > "$mode"
/usr/bin/python3 "$HERALD_SRCDIR/t/lib/sms_peer.py" --log "$log" --port-file "$tmp/pport" \
	--basic "user1:$BASICPW" --basic "$SID:$TWPW" --bearer "$TOKEN" --mode-file "$mode" \
	> "$tmp/peer.log" 2>&1 &
ppid_=$!
for _ in $(seq 50); do [ -s "$tmp/pport" ] && break; sleep 0.1; done
[ -s "$tmp/pport" ] || bail "sms_peer.py did not start: $(cat "$tmp/peer.log")"
base="http://127.0.0.1:$(cat "$tmp/pport")"
dead=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

p=sms$$
sql "INSERT INTO users (user_id, first_name, phone, timezone) VALUES
	('${p}_a', 'Ada', '+15550100001', 'UTC'), ('${p}_b', 'Bob', '+15550100002', 'UTC'),
	('${p}_x', 'Xi', 'not-a-phone', 'UTC')" || bail "cannot insert users"

# --- helpers ----------------------------------------------------------------------------------
# the producer's config: the test's broker user may send as client shop
printf 'broker = { users = { guest = [ "guest", "shop" ]; }; };\n' > "$tmp/send.conf"
# mkconf NAME DEFAULTS PROVIDERS - a config whose sms channel has PROVIDERS (libconfig list
# body); DEFAULTS is the defaults group's body
mkconf() {
	cat > "$tmp/$1.conf" <<EOF
broker = { prefetch = 20; confirm_timeout = 10; };
retry = { tiers = [ 1, 2 ]; };
caps = { sms = 0; };
log = { level = "info"; };
defaults = { $2 };
clients = { shop = { sms_sender = "SHOP"; }; };
channels = { sms = { tls_verify = true; providers = ( $3 ); }; };
EOF
	chmod 600 "$tmp/$1.conf"
}
# run NAME - (re)start the sms worker with config NAME
run() { wk_stop worker; wk_start worker --worker sms -c "$tmp/$1.conf"; }
# sms USER BODY [CLIENT [DATA]] - send one SMS request; print its transaction id
sms() {
	local j
	j=$(jq -nc --arg u "$1" --arg b "$2" --arg c "${3:-}" --argjson d "${4:-null}" \
		'{user_id:$u, channels:{sms:{body:$b}}} + (if $c == "" then {} else {client_id:$c} end)
		 + (if $d == null then {} else {data:$d} end)')
	wk_tx "$("$send" -c "$tmp/send.conf" --json "$j")"
}
# req TX JQ - JQ over the peer's records of TX's attempts (by Idempotency-Key), one a line
req() { jq -c --arg k "$1:sms" "select(.headers[\"idempotency-key\"] == \$k) | $2" "$log"; }
# got TX - how many requests the peer got for TX
got() { req "$1" .path | grep -c . ; }
# detail TX - the notification row's detail; field TX KEY - one key of it
# sqlraw SQL - as sql, without batch mode's escaping of backslashes (a JSON detail as stored)
sqlraw() { "$_sql_client" --defaults-file="$_sql_cnf" -N -B -r -e "$1" "$_sql_db"; }
detail() { sqlraw "SELECT detail FROM notifications WHERE transaction_id = '$1'"; }
field() { detail "$1" | jq -r ".$2 // empty"; }
# msgid TX - the provider message id stored
msgid() { sql "SELECT IFNULL(provider_message_id, 'NULL') FROM notifications WHERE transaction_id = '$1'"; }
# audit_detail TX STATUS - the detail of TX's audit row that went to STATUS
audit_detail() {
	sqlraw "SELECT a.detail FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
		WHERE n.transaction_id = '$1' AND a.new_status = '$2' ORDER BY a.id LIMIT 1"
}
# the hostile text: form and JSON metacharacters, a newline, non-ASCII, a template tag
HOSTILE=$'Tom & Jerry = "friends" \\ C:\\path\nline 2: é ü 日本 😀 100%25 +plus a=b&c=d {{to}} \'q\''

# --- a JSON provider: PUT, body template, bearer, headers, a nested message id ----------------
mkconf json 'sms_sender = "Herald";' "{ name = \"jsonp\"; type = \"http\"; url = \"$base/secure/nested\";
	method = \"PUT\"; content_type = \"json\"; auth = \"bearer\"; token = \"$TOKEN\";
	headers = [ \"X-Api-Version: 2\", \"Accept: application/json\" ];
	body = \"{\\\"to\\\":\\\"{{to}}\\\",\\\"from\\\":\\\"{{from}}\\\",\\\"text\\\":\\\"{{body}}\\\",\\\"ref\\\":\\\"{{id}}\\\"}\";
	message_id_field = \"messages.0.id\"; timeout = 5; }"
run json
tx=$(sms "${p}_a" 'Hello {{first_name}}')
like "$tx" '^[0-9a-f-]{36}$' "sent an SMS request"
is "$(wk_wait "$tx" sms)" done "json provider: done"
is "$(got "$tx")" 1 "the peer got it once"
is "$(req "$tx" '.method + " " + .path')" '"PUT /secure/nested"' "PUT to the configured URL"
is "$(req "$tx" '.headers["content-type"]')" '"application/json"' "Content-Type: application/json"
is "$(req "$tx" '.auth | [.scheme, .token] | join(" ")')" "\"bearer $TOKEN\"" "bearer token sent"
is "$(req "$tx" '[.headers["x-api-version"], .headers.accept] | join(",")')" '"2,application/json"' \
	"configured headers sent"
is "$(req "$tx" '.headers["idempotency-key"]')" "\"$tx:sms\"" "Idempotency-Key is the identity"
is "$(req "$tx" '.json | [.to, .from, .text, .ref] | join("|")')" "\"+15550100001|Herald|Hello Ada|$tx:sms\"" \
	"body template: to, default sender, rendered text, id"
id=$(req "$tx" .id | jq -r .)
like "$id" '^MSG-[0-9a-f]{12}$' "the peer answered a nested message id"
is "$(msgid "$tx")" "$id" "messages.0.id stored as the provider message id"
is "$(audit_detail "$tx" done | jq -r '[.provider, .provider_message_id] | join(" ")')" "jsonp $id" \
	"audit row: provider and provider_message_id"
tx=$(sms "${p}_b" 'hi' shop)
is "$(wk_wait "$tx" sms)" done "client shop: done"
is "$(req "$tx" .json.from)" '"SHOP"' "the client's sms_sender wins over the default"
tx=$(sms "${p}_a" '{{msg}}' '' "$(jq -nc --arg m "$HOSTILE" '{msg:$m}')")
is "$(wk_wait "$tx" sms)" done "hostile text (json): done"
is "$(req "$tx" '.json | keys | join(",")')" '"from,ref,text,to"' "hostile text: still the four JSON fields"
is "$(jq -c --arg k "$tx:sms" --arg t "$HOSTILE" 'select(.headers["idempotency-key"] == $k) | .json.text == $t' "$log")" true \
	"hostile text arrives intact in JSON (quotes, backslashes, newline, UTF-8, {{to}} not evaluated)"
tx=$(sms "${p}_x" 'hi')
is "$(wk_wait "$tx" sms)" failed "an address that is no E.164 number: failed"
is "$(field "$tx" error)/$(got "$tx")" "address is not an E.164 phone number/0" "named, nothing sent"

# --- a form provider: default body, basic auth; outcomes driven through /mode -----------------
mkconf form 'sms_sender = "Herald";' "{ name = \"formp\"; type = \"http\"; url = \"$base/secure/mode\";
	auth = \"basic\"; username = \"user1\"; password = \"$BASICPW\"; message_id_field = \"sid\";
	timeout = 1; }"
run form
echo 201 > "$mode"
tx=$(sms "${p}_b" 'Code {{first_name}}' shop)
is "$(wk_wait "$tx" sms)" done "form provider: done"
is "$(req "$tx" '.method + " " + .path')" '"POST /secure/mode"' "POST (the default) to the URL"
is "$(req "$tx" '.headers["content-type"]')" '"application/x-www-form-urlencoded"' \
	"Content-Type: application/x-www-form-urlencoded"
is "$(req "$tx" '.auth | [.scheme, .user, .password] | join(" ")')" "\"basic user1 $BASICPW\"" \
	"basic auth: user and password as configured"
is "$(req "$tx" .form)" '[["To","+15550100002"],["From","SHOP"],["Body","Code Bob"]]' \
	"default form body: To, From, Body"
id=$(req "$tx" .id | jq -r .)
is "$(msgid "$tx")" "$id" "sid of the JSON answer stored"
tx=$(sms "${p}_a" '{{msg}}' '' "$(jq -nc --arg m "$HOSTILE" '{msg:$m}')")
is "$(wk_wait "$tx" sms)" done "hostile text (form): done"
is "$(req "$tx" '.form | map(.[0]) | join(",")')" '"To,From,Body"' "hostile text: still three form fields"
is "$(req "$tx" '.body | [scan("&")] | length')" 2 "hostile text: no & of its own in the raw body"
is "$(jq -c --arg k "$tx:sms" --arg t "$HOSTILE" 'select(.headers["idempotency-key"] == $k) | .form[2][1] == $t' "$log")" \
	true "hostile text arrives intact in the form"

echo 400 > "$mode"
tx=$(sms "${p}_a" 'x')
is "$(wk_wait "$tx" sms)" failed "HTTP 400: failed"
is "$(wk_trail "$tx" sms)/$(got "$tx")" "->ready ready>failed/1" "400: sent once, no retry"
is "$(field "$tx" reason)/$(field "$tx" http_status)" "permanent/400" "detail: permanent, 400"

printf '429 1\n201\n' > "$mode"
tx=$(sms "${p}_a" 'x')
is "$(wk_wait "$tx" sms 20)" done "429 with Retry-After: 1, then 201: done"
is "$(wk_trail "$tx" sms)" "->ready ready>retry retry>ready ready>done" "audit: retry once, then done"
is "$(audit_detail "$tx" retry | jq -c '[.http_status, .retry_after]')" '[429,1]' \
	"the retry row has the 429 and its Retry-After"
is "$(sql "SELECT attempt FROM notifications WHERE transaction_id = '$tx'")/$(got "$tx")" "1/2" \
	"two requests, the 429 counted no attempt"
is "$(req "$tx" '.headers["idempotency-key"]' | sort -u | wc -l)" 1 "the same Idempotency-Key on both"

printf 'sleep 3\n201\n' > "$mode"
tx=$(sms "${p}_a" 'x')
is "$(wk_wait "$tx" sms 20)" done "a timeout, then 201: done"
is "$(wk_trail "$tx" sms)" "->ready ready>retry retry>ready ready>done" "timeout: transient, retried"
like "$(audit_detail "$tx" retry | jq -r .error)" '^curl 28 ' "the retry row names the timeout"
is "$(sql "SELECT attempt FROM notifications WHERE transaction_id = '$tx'")" 2 "done at attempt 2"

echo echo > "$mode"
tx=$(sms "${p}_a" 'Your secret code is 4242 xyz')
is "$(wk_wait "$tx" sms)" failed "an answer quoting the request: failed (400)"
d=$(detail "$tx")
like "$d" 'answer withheld' "the detail says the answer was withheld"
printf '%s' "$d" | grep -q '4242'; is $? 1 "the SMS text is not in the detail"
echo 201 > "$mode"

# --- GET: the form in the query string; the sender id absent ---------------------------------
mkconf get '' "{ name = \"getp\"; type = \"http\"; url = \"$base/text?key=k1\"; method = \"GET\";
	body = \"to={{to}}&msg={{body}}&ref={{id}}&from={{from}}\"; message_id_field = \"sid\"; }"
run get
tx=$(sms "${p}_a" '{{msg}}' shop "$(jq -nc --arg m "$HOSTILE" '{msg:$m}')")
is "$(wk_wait "$tx" sms)" done "GET provider: done"
is "$(req "$tx" '.method + " " + .path')" '"GET /text"' "GET to the URL's path"
is "$(req "$tx" '.form | map(.[0]) | join(",")')" '"key,to,msg,ref,from"' \
	"the URL's query kept, the template's fields appended"
is "$(jq -c --arg k "$tx:sms" --arg t "$HOSTILE" 'select(.headers["idempotency-key"] == $k) |
	[.form[1][1], .form[2][1] == $t, .form[3][1], .form[4][1], .body]' "$log")" \
	"[\"+15550100001\",true,\"$tx:sms\",\"SHOP\",\"\"]" "query: to, hostile text intact, id, sender; no body"
is "$(msgid "$tx")" NULL "an answer that is no JSON: no message id, still done"
tx=$(sms "${p}_a" 'x')
is "$(wk_wait "$tx" sms)" failed "no sender id anywhere while the template needs {{from}}: failed"
like "$(field "$tx" error)" '^body template: .*"from".*no sms_sender' \
	"the detail names the template, the variable and the missing sender id"
is "$(got "$tx")" 0 "nothing sent"

# --- the Twilio preset -------------------------------------------------------------------------
mkconf twilio 'sms_sender = "+15550199999";' "{ name = \"twilio\"; type = \"http\"; preset = \"twilio\";
	username = \"$SID\"; password = \"$TWPW\";
	url = \"$base/2010-04-01/Accounts/$SID/Messages.json\"; }"
run twilio
tx=$(sms "${p}_b" 'Twilio {{first_name}} & co')
is "$(wk_wait "$tx" sms)" done "Twilio preset: done"
is "$(req "$tx" '.method + " " + .path')" "\"POST /2010-04-01/Accounts/$SID/Messages.json\"" \
	"POST to the account's Messages.json"
is "$(req "$tx" '.auth | [.scheme, .user, .password] | join(" ")')" "\"basic $SID $TWPW\"" \
	"basic auth: account SID and auth token"
is "$(req "$tx" .form)" '[["To","+15550100002"],["From","+15550199999"],["Body","Twilio Bob & co"]]' \
	"form: To, From, Body"
is "$(req "$tx" '[.headers["i-twilio-idempotency-token"], .headers["idempotency-key"]] | join(" ")')" \
	"\"$tx:sms $tx:sms\"" "I-Twilio-Idempotency-Token and Idempotency-Key: the identity"
id=$(req "$tx" .id | jq -r .)
like "$id" '^SM[0-9a-f]{32}$' "the peer answered a Twilio sid"
is "$(msgid "$tx")/$(field "$tx" provider_message_id)" "$id/$id" "the sid stored (row and detail)"

# --- bad credentials: 401, failed at once, no failover on a permanent answer -------------------
mkconf badauth 'sms_sender = "Herald";' "{ name = \"twbad\"; type = \"http\"; preset = \"twilio\";
	username = \"$SID\"; password = \"wrong-password-77\";
	url = \"$base/2010-04-01/Accounts/$SID/Messages.json\"; },
	{ name = \"never\"; type = \"http\"; url = \"$base/ok?never\"; }"
run badauth
tx=$(sms "${p}_a" 'x')
is "$(wk_wait "$tx" sms)" failed "wrong auth token (401): failed"
is "$(wk_trail "$tx" sms)/$(field "$tx" http_status)/$(field "$tx" provider)" "->ready ready>failed/401/twbad" \
	"401: failed at once by the first provider"
is "$(req "$tx" .query | grep -c never)" 0 "a permanent answer does not fail over"
detail "$tx" | grep -q 'wrong-password-77'; is $? 1 "the password is not in the detail"

# --- failover: refused, 500, then a provider that delivers --------------------------------------
mkconf failover 'sms_sender = "Herald";' "{ name = \"down\"; type = \"http\"; url = \"http://127.0.0.1:$dead/sms\"; },
	{ name = \"broken\"; type = \"http\"; url = \"$base/fail500\"; },
	{ name = \"backup\"; type = \"http\"; url = \"$base/ok\"; message_id_field = \"sid\"; }"
run failover
tx=$(sms "${p}_a" 'failover')
is "$(wk_wait "$tx" sms)" done "refused, then 500, then the third provider: done"
is "$(wk_trail "$tx" sms)" "->ready ready>done" "no retry tier used"
is "$(field "$tx" provider)/$(sql "SELECT provider FROM notifications WHERE transaction_id = '$tx'")" \
	"backup/backup" "the delivering provider is named in the detail and the row"
is "$(req "$tx" .path | tr '\n' ' ')" '"/fail500" "/ok" ' "the 500 provider, then the backup, got it"
is "$(req "$tx" '.headers["idempotency-key"]' | sort -u | wc -l)" 1 "the same Idempotency-Key across providers"
is "$(sql "SELECT attempt FROM notifications WHERE transaction_id = '$tx'")" 1 "one attempt"
id=$(req "$tx" 'select(.path == "/ok") | .id' | jq -r .)
is "$(msgid "$tx")" "$id" "the backup's message id stored"
wk_stop worker; is $? 0 "worker: SIGTERM exits 0"

# --- configuration errors refused at start ------------------------------------------------------
# cfail NAME PROVIDERS - start a worker on them; print its exit status and log
cfail() {
	mkconf "$1" '' "$2"
	timeout 20 "$heraldd" --worker sms -c "$tmp/$1.conf" > "$tmp/$1.out" 2>&1
	echo "rc=$? $(cat "$tmp/$1.out")"
}
like "$(cfail badtpl "{ name = \"t\"; type = \"http\"; url = \"$base/ok\"; body = \"to={{#to}}\"; }")" \
	'^rc=78 .*providers\[0\] \(t\): body: line 1' "an unclosed section in the body template: refused, named"
like "$(cfail twjson "{ name = \"tw\"; type = \"http\"; preset = \"twilio\"; username = \"$SID\";
	password = \"$TWPW\"; content_type = \"json\"; }")" \
	'^rc=78 .*\(tw\): content_type: preset "twilio" sends a form' "Twilio preset with json: refused, named"
like "$(cfail getjson "{ name = \"g\"; type = \"http\"; url = \"$base/ok\"; method = \"GET\"; content_type = \"json\"; }")" \
	'^rc=78 .*\(g\): content_type: method GET' "GET with json: refused, named"
like "$(cfail crlf "{ name = \"h\"; type = \"http\"; url = \"$base/ok\"; headers = [ \"X-A: a\\r\\nX-Evil: 1\" ]; }")" \
	'^rc=78 .*providers\[0\].*headers.*control character' "CR LF in a header value: refused, named"

# --- what the logs hold --------------------------------------------------------------------------
grep -q "$BASICPW\|$TOKEN\|$TWPW\|wrong-password-77" "$tmp/worker.log"; is $? 1 "no credential in the worker log"
grep -q 'Hello Ada\|Tom & Jerry\|4242' "$tmp/worker.log"; is $? 1 "no message body in the worker log"
grep -q 'AddressSanitizer\|runtime error\|LeakSanitizer' "$tmp/worker.log"; is $? 1 "no sanitizer report"
done_testing
