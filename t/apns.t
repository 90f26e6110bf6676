#!/usr/bin/env bash
# apns.t - the APNs provider end to end: `heraldd --worker push` against the private broker and
# database and a real HTTP/2 peer over TLS (t/lib/apns_peer.py: python3-h2, ALPN h2, its
# certificate signed by a CA made here and given as ca_file), which verifies each provider
# token's ES256 signature with python3-cryptography. Checked: the request (path, apns-topic,
# apns-push-type, apns-priority, apns-expiration, apns-id) and payload; the JWT (kid, iss, iat)
# verified; one token shared by many deliveries over one connection; the same apns-id on a
# retry, a different one per device; 410 and 400 BadDeviceToken failed and the device removed;
# 403 InvalidProviderToken failed (also for a token signed with another key); 429 and 503
# retried, only to devices not yet accepted; ExpiredProviderToken retried with a new token, but
# not refreshed twice within 20 minutes; a timeout transient; a payload over 4 KiB refused;
# no token in the log; a missing, bad or wrong-curve key file a clear startup error.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
plan 75

tmp=$(mktemp -d /tmp/herald-apns-t.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
sql_init "$tmp"
ppid_=
cleanup() {
	wk_kill w
	wk_kill bad
	[ -n "$ppid_" ] && kill "$ppid_" 2> /dev/null && wait "$ppid_" 2> /dev/null
	"$peek" "$HERALD_AMQP_URL" herald.push.v1 > /dev/null 2>&1
	"$peek" "$HERALD_AMQP_URL" herald.push.v1.parked > /dev/null 2>&1
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "db migrate failed"
py=/usr/bin/python3
$py -c 'import h2, cryptography' 2> /dev/null || bail "/usr/bin/python3 lacks h2 or cryptography"

# --- keys: the team's .p8 (PKCS#8 EC P-256), a CA and the peer's certificate -------------------
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/AuthKey.p8" 2> /dev/null &&
	openssl pkey -in "$tmp/AuthKey.p8" -pubout -out "$tmp/apns.pub" 2> /dev/null ||
	bail "cannot make the EC key"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=herald test CA" \
	-keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2> /dev/null || bail "cannot make the CA"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
	-keyout "$tmp/srv.key" -out "$tmp/srv.csr" 2> /dev/null &&
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$tmp/srv.ext" &&
	openssl x509 -req -in "$tmp/srv.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
		-days 1 -extfile "$tmp/srv.ext" -out "$tmp/srv.pem" 2> /dev/null ||
	bail "cannot make the server certificate"
head -1 "$tmp/AuthKey.p8" | grep -q "BEGIN PRIVATE KEY" || bail "the .p8 is not PKCS#8"

kid=ABC123DEFG
team=DEF123GHIJ
log=$tmp/apns.jsonl
$py "$HERALD_SRCDIR/t/lib/apns_peer.py" --log "$log" --port-file "$tmp/port" --cert "$tmp/srv.pem" \
	--key "$tmp/srv.key" --pubkey "$tmp/apns.pub" --kid "$kid" --team "$team" --slow 3 \
	> "$tmp/peer.log" 2>&1 &
ppid_=$!
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
[ -s "$tmp/port" ] || bail "apns_peer.py did not start: $(cat "$tmp/peer.log")"
url="https://localhost:$(cat "$tmp/port")"

# conf FILE KEYFILE - a push worker's config with the apns provider using KEYFILE
conf() {
	cat > "$1" <<EOF
broker = { prefetch = 50; confirm_timeout = 10; };
retry = { tiers = [ 1 ]; };
log = { level = "debug"; };
channels = { push = { in_flight = 50; providers = ( { name = "apple"; type = "apns";
	key_file = "$2"; key_id = "$kid"; team_id = "$team"; topic = "org.example.app";
	url = "$url/"; timeout = 1; ca_file = "$tmp/ca.pem"; } ); }; };
EOF
	chmod 600 "$1"
}

# --- a bad key file: a clear startup error naming the provider and the file, not the key -------
# startup_err KEYFILE - heraldd --worker push with KEYFILE: "exit=N" and its log
startup_err() {
	conf "$tmp/bad.conf" "$1"
	: > "$tmp/bad.log"
	wk_start bad --worker push -c "$tmp/bad.conf"
	for _ in $(seq 100); do
		kill -0 "$(cat "$tmp/bad.pid")" 2> /dev/null || break
		sleep 0.1
	done
	wk_stop bad
	echo "exit=$?"
	cat "$tmp/bad.log"
}
out=$(startup_err "$tmp/nonexistent.p8")
like "$out" "exit=[1-9]" "missing key file: the worker does not start"
like "$out" "apple.*key_file $tmp/nonexistent.p8: cannot open: No such file" \
	"missing key file: the error names the provider, the file and why"
printf 'TOPSECRETLINE not a key\n' > "$tmp/junk.p8"
out=$(startup_err "$tmp/junk.p8")
like "$out" "apple.*key_file $tmp/junk.p8: not a PEM key" "a file with no PEM: named, refused"
printf '%s' "$out" | grep -q TOPSECRETLINE; is $? 1 "the key file's content is not in the error"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$tmp/p384.p8" 2> /dev/null
out=$(startup_err "$tmp/p384.p8")
like "$out" "apple.*key_file $tmp/p384.p8: ES256 needs an EC P-256 key" "a P-384 key: refused, said why"
sed 's/^M/X/' "$tmp/AuthKey.p8" > "$tmp/broken.p8"
out=$(startup_err "$tmp/broken.p8")
like "$out" "apple.*key_file $tmp/broken.p8: not a valid PEM private key" "a corrupt .p8: refused"
[ ! -s "$log" ]; ok $? "no request reached the peer from a worker that did not start"

# --- users and their iOS devices ----------------------------------------------------------------
p=ap$$
sql "INSERT INTO users (user_id, first_name, timezone) VALUES ('${p}_ok', 'Ada', 'UTC'),
	('${p}_gone', 'G', 'UTC'), ('${p}_bad', 'B', 'UTC'), ('${p}_busy', 'U', 'UTC'),
	('${p}_flaky', 'F', 'UTC'), ('${p}_slow', 'S', 'UTC'), ('${p}_exp', 'E', 'UTC'),
	('${p}_inv', 'I', 'UTC'), ('${p}_big', 'Z', 'UTC'), ('${p}_two', 'T', 'UTC'),
	('${p}_mix', 'M', 'UTC'), ('${p}_plat', 'P', 'UTC')" || bail "cannot insert users"
sql "INSERT INTO devices (user_id, platform, token) VALUES ('${p}_ok', 'ios', 'ok1$p'),
	('${p}_gone', 'ios', 'gone1$p'), ('${p}_bad', 'ios', 'bad1$p'), ('${p}_busy', 'ios', 'busy1$p'),
	('${p}_flaky', 'ios', 'flaky1$p'), ('${p}_slow', 'ios', 'slow1$p'),
	('${p}_exp', 'ios', 'expired1$p'), ('${p}_inv', 'ios', 'invalid1$p'), ('${p}_big', 'ios', 'okbig$p'),
	('${p}_two', 'ios', 'okA$p'), ('${p}_two', 'ios', 'goneA$p'), ('${p}_mix', 'ios', 'okB$p'),
	('${p}_mix', 'ios', 'flakyB$p'), ('${p}_plat', 'ios', 'okC$p'), ('${p}_plat', 'android', 'okdroidC$p')" ||
	bail "cannot insert devices"

conf "$tmp/herald.conf" "$tmp/AuthKey.p8"
export HERALD_CONFIG=$tmp/herald.conf
wk_start w --worker push
# hsend JSON - send one request, print its transaction id
hsend() { wk_tx "$("$send" --json "$1")"; }
# detail TX - the notification's detail and its devices' details (device_outcomes)
detail() {
	sql "SELECT CONCAT(IFNULL(n.detail, ''), ' ', IFNULL(GROUP_CONCAT(d.detail), ''))
		FROM notifications n LEFT JOIN device_outcomes d ON d.notification_id = n.id
		WHERE n.transaction_id = '$1' GROUP BY n.id"
}
# reqs TOKEN JQ - JQ over the peer's lines for device TOKEN, one result a line
reqs() { jq -c --arg t "$1" "select(.token == \$t) | $2" "$log"; }
push='"channels":{"push":{"title":"Hi {{first_name}}","body":"Order {{order}} shipped","data":{"order":"A-42","n":1,"aps":{"sound":"default","alert":"x"}}}}'

# --- one delivery, looked at closely -----------------------------------------------------------
t0=$(date +%s)
tx=$(hsend "{\"user_id\":\"${p}_ok\",$push,\"data\":{\"order\":\"A-42\"},\"priority\":\"high\",\"ttl\":3600}")
like "$tx" '^[0-9a-f-]{36}$' "sent a push notification"
is "$(wk_wait "$tx" push)" done "an iOS device answering 200: done"
is "$(reqs "ok1$p" .path)" "\"/3/device/ok1$p\"" "POST /3/device/TOKEN, once"
is "$(reqs "ok1$p" '.method + " " + .headers[":scheme"]')" '"POST https"' "a POST over TLS"
is "$(reqs "ok1$p" '.headers["apns-topic"] + " " + .headers["apns-push-type"]')" \
	'"org.example.app alert"' "apns-topic is the topic, apns-push-type alert"
is "$(reqs "ok1$p" '.headers["apns-priority"]')" '"10"' "priority high: apns-priority 10"
exp=$(reqs "ok1$p" '.headers["apns-expiration"] | tonumber')
d=$((exp - t0 - 3600)); [ "$d" -ge -2 ] && [ "$d" -le 5 ]; ok $? "apns-expiration is the note's expiry (ttl 3600: $d s off)"
id=$(reqs "ok1$p" '.headers["apns-id"]' | tr -d '"')
like "$id" '^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' "apns-id is a UUID"
is "$(sql "SELECT provider_message_id FROM notifications WHERE transaction_id = '$tx'")" "$id" \
	"the provider message id is APNs' apns-id"
is "$(reqs "ok1$p" .body | jq -r .)" \
	'{"aps":{"alert":{"title":"Hi Ada","body":"Order A-42 shipped"},"sound":"default"},"order":"A-42","n":1}' \
	"payload: aps.alert title and body rendered, data beside aps, data.aps adds a sound"
is "$(reqs "ok1$p" .jwt_ok)" true "the provider token's ES256 signature verifies (python3-cryptography)"
is "$(reqs "ok1$p" '.jwt_header | [.alg, .kid] | join(" ")')" "\"ES256 $kid\"" "JWT header: alg ES256, kid"
is "$(reqs "ok1$p" '.jwt_claims.iss')" "\"$team\"" "JWT claims: iss is the team id"
iat=$(reqs "ok1$p" '.jwt_claims.iat')
d=$((t0 - iat)); [ "$d" -ge -2 ] && [ "$d" -le 10 ]; ok $? "JWT iat is about now ($d s before the send)"
is "$(reqs "ok1$p" '.headers.authorization | startswith("bearer ")')" true "authorization: bearer JWT"
jwt=$(reqs "ok1$p" .jwt | tr -d '"')
grep -qF -e "${jwt##*.}" "$tmp/w.log"; is $? 1 "the provider token is not in the log (debug level)"

# a `to` device token, normal priority, no ttl
tx=$(hsend "{\"to\":{\"push_token\":{\"platform\":\"ios\",\"token\":\"okto$p\"}},\"channels\":{\"push\":{\"body\":\"b\"}},\"priority\":\"normal\"}")
is "$(wk_wait "$tx" push)" done "a to push_token: done"
is "$(reqs "okto$p" '[.headers["apns-priority"], (.headers | has("apns-expiration"))] | tostring')" \
	'"[\"5\",false]"' "priority normal: apns-priority 5; no expiry: no apns-expiration"
is "$(reqs "okto$p" .body | jq -r .)" '{"aps":{"alert":{"body":"b"}}}' "payload: body only"

# --- many deliveries, one provider token ---------------------------------------------------------
for i in $(seq 1 15); do
	printf '{"to":{"push_token":{"platform":"ios","token":"okmany%dx%s"}},"channels":{"push":{"title":"t%d","body":"b"}}}\n' \
		"$i" "$p" "$i"
done > "$tmp/many.jsonl"
mapfile -t txs < <(wk_tx "$("$send" --bulk "$tmp/many.jsonl")")
r=""
for tx in "${txs[@]}"; do r="$r$(wk_wait "$tx" push) "; done
is "$r" "$(printf 'done %.0s' $(seq 1 15))" "15 deliveries at once: all done"
is "$(jq -r "select(.token | startswith(\"okmany\")) | select(.token | endswith(\"x$p\")) | .jwt" "$log" | sort -u | wc -l)" 1 \
	"all 15 carried the same provider token"
is "$(jq -r "select(.token | startswith(\"okmany\")) | select(.token | endswith(\"x$p\")) | .jwt" "$log" | sort -u)" "$jwt" \
	"and it is the first delivery's token (reused, not re-signed)"
is "$(jq -r "select(.token | startswith(\"okmany\")) | select(.token | endswith(\"x$p\")) | .jwt_ok" "$log" | sort -u)" true \
	"all 15 tokens verify"
is "$(jq -r "select(.token | startswith(\"okmany\")) | select(.token | endswith(\"x$p\")) | .headers[\"apns-id\"]" "$log" | sort -u | wc -l)" 15 \
	"15 different apns-ids"

# --- outcomes ---------------------------------------------------------------------------------------
declare -A T
outs="gone bad busy flaky slow exp inv two mix plat"
for u in $outs; do
	printf '{"user_id":"%s_%s",%s,"data":{"order":"B-%s"}}\n' "$p" "$u" "$push" "$u"
done > "$tmp/outcomes.jsonl"
big=$(head -c 5000 /dev/zero | tr '\0' 'x')
printf '{"user_id":"%s_big","channels":{"push":{"body":"%s"}}}\n' "$p" "$big" >> "$tmp/outcomes.jsonl"
mapfile -t txs < <(wk_tx "$("$send" --bulk "$tmp/outcomes.jsonl")")
i=0
for u in $outs big; do T[$u]=${txs[$i]}; i=$((i + 1)); done

is "$(wk_wait "${T[gone]}" push)" failed "410 Unregistered: failed"
like "$(detail "${T[gone]}")" "HTTP 410 Unregistered" \
	"410: the detail has APNs' reason"
is "$(reqs "gone1$p" .status)/$(wk_trail "${T[gone]}" push)" "410/->ready ready>failed" "410: sent once, not retried"
is "$(sql "SELECT COUNT(*) FROM devices WHERE token = 'gone1$p'")" 0 "410: the device is removed"
is "$(wk_wait "${T[bad]}" push)" failed "400 BadDeviceToken: failed"
like "$(detail "${T[bad]}")" "HTTP 400 BadDeviceToken" \
	"400: the detail has APNs' reason"
is "$(sql "SELECT COUNT(*) FROM devices WHERE token = 'bad1$p'")" 0 "BadDeviceToken: the device is removed"
is "$(wk_wait "${T[inv]}" push)" failed "403 InvalidProviderToken: failed"
is "$(reqs "invalid1$p" .status | wc -l)/$(sql "SELECT COUNT(*) FROM devices WHERE token = 'invalid1$p'")" "1/1" \
	"403 InvalidProviderToken: sent once, the device kept"

is "$(wk_wait "${T[busy]}" push 20)" done "429, then 200: done"
is "$(reqs "busy1$p" .status | tr '\n' ' ')" "429 200 " "429: sent again"
like "$(sql "SELECT a.detail FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
	WHERE n.transaction_id = '${T[busy]}' AND a.new_status = 'retry'")" '"HTTP 429 TooManyRequests"' \
	"429: transient, APNs' reason in the detail"
is "$(wk_wait "${T[flaky]}" push 20)" done "503, then 200: done"
is "$(wk_trail "${T[flaky]}" push)" "->ready ready>retry retry>ready ready>done" "503: retried once"
is "$(reqs "flaky1$p" '.headers["apns-id"]' | sort -u | wc -l)/$(reqs "flaky1$p" .status | wc -l)" "1/2" \
	"the retry carries the same apns-id"

is "$(wk_wait "${T[exp]}" push 20)" done "403 ExpiredProviderToken, then 200: done"
is "$(reqs "expired1$p" .status | tr '\n' ' ')" "403 200 " "ExpiredProviderToken: sent again"
j1=$(reqs "expired1$p" .jwt | head -1); j2=$(reqs "expired1$p" .jwt | tail -1)
[ "$j1" != "$j2" ] && [ "$(reqs "expired1$p" .jwt_ok | sort -u)" = true ]
ok $? "the retry carries a new provider token, verified"
is "$(reqs "expired1$p" '.headers["apns-id"]' | sort -u | wc -l)" 1 "the same apns-id on both"

is "$(wk_wait "${T[slow]}" push 20)" failed "a peer slower than the timeout on every attempt: failed"
is "$(wk_trail "${T[slow]}" push)" "->ready ready>retry retry>ready ready>failed" \
	"timeout: transient (retried), then retries exhausted"
like "$(sql "SELECT a.detail FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
	WHERE n.transaction_id = '${T[slow]}' AND a.new_status = 'retry'")" "curl 28" "timeout: curl 28 in the detail"

is "$(wk_wait "${T[big]}" push)" failed "a payload over 4 KiB: failed"
like "$(detail "${T[big]}")" \
	"payload of [0-9]+ bytes is over APNs' 4096" "a payload over 4 KiB: the detail says so"
is "$(reqs "okbig$p" .path | wc -l)" 0 "a payload over 4 KiB: nothing sent"
# several devices: one request per device, each with its own apns-id; a retry only for those
# not yet accepted; done when one accepted and the others are final
is "$(wk_wait "${T[two]}" push 20)" done "devices 200 + 410: done"
is "$(reqs "okA$p" .status)/$(reqs "goneA$p" .status)" "200/410" "each device sent once"
ida=$(reqs "okA$p" '.headers["apns-id"]'); idb=$(reqs "goneA$p" '.headers["apns-id"]')
[ -n "$ida" ] && [ -n "$idb" ] && [ "$ida" != "$idb" ]; ok $? "each device of one transaction has its own apns-id"
is "$(sql "SELECT GROUP_CONCAT(token ORDER BY token) FROM devices WHERE user_id = '${p}_two'")" "okA$p" \
	"the unregistered device removed, the other kept"
is "$(wk_wait "${T[mix]}" push 20)" done "devices 200 + 503 then 200: done"
is "$(reqs "okB$p" .status | tr '\n' ' ')/$(reqs "flakyB$p" .status | tr '\n' ' ')" "200 /503 200 " \
	"the retry went only to the device not yet accepted"
is "$(wk_wait "${T[plat]}" push 20)/$(reqs "okC$p" .status)/$(reqs "okdroidC$p" .status | wc -l)" "done/200/0" \
	"an iOS and an Android device, APNs only: the iOS one sent, done"
tx=$(hsend "{\"to\":{\"push_token\":{\"platform\":\"android\",\"token\":\"okdroid$p\"}},\"channels\":{\"push\":{\"body\":\"b\"}}}")
is "$(wk_wait "$tx" push)/$(reqs "okdroid$p" .path | wc -l)" "failed/0" "an Android device: not sent to APNs"

# a 429 with Retry-After (alone: it pauses the provider for the other deliveries)
tx=$(hsend "{\"to\":{\"push_token\":{\"platform\":\"ios\",\"token\":\"busyra$p\"}},\"channels\":{\"push\":{\"body\":\"b\"}}}")
is "$(wk_wait "$tx" push 20)" done "429 with Retry-After: 1, then 200: done"
is "$(sql "SELECT attempt FROM notifications WHERE transaction_id = '$tx'")/$(reqs "busyra$p" .status | tr '\n' ' ')" \
	"1/429 200 " "the 429 with Retry-After counted no attempt"
like "$(sql "SELECT a.detail FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
	WHERE n.transaction_id = '$tx' AND a.new_status = 'retry'")" '"retry_after": *1' "Retry-After passed on"

# ExpiredProviderToken again within 20 minutes of the last refresh: no new token (a clock
# problem; Apple would answer TooManyProviderTokenUpdates), the retry goes with the same one
tx=$(hsend "{\"to\":{\"push_token\":{\"platform\":\"ios\",\"token\":\"expiredB$p\"}},\"channels\":{\"push\":{\"body\":\"b\"}}}")
is "$(wk_wait "$tx" push 20)/$(reqs "expiredB$p" .status | tr '\n' ' ')" "done/403 200 " \
	"a second ExpiredProviderToken: retried, done"
is "$(reqs "expiredB$p" .jwt | sort -u | wc -l)/$(reqs "expiredB$p" .jwt | head -1)" "1/$j2" \
	"no second refresh within 20 minutes: the same (refreshed) token on both"
like "$(grep 'event=apns_token_expired' "$tmp/w.log" | tail -1)" 'level=warn .*is the clock right' \
	"and a warning about the clock is logged"
n=$(jq -r .conn "$log" | sort -u | wc -l)
[ "$n" -ge 1 ] && [ "$n" -le 3 ]; ok $? "$(grep -c . "$log") requests over $n HTTP/2 connection(s)"

wk_stop w
is "$?" 0 "the worker stops cleanly"

# --- a valid P-256 key that is not the team's: the peer's own check refuses the token -------------
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/other.p8" 2> /dev/null
conf "$tmp/herald.conf" "$tmp/other.p8"
wk_start w --worker push
tx=$(hsend "{\"to\":{\"push_token\":{\"platform\":\"ios\",\"token\":\"okother$p\"}},\"channels\":{\"push\":{\"body\":\"b\"}}}")
is "$(wk_wait "$tx" push)/$(reqs "okother$p" '[.jwt_ok, .status] | tostring')" 'failed/"[false,403]"' \
	"another key's token: not verified by the peer, 403, failed"
like "$(detail "$tx")" "HTTP 403 InvalidProviderToken" \
	"403 InvalidProviderToken: permanent, APNs' reason in the detail"
wk_stop w
grep -q "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error" "$tmp/w.log" "$tmp/bad.log"; is $? 1 "no sanitizer report in the worker's log"
