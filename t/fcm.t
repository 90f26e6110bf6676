#!/usr/bin/env bash
# fcm.t - the FCM HTTP v1 provider (workers/prov_fcm.c) end to end: heraldd --worker push against
# the private broker and database and t/lib/fcm_peer.py, a local token endpoint that verifies the
# RS256 assertion with the test key's public half (python3-cryptography) and a messages:send
# endpoint that records every request. Checked: the JWT, one token request for many deliveries,
# refresh before expiry, the payload (title, body, string data, herald_id, android priority),
# UNREGISTERED (failed; the device removed), 400 INVALID_ARGUMENT, 429 retried then done, 500
# retried then failed, 401 once recovered with a new token, a timeout, data FCM cannot carry,
# refused credentials, and startup errors for broken service-account files.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
plan 72

PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/herald-fcm-t.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
sql_init "$tmp"
ppid_=
cleanup() {
	wk_kill worker
	wk_kill bad
	[ -n "$ppid_" ] && kill "$ppid_" 2> /dev/null && wait "$ppid_" 2> /dev/null
	for q in herald.push.v1 herald.push.v1.parked herald.ledger.v1; do
		"$peek" "$HERALD_AMQP_URL" "$q" > /dev/null 2>&1
	done
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "db migrate failed"

# --- the key, the service account, the peer ---------------------------------------------------
p=fcmt$$
email="herald@$p.iam.gserviceaccount.com"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/key.pem" 2> /dev/null &&
	openssl pkey -in "$tmp/key.pem" -pubout -out "$tmp/pub.pem" 2> /dev/null &&
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/other.pem" 2> /dev/null &&
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/ec.pem" 2> /dev/null ||
	bail "cannot make keys"
# account FILE KEYFILE [DROP_FIELD] [EXTRA_JSON] - write a service-account file (mode 600)
account() {
	"$PY" -c 'import json,sys
f,key,drop,extra=sys.argv[1:5]
d={"type":"service_account","project_id":sys.argv[5],"private_key_id":"kid-"+sys.argv[5],
   "private_key":open(key).read(),"client_email":sys.argv[6],"client_id":"1",
   "token_uri":"https://oauth2.googleapis.com/token"}
d.pop(drop,None); d.update(json.loads(extra or "{}"))
open(f,"w").write(json.dumps(d,indent=2))' "$1" "$2" "${3:-}" "${4:-}" "$p" "$email"
	chmod 600 "$1"
}
account "$tmp/sa.json" "$tmp/key.pem"
account "$tmp/sa-other.json" "$tmp/other.pem"

plog=$tmp/peer.jsonl
"$PY" "$HERALD_SRCDIR/t/lib/fcm_peer.py" --port-file "$tmp/port" --log "$plog" \
	--pubkey "$tmp/pub.pem" --iss "$email" --kid "kid-$p" --slow 4 > "$tmp/peer.log" 2>&1 &
ppid_=$!
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
[ -s "$tmp/port" ] || bail "fcm_peer.py did not start: $(cat "$tmp/peer.log")"
base="http://127.0.0.1:$(cat "$tmp/port")"
touch "$plog"

# conf NAME SA_FILE TOKEN_PATH - a config for push workers using the peer
conf() {
	cat > "$tmp/$1.conf" <<EOF
broker = { prefetch = 50; confirm_timeout = 10; };
retry = { tiers = [ 1 ]; };
log = { level = "info"; };
channels = { push = { in_flight = 64;
	providers = ( { name = "fcm-$p"; type = "fcm"; service_account_file = "$2";
		token_url = "$base$3"; url = "$base/"; timeout = 2; } ); }; };
EOF
	chmod 600 "$tmp/$1.conf"
}
conf main "$tmp/sa.json" /token
conf other "$tmp/sa-other.json" /token
export HERALD_CONFIG=$tmp/main.conf

stats() { curl -s "$base/stats" | jq -r ".$1"; }
ctl_peer() { curl -s -X POST "$base/ctl?$1" > /dev/null; }
# sends DEVICE JQ - JQ over the peer's send lines for DEVICE, one result a line
sends() { jq -c --arg d "$1" "select(.kind == \"send\" and .json.message.token == \$d) | $2" "$plog"; }
# psend DEVICE [PUSH_CONTENT] [EXTRA] - a push to a `to` android device; its transaction id
pdef='{"title":"T","body":"B"}'
psend() {
	wk_tx "$("$send" --json "{\"to\":{\"push_token\":{\"platform\":\"android\",\"token\":\"$1\"}},
		\"channels\":{\"push\":${2:-$pdef}}${3:+,$3}}")"
}
# detail TXID - the push row's detail, then its devices' details (per-device outcomes)
detail() {
	sql "SELECT CONCAT(n.detail, ' ', IFNULL((SELECT GROUP_CONCAT(d.detail) FROM device_outcomes d
		WHERE d.notification_id = n.id), '')) FROM notifications n
		WHERE n.transaction_id = '$1' AND n.channel = 'push'"
}

