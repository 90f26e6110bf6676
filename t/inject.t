#!/usr/bin/env bash
# inject.t - hostile input end to end (SPEC §11): herald-send -> broker -> heraldd --worker
# (webhook, email, sms) and --ledger -> the database and real peers (t/lib/receiver.py,
# t/lib/smtp_sink.py parsed with Python's email package, t/lib/sms_peer.py), and heraldctl.
#  1. SQL metacharacters (' " \ ; -- /* % _ backtick, ' OR '1'='1, '); DROP TABLE users; --,
#     unicode quotes, strings at their length limit) in the user id, batch id, idempotency key,
#     metadata keys and values, data values, through user import/show, history, status, cancel,
#     prefs, template list, parked: stored and printed byte-exact, no table dropped or altered,
#     no other row changed, '%' and '_' never match other rows; \u0000 and over-long values
#     refused naming the field; a trailing space never reaches another user's row.
#  2. CR/LF (CRLF, bare CR, bare LF, CRLF CRLF, folding, NEL/LS, with RFC 2047) in what reaches a
#     mail header: the subject (inline: refused; rendered from data: sent, no new header), to.email
#     (refused), the user id in List-Unsubscribe (its token round-trips through apply-token),
#     clients.X.email_from (refused at start); SMTP smuggling ("\r\n.\r\n" and bare-LF variants)
#     in the body stays one message. Webhooks: no request value becomes a header (webhook-id is
#     the identity): CR/LF in metadata/data leaves the header set unchanged, and batch_id /
#     idempotency_key with CR/LF are refused. SMS: headers come from the config only; CR/LF in
#     data adds no header at the peer.
#  3. Template syntax inside data values and profile fields ({{x}}, {{{x}}}, {{&x}}, {{#s}},
#     {{^s}}, {{/s}}, {{!c}}, {{> p}}, {{=<% %>=}}, stray braces) arrives literally (HTML-escaped
#     in the HTML part) by email, SMS and webhook, and is never evaluated.
# Covered elsewhere (not repeated here): CR/LF from first_name, data and the user's address in
# mail headers, 'Name <addr>' addresses, defaults.email_from (t/smtp.t); CR/LF in a webhook URL
# (t/webhook.t); CR/LF in SMS provider headers and hostile SMS text in form/JSON/query (t/sms.t);
# user add/show with a hostile id and names (t/ctl_users.t); hostile device tokens
# (t/ctl_device.t); hostile template names and bodies (t/ctl_template.t); a hostile TXID to
# status (t/ctl_status.t); cancel argument checks (t/ctl_cancel.t); prepared statements with
# hostile data (t/db.t); the request codec's refusals (t/unit/codec.c).
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
plan 75

PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/herald-inject-t.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
sql_init "$tmp"
kids=()
cleanup() {
	wk_kill wh
	wk_kill em
	wk_kill sm
	wk_kill led
	sql "DELETE FROM users WHERE user_id LIKE '${p:-none}%';
		DELETE FROM templates WHERE name IN ('${p:-none}xt', '${p:-none}_t');
		DELETE FROM cancellations WHERE kind = 'batch' AND (target = '%' OR target LIKE '%${p:-none}%')" 2> /dev/null
	for k in "${kids[@]}"; do kill "$k" 2> /dev/null && wait "$k" 2> /dev/null; done
	for q in herald.webhook.v1 herald.email.v1 herald.sms.v1 herald.push.v1 herald.ledger.v1 \
		herald.webhook.v1.parked herald.email.v1.parked herald.sms.v1.parked; do
		"$peek" "$HERALD_AMQP_URL" "$q" > /dev/null 2>&1
	done
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "db migrate failed"
for q in herald.push.v1 herald.ledger.v1; do "$peek" "$HERALD_AMQP_URL" "$q" > /dev/null 2>&1; done

# --- helpers -------------------------------------------------------------------------------------
# hex S - the bytes of S in lower-case hex; sqlhex EXPR WHERE - the same of a column
hex() { printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n'; }
sqlraw() { "$_sql_client" --defaults-file="$_sql_cnf" -N -B -r -e "$1" "$_sql_db"; }
col() { sql "SELECT LOWER(HEX($1)) FROM notifications WHERE transaction_id = '$2' AND channel = '${3:-webhook}'"; }
# j ARGS... - a compact JSON value from jq -n
j() { jq -nc "$@"; }
# sendall VAR=JSON... - the requests in one bulk run; each VAR gets its line's transaction id
sendall() {
	local a i=0
	: > "$tmp/bulk.jsonl"
	for a in "$@"; do printf '%s\n' "${a#*=}" >> "$tmp/bulk.jsonl"; done
	"$send" --bulk "$tmp/bulk.jsonl" > "$tmp/bulk.out" 2> "$tmp/bulk.err"
	for a in "$@"; do
		i=$((i + 1))
		printf -v "${a%%=*}" '%s' "$(wk_tx "$(sed -n "${i}p" "$tmp/bulk.out")")"
	done
}
# bad VAR JSON - a request that must be refused: a line of one bulk run; VAR its line number.
# rf N [KEY] - "STATUS/FIELD" (or KEY) of the answer to line N
: > "$tmp/bad.jsonl"
nbad=0
bad() { printf '%s\n' "$2" >> "$tmp/bad.jsonl"; nbad=$((nbad + 1)); printf -v "$1" '%s' "$nbad"; }
rf() { sed -n "${1}p" "$tmp/bad.out" | jq -r "${2:-.status + \"/\" + .field}"; }
# hook TX JQ - JQ over the receiver's log lines for TX
hook() { jq -c --arg t "$1" "select(.json.transaction_id == \$t) | $2" "$tmp/hooks.jsonl"; }
# run ARGS... - heraldctl; $out, $err, $rc
run() { out=$("$ctl" "$@" 2> "$tmp/err"); rc=$?; err=$(cat "$tmp/err"); }
# snap - a digest of every table's definition and of the rows this test never writes: another
# user's row, a preference, a device, a template, a cap or a suppression changed shows here
snap() {
	local t q=""
	for t in $(sql "SHOW TABLES"); do q="$q SHOW CREATE TABLE \`$t\`;"; done
	sql "$q
	SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS(0x1f, user_id, first_name, last_name, email, phone,
		timezone, locale, paused_until, webhook_url))) FROM users WHERE user_id NOT LIKE 'inj%';
	SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS(0x1f, user_id, pref_key, enabled))) FROM preferences
		WHERE user_id NOT LIKE 'inj%';
	SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS(0x1f, id, user_id, token))) FROM devices;
	CHECKSUM TABLE caps, client_quotas, suppressions, schema_migrations, quiet_hours;
	SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS(0x1f, name, channel, locale, version, subject, body,
		html))) FROM templates WHERE name NOT LIKE 'inj%';
	SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS(0x1f, transaction_id, channel, status, user_id,
		batch_id))) FROM notifications WHERE created_at < NOW() - INTERVAL 1 HOUR" |
		sed 's/ AUTO_INCREMENT=[0-9]*//'
}

