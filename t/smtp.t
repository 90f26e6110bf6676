#!/usr/bin/env bash
# smtp.t - the email channel end to end: heraldd --worker email with the smtp provider against a
# real SMTP server (t/lib/smtp_sink.py, aiosmtpd), the private broker and database. What the
# server received is parsed with Python's email package: headers (Subject in RFC 2047 and
# folded, From/Reply-To precedence, To, Date, Message-ID, MIME-Version), both parts decoded,
# List-Unsubscribe for marketing and not for transactional; the link's token applied with
# heraldctl prefs apply-token, after which marketing email to the user ends opt_out; the same
# Message-ID on a retry; 550 failed (+ suppression), 451 transient; STARTTLS required with a
# test CA, AUTH and a bad password (535: failed, not suppressed); STARTTLS required but not
# offered; CR/LF in subject, name and address data never makes a header.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
plan 83

PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/herald-smtp-t.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
sql_init "$tmp"
spids=()
cleanup() {
	wk_kill w
	for s in "${spids[@]}"; do kill "$s" 2> /dev/null && wait "$s" 2> /dev/null; done
	"$peek" "$HERALD_AMQP_URL" herald.email.v1 > /dev/null 2>&1
	"$peek" "$HERALD_AMQP_URL" herald.email.v1.parked > /dev/null 2>&1
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "db migrate failed"

# sink NAME ARGS... - start t/lib/smtp_sink.py (log $tmp/NAME.jsonl); its port in $sport
sink() {
	local name=$1
	shift
	"$PY" "$HERALD_SRCDIR/t/lib/smtp_sink.py" --port-file "$tmp/$name.port" --log "$tmp/$name.jsonl" \
		"$@" > "$tmp/$name.out" 2>&1 &
	spids+=($!)
	for _ in $(seq 100); do [ -s "$tmp/$name.port" ] && break; sleep 0.1; done
	[ -s "$tmp/$name.port" ] || bail "smtp_sink.py $name did not start: $(cat "$tmp/$name.out")"
	sport=$(cat "$tmp/$name.port")
	touch "$tmp/$name.jsonl"
}
# conf NAME PROVIDER - a config with the smtp provider PROVIDER (the inside of { ... })
conf() {
	cat > "$tmp/$1.conf" <<EOF
broker = { users = { guest = [ "guest", "shop" ]; }; };
retry = { tiers = [ 1 ]; };
caps = { email = 0; };
log = { level = "info"; };
defaults = { email_from = "Herald Défaut <noreply@herald.test>"; reply_to = "help@herald.test"; };
clients = { shop = { email_from = "Shop <orders@shop.test>"; }; };
unsubscribe = { secret = "$usecret"; url = "https://unsub.herald.test/u"; ttl = 3600; };
channels = { email = { providers = ( { name = "relay"; type = "smtp"; timeout = 5; $2 } ); }; };
EOF
	chmod 600 "$tmp/$1.conf"
}
# worker CONF - (re)start the email worker with config CONF
worker() {
	wk_stop w
	export HERALD_CONFIG=$tmp/$1.conf
	wk_start w --worker email
	for _ in $(seq 50); do grep -q "event=worker_started" "$tmp/w.log" 2> /dev/null && break; sleep 0.1; done
	: > "$tmp/w.log.seen"
}
# esend USER CATEGORY CONTENT [EXTRA] - send one email; its transaction id
esend() {
	wk_tx "$("$send" --json "{\"user_id\":\"$1\",\"category\":\"$2\",\"channels\":{\"email\":$3}${4:-}}")"
}

# The parser: mail.py LOG TXID [INDEX] prints a JSON summary of the INDEX-th message (default
# the last) whose Message-ID holds TXID; "count" as INDEX prints how many there are.
cat > "$tmp/mail.py" <<'EOF'
import base64, email, email.policy, email.utils, json, sys, time
log, tx = sys.argv[1], sys.argv[2]
idx = sys.argv[3] if len(sys.argv) > 3 else "-1"
msgs = []
for line in open(log, encoding="utf-8"):
    d = json.loads(line)
    if "data_b64" not in d:
        continue
    raw = base64.b64decode(d["data_b64"])
    m = email.message_from_bytes(raw, policy=email.policy.default)
    if tx not in str(m.get("Message-ID", "")):
        continue
    msgs.append((d, raw, m))
if idx == "count":
    print(len(msgs)); sys.exit(0)
d, raw, m = msgs[int(idx)]
head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
names = [l.split(":", 1)[0] for l in head.split("\r\n") if l and l[0] not in " \t"]
lens, cur = {}, None
for l in head.split("\r\n"):
    if l and l[0] not in " \t":
        cur = l.split(":", 1)[0].lower()
    lens.setdefault(cur, []).append(len(l))
def part(ctype):
    p = m.get_body(preferencelist=(ctype,))
    return p.get_content().replace("\r\n", "\n") if p is not None and p.get_content_type() == "text/" + ctype else None
date = email.utils.parsedate_to_datetime(m["Date"]) if m["Date"] else None
fr = m["From"].addresses[0] if m["From"] else None
out = {
    "code": d["code"], "mail_from": d["mail_from"], "rcpt_tos": d["rcpt_tos"], "tls": d["tls"],
    "auth_user": d["auth_user"], "names": names,
    "subject": str(m["Subject"]) if m["Subject"] is not None else None,
    "subject_raw": [l for l in head.split("\r\n") if l.startswith("Subject:")][0] if "Subject" in names else None,
    "max_line": max(len(l) for l in raw.split(b"\r\n")),
    "subject_max": max(lens.get("subject", [0])), "subject_lines": len(lens.get("subject", [])),
    "bare_lf": raw.replace(b"\r\n", b"").count(b"\n"),
    "from_name": fr.display_name if fr else None, "from_addr": fr.addr_spec if fr else None,
    "reply_to": str(m["Reply-To"]) if m["Reply-To"] else None, "to": str(m["To"]),
    "date_age": round(time.time() - date.timestamp()) if date else None,
    "date_utc": date.utcoffset().total_seconds() == 0 if date else None,
    "message_id": m["Message-ID"], "mime": m["MIME-Version"], "ctype": m.get_content_type(),
    "text": part("plain"), "html": part("html"),
    "unsub": m["List-Unsubscribe"], "unsub_post": m["List-Unsubscribe-Post"],
}
print(json.dumps(out, ensure_ascii=False))
EOF
# msg SINK TXID [INDEX] - the summary of a message; mget JSON JQ - a field of it
msg() { "$PY" "$tmp/mail.py" "$tmp/$1.jsonl" "$2" "${3:--1}"; }
mget() { printf '%s' "$1" | jq -r "$2"; }
# rcpts SINK ADDR - the RCPT TO codes the sink answered for ADDR, space-separated
rcpts() { jq -r --arg a "$2" 'select(.rcpt == $a) | .code' "$tmp/$1.jsonl" | tr '\n' ' ' | sed 's/ $//'; }
detail() { sql "SELECT detail FROM notifications WHERE transaction_id = '$1' AND channel = 'email'"; }
supp() { sql "SELECT COUNT(*) FROM suppressions WHERE address = '$1' AND channel = 'email'"; }

usecret="unsubscribe-secret-for-smtp-t-$$"
p=smtp$$
d=example.org
sql "INSERT INTO users (user_id, first_name, email) VALUES
	('${p}_a', 'Zoë', 'a.$p@$d'), ('${p}_m', 'Max', 'm.$p@$d'), ('${p}_r', 'Rae', 'r.$p@$d'),
	('${p}_b', 'Bo', 'b.$p@$d'), ('${p}_t', 'Tim', 't.$p@$d'), ('${p}_pd', 'Pat', 'pd.$p@$d'),
	('${p}_x', CONCAT('Eve', CHAR(13, 10), 'Bcc: evil@evil.test'), 'x.$p@$d'),
	('${p}_e', 'Ed', CONCAT('e.$p@$d', CHAR(13, 10), 'Bcc: evil@evil.test')),
	('${p}_dn', 'Di', 'Di <dn.$p@$d>'),
	('${p}_s', 'Sam', 's.$p@$d'), ('${p}_w', 'Wes', 'w.$p@$d'), ('${p}_n', 'Ned', 'n.$p@$d'),
	('${p}_i', 'Ida', 'i.$p@$d'), ('${p}_j', 'Jo', 'j.$p@$d')" ||
	bail "cannot insert users"

# --- a plain relay: content, headers, unsubscribe, retry, 550, 451, CR/LF ----------------------
sink plain --rcpt "b.$p@$d=550" --rcpt "t.$p@$d=451" --rcpt "pd.$p@$d=554" --data "r.$p@$d=451,250"
plain=$sport
conf a "url = \"smtp://127.0.0.1:$plain\"; starttls = false; from = \"Prov <prov@herald.test>\";"
worker a
# the deliveries that take a retry or need no order go first, to run while the others are checked
tr=$(esend "${p}_r" transactional '{"subject":"retry me","body":"x"}')
tb=$(esend "${p}_b" transactional '{"subject":"bounce","body":"x"}')
tt=$(esend "${p}_t" transactional '{"subject":"later","body":"x"}')
tp=$(esend "${p}_pd" transactional '{"subject":"policy","body":"x"}')
te=$(esend "${p}_e" transactional '{"subject":"s","body":"b"}')
td=$(esend "${p}_dn" transactional '{"subject":"s","body":"b"}')
tc=$(esend "${p}_x" notifications '{"subject":"Hi {{{first_name}}} {{{s}}}","body":"b {{{s}}}"}' \
	',"data":{"s":"a\r\nX-Injected: 1\nBcc: evil2@evil.test"}')

subj='Grüße, {{first_name}} ✓ — your order has shipped and is on its way to you today'
tx=$(esend "${p}_a" transactional "{\"subject\":\"$subj\",\"body\":\"Hello {{first_name}},\\nline two\\n.\\nÜnicode ok\",\"html\":\"<p>Hello <b>{{first_name}}</b> &amp; ✓</p>\"}")
is "$(wk_wait "$tx" email)" done "transactional email: done"
m=$(msg plain "$tx")
is "$(mget "$m" .subject)" "Grüße, Zoë ✓ — your order has shipped and is on its way to you today" \
	"non-ASCII subject round-trips through RFC 2047"
like "$(mget "$m" .subject_raw)" '^Subject: =\?UTF-8\?B\?[A-Za-z0-9+/=]+\?=$' "subject sent as encoded-words"
[ "$(mget "$m" .subject_max)" -le 78 ] && [ "$(mget "$m" .subject_lines)" -ge 2 ]
ok $? "Subject folded: $(mget "$m" .subject_lines) lines of at most 78 characters"
[ "$(mget "$m" .max_line)" -le 998 ]; ok $? "no line over 998 characters"
is "$(mget "$m" .bare_lf)" 0 "no bare LF anywhere"
is "$(mget "$m" '.from_name + " <" + .from_addr + ">"')" "Herald Défaut <noreply@herald.test>" \
	"From: defaults.email_from, non-ASCII display name decoded"
is "$(mget "$m" .mail_from)" "noreply@herald.test" "MAIL FROM: the From address"
is "$(mget "$m" '.rcpt_tos | join(",")')/$(mget "$m" .to)" "a.$p@$d/a.$p@$d" "RCPT TO and To: the user's address"
is "$(mget "$m" .reply_to)" "help@herald.test" "Reply-To: defaults.reply_to"
is "$(mget "$m" .message_id)" "<$tx.email@herald.test>" "Message-ID from the identity and the From domain"
is "$(sql "SELECT provider_message_id FROM notifications WHERE transaction_id = '$tx'")" \
	"<$tx.email@herald.test>" "the provider message id is the Message-ID"
[ "$(mget "$m" .date_age)" -ge 0 ] && [ "$(mget "$m" .date_age)" -le 60 ] && [ "$(mget "$m" .date_utc)" = true ]
ok $? "Date: RFC 5322, now, UTC (age $(mget "$m" .date_age) s)"
is "$(mget "$m" .mime)/$(mget "$m" .ctype)" "1.0/multipart/alternative" "MIME-Version 1.0, multipart/alternative"
is "$(mget "$m" .text)" "$(printf 'Hello Zoë,\nline two\n.\nÜnicode ok')" "text part decoded (dot line kept)"
is "$(mget "$m" .html)" "<p>Hello <b>Zoë</b> &amp; ✓</p>" "HTML part decoded"
is "$(mget "$m" '.unsub // "none"')/$(mget "$m" '.unsub_post // "none"')" "none/none" \
	"transactional: no List-Unsubscribe"
is "$(mget "$m" '[.names[] | ascii_downcase] | map(select(. == "subject" or . == "from" or . == "to" or . == "date" or . == "message-id")) | length')" 5 \
	"each of Subject, From, To, Date, Message-ID once"

long="plain ascii subject for {{first_name}} that is long enough to need folding at a space somewhere"
tx=$(esend "${p}_m" marketing "{\"subject\":\"$long\",\"body\":\"Sale!\"}" ',"client_id":"shop"')
is "$(wk_wait "$tx" email)" done "marketing email: done"
m=$(msg plain "$tx")
is "$(mget "$m" .subject)" "plain ascii subject for Max that is long enough to need folding at a space somewhere" \
	"a long ASCII subject round-trips"
like "$(mget "$m" .subject_raw)" '^Subject: plain ascii' "ASCII subject not encoded"
[ "$(mget "$m" .subject_max)" -le 78 ] && [ "$(mget "$m" .subject_lines)" -ge 2 ]
ok $? "ASCII subject folded: $(mget "$m" .subject_lines) lines of at most 78 characters"
is "$(mget "$m" '.from_name + " <" + .from_addr + ">"')/$(mget "$m" .mail_from)" \
	"Shop <orders@shop.test>/orders@shop.test" "From: the client's email_from wins"
is "$(mget "$m" .reply_to)" "help@herald.test" "Reply-To: defaults (the client has none)"
is "$(mget "$m" '.text')/$(mget "$m" '.html // "none"')" "Sale!/none" "text only: one part"
unsub=$(mget "$m" '.unsub // ""')
like "$unsub" '^<https://unsub\.herald\.test/u\?token=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}>$' \
	"marketing: List-Unsubscribe <URL?token=...>"
is "$(mget "$m" '.unsub_post // ""')" "List-Unsubscribe=One-Click" "List-Unsubscribe-Post (RFC 8058)"
token=${unsub#*token=}
token=${token%>}

# the token: forged, another secret, then genuine; the user's marketing.email=on would win
# over marketing=off for email, so applying the token turns it off too
"$ctl" prefs set "${p}_m" marketing.email=on > /dev/null || bail "prefs set failed"
bad=${token:0:5}$([ "${token:5:1}" = A ] && echo B || echo A)${token:6}
out=$("$ctl" prefs apply-token "$bad" 2>&1); rc=$?
is "$rc" 1 "apply-token: an altered token exits 1"
like "$out" "token refused" "apply-token: altered token refused with the reason"
sed "s/$usecret/another-secret-of-32-characters-xx/" "$tmp/a.conf" > "$tmp/other.conf"; chmod 600 "$tmp/other.conf"
out=$(HERALD_CONFIG=$tmp/other.conf "$ctl" prefs apply-token "$token" 2>&1); rc=$?
is "$rc/$out" "1/heraldctl prefs apply-token: token refused: bad signature (altered, forged or signed with another secret)" \
	"apply-token: another secret: bad signature"
grep -v '^unsubscribe' "$tmp/a.conf" > "$tmp/nosecret.conf"; chmod 600 "$tmp/nosecret.conf"
HERALD_CONFIG=$tmp/nosecret.conf "$ctl" prefs apply-token "$token" > /dev/null 2>&1
is "$?" 78 "apply-token without unsubscribe.secret: EX_CONFIG"
is "$("$ctl" prefs get "${p}_m")" '{"marketing.email":true}' "nothing changed by refused tokens"
out=$("$ctl" prefs apply-token "$token"); rc=$?
is "$rc" 0 "apply-token: the genuine token exits 0"
is "$(printf '%s' "$out" | jq -c '[.user_id, .category, .unsubscribed]')" "[\"${p}_m\",\"marketing\",true]" \
	"apply-token prints the user and category"
is "$("$ctl" prefs get "${p}_m")" '{"marketing":false,"marketing.email":false}' \
	"prefs get: marketing now off, and the marketing.email override too"
tx=$(esend "${p}_m" marketing '{"subject":"again","body":"Sale!"}')
is "$(wk_wait "$tx" email)" opt_out "the next marketing email: opt_out"
tx2=$(esend "${p}_m" transactional '{"subject":"receipt","body":"Thanks"}')
is "$(wk_wait "$tx2" email)" done "a transactional email to that user still goes"
is "$(msg plain "$tx" count)" 0 "opt_out: nothing reached the server"

# retry: 451 at the end of data, then accepted: the same Message-ID both times
is "$(wk_wait "$tr" email 20)" done "451 at end of data, then 250: done"
is "$(msg plain "$tr" count)" 2 "the server got the message twice"
m1=$(msg plain "$tr" 0); m2=$(msg plain "$tr" 1)
is "$(mget "$m1" .code)/$(mget "$m2" .code)" "451/250" "first answered 451, second 250"
is "$(mget "$m1" .message_id)" "$(mget "$m2" .message_id)" "the same Message-ID on both attempts"
is "$(wk_trail "$tr" email)" "->ready ready>retry retry>ready ready>done" "audit: retry once, then done"
like "$(sql "SELECT a.detail FROM notification_audit a JOIN notifications n ON n.id = a.notification_id
	WHERE n.transaction_id = '$tr' AND a.new_status = 'retry'")" '451 to end of data' "retry detail: 451 to the end of data"

# 550 to RCPT TO: failed, suppressed; 451 to RCPT TO: transient until the tiers end
is "$(wk_wait "$tb" email 20)" failed "550 to RCPT TO: failed"
is "$(wk_trail "$tb" email)" "->ready ready>failed" "550: not retried"
like "$(detail "$tb")" '550.*RCPT TO' "detail names 550 and RCPT TO"
is "$(supp "b.$p@$d")" 1 "550: the address is in the suppressions"
is "$(wk_wait "$tp" email 20)" failed "554 5.7.1 (relay denied) to RCPT TO: failed"
like "$(detail "$tp")" '554 5\.7\.1' "detail carries the server's reply"
is "$(supp "pd.$p@$d")" 0 "a policy refusal (5.7.1) does not suppress the address"
is "$(wk_wait "$tt" email 20)" failed "451 to RCPT TO every time: failed after the tiers"
is "$(wk_trail "$tt" email)" "->ready ready>retry retry>ready ready>failed" "451: retried"
is "$(rcpts plain "t.$p@$d")/$(supp "t.$p@$d")" "451 451/0" "451: two attempts, not suppressed"

# CR/LF in the data: the subject's become spaces, a bad address is refused before sending
is "$(wk_wait "$tc" email)" done "CR/LF in the name and data: sent"
m=$(msg plain "$tc")
is "$(mget "$m" .subject)" "Hi Eve  Bcc: evil@evil.test a  X-Injected: 1 Bcc: evil2@evil.test" \
	"CR/LF in the subject became spaces"
is "$(mget "$m" '[.names[] | ascii_downcase | select(. == "bcc" or . == "x-injected")] | length')" 0 \
	"no Bcc or X-Injected header in what the server received"
is "$(mget "$m" '.rcpt_tos | join(",")')" "x.$p@$d" "only the user's address as recipient"
st=$(wk_wait "$te" email)
if [ "$st" = failed ]; then
	like "$(detail "$te")" 'recipient address contains CR or LF' "CR/LF in the address: failed, reason given"
else
	# the pipeline may refuse such an address before the provider (no_address, invalid)
	like "$st" '^(no_address|invalid_user|suppressed)$' "CR/LF in the address: refused before the provider ($st)"
fi
is "$(wk_wait "$td" email)" failed "'Name <addr>' as the address: failed"
like "$(detail "$td")" 'not a plain address' "detail: not a plain address"
is "$(jq -r 'select(.rcpt) | .rcpt' "$tmp/plain.jsonl" | grep -ci 'evil\|e\.'"$p"'\|dn\.'"$p")" 0 \
	"the server never saw those addresses"
grep -q "Hello\|Sale!\|$usecret" "$tmp/w.log"; is "$?" 1 "no body text or secret in the worker log"

# --- STARTTLS required, with the test CA, and AUTH ---------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-keyout "$tmp/ca.key" -out "$tmp/ca.pem" -subj /CN=herald-smtp-t-ca 2> /dev/null &&
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$tmp/srv.key" \
	-out "$tmp/srv.csr" -subj /CN=127.0.0.1 2> /dev/null &&
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$tmp/ext" &&
openssl x509 -req -in "$tmp/srv.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial -days 2 \
	-extfile "$tmp/ext" -out "$tmp/srv.pem" 2> /dev/null || bail "cannot make the test certificates"
sink tls --cert "$tmp/srv.pem" --key "$tmp/srv.key" --require-starttls --user herald \
	--password 's3cret pass' --auth-required
tls=$sport
conf b "url = \"smtp://127.0.0.1:$tls\"; starttls = true; ca_file = \"$tmp/ca.pem\";
	username = \"herald\"; password = \"s3cret pass\";"
worker b
tx=$(esend "${p}_s" transactional '{"subject":"secure","body":"over TLS"}')
is "$(wk_wait "$tx" email)" done "STARTTLS + AUTH: done"
m=$(msg tls "$tx")
is "$(mget "$m" .tls)/$(mget "$m" .auth_user)" "true/herald" "the server saw TLS and the user"
is "$(mget "$m" .text)" "over TLS" "body intact over TLS"

conf c "url = \"smtp://127.0.0.1:$tls\"; starttls = true; ca_file = \"$tmp/ca.pem\";
	username = \"herald\"; password = \"wrong-pass-zz\";"
worker c
tx=$(esend "${p}_w" transactional '{"subject":"nope","body":"x"}')
is "$(wk_wait "$tx" email 20)" failed "bad password: failed"
is "$(wk_trail "$tx" email)" "->ready ready>failed" "535: permanent, not retried"
like "$(detail "$tx")" '535.*AUTH' "detail names 535 and AUTH"
detail "$tx" | grep -q 'wrong-pass-zz'; is "$?" 1 "the password is in no detail"
is "$(supp "w.$p@$d")" 0 "535: the address is not suppressed"
is "$(msg tls "$tx" count)" 0 "bad password: nothing delivered"

# STARTTLS required but the server does not offer it: transient, never sent in clear
conf d "url = \"smtp://127.0.0.1:$plain\"; starttls = true;"
worker d
tx=$(esend "${p}_n" transactional '{"subject":"clear?","body":"x"}')
is "$(wk_wait "$tx" email 20)" failed "STARTTLS not offered: failed after the retry tiers"
is "$(wk_trail "$tx" email)" "->ready ready>retry retry>ready ready>failed" "STARTTLS not offered: transient"
grep -q 'STARTTLS required' "$tmp/w.log" || sql "SELECT detail FROM notification_audit a JOIN notifications n
	ON n.id = a.notification_id WHERE n.transaction_id = '$tx'" | grep -q 'STARTTLS required'
ok $? "the reason says STARTTLS is required"
is "$(msg plain "$tx" count)" 0 "nothing sent in clear"

# --- smtps:// (TLS from the first byte), verified with the test CA; an unknown CA refused ------
sink smtps --cert "$tmp/srv.pem" --key "$tmp/srv.key" --implicit-tls
ssport=$sport
conf f "url = \"smtps://127.0.0.1:$ssport\"; ca_file = \"$tmp/ca.pem\";"
worker f
tx=$(esend "${p}_i" transactional '{"subject":"implicit","body":"smtps body"}')
is "$(wk_wait "$tx" email)" done "smtps://: done"
m=$(msg smtps "$tx")
is "$(mget "$m" .tls)/$(mget "$m" .text)" "true/smtps body" "smtps://: the server saw TLS, body intact"
conf g "url = \"smtps://127.0.0.1:$ssport\";"     # the system's CAs do not know the test CA
worker g
tx=$(esend "${p}_j" transactional '{"subject":"unverified","body":"x"}')
is "$(wk_wait "$tx" email 20)" failed "smtps:// to a certificate no trusted CA signed: failed"
like "$(detail "$tx")" 'SSL|[Cc]ertificate|TLS' "the detail says the certificate was not verified"
is "$(msg smtps "$tx" count)" 0 "nothing delivered to an unverified server"

# a sender identity with a line break in the config: the worker refuses to start, naming it
conf e "url = \"smtp://127.0.0.1:$plain\"; starttls = false;"
sed -i 's/^defaults = .*/defaults = { email_from = "Evil\\nBcc: x@evil.test <a@b.test>"; };/' "$tmp/e.conf"
wk_stop w
HERALD_CONFIG=$tmp/e.conf timeout 20 "$heraldd" --worker email > "$tmp/e.log" 2>&1
is "$?" 78 "a line break in defaults.email_from: the worker exits EX_CONFIG"
like "$(cat "$tmp/e.log")" 'defaults\.email_from: (contains a )?control character' "the error names the key"

done_testing