wk_start worker --worker push
# --- the payload, the message id, the JWT -----------------------------------------------------
tx=$(psend "ok-$p-pay" '{"title":"Order {{order}}","body":"Shipped {{order}} ✓","data":{"order":"A-42","n":7,"f":1.5,"gift":true,"herald_id":"spoof"}}' \
	'"data":{"order":"A-42"},"category":"transactional"')
like "$tx" '^[0-9a-f-]{36}$' "sent a push notification"
is "$(wk_wait "$tx" push)" done "android device: done"
is "$(sends "ok-$p-pay" .path)" "\"/v1/projects/$p/messages:send\"" "POST to {url}/v1/projects/PROJECT/messages:send"
is "$(sends "ok-$p-pay" .bearer_ok)" true "the peer accepted the bearer token"
is "$(sends "ok-$p-pay" '.json.message.notification')" '{"title":"Order A-42","body":"Shipped A-42 ✓"}' \
	"notification: rendered title and body"
is "$(sends "ok-$p-pay" '.json.message.data | del(.herald_id)')" '{"order":"A-42","n":"7","f":"1.5","gift":"true"}' \
	"data: every value a string"
like "$(sends "ok-$p-pay" '.json.message.data.herald_id')" "^\"$tx:push" \
	"data.herald_id is the message identity (not the request's)"
is "$(sends "ok-$p-pay" '.json.message.android')" '{"priority":"high"}' "transactional (8): android priority high"
is "$(sends "ok-$p-pay" '.json.message | keys | join(",")')" '"android,data,notification,token"' \
	"message: token, notification, data, android only"
like "$(sends "ok-$p-pay" '.headers["content-type"]')" '^"application/json' "Content-Type application/json"
like "$(sql "SELECT provider_message_id FROM notifications WHERE transaction_id = '$tx' AND channel = 'push'")" \
	"^projects/$p/messages/[0-9]+$" "provider message id: the answer's name"
is "$(stats token_requests)" 1 "one token request so far"
tl=$(jq -c 'select(.kind == "token")' "$plog" | head -1)
is "$(jq -r '.ok' <<< "$tl")" true "the peer verified the assertion's RS256 signature and claims"
is "$(jq -c '.header' <<< "$tl")" "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"kid-$p\"}" "JWT header: RS256, JWT, kid"
is "$(jq -c '.claims | [.iss, .scope, .aud, .exp - .iat]' <<< "$tl")" \
	"[\"$email\",\"https://www.googleapis.com/auth/firebase.messaging\",\"$base/token\",3600]" \
	"JWT claims: iss, scope, aud (the token URL), exp = iat + 3600"
is "$(jq -r '.content_type' <<< "$tl")" "application/x-www-form-urlencoded" "token request: a form"

# --- twenty at once: one token ----------------------------------------------------------------
for i in $(seq 20); do
	echo "{\"to\":{\"push_token\":{\"platform\":\"android\",\"token\":\"ok-$p-m$i\"}},\"channels\":{\"push\":{\"title\":\"M$i\"}},\"priority\":\"low\"}"
done > "$tmp/bulk.jsonl"
"$send" --bulk "$tmp/bulk.jsonl" > "$tmp/bulk.out"
mapfile -t txs < <(sed -n 's/.*"transaction_id":"\([0-9a-f-]\{36\}\)".*/\1/p' "$tmp/bulk.out")
is "${#txs[@]}" 20 "20 notifications accepted"
n=0; for t in "${txs[@]}"; do [ "$(wk_wait "$t" push)" = done ] && n=$((n + 1)); done
is "$n" 20 "all 20 done"
is "$(jq -r 'select(.kind == "send" and (.json.message.token | startswith("ok-'$p'-m"))) | .status' "$plog" | sort | uniq -c | tr -s ' ')" \
	" 20 200" "the peer got 20 sends, each answered 200"
is "$(stats token_requests)" 1 "still one token request for 21 deliveries"
is "$(sends "ok-$p-m7" '.json.message.android.priority')" '"normal"' "priority low: android priority normal"
is "$(sends "ok-$p-m7" '.json.message | has("data")')" true "data carries herald_id even with no data"