# --- peers, config, workers ----------------------------------------------------------------------
secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
usecret="unsubscribe-secret-for-inject-t-$$-xxxxxxxx"
wk_receiver --secret "$secret"
kids+=("$rpid")
"$PY" "$HERALD_SRCDIR/t/lib/smtp_sink.py" --port-file "$tmp/smtp.port" --log "$tmp/smtp.jsonl" \
	> "$tmp/smtp.out" 2>&1 &
kids+=($!)
"$PY" "$HERALD_SRCDIR/t/lib/sms_peer.py" --log "$tmp/sms.jsonl" --port-file "$tmp/sms.port" \
	> "$tmp/sms.out" 2>&1 &
kids+=($!)
for _ in $(seq 100); do [ -s "$tmp/smtp.port" ] && [ -s "$tmp/sms.port" ] && break; sleep 0.1; done
[ -s "$tmp/smtp.port" ] && [ -s "$tmp/sms.port" ] || bail "peers did not start: $(cat "$tmp/smtp.out" "$tmp/sms.out")"
touch "$tmp/smtp.jsonl" "$tmp/sms.jsonl"
conf=$tmp/herald.conf
cat > "$conf" <<EOF
broker = { prefetch = 20; confirm_timeout = 10; users = { guest = [ "guest", "c_1", "cx1" ]; }; };
retry = { tiers = [ 1 ]; };
caps = { email = 0; sms = 0; };
log = { level = "info"; };
defaults = { email_from = "Herald <noreply@herald.test>"; sms_sender = "Herald"; };
unsubscribe = { secret = "$usecret"; url = "https://unsub.herald.test/u"; ttl = 3600; };
channels = {
	webhook = { allow_private = true; providers = ( { name = "hooks"; type = "webhook";
		secrets = [ "$secret" ]; timeout = 5; } ); };
	email = { providers = ( { name = "relay"; type = "smtp"; url = "smtp://127.0.0.1:$(cat "$tmp/smtp.port")";
		starttls = false; timeout = 5; } ); };
	sms = { providers = ( { name = "peer"; type = "http"; url = "http://127.0.0.1:$(cat "$tmp/sms.port")/ok";
		content_type = "json"; body = "{\"to\":\"{{to}}\",\"text\":\"{{body}}\"}"; timeout = 5; } ); };
};
EOF
chmod 600 "$conf"
export HERALD_CONFIG=$conf
wk_start wh --worker webhook
wk_start em --worker email
wk_start sm --worker sms
wk_start led --ledger
for n in wh em sm; do
	for _ in $(seq 100); do grep -q "event=worker_started" "$tmp/$n.log" 2> /dev/null && break; sleep 0.1; done
done

# --- the hostile values --------------------------------------------------------------------------
p=inj$$
Q1="' OR '1'='1"
Q2="'); DROP TABLE users; --"
M=$'\' " \\ ; -- /* */ % _ ` ’‘“”＇ \\0 \\\' \\x27 %27 $(id) ${IFS}'
UA="${p}a$Q1" UB="${p}b$Q2" UC="${p}c$M" UK="${p}canary"
QB="$Q2$p"                                      # batches are cancelled for good: one per run
long=$(printf "'%%_\"\\\\;-%.0s" $(seq 40))          # 7 bytes a time: ' % _ " \ ; -
UL=$(printf '%s' "${p}l$long" | head -c 191)
meta=$(j --arg q1 "$Q1" --arg q2 "$Q2" --arg m "$M" '{($m): $q1, drop: $q2, "a%_": [$m, 1],
	crlf: "a\r\nX-Evil: 1\r\n\r\nbody", tpl: "{{secret}}", nested: {"\u2028": "\u0085"}}')
