#!/usr/bin/env bash
# webhook.t - workers/http.c + the webhook provider against a real HTTP receiver (t/lib/receiver.py):
# the body, Standard Webhooks signatures checked by Python (one secret, a rotation, none), the
# same webhook-id on every attempt, the §5 outcome rules (2xx, 4xx, 5xx, 429 + Retry-After,
# refused, timeout, redirect), the private-destination guard, 200 deliveries at once, and the
# provider list. Needs no broker or database.
. "$HERALD_SRCDIR/t/lib/tap.sh"
plan 76

send="$HERALD_BUILDDIR/t/itest/webhook_send"
tmp=$(mktemp -d /tmp/herald-webhook-t.XXXXXX)
rpid=
cleanup() {
	[ -n "$rpid" ] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
unset HERALD_CONFIG

S1=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw      # the Standard Webhooks example secret
S2=plain-rotation-secret                        # a raw (non-whsec_) secret
log="$tmp/receiver.jsonl"
python3 "$HERALD_SRCDIR/t/lib/receiver.py" --log "$log" --port-file "$tmp/port" \
	--secret "$S1" --secret "$S2" --slow "$(tlimit 3)" &
rpid=$!
for _ in $(seq "$(tlimit 50)"); do [ -s "$tmp/port" ] && break; sleep 0.1; done
[ -s "$tmp/port" ] || bail "receiver.py did not start"
port=$(cat "$tmp/port")
base="http://127.0.0.1:$port"

# conf NAME TEXT - write a config file (mode 600: it holds secrets)
conf() { printf '%s\n' "$2" > "$tmp/$1.conf"; chmod 600 "$tmp/$1.conf"; }
conf open "channels = { webhook = { allow_private = true; providers = ( { type = \"webhook\";
  timeout = $(tlimit 1); secrets = [ \"$S1\" ]; } ); }; };
clients = { shop = { webhook_secrets = [ \"$S2\", \"$S1\" ]; }; };"
conf nosig 'channels = { webhook = { allow_private = true; }; };'
conf guarded "channels = { webhook = { providers = ( { type = \"webhook\"; secrets = [ \"$S1\" ]; } ); }; };"
conf failover "channels = { webhook = { allow_private = true; providers = (
  { name = \"first\"; type = \"webhook\"; timeout = $(tlimit 1); }, { name = \"second\"; type = \"webhook\"; } ); }; };"
conf email 'channels = { email = { providers = ( { type = "smtp"; url = "smtp://mail.example.org"; } ); }; };'

# wsend CONF ARGS... - run the driver with config CONF; its output in $out, status in $rc
wsend() { local c=$1; shift; out=$(HERALD_CONFIG="$tmp/$c.conf" "$send" "$@" 2>"$tmp/stderr"); rc=$?; }
# field LINE KEY - the value of KEY in a driver line
field() { printf '%s\n' "$1" | tr '\t' '\n' | sed -n "s/^$2=//p" | head -1; }
# line N - the N-th line of $out
line() { printf '%s\n' "$out" | sed -n "${1}p"; }
# summary LINE - outcome/status/retry_after
summary() { echo "$(field "$1" outcome)/$(field "$1" status)/$(field "$1" retry_after)"; }
# req TXID JQ - JQ applied to the receiver's log lines for transaction TXID, one result a line
req() { jq -c --arg t "$1" "select(.json.transaction_id == \$t) | $2" "$log"; }
# tagged TAG - how many requests the receiver got with tag=TAG in the query
tagged() { jq -r --arg t "tag=$1" 'select(.query | split("&") | index($t)) | .path' "$log" | grep -c .; }

# --- the body, exactly, and the headers ---------------------------------------------------
now=1614265330123456
wsend open -t $now -u user123 -k shop -e order.shipped -b spring-sale -C transactional \
	-m '{"order":"A-42"}' -d '{"order_id":"A-42","n":[1,2]}' "$base/ok"
is "$rc" 0 "driver exits 0"
l=$(line 1); tx=$(field "$l" txid)
is "$(summary "$l")" "accepted/200/-1" "200: accepted"
is "$(field "$l" detail)" "HTTP 200" "detail HTTP 200"
is "$(req "$tx" .body | jq -r .)" \
	"{\"type\":\"notification\",\"transaction_id\":\"$tx\",\"user_id\":\"user123\",\"client_id\":\"shop\",\"category\":\"transactional\",\"batch_id\":\"spring-sale\",\"metadata\":{\"order\":\"A-42\"},\"event\":\"order.shipped\",\"data\":{\"order_id\":\"A-42\",\"n\":[1,2]},\"timestamp\":\"2021-02-25T15:02:10.123456Z\"}" \
	"body: every field, in order"
is "$(req "$tx" '.method + " " + .path')" '"POST /ok"' "POST to the URL's path"
is "$(req "$tx" '.headers["content-type"]')" '"application/json"' "Content-Type application/json"
like "$(req "$tx" '.headers["user-agent"]')" '^"herald/[0-9]' "User-Agent herald/VERSION"
is "$(req "$tx" '.headers["webhook-id"]')" "\"$tx:webhook\"" "webhook-id is the identity"
is "$(req "$tx" '.headers["webhook-timestamp"]')" '"1614265330"' "webhook-timestamp in whole seconds"
is "$(req "$tx" '[.sig_ok, .sigs] | tostring')" '"[true,2]"' "client secrets win: two signatures, verified"
is "$(req "$tx" .sig_match)" '[true,true]' "rotation: one signature per secret"
like "$(req "$tx" '.headers["webhook-signature"]')" '^"v1,[A-Za-z0-9+/]{43}= v1,[A-Za-z0-9+/]{43}="$' \
	"webhook-signature: two space-separated v1 entries"
is "$(req "$tx" '.headers.expect // "none"')" '"none"' "no Expect: 100-continue"

# absent values are null; the provider's one secret signs
wsend open "$base/ok"
tx=$(field "$(line 1)" txid)
is "$(req "$tx" '.json | [.user_id, .client_id, .batch_id, .metadata, .event, .data] | tostring')" \
	'"[null,null,null,null,null,null]"' "absent values are null"
is "$(req "$tx" '.json.category')" '"notifications"' "category carried"
like "$(req "$tx" '.json.timestamp')" '^"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z"$' "timestamp RFC 3339 UTC"
is "$(req "$tx" '[.sig_ok, .sigs, .sig_match] | tostring')" '"[true,1,[true,false]]"' \
	"provider secret: one signature, verified by Python"
ts=$(req "$tx" '.headers["webhook-timestamp"] | tonumber')
d=$(( $(date +%s) - ts )); [ "$d" -ge 0 ] && [ "$d" -le 5 ]; ok $? "webhook-timestamp is now"

# no secret: unsigned
wsend nosig "$base/ok"
tx=$(field "$(line 1)" txid)
is "$(summary "$(line 1)")" "accepted/200/-1" "no secret: delivered"
is "$(req "$tx" '[.sig_ok, .sigs, has("headers") and (.headers | has("webhook-signature"))] | tostring')" \
	'"[false,0,false]"' "no secret: no webhook-signature header"
is "$(req "$tx" '.headers | has("webhook-id") and has("webhook-timestamp")')" 'true' \
	"no secret: webhook-id and webhook-timestamp still sent"

# --- the same identity on every attempt ---------------------------------------------------
wsend open -a 2 "$base/busy"
is "$(printf '%s\n' "$out" | grep -c .)" 2 "two attempts"
tx=$(field "$(line 1)" txid)
is "$(req "$tx" '.headers["webhook-id"]' | sort -u)" "\"$tx:webhook\"" "same webhook-id on both attempts"
is "$(req "$tx" .sig_ok | sort -u)" "true" "both attempts signed"
is "$(req "$tx" .path | grep -c .)" 2 "receiver saw both attempts"

# --- outcome rules -------------------------------------------------------------------------
wsend open "$base/fail400" "$base/busy" "$base/limit" "$base/status/404" "$base/status/500" \
	"$base/redirect?tag=redir&location=/ok?tag=followed" \
	"$base/status/503?retry_after=120" "$base/ok?msgid=prov-42" "$base/status/202" \
	"$base/status/429?retry_after=$(date -u -d '+30 sec' '+%a,%%20%d%%20%b%%20%Y%%20%H:%M:%S%%20GMT')"
is "$rc" 0 "outcomes: driver exits 0"
is "$(summary "$(line 1)")" "permanent/400/-1" "400: permanent"
like "$(field "$(line 1)" detail)" '^HTTP 400' "400: detail names the status"
is "$(summary "$(line 2)")" "transient/503/-1" "503: transient"
is "$(summary "$(line 3)")" "transient/429/7" "429: transient, Retry-After: 7"
is "$(summary "$(line 4)")" "permanent/404/-1" "404: permanent"
is "$(summary "$(line 5)")" "transient/500/-1" "500: transient"
is "$(summary "$(line 6)")" "permanent/302/-1" "302: permanent (redirects are not followed)"
is "$(field "$(line 6)" detail)" "HTTP 302: redirect not followed" "302: detail says why"
is "$(tagged followed)" 0 "the redirect target was never requested"
is "$(summary "$(line 7)")" "transient/503/120" "503 with Retry-After: 120"
is "$(summary "$(line 8)")/$(field "$(line 8)" msgid)" "accepted/200/-1/prov-42" \
	"X-Message-Id becomes the provider message id"
is "$(summary "$(line 9)")" "accepted/202/-1" "202: accepted"
ra=$(field "$(line 10)" retry_after)
[ "$(field "$(line 10)" outcome)" = transient ] && [ "$ra" -ge 25 ] && [ "$ra" -le 30 ]
ok $? "429 with an HTTP-date Retry-After: about 30 s (got $ra)"
printf '%s\n' "$out" | grep -q "$S1\|$S2\|notification"; is $? 1 "no secret and no request body in any detail"

# connection refused, timeout, bad URL
cport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
wsend open "http://127.0.0.1:$cport/ok" "$base/slow?tag=slow" "ftp://example.org/x" "not a url"
is "$(summary "$(line 1)")" "transient/0/-1" "connection refused: transient"
like "$(field "$(line 1)" detail)" "^curl 7 .*onnect" "connection refused: curl error named"
is "$(summary "$(line 2)")" "transient/0/-1" "timeout: transient"
like "$(field "$(line 2)" detail)" "^curl 28 .*[Tt]imeout" "timeout: curl error named"
is "$(summary "$(line 3)")" "permanent/0/-1" "ftp:// URL: permanent"
is "$(summary "$(line 4)")" "permanent/0/-1" "not a URL: permanent"
wsend open "$(printf '%s/ok?tag=crlf\r\nX-Evil: 1' "$base")" "$base/ok?tag=crlf2&x=%0d%0aX-Evil:%201"
is "$(summary "$(line 1)")" "permanent/0/-1" "CR LF in the URL: refused before sending"
is "$(summary "$(line 2)")/$(jq -r 'select(.headers["x-evil"]) | .path' "$log" | grep -c .)" "accepted/200/-1/0" \
	"an escaped CR LF stays in the query: no header injected"

# http_free with calls in flight: each ends, aborted, and nothing leaks
wsend open -x 0.5 "$base/slow?tag=abort1" "$base/slow?tag=abort2"
is "$rc" 0 "abort: every delivery ended"
is "$(summary "$(line 1)")/$(summary "$(line 2)")" "transient/0/-1/transient/0/-1" \
	"abort: running calls end transient"
like "$(field "$(line 1)" detail)" "^curl 42 " "abort: CURLE_ABORTED_BY_CALLBACK named"

# HTTPS: verified by default, not when channels.webhook.tls_verify = false
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" > /dev/null 2>&1 || bail "openssl req failed"
python3 "$HERALD_SRCDIR/t/lib/receiver.py" --log "$log" --port-file "$tmp/tport" \
	--secret "$S1" --cert "$tmp/cert.pem" --key "$tmp/key.pem" &
tpid=$!
for _ in $(seq "$(tlimit 50)"); do [ -s "$tmp/tport" ] && break; sleep 0.1; done
[ -s "$tmp/tport" ] || bail "receiver.py (TLS) did not start"
tbase="https://127.0.0.1:$(cat "$tmp/tport")"
conf noverify "channels = { webhook = { allow_private = true; tls_verify = false;
  providers = ( { type = \"webhook\"; secrets = [ \"$S1\" ]; } ); }; };"
wsend open "$tbase/ok?tag=tls1"
is "$(summary "$(line 1)")" "transient/0/-1" "HTTPS, self-signed: refused by verification"
like "$(field "$(line 1)" detail)" "^curl 60 " "HTTPS: the certificate error named"
is "$(tagged tls1)" 0 "HTTPS, unverified peer: nothing sent"
wsend noverify "$tbase/ok?tag=tls2"
is "$(summary "$(line 1)")" "accepted/200/-1" "HTTPS with tls_verify = false: delivered"
is "$(jq -r 'select(.query == "tag=tls2") | .sig_ok' "$log")" "true" "HTTPS: signature verified"
kill "$tpid"; wait "$tpid" 2>/dev/null

# --- private destinations ------------------------------------------------------------------
wsend guarded "$base/ok?tag=priv1" "http://localhost:$port/ok?tag=priv2" "http://[::1]:$port/ok?tag=priv3" \
	"http://[::ffff:127.0.0.1]:$port/ok?tag=priv4" "http://2130706433:$port/ok?tag=priv5"
is "$rc" 0 "guarded: driver exits 0"
is "$(summary "$(line 1)")" "permanent/0/-1" "127.0.0.1 refused: permanent"
is "$(field "$(line 1)" detail)" "destination 127.0.0.1 is private (channels.webhook.allow_private)" \
	"refusal names the address and the key"
like "$(summary "$(line 2)")/$(field "$(line 2)" detail)" \
	'^permanent/0/-1/destination (127\.0\.0\.1|::1) is private' "localhost refused"
like "$(summary "$(line 3)")/$(field "$(line 3)" detail)" '^permanent/0/-1/destination ::1 is private' \
	"[::1] refused"
like "$(summary "$(line 4)")/$(field "$(line 4)" detail)" \
	'^permanent/0/-1/destination ::ffff:127\.0\.0\.1 is private' "IPv4-mapped loopback refused"
like "$(summary "$(line 5)")/$(field "$(line 5)" detail)" \
	'^permanent/0/-1/destination 127\.0\.0\.1 is private' "127.0.0.1 as a decimal number refused"
n=0; for t in priv1 priv2 priv3 priv4 priv5; do n=$((n + $(tagged $t))); done
is "$n" 0 "the receiver got nothing from the refused deliveries"

# no config file at all (§12): the built-in webhook provider, private destinations refused
out=$(env -u HERALD_CONFIG HERALD_AMQP_URL=amqp://guest:guest@127.0.0.1:1/ "$send" "$base/ok?tag=noconf" 2>&1)
is "$(summary "$(line 1)")/$(field "$(line 1)" prov)" "permanent/0/-1/webhook" \
	"no config: built-in webhook provider, loopback refused"
is "$(tagged noconf)" 0 "no config: the receiver got nothing"

# --- failover and the provider list ----------------------------------------------------------
wsend failover "$base/busy"
is "$(printf '%s\n' "$out" | while read -r x; do echo "$(field "$x" prov):$(field "$x" outcome)"; done | tr '\n' ' ')" \
	"first:transient second:transient " "transient: the next provider in failover order"
wsend failover -O webhook
is "$out" "providers=2 first:webhook second:webhook" "prov_open: providers in failover order"
wsend nosig -O webhook
is "$out" "providers=1 webhook:webhook" "prov_open: the built-in default"
wsend email -O email
is "$rc/$out" "0/providers=1 smtp:smtp" "prov_open: another channel's provider type"
wsend nosig -O sms
is "$rc/$out" "0/providers=0" "prov_open: a channel without providers has none"

# --- many at once ------------------------------------------------------------------------------
start=$(date +%s.%N)
wsend open -n 200 "$base/ok?tag=many"
end=$(date +%s.%N)
is "$rc" 0 "200 concurrent: driver exits 0"
is "$(printf '%s\n' "$out" | grep -c "outcome=accepted	status=200")" 200 "200 concurrent: all accepted"
is "$(tagged many)" 200 "200 concurrent: the receiver got 200 requests"
is "$(jq -r 'select(.query == "tag=many") | .sig_ok' "$log" | sort | uniq -c | tr -s ' ')" " 200 true" \
	"200 concurrent: every signature verified"
is "$(jq -r 'select(.query == "tag=many") | .json.transaction_id' "$log" | sort -u | wc -l)" 200 \
	"200 concurrent: 200 distinct transactions"
echo "# 200 deliveries in $(echo "$end - $start" | bc 2>/dev/null || echo "?") s"

done_testing