# --- 401 once: the token dropped, the retry fetches a new one ---------------------------------
ctl_peer expires_in=3                      # the next token lives 3 s (used for 1.5 s)
ctl_peer reject_next=1
tx=$(psend "ok-$p-401")
is "$(wk_wait "$tx" push)" done "401 once: done"
is "$(wk_trail "$tx" push)" "->ready ready>retry retry>ready ready>done" "401: retried once"
is "$(sends "ok-$p-401" .status | tr '\n' ' ')" "401 200 " "the peer saw a 401, then a 200"
is "$(stats token_requests)" 2 "a new token was fetched after the 401"
like "$(sql "SELECT a.detail FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
	WHERE n.transaction_id = '$tx' AND a.new_status = 'retry'")" 'FCM HTTP 401 UNAUTHENTICATED' \
	"retry detail names HTTP 401 UNAUTHENTICATED"
ctl_peer expires_in=3600                   # tokens from now on live an hour

# --- refresh before expiry ----------------------------------------------------------------------
sleep 2                                  # past the 3 s token's use-by time (half its life)
tx=$(psend "ok-$p-exp")
is "$(wk_wait "$tx" push)" done "after the token's lifetime: done"
is "$(wk_trail "$tx" push)" "->ready ready>done" "refreshed before sending: no retry"
is "$(sends "ok-$p-exp" .status)" 200 "the peer saw one send, with a valid token"
is "$(stats token_requests)" 3 "the expiring token was replaced by a new one"
tx=$(psend "ok-$p-exp2")
is "$(wk_wait "$tx" push)/$(stats token_requests)" done/3 "the new (hour-long) token is cached and used"