data=$(j --arg m "$M" --arg q2 "$Q2" '{v: $m, w: $q2, secret: "LEAKED", "k\u0027\"": "{{v}}"}')
hookurl="$hook/ok?who=$p"
printf '%s\n' \
	"$(j --arg u "$UA" --arg q "$Q1" --arg h "$hookurl" '{user_id:$u, first_name:$q, webhook_url:$h}')" \
	"$(j --arg u "$UB" --arg q "$Q2" --arg h "$hookurl" --arg e "m.$p@example.org" \
		'{user_id:$u, last_name:$q, webhook_url:$h, email:$e, preferences:{sms:true}}')" \
	"$(j --arg u "$UC" --arg m "$M" --arg h "$hookurl" --arg e "c.$p@example.org" \
		'{user_id:$u, first_name:$m, last_name:"{{secret}} {{#s}}x{{/s}}", webhook_url:$h, email:$e, phone:"+15550100077"}')" \
	"$(j --arg u "$UL" --arg h "$hookurl" '{user_id:$u, webhook_url:$h}')" \
	"$(j --arg u "$UK" --arg h "$hookurl" --arg e "k.$p@example.org" \
		'{user_id:$u, first_name:"Kim", email:$e, webhook_url:$h, preferences:{email:true}}')" > "$tmp/users.jsonl"
eml() { j --arg u "$1" --arg s "$2" --argjson d "${3:-{\}}" --arg b "${4:-body}" --arg c "${5:-transactional}" \
	'{user_id:$u, category:$c, channels:{email:{subject:$s, body:$b}}, data:$d}'; }
bad b_nul1 '{"user_id":"a\u0000b","channels":{"webhook":{}}}'
bad b_nul2 '{"user_id":"a","channels":{"webhook":{}},"metadata":{"k\u0000":"v"}}'
bad b_nul3 '{"user_id":"a","channels":{"webhook":{}},"data":{"k":"\u0000"}}'
bad b_long1 "$(j --arg u "${UL}x" '{user_id:$u, channels:{webhook:{}}}')"
bad b_long2 "$(j --arg b "$long$long" '{user_id:"a", channels:{webhook:{}}, batch_id:($b | .[0:129])}')"
bad b_long3 "$(j --arg k "$long$long$long$long$long" '{user_id:"a", channels:{webhook:{}}, idempotency_key:($k | .[0:256])}')"
bad b_cl "$(j '{user_id:"a", channels:{webhook:{}}, client_id:"c_1'"'"'; --"}')"
bad b_cat "$(j --arg c "$Q1" '{user_id:"a", channels:{webhook:{}}, category:$c}')"
bad b_tpl "$(j --arg c "$QB" '{user_id:"a", channels:{webhook:{}}, template:$c}')"
bad b_sp1 "$(j --arg u "$UK " '{user_id:$u, channels:{webhook:{event:"e"}}}')"
bad b_sp2 "$(j --arg u "$UA" '{user_id:$u, channels:{webhook:{}}, idempotency_key:"k ", batch_id:"b"}')"
bad b_sp3 "$(j --arg u "$UA" '{user_id:$u, channels:{webhook:{}}, batch_id:"b "}')"
bad b_sp4 "$(j --arg u "$UK " '{user_ids:["x", $u], channels:{webhook:{}}}')"
bad b_s1 "$(eml "$UB" $'Hi\r\nBcc: evil@evil.test')"
bad b_s2 "$(eml "$UB" $'Hi\rBcc: x')"
bad b_s3 "$(eml "$UB" $'Hi\nBcc: x')"
bad b_to "$(j '{to:{email:"a@example.org\r\nBcc: evil@evil.test"}, channels:{email:{subject:"s", body:"b"}}}')"
bad b_crb "$(j --arg u "$UA" '{user_id:$u, channels:{webhook:{}}, batch_id:"b\r\nX-Evil: 1"}')"
bad b_crk "$(j --arg u "$UA" '{user_id:$u, channels:{webhook:{}}, idempotency_key:"k\rX-Evil: 1"}')"
"$send" --bulk "$tmp/bad.jsonl" > "$tmp/bad.out" 2> "$tmp/bad.err"
badrc=$?
before=$(snap)

# --- 1. SQL metacharacters ----------------------------------------------------------------------
run user import "$tmp/users.jsonl"
is "$rc/$out" "0/$tmp/users.jsonl: 5 added, 0 updated, 0 unchanged, 0 rejected" \
	"user import: five users with hostile ids and names added"
kbefore=$("$ctl" user show "$UK")

# the accepted requests: one bulk run (the idempotency repeats go later, after the first)
later=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
# subjects rendered from data: every line-break form, ASCII and RFC 2047
S1=$'a\rBcc: evil1@evil.test\nX-Lf: 1\r\n\r\nSmuggled body\r\n\tX-Fold: 1\r\n X-Fold2: 1\xc2\x85X-Nel: 1\xe2\x80\xa8X-Ls: 1'
S2=$'Grüße\r\nX-Enc: 1\r\n\r\n=?UTF-8?B?WC1FdmlsOiAx?=\rBcc: evil2@evil.test'
# SMTP smuggling in the body: end-of-data forms followed by a second message's commands
SM=$'x\r\n.\r\nMAIL FROM:<evil@evil.test>\r\nRCPT TO:<victim@evil.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nhi\r\n.\r\n\n.\nRSET\n\r.\r\n\n.\r\nQUIT\r\n.'
TPL='{{secret}} {{{secret}}} {{&secret}} {{#s}}L{{/s}} {{^none}}I{{/none}} {{> partial}} {{!c}} {{=<% %>=}}<% secret %> {{#each s}}E{{/each}} {{first_name}} {{.}} }}{{ {{ <b>&"'"'"
tdata=$(j --arg t "$TPL" '{v:$t, secret:"LEAKED", s:[1], items:[{n:$t}, {n:"{{#items}}"}]}')
J_ta="$(j --arg u "$UA" --arg b "$QB" --arg k "$M" --argjson m "$meta" --argjson d "$data" \
	'{user_id:$u, channels:{webhook:{event:"e.{{v}}"}}, batch_id:$b, idempotency_key:$k,
	  metadata:$m, data:$d, category:"marketing", client_id:"c_1"}')"
