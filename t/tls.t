#!/usr/bin/env bash
# tls.t - herald-send over amqps:// against the stack's TLS listener (throwaway CA, certificate
# for localhost): trusted through broker.tls.ca_file or the system CAs, refused when the CA is not
# trusted or the name is not the certificate's, and verify = false (tests only) skipping the checks.
. "$HERALD_SRCDIR/t/lib/tap.sh"
need_stack
[ -n "${HERALD_AMQPS_URL:-}" ] && [ -s "${HERALD_T_CA:-}" ] || bail "no TLS listener: run through t/run"
plan 16

send="$HERALD_BUILDDIR/herald-send"
peek="$HERALD_BUILDDIR/t/itest/qpeek"
tmp=$(mktemp -d /tmp/herald-tls-t.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
unset SSL_CERT_FILE
# a vhost of its own, so the queue counts of send.t (run in parallel) are not disturbed
vh=herald-t-tls
"$HERALD_SRCDIR/scripts/stack.sh" ctl "$HERALD_STACK_DIR" add_vhost "$vh" > /dev/null 2>&1
"$HERALD_SRCDIR/scripts/stack.sh" ctl "$HERALD_STACK_DIR" set_permissions -p "$vh" guest '.*' '.*' '.*' > /dev/null 2>&1
ok $? "a vhost for this test"
amqps=$HERALD_AMQPS_URL/$vh
amqp=$HERALD_AMQP_URL/$vh
tls_port=${HERALD_AMQPS_URL##*:}

conf() { printf 'broker = { connect_timeout = 10; confirm_timeout = 10; tls = { %s }; };\n' "$2" > "$tmp/$1.conf"; }
conf ca "ca_file = \"$HERALD_T_CA\";"
conf system ""
conf noverify "verify = false;"
conf missing "ca_file = \"$tmp/nope.pem\";"
# tsend CONF URL - herald-send one email over URL with CONF; stdout+stderr, then "exit N"
tsend() {
	HERALD_AMQP_URL=$2 timeout 60 "$send" -c "$tmp/$1.conf" --user u1 --channel email --subject s --body b 2>&1
	echo "exit $?"
}
emails() { "$peek" "$amqp" herald.email.v1 2>/dev/null | grep -c .; }

out=$(tsend ca "$amqps")
like "$out" '"status":"received".*exit 0$' "ca_file = the stack's CA: received over amqps"
is "$(emails)" 1 "the message is in herald.email.v1"

out=$(tsend system "$amqps")
like "$out" 'exit 3$' "no ca_file (system CAs): exit 3"
like "$out" "certificate is not trusted \(verified with the system CAs" "no ca_file: the error says the certificate is not trusted"
is "$(emails)" 0 "nothing sent"

out=$(SSL_CERT_FILE=$HERALD_T_CA tsend system "$amqps")
like "$out" '"status":"received".*exit 0$' "no ca_file, SSL_CERT_FILE = the CA: the system CAs are used"
is "$(emails)" 1 "the message is in herald.email.v1"

other=$(mktemp -d "$tmp/ca.XXXX")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "/CN=other CA" \
	-keyout "$other/ca.key" -out "$other/ca.pem" > /dev/null 2>&1
conf otherca "ca_file = \"$other/ca.pem\";"
out=$(tsend otherca "$amqps")
like "$out" "certificate is not trusted \(verified with broker.tls.ca_file $other/ca.pem\).*exit 3$" \
	"another CA: not trusted, exit 3"

# 127.1 reaches 127.0.0.1 but is not a name of the certificate (localhost, 127.0.0.1)
out=$(tsend ca "amqps://guest:guest@127.1:$tls_port/$vh")
like "$out" "certificate is not valid for the name 127\.1.*exit 3$" "a name the certificate lacks: refused, exit 3"
is "$(emails)" 0 "nothing sent"

out=$(tsend noverify "amqps://guest:guest@127.1:$tls_port/$vh")
like "$out" '"status":"received".*exit 0$' "verify = false: no checks (tests only)"
out=$(tsend noverify "$amqps")
like "$out" '"status":"received".*exit 0$' "verify = false, no CA at all: works"
is "$(emails)" 2 "both messages are in herald.email.v1"

out=$(tsend missing "$amqps")
like "$out" "broker.tls.ca_file $tmp/nope.pem: cannot load.*exit 2$" "unreadable ca_file: config error, exit 2"

out=$(tsend ca "amqps://guest:guest@localhost:${HERALD_AMQP_URL##*:}/$vh")
like "$out" "handshake failed.*exit 3$" "amqps:// to the plain AMQP port: handshake fails, exit 3"

"$HERALD_SRCDIR/scripts/stack.sh" ctl "$HERALD_STACK_DIR" delete_vhost "$vh" > /dev/null 2>&1
done_testing