# --- UNREGISTERED, INVALID_ARGUMENT, data FCM cannot carry --------------------------------------
sql "INSERT INTO users (user_id, timezone) VALUES ('${p}_u', 'UTC')" || bail "cannot insert a user"
sql "INSERT INTO devices (user_id, platform, token) VALUES ('${p}_u', 'android', 'gone-$p-dev')"
txg=$(psend "gone-$p-to")
txu=$(wk_tx "$("$send" --json "{\"user_id\":\"${p}_u\",\"channels\":{\"push\":{\"title\":\"T\"}},\"category\":\"transactional\"}")")
txb=$(psend "bad-$p")
txd=$(psend "ok-$p-obj" '{"title":"T","data":{"nested":{"a":1}}}')
txr=$(psend "ok-$p-res" '{"title":"T","data":{"google.x":"1"}}')
is "$(wk_wait "$txg" push)" failed "404 UNREGISTERED: failed"
like "$(detail "$txg")" '"reason": *"permanent".*FCM HTTP 404 NOT_FOUND UNREGISTERED' \
	"detail: permanent, FCM HTTP 404 NOT_FOUND UNREGISTERED"
is "$(sends "gone-$p-to" .status)" 404 "UNREGISTERED: sent once, not retried"
is "$(wk_wait "$txu" push)" failed "a user's unregistered device: failed"
is "$(sql "SELECT COUNT(*) FROM devices WHERE token = 'gone-$p-dev'")" 0 "the unregistered device is removed"
is "$(wk_wait "$txb" push)" failed "400 INVALID_ARGUMENT: failed"
like "$(detail "$txb")" 'FCM HTTP 400 INVALID_ARGUMENT: The registration token is not a valid' \
	"detail: FCM HTTP 400 INVALID_ARGUMENT and FCM's message"
is "$(wk_wait "$txd" push)/$(sends "ok-$p-obj" .status | grep -c .)" failed/0 "an object data value: failed, nothing sent"
like "$(detail "$txd")" 'push data key .*nested.*: FCM data values must be strings, not object' \
	"detail names the key and why"
is "$(wk_wait "$txr" push)/$(sends "ok-$p-res" .status | grep -c .)" failed/0 "a reserved data key: failed, nothing sent"

# --- 429 retried, 500 retried then failed, timeout ----------------------------------------------
tx4=$(psend "busy-$p")
is "$(wk_wait "$tx4" push)" done "429 then 200: done"
is "$(wk_trail "$tx4" push)" "->ready ready>retry retry>ready ready>done" "429: one retry"
like "$(sql "SELECT a.detail FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
	WHERE n.transaction_id = '$tx4' AND a.new_status = 'retry'")" 'FCM HTTP 429 RESOURCE_EXHAUSTED QUOTA_EXCEEDED.*"http_status": *429, *"retry_after": *1' \
	"429: detail names RESOURCE_EXHAUSTED QUOTA_EXCEEDED, Retry-After 1 kept"
sleep 1.1                                  # the 429 paused the provider for 1 s
tx5=$(psend "err-$p")
txs_=$(psend "slow-$p")
is "$(wk_wait "$tx5" push)" failed "500 twice: failed after the tiers"
is "$(wk_trail "$tx5" push)" "->ready ready>retry retry>ready ready>failed" "500: retried once, then failed"
like "$(detail "$tx5")" '"reason": *"retries exhausted".*FCM HTTP 500 INTERNAL' "detail: retries exhausted, HTTP 500"
is "$(wk_wait "$txs_" push 15)" failed "slow peer: failed after the tiers"
like "$(sql "SELECT a.detail FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
	WHERE n.transaction_id = '$txs_' AND a.new_status = 'retry'")" '"reason": *"transient".*curl 28' \
	"slow peer: a timeout, transient"
is "$(stats token_requests)" 3 "no token request for any of these"
wk_stop worker; ok $? "worker stopped cleanly"
grep -qi "ya29\.\|PRIVATE KEY\|assertion=" "$tmp/worker.log"; is $? 1 "no token, key or assertion in the worker's log"

# --- refused credentials --------------------------------------------------------------------------
HERALD_CONFIG=$tmp/other.conf wk_start bad --worker push
tx=$(psend "ok-$p-cred")
tx2=$(psend "ok-$p-cred2")
is "$(wk_wait "$tx" push)" failed "credentials refused (another key): failed"
like "$(detail "$tx")" 'FCM token request refused: HTTP 400 invalid_grant: Invalid JWT Signature.*bad service-account credentials' \
	"detail: the token request was refused, invalid_grant, bad credentials"
is "$(wk_wait "$tx2" push)" failed "a second delivery: failed as well"
is "$(jq -c 'select(.kind == "token" and .ok == false) | .why' "$plog" | sort -u)" '"Invalid JWT Signature."' \
	"the peer refused the signature"
is "$(sends "ok-$p-cred" .status | grep -c .)" 0 "nothing sent without a token"
wk_stop bad

# --- the token endpoint down: transient ---------------------------------------------------------
conf down "$tmp/sa.json" /token/down
HERALD_CONFIG=$tmp/down.conf wk_start bad --worker push
tx=$(psend "ok-$p-down")
is "$(wk_wait "$tx" push)" failed "token endpoint 503: failed once the tiers are used up"
is "$(wk_trail "$tx" push)" "->ready ready>retry retry>ready ready>failed" "token endpoint 503: transient, retried"
like "$(detail "$tx")" '"reason": *"retries exhausted".*FCM token request: HTTP 503 temporarily_unavailable' \
	"detail: the token request's HTTP 503"
is "$(jq -r 'select(.kind == "token" and .path == "/token/down") | .status' "$plog" | grep -c 503)" 1 \
	"one token request: the failure is remembered for a few seconds"
is "$(sends "ok-$p-down" .status | grep -c .)" 0 "nothing sent without a token"
wk_stop bad

# --- startup errors ---------------------------------------------------------------------------------
# startup NAME SA - heraldd --worker push with the service-account file SA: exit status and log
startup() {
	conf "$1" "$2" /token
	HERALD_CONFIG=$tmp/$1.conf timeout 20 "$heraldd" --worker push > "$tmp/$1.log" 2>&1
	echo "$?"
}
account "$tmp/sa-noemail.json" "$tmp/key.pem" client_email
is "$(startup noemail "$tmp/sa-noemail.json")" 78 "no client_email: heraldd exits EX_CONFIG"
like "$(cat "$tmp/noemail.log")" "sa-noemail.json: client_email missing" "the error names the file and the field"
account "$tmp/sa-nokey.json" "$tmp/key.pem" "" '{"private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}'
startup nokey "$tmp/sa-nokey.json" > /dev/null
like "$(cat "$tmp/nokey.log")" "sa-nokey.json: private_key: " "a broken private_key: named"
account "$tmp/sa-ec.json" "$tmp/ec.pem"
startup ec "$tmp/sa-ec.json" > /dev/null
like "$(cat "$tmp/ec.log")" "sa-ec.json: private_key is not an RSA key" "an EC key: not RSA"
printf '{"type": "service_account", "client_email": ' > "$tmp/sa-trunc.json"; chmod 600 "$tmp/sa-trunc.json"
startup trunc "$tmp/sa-trunc.json" > /dev/null
like "$(cat "$tmp/trunc.log")" "sa-trunc.json: not valid JSON \\(truncated" "truncated JSON: named"
startup missing "$tmp/nonexistent.json" > /dev/null
like "$(cat "$tmp/missing.log")" "nonexistent.json: No such file" "a missing file: named"
account "$tmp/sa-open.json" "$tmp/key.pem"; chmod 644 "$tmp/sa-open.json"
startup open "$tmp/sa-open.json" > /dev/null
like "$(cat "$tmp/open.log")" "sa-open.json: readable by others" "a world-readable key file: refused"
account "$tmp/sa-noproj.json" "$tmp/key.pem" project_id
startup noproj "$tmp/sa-noproj.json" > /dev/null
like "$(cat "$tmp/noproj.log")" "sa-noproj.json: project_id missing" "no project_id anywhere: named"
cat "$tmp"/{noemail,nokey,ec,trunc,missing,open,noproj}.log | grep -q "BEGIN\|MII"
is $? 1 "no key material in any startup error"
done_testing