J_tl="$(j --arg u "$UL" --arg b "${p}$long" --arg k "$(printf '%s' "$long$long$long$long" | head -c 255)" \
	'{user_id:$u, channels:{webhook:{event:"e"}}, batch_id:($b | .[0:128]), idempotency_key:$k}')"
J_tp="$(j --arg u "$UC" --arg b "$M" --argjson m "$meta" \
	'{user_id:$u, channels:{push:{title:"t", body:"b"}}, batch_id:($b|.[0:128]), metadata:$m}')"
J_tx1="$(j --arg u "$UK" --arg s "$later" --arg b "${p}xbatch" '{user_id:$u, channels:{webhook:{event:"e"}}, batch_id:$b, send_at:$s}')"
J_tx2="$(j --arg u "$UK" --arg s "$later" --arg b "$QB" '{user_id:$u, channels:{webhook:{event:"e"}}, batch_id:$b, send_at:$s}')"
J_tw='{"user_id":"%","channels":{"webhook":{"event":"e"}}}'
J_tu="$(j --arg u "${p}_" '{user_id:$u, channels:{webhook:{event:"e"}}}')"
J_te1="$(eml "$UB" 'S {{{s}}}' "$(j --arg s "$S1" '{s:$s}')")"
J_te2="$(eml "$UB" '{{{s}}} {{s}}' "$(j --arg s "$S2" '{s:$s}')")"
J_te3="$(eml "$UB" 'smuggle' '{}' "$SM")"
J_te4="$(eml "$UB" 'b {{{s}}}' "$(j --arg s "$SM" '{s:$s}')" 'body {{{s}}}')"
J_tm="$(eml "$UB" 'sale' '{}' 'x' marketing)"
J_ref="$(j --arg u "$UA" '{user_id:$u, channels:{webhook:{event:"plain"}}}')"
J_th="$(j --arg u "$UA" '{user_id:$u, channels:{webhook:{event:"e"}}, metadata:{"X-Evil":"1\r\nX-Evil: 2",
	"k\r\nX-Key: 1":"v"}, data:{h:"\r\n\r\nX-Body: 1\nX-Lf: 1\rX-Cr: 1"}, client_id:"cx1", batch_id:"b: 1"}')"
J_ts="$(j --arg u "$UC" '{user_id:$u, channels:{sms:{body:"{{{h}}}"}}, data:{h:"a\r\nX-Evil: 1\r\n\r\nb"}}')"
J_tt="$(j --arg u "$UC" --argjson d "$tdata" '{user_id:$u, category:"transactional", data:$d,
	channels:{email:{subject:"S {{{v}}}", body:"T {{v}}|{{first_name}}|{{last_name}}|{{#items}}[{{{n}}}]{{/items}}",
	html:"<p>{{v}}</p><i>{{first_name}}</i>"}, sms:{body:"{{v}}|{{{first_name}}}"}, webhook:{event:"ev"}}}')"
sendall ta="$J_ta" tl="$J_tl" tp="$J_tp" tx1="$J_tx1" tx2="$J_tx2" tw="$J_tw" tu="$J_tu" \
	te1="$J_te1" te2="$J_te2" te3="$J_te3" te4="$J_te4" tm="$J_tm" ref="$J_ref" th="$J_th" ts="$J_ts" tt="$J_tt"

ok=0
for u in "$UA" "$UB" "$UC" "$UL"; do
	[ "$(hex "$("$ctl" user show "$u" | jq -j .user_id)")" = "$(hex "$u")" ] || ok=1
done
ok $ok "user show: each hostile id comes back byte-exact (the longest is ${#UL} bytes)"
is "$("$ctl" user show "$UC" | jq -j '.first_name + "|" + .last_name' | od -An -tx1 -v | tr -d ' \n')" \
	"$(hex "$M|{{secret}} {{#s}}x{{/s}}")" "user show: hostile names byte-exact"

# every hostile value in one webhook request per user: delivered, and stored byte-exact
is "$(wk_wait "$ta" webhook)/$(wk_wait "$tl" webhook)" "done/done" "hostile id, batch, key, metadata, data: delivered"
is "$(hook "$ta" '.json | [.user_id, .batch_id, .client_id, .metadata, .data, .event]' | jq -cS .)" \
	"$(j --arg u "$UA" --arg b "$QB" --argjson m "$meta" --argjson d "$data" --arg e "e.$M" '[$u, $b, "c_1", $m, $d, $e]' | jq -cS .)" \
	"webhook body: user_id, batch_id, client_id, metadata, data exactly as sent; a data value in the event not evaluated"
is "$(col user_id "$ta")/$(col batch_id "$ta")/$(col client_id "$ta")" "$(hex "$UA")/$(hex "$QB")/$(hex c_1)" \
	"notifications row: user_id, batch_id, client_id byte-exact"
is "$(sqlraw "SELECT metadata FROM notifications WHERE transaction_id = '$ta'" | jq -cS .)" "$(printf '%s' "$meta" | jq -cS .)" \
	"notifications row: the metadata JSON as sent"
is "$(col user_id "$tl")" "$(hex "$UL")" "a 191-byte user id full of metacharacters stored exactly"

# the ledger path (JSON_TABLE): push has no worker here, so only the ledger records it
wk_wait_status "$tp" push queued 20
ok $? "ledger: the push message to a hostile user recorded queued"
is "$(col user_id "$tp" push)/$(col batch_id "$tp" push)" "$(hex "$UC")/$(hex "$M")" \
	"ledger row: user_id and batch_id byte-exact"
is "$(sqlraw "SELECT metadata FROM notifications WHERE transaction_id = '$tp'" | jq -cS .)" "$(printf '%s' "$meta" | jq -cS .)" \
	"ledger row: metadata as sent"

# heraldctl history prints them back, and a wildcard lists nobody else's
run history "$UA" --batch "$QB"
is "$rc/$(printf '%s\n' "$out" | jq -c '[.transaction_id, .batch_id, .client_id, .metadata]')" \
	"0/$(j --arg t "$ta" --arg b "$QB" --argjson m "$meta" '[$t, $b, "c_1", $m]')" \
	"history of the hostile user, --batch of the hostile batch: its one notification, exactly"
run history "$UC" --batch "$M"
is "$rc/$(printf '%s\n' "$out" | jq -r .transaction_id)" "0/$tp" "history --batch with metacharacters: exact match"
# (the run's own transactions are known: none may show up under a pattern)
mine="$ta|$tl|$tp"
n=0
for w in '%' "${p}_" "${p}a%" "${p}a' OR '1'='1' --"; do
	run history "$w"
	[ "$rc" = 0 ] && ! printf '%s' "$out" | grep -Eq "$mine" || { n=1; echo "# history '$w': $rc $out"; }
done
run history "$UA" --batch '%'
[ "$rc" = 0 ] && [ -z "$out" ] || { n=1; echo "# history --batch %: $rc $out"; }
ok $n "history for '%', '_', prefix wildcards, ' OR '1'='1, --batch '%': none of this run's (no pattern matching)"
run status "$Q1"
is "$rc" 1 "status \"' OR '1'='1\": an unknown id, exit 1"
run status '%'
is "$rc/$out" '1/{"error":"invalid or expired transaction_id"}' "status '%': unknown, nothing listed"

# idempotency: the same hostile key is a duplicate; '%' and '_' keys match nothing else
J_td="$(j --arg u "$UA" --arg k "$M" '{user_id:$u, channels:{webhook:{event:"e"}}, idempotency_key:$k, client_id:"c_1"}')"
J_t1="$(j --arg u "$UA" '{user_id:$u, channels:{webhook:{event:"e"}}, idempotency_key:"%", client_id:"c_1"}')"
J_t2="$(j --arg u "$UA" --arg k "$(printf '%s' "$M" | tr "'" '_')" \
	'{user_id:$u, channels:{webhook:{event:"e"}}, idempotency_key:$k, client_id:"c_1"}')"
J_t3="$(j --arg u "$UA" --arg k "$M" '{user_id:$u, channels:{webhook:{event:"e"}}, idempotency_key:$k, client_id:"cx1"}')"
sendall td="$J_td" t1="$J_t1" t2="$J_t2" t3="$J_t3"
is "$(wk_wait "$td" webhook)/$(wk_wait "$t1" webhook)/$(wk_wait "$t2" webhook)/$(wk_wait "$t3" webhook)" \
	"duplicate/done/done/done" \
	"idempotency: the same hostile key is a duplicate; '%', a '_' variant and client cx1 (not c_1) are not"
like "$(sqlraw "SELECT detail FROM notifications WHERE transaction_id = '$td'")" "$ta" \
	"the duplicate names the first transaction"

# cancel --batch: wildcards cancel nothing; the hostile batch exactly its own
wk_wait_status "$tx1" webhook deferred 20 && wk_wait_status "$tx2" webhook deferred 20
ok $? "two deferred messages in batches ${p}xbatch and \"$Q2\""
n=0
for w in '%' "${p}_batch" "${p}xbatch' OR '1'='1"; do
	run cancel --batch "$w"
	[ "$rc" = 0 ] && [ "$(printf '%s' "$out" | jq .cancelled)" = 0 ] || { n=1; echo "# cancel --batch '$w': $rc $out $err"; }
done
ok $n "cancel --batch with '%', '_' and ' OR '1'='1: nothing cancelled"
is "$(wk_status "$tx1" webhook)/$(wk_status "$tx2" webhook)" "deferred/deferred" "both still deferred"
run cancel --batch "$QB"
is "$rc/$(printf '%s' "$out" | jq -c '[.batch_id, .cancelled]')" "0/$(j --arg b "$QB" '[$b, 1]')" \
	"cancel --batch \"$Q2\": exactly its one message"
is "$(wk_status "$tx1" webhook)/$(wk_status "$tx2" webhook)/$(wk_status "$ta" webhook)" "deferred/cancelled/done" \
	"the other batch's deferred message and the sent one untouched"
run cancel "$Q1"
is "$rc" 64 "cancel \"' OR '1'='1\": not a transaction id, exit 64"

# prefs, caps, templates, parked: hostile arguments refused naming them, or stored exactly
run prefs set "$UC" "email=off" "marketing.webhook=off"
is "$rc/$(printf '%s' "$out" | jq -c .)" '0/{"email":false,"marketing.webhook":false}' "prefs set on the hostile user"
is "$("$ctl" prefs get "$UA")/$("$ctl" prefs get "$UK")" '{}/{"email":true}' "other users' preferences unchanged"
run prefs set "$UA" "x'; DROP TABLE preferences; --=on"
like "$rc/$err" "^64/.*key 'x'; DROP TABLE preferences; --'" "prefs set: a hostile key refused, named"
run caps set --client "c'; DROP TABLE caps; --" email=1
like "$rc/$err" "^64/.*--client 'c'; DROP TABLE caps; --'" "caps set: a hostile client refused, named"
run template add "${p}_t" --channel sms --locale "en'; DROP TABLE templates; --" --body x
like "$rc/$err" "^64/.*locale" "template add: a hostile locale refused, named"
"$ctl" template add "${p}xt" --channel sms --body x > /dev/null && "$ctl" template add "${p}_t" --channel sms --body y > /dev/null
run template list --name "${p}_"
is "$rc/$(printf '%s\n' "$out" | jq -r .name | tr '\n' ' ')" "0/${p}_t " "template list --name ${p}_: '_' is no wildcard"
run template list --name '%'
is "$rc/$out" "0/" "template list --name '%': nothing"
run parked list webhook --txid "$Q1"
like "$rc/$err" "^64/.*--txid" "parked list --txid \"' OR '1'='1\": refused, named"

# refused before the broker: NUL, over-long, hostile names; the field is named
is "$badrc/$(grep -c '"status":"invalid_request"' "$tmp/bad.out")/$(wc -l < "$tmp/bad.out")" "1/$nbad/$nbad" \
	"herald-send: all $nbad hostile requests of the bulk file refused as invalid_request"
is "$(rf $b_nul1)/$(rf $b_nul2)/$(rf $b_nul3)" "invalid_request/user_id/invalid_request/metadata/invalid_request/data.k" \
	"\\u0000 in user_id, a metadata key, data: refused, the field named"
is "$(rf $b_long1)/$(rf $b_long2)/$(rf $b_long3)" "invalid_request/user_id/invalid_request/batch_id/invalid_request/idempotency_key" \
	"a 192-byte user id, a 129-byte batch id, a 256-byte idempotency key: refused"
is "$(rf $b_cl)/$(rf $b_cat)/$(rf $b_tpl)" "invalid_request/client_id/invalid_request/category/invalid_request/template" \
	"hostile client_id, category, template name: refused"

# a wildcard as a user id is a user id: nobody's notification
is "$(wk_wait "$tw" webhook)/$(wk_wait "$tu" webhook)" "invalid_user/invalid_user" "user ids '%' and '${p}_': invalid_user"
is "$(hook "$tw" .path | grep -c .)/$(hook "$tu" .path | grep -c .)" "0/0" "nothing delivered for them"

# a trailing space: MariaDB's collations pad with spaces ('a' = 'a '), so "$UK " would reach, overwrite
# or delete "$UK": refused everywhere instead
is "$(rf $b_sp1)/$(rf $b_sp1 .message)" "invalid_request/user_id/must not end with a space" \
	"request: a user id with a trailing space refused, named"
is "$(rf $b_sp2)/$(rf $b_sp3)/$(rf $b_sp4)" "invalid_request/idempotency_key/invalid_request/batch_id/invalid_request/user_ids[1]" \
	"idempotency_key, batch_id, user_ids[1] with a trailing space refused"
printf '%s\n' "$(j --arg u "$UK " '{user_id:$u, email:"evil@evil.test"}')" > "$tmp/sp.jsonl"
run user import "$tmp/sp.jsonl"; r1=$rc
run user delete "$UK "; r2=$rc
run user delete "$UK " --erase-history; r3=$rc
run prefs set "$UK " email=off; r4=$rc
run history "$UK "; r5=$rc
run cancel --batch "${p}xbatch "; r6=$rc
is "$r1/$r2/$r3/$r4/$r5/$r6" "1/64/64/1/64/64" \
	"heraldctl import, delete, prefs, history, cancel --batch: a trailing space refused"
is "$("$ctl" user show "$UK")" "$kbefore" "... and '$UK' is as it was"

# --- 2. CR/LF where a header is made ------------------------------------------------------------
is "$(rf $b_s1 .field)/$(rf $b_s2 .field)/$(rf $b_s3 .field)" \
	"channels.email.subject/channels.email.subject/channels.email.subject" \
	"an inline subject with CRLF, bare CR or bare LF: refused, the field named"
is "$(rf $b_to)" "invalid_request/to.email" "to.email with CRLF: refused"
is "$(rf $b_crb)/$(rf $b_crk)" "invalid_request/batch_id/invalid_request/idempotency_key" \
	"batch_id and idempotency_key with CR/LF: refused"

is "$(wk_wait "$te1" email)/$(wk_wait "$te2" email)/$(wk_wait "$te3" email)/$(wk_wait "$te4" email)" "done/done/done/done" \
	"CR/LF in rendered subjects and SMTP smuggling in bodies: sent"
cat > "$tmp/mail.py" <<'EOF'
import base64, email, email.policy, json, sys
log, tx = sys.argv[1], sys.argv[2]
out = {"n": 0, "all_subjects": [], "rcpts": []}
for line in open(log, encoding="utf-8"):
    d = json.loads(line)
    if "rcpt" in d:
        out["rcpts"].append(d["rcpt"])
    if "data_b64" not in d:
        continue
    raw = base64.b64decode(d["data_b64"])
    m = email.message_from_bytes(raw, policy=email.policy.default)
    out["all_subjects"].append(str(m["Subject"]))
    if tx not in str(m.get("Message-ID", "")):
        continue
    out["n"] += 1
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
    out["names"] = sorted(l.split(":", 1)[0].lower() for l in head.split("\r\n") if l and l[0] not in " \t")
    out["subject"] = str(m["Subject"])
    out["rcpt_tos"] = d["rcpt_tos"]
    out["bare"] = raw.replace(b"\r\n", b"").count(b"\n") + raw.replace(b"\r\n", b"").count(b"\r")
    p = m.get_body(preferencelist=("plain",))
    out["text"] = p.get_content().replace("\r\n", "\n") if p is not None else None
    p = m.get_body(preferencelist=("html",))
    out["html"] = p.get_content().replace("\r\n", "\n") if p is not None and p.get_content_type() == "text/html" else None
    out["unsub"] = m["List-Unsubscribe"]
    out["raw_has_leak"] = b"LEAKED" in raw
print(json.dumps(out, ensure_ascii=False))
EOF
mail() { "$PY" "$tmp/mail.py" "$tmp/smtp.jsonl" "$1"; }
names='["content-type","date","from","message-id","mime-version","reply-to","subject","to"]'
m1=$(mail "$te1"); m2=$(mail "$te2")
is "$(printf '%s' "$m1" | jq -c '[.n, (.names - ["reply-to"])]')" "[1,$(printf '%s' "$names" | jq -c '. - ["reply-to"]')]" \
	"CR, LF, CRLF CRLF, folding, NEL, LS in a subject: exactly the usual headers, no new one"
is "$(printf '%s' "$m1" | jq -r '.subject | test("[\r\n]")')/$(printf '%s' "$m1" | jq -r '.subject | contains("Smuggled body")')/$(printf '%s' "$m1" | jq -r .text)" \
	"false/true/body" "the line breaks neutralised inside the subject; the body is the body"
is "$(printf '%s' "$m2" | jq -c '[.n, (.names - ["reply-to"]), (.subject | test("[\r\n]")), .bare]')" \
	"[1,$(printf '%s' "$names" | jq -c '. - ["reply-to"]'),false,0]" \
	"with RFC 2047 (non-ASCII) too: no new header, no line break in the decoded subject"
m3=$(mail "$te3"); m4=$(mail "$te4")
is "$(printf '%s' "$m3" | jq -c '[.n, .rcpt_tos, .bare]')/$(printf '%s' "$m4" | jq -c '[.n, .rcpt_tos]')" \
	"[1,[\"m.$p@example.org\"],0]/[1,[\"m.$p@example.org\"]]" \
	"SMTP smuggling in the body: one message each, to the user only, no bare CR or LF"
is "$(printf '%s' "$m3" | jq -c '[.all_subjects[] | select(. == "smuggled")] | length')/$(printf '%s' "$m3" | jq -c '[.rcpts[] | select(test("evil|victim"))] | length')" \
	"0/0" "no smuggled message and no RCPT TO the smuggled addresses"
is "$(printf '%s' "$m3" | jq -r .text)" "$(printf '%s' "$SM" | sed 's/\r$//' | tr '\r' '\n')" \
	"the smuggled commands arrive as the body's text (line breaks normalised)"

# List-Unsubscribe for a hostile user id: one header, its token gives back the id exactly
is "$(wk_wait "$tm" email)" done "marketing email to \"$UB\": done"
mu=$(mail "$tm")
unsub=$(printf '%s' "$mu" | jq -r '.unsub // ""')
like "$unsub" '^<https://unsub\.herald\.test/u\?token=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}>$' \
	"List-Unsubscribe: the hostile id only inside the token"
token=${unsub#*token=}; token=${token%>}
run prefs apply-token "$token"
is "$rc/$(printf '%s' "$out" | jq -j .user_id | od -An -tx1 -v | tr -d ' \n')" "0/$(hex "$UB")" \
	"apply-token: the user id byte-exact"
is "$("$ctl" prefs get "$UB" | jq -c .)/$("$ctl" prefs get "$UA")" '{"marketing":false,"sms":true}/{}' \
	"only that user's marketing preference changed"

# the webhook: CR/LF and header-like text in metadata and data add no header
is "$(wk_wait "$ref" webhook)/$(wk_wait "$th" webhook)" done/done "webhook with CR/LF in metadata and data: done"
is "$(hook "$th" '.headers | keys - ["content-length"]')" "$(hook "$ref" '.headers | keys - ["content-length"]')" \
	"the same header names as a plain request: no X-Evil, X-Key, X-Body, X-Lf or X-Cr"
is "$(hook "$th" '[.json.metadata, .json.data, .sig_ok]')" \
	'[{"X-Evil":"1\r\nX-Evil: 2","k\r\nX-Key: 1":"v"},{"h":"\r\n\r\nX-Body: 1\nX-Lf: 1\rX-Cr: 1"},true]' \
	"the values arrive in the signed body, JSON-escaped"

# the SMS peer: CR/LF in data reaches the JSON body only
is "$(wk_wait "$ts" sms)" done "sms with CR/LF in data: done"
srq() { jq -c --arg k "$1:sms" "select(.headers[\"idempotency-key\"] == \$k) | $2" "$tmp/sms.jsonl"; }
is "$(srq "$ts" '[(.headers | has("x-evil")), .json.text]')" '[false,"a\r\nX-Evil: 1\r\n\r\nb"]' \
	"sms: no X-Evil header, the text intact in the JSON body"

# a client's sender identity with a line break: the worker refuses to start, naming the key
sed 's/^defaults = .*/&\nclients = { cx1 = { email_from = "Shop\\r\\nBcc: x@evil.test <a@b.test>"; }; };/' "$conf" > "$tmp/bad.conf"
chmod 600 "$tmp/bad.conf"
HERALD_CONFIG=$tmp/bad.conf timeout 20 "$heraldd" --worker email > "$tmp/bad.log" 2>&1
is "$?" 78 "CR/LF in clients.cx1.email_from: the worker exits EX_CONFIG"
like "$(cat "$tmp/bad.log")" 'clients\.cx1\.email_from' "the error names clients.cx1.email_from"

# --- 3. template syntax inside values is never evaluated ---------------------------------------
esc=$(printf '%s' "$TPL" | sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g; s/"/\&quot;/g; s/'"'"'/\&#39;/g')
is "$(wk_wait "$tt" email)/$(wk_wait "$tt" sms)/$(wk_wait "$tt" webhook)" done/done/done \
	"template syntax in data and profile: delivered on three channels"
mt=$(mail "$tt")
is "$(printf '%s' "$mt" | jq -r .text)" "T $TPL|$M|{{secret}} {{#s}}x{{/s}}|[$TPL][{{#items}}]" \
	"email text: data values, profile fields and section items arrive literally"
is "$(printf '%s' "$mt" | jq -r .html)" "<p>$esc</p><i>$(printf '%s' "$M" | sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g; s/"/\&quot;/g; s/'"'"'/\&#39;/g')</i>" \
	"email HTML: literally, HTML-escaped"
is "$(printf '%s' "$mt" | jq -r '.subject')/$(printf '%s' "$mt" | jq -r .raw_has_leak)" "S $TPL/false" \
	"email subject literal; the secret variable appears nowhere in the message"
is "$(srq "$tt" .json.text | jq -r .)" "$TPL|$M" "sms: literal"
is "$(hook "$tt" '.json.data.v')" "$(j --arg t "$TPL" '$t')" "webhook: the data value as sent"
grep -q LEAKED "$tmp/sms.jsonl" "$tmp/hooks.jsonl" 2> /dev/null && grep LEAKED "$tmp/sms.jsonl" | grep -q "$tt"
is "$?" 1 "the sms peer never saw the secret"

# --- nothing else affected ---------------------------------------------------------------------
is "$(snap)" "$before" "no table altered or dropped; other users, preferences, devices, templates, caps unchanged"
is "$("$ctl" user show "$UK")" "$kbefore" "the canary user unchanged"
for n in wh em sm led; do
	grep -q 'AddressSanitizer\|runtime error' "$tmp/$n.log" && echo "# $n: sanitizer report"
done
grep -qh 'AddressSanitizer\|runtime error' "$tmp"/{wh,em,sm,led}.log
is "$?" 1 "no sanitizer report from any worker"
for n in wh em sm led; do kill -0 "$(cat "$tmp/$n.pid")" 2> /dev/null || echo "# $n died"; done
kill -0 "$(cat "$tmp/wh.pid")" && kill -0 "$(cat "$tmp/em.pid")" && kill -0 "$(cat "$tmp/sm.pid")" &&
	kill -0 "$(cat "$tmp/led.pid")"
ok $? "every worker still running"
wk_stop wh; r1=$?; wk_stop em; r2=$?; wk_stop sm; r3=$?; wk_stop led; r4=$?
is "$r1/$r2/$r3/$r4" "0/0/0/0" "every worker stops cleanly (exit 0)"
done_testing
