#!/usr/bin/env bash
# tls_db.t - TLS to MySQL (mysqls:// or a mysql.tls group) against the stack's MariaDB, whose
# certificate (throwaway CA, names localhost and 127.0.0.1) is the broker's: heraldctl and a
# webhook worker (heraldd --worker webhook) end to end over amqps:// and MySQL TLS at once. The
# sessions are proved encrypted by the server: they log in as a user made REQUIRE SSL, which the
# server refuses over plain TCP. Refused with a clear error: another CA (made here with openssl),
# a name the certificate lacks (127.1 reaches 127.0.0.1 but is not one of its names), the system
# CAs; verify = false (tests only) skips the checks but still encrypts. A client certificate
# (cert_file, key_file) lets in a REQUIRE X509 user. A fake server that offers no TLS is never
# given a plain session. The worker refuses a broker or a database with a CA it does not trust,
# then delivers the queued notification once given the right ones.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_stack
[ -n "${HERALD_MYSQLS_URL:-}" ] && [ -n "${HERALD_AMQPS_URL:-}" ] && [ -s "${HERALD_T_CA:-}" ] ||
	bail "no TLS URLs: run through t/run"
plan 37

tmp=$(mktemp -d /tmp/herald-tlsdb-t.XXXXXX)
. "$HERALD_SRCDIR/t/lib/worker.sh"
need_ctl
sql_init "$tmp"
unset SSL_CERT_FILE HERALD_CONFIG
root() { "$_sql_client" --defaults-file="$HERALD_STACK_DIR/mariadb/my.cnf" -N -B -e "$1"; }
vh=herald-t-tlsdb
vhpid=
cleanup() {
	[ -n "$vhpid" ] && wait "$vhpid"
	wk_kill worker
	[ -n "${rpid:-}" ] && kill "$rpid" 2> /dev/null && wait "$rpid" 2> /dev/null
	root "DROP USER IF EXISTS 'herald_tls'@'127.0.0.1', 'herald_x509'@'127.0.0.1'" 2> /dev/null
	"$HERALD_SRCDIR/scripts/stack.sh" ctl "$HERALD_STACK_DIR" delete_vhost "$vh" > /dev/null 2>&1
	[ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$ctl" db migrate > /dev/null || bail "db migrate failed"

# a user the server lets in over TLS only
root "DROP USER IF EXISTS 'herald_tls'@'127.0.0.1';
	CREATE USER 'herald_tls'@'127.0.0.1' IDENTIFIED BY 'tls-pw' REQUIRE SSL;
	GRANT ALL ON herald.* TO 'herald_tls'@'127.0.0.1';
	DROP USER IF EXISTS 'herald_x509'@'127.0.0.1';
	CREATE USER 'herald_x509'@'127.0.0.1' IDENTIFIED BY 'x509-pw' REQUIRE X509;
	GRANT ALL ON herald.* TO 'herald_x509'@'127.0.0.1'" || bail "cannot create the REQUIRE SSL users"
# a broker vhost of its own, made while the database part runs (rabbitmqctl takes seconds)
( "$HERALD_SRCDIR/scripts/stack.sh" ctl "$HERALD_STACK_DIR" add_vhost "$vh"
  "$HERALD_SRCDIR/scripts/stack.sh" ctl "$HERALD_STACK_DIR" set_permissions -p "$vh" guest '.*' '.*' '.*' ) \
	> "$tmp/vhost.log" 2>&1 &
vhpid=$!

hp=${HERALD_MYSQLS_URL#*@}; hp=${hp%%/*}; port=${hp##*:}
tlsurl=mysqls://herald_tls:tls-pw@127.0.0.1:$port/herald      # TLS asked by the URL
plainurl=mysql://herald_tls:tls-pw@127.0.0.1:$port/herald     # plain, unless the file asks
badname=mysqls://herald_tls:tls-pw@127.1:$port/herald
amqps=$HERALD_AMQPS_URL/$vh
amqp=$HERALD_AMQP_URL/$vh

other=$tmp/other
mkdir -p "$other" && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
	-subj "/CN=other CA" -keyout "$other/ca.key" -out "$other/ca.pem" > /dev/null 2>&1 || bail "openssl"

# a client certificate from the stack's CA, for the REQUIRE X509 user
(cd "$tmp" && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=herald-client \
	-keyout client.key -out client.csr && printf 'extendedKeyUsage=clientAuth\n' > client.ext &&
	openssl x509 -req -in client.csr -CA "$HERALD_T_CA" -CAkey "${HERALD_T_CA%.pem}.key" -set_serial 7 \
	-days 1 -extfile client.ext -out client.pem) > /dev/null 2>&1 || bail "openssl: the client certificate"

# conf NAME MYSQL_TLS [BROKER_TLS] - a config with mysql.tls = { MYSQL_TLS } (none when "-")
conf() {
	local m="tls = { $2 };"
	[ "$2" = - ] && m=
	printf '%s\n' "broker = { confirm_timeout = 10; tls = { ${3:-ca_file = \"$HERALD_T_CA\";} }; };
mysql = { connect_timeout = 5; $m };
log = { level = \"info\"; };
channels = { webhook = { allow_private = true; providers = ( { type = \"webhook\"; timeout = 2; } ); }; };" \
		> "$tmp/$1.conf"
	chmod 600 "$tmp/$1.conf"
}
conf ca "ca_file = \"$HERALD_T_CA\";"
conf none -
conf system ""
conf otherca "ca_file = \"$other/ca.pem\";"
conf noverify "verify = false; ca_file = \"$other/ca.pem\";"
conf missing "ca_file = \"$tmp/nope.pem\";"
conf client "ca_file = \"$HERALD_T_CA\"; cert_file = \"$tmp/client.pem\"; key_file = \"$tmp/client.key\";"
conf nocert "ca_file = \"$HERALD_T_CA\"; cert_file = \"$tmp/nope.pem\"; key_file = \"$tmp/client.key\";"
conf halfcert "ca_file = \"$HERALD_T_CA\"; cert_file = \"$tmp/c.pem\";"
conf brokerother "ca_file = \"$HERALD_T_CA\";" "ca_file = \"$other/ca.pem\";"
conf dbother "ca_file = \"$other/ca.pem\";"
# tctl CONF URL ARGS... - heraldctl ARGS with CONF and HERALD_MYSQL_URL=URL; stdout+stderr, "exit N"
tctl() {
	local c=$1 u=$2
	shift 2
	HERALD_MYSQL_URL=$u timeout 60 "$ctl" -c "$tmp/$c.conf" "$@" 2>&1
	echo "exit $?"
}
accepts() { root "SHOW GLOBAL STATUS LIKE 'Ssl_accepts'" | cut -f2; }

# --- heraldctl over TLS ----------------------------------------------------------------------
p=tlsdb$$
wk_receiver
sql "INSERT INTO users (user_id, webhook_url, timezone) VALUES ('${p}_u', '$hook/ok', 'UTC')" ||
	bail "cannot insert the user"
out=$(tctl none "$plainurl" user show "${p}_u")
like "$out" "Access denied.*exit 69$" "the REQUIRE SSL user over plain TCP: refused by the server"
n0=$(accepts)
out=$(tctl ca "$tlsurl" user show "${p}_u")
like "$out" "\"user_id\":\"${p}_u\".*exit 0$" "mysqls:// + mysql.tls.ca_file: heraldctl user show works"
like "$out" "$hook/ok" "... and reads the user's webhook_url"
n1=$(accepts)
ok "$([ "$n1" -gt "$n0" ] && echo 0 || echo 1)" "the server counted a TLS handshake ($n0 -> $n1)"
out=$(tctl ca "$plainurl" db version)
like "$out" "exit 0$" "mysql:// + a mysql.tls group: TLS (the REQUIRE SSL user gets in), db version"
out=$(HERALD_MYSQL_URL=$tlsurl timeout 60 "$ctl" -c "$tmp/ca.conf" user show "${p}_u" 2>&1 >/dev/null)
is "$out" "" "nothing on stderr when it works"

# --- refused: untrusted CA, wrong name, no fallback ------------------------------------------
out=$(tctl otherca "$tlsurl" user show "${p}_u")
like "$out" "TLS to MySQL 127\.0\.0\.1:$port: the server's certificate is not trusted \(verified with mysql\.tls\.ca_file $other/ca\.pem\)" \
	"another CA: not trusted, naming mysql.tls.ca_file"
like "$out" "exit 69$" "... exit 69 (unavailable)"
unlike_user() { [[ "$1" != *"\"user_id\""* ]]; }
unlike_user "$out"
ok $? "... and no data read"
out=$(tctl system "$tlsurl" user show "${p}_u")
like "$out" "the server's certificate is not trusted \(verified with the system CAs /.*exit 69$" \
	"no ca_file: the system CAs, which do not trust the test CA"
out=$(SSL_CERT_FILE=$HERALD_T_CA tctl system "$tlsurl" user show "${p}_u")
like "$out" "\"user_id\":\"${p}_u\".*exit 0$" "no ca_file, SSL_CERT_FILE = the CA: trusted"
out=$(tctl ca "$badname" user show "${p}_u")
like "$out" "TLS to MySQL 127\.1:$port: the server's certificate is not valid for host 127\.1.*exit 69$" \
	"127.1 (not a name of the certificate): refused, naming the host"
out=$(tctl noverify "$badname" user show "${p}_u")
like "$out" "\"user_id\":\"${p}_u\".*exit 0$" "verify = false (tests only): wrong name and CA accepted"
n2=$(accepts)
ok "$([ "$n2" -gt "$n1" ] && echo 0 || echo 1)" "... still TLS: the REQUIRE SSL user got in, a handshake counted"
out=$(tctl missing "$tlsurl" user show "${p}_u")
like "$out" "mysql\.tls\.ca_file $tmp/nope\.pem: cannot load.*exit 69$" "unreadable ca_file: named"
x509url=mysqls://herald_x509:x509-pw@127.0.0.1:$port/herald
out=$(tctl client "$x509url" user show "${p}_u")
like "$out" "\"user_id\":\"${p}_u\".*exit 0$" "cert_file + key_file: the REQUIRE X509 user gets in"
out=$(tctl ca "$x509url" user show "${p}_u")
like "$out" "Access denied.*exit 69$" "... and without the client certificate it does not"
out=$(tctl nocert "$x509url" user show "${p}_u")
like "$out" "mysql\.tls\.cert_file $tmp/nope\.pem: cannot load.*exit 69$" "unreadable cert_file: named"
out=$(tctl halfcert "$tlsurl" user show "${p}_u")
like "$out" "mysql\.tls: cert_file and key_file go together.*exit 78$" "cert_file without key_file: config error"
out=$(tctl ca "mysqlx://h/herald" db version)
like "$out" "HERALD_MYSQL_URL: scheme: unknown \(want amqp, amqps, mysql or mysqls\).*exit 78$" \
	"an unknown scheme: config error naming the variable"

# --- a server that offers no TLS (a fake greeting without CLIENT_SSL): never a plain session -----
cat > "$tmp/notls.py" <<'PY'
import socket, struct, sys
# a MySQL server that offers no TLS (greeting without CLIENT_SSL) and accepts any login:
# prints whether a login came (the user name in clear) and whether a query followed
s = socket.socket()
s.bind(("127.0.0.1", 0)); s.listen(1)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
s.settimeout(30)
try:
    c, _ = s.accept()
except OSError:
    sys.exit("no client came")
c.settimeout(10)
caps = 1 | 2 | 4 | 8 | 0x200 | 0x2000 | 0x8000 | 0x80000
p = b"\x0a5.5.5-10.11.0-notls\0" + struct.pack("<I", 7) + b"abcdefgh\0"
p += struct.pack("<HBHH", caps & 0xffff, 0x21, 2, caps >> 16)
p += b"\x15" + b"\0" * 10 + b"ijklmnopqrst\0mysql_native_password\0"
c.sendall(struct.pack("<I", len(p))[:3] + b"\0" + p)
def packet():
    h = b""
    while len(h) < 4:
        d = c.recv(4 - len(h))
        if not d: return None
        h += d
    n = h[0] | h[1] << 8 | h[2] << 16
    b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d: return None
        b += d
    return b
login, query = False, False
try:
    b = packet()
    if b is not None:
        login = len(b) > 32 and b[32:].split(b"\0")[0] == sys.argv[2].encode()
        c.sendall(b"\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00")
        while True:
            b = packet()
            if b is None: break
            if b[:1] == b"\x03":
                query = True
                break
except OSError:
    pass
print("login=%s query=%s" % (login, query))
PY
# notls CONF SCHEME - heraldctl db version as herald to the fake server; "OUTPUT fake: login=.. query=.."
notls() {
	local fpid
	rm -f "$tmp/notls.port"
	/usr/bin/python3 "$tmp/notls.py" "$tmp/notls.port" herald > "$tmp/notls.out" 2>&1 &
	fpid=$!
	for _ in $(seq 50); do [ -s "$tmp/notls.port" ] && break; sleep 0.1; done
	tctl "$1" "$2://herald:herald@127.0.0.1:$(cat "$tmp/notls.port")/herald" db version
	wait "$fpid"
	echo "fake: $(cat "$tmp/notls.out")"
}
out=$(notls none mysql)
like "$out" "fake: login=True query=True$" "plain mysql:// to the fake: it sees the login and a query"
out=$(notls ca mysqls)
like "$out" "TLS to MySQL 127\.0\.0\.1:[0-9]+: the server does not offer TLS .*refusing plain TCP.*exit 69.*fake: login=False query=False$" \
	"mysqls:// to a server without TLS: refused before the login"
out=$(notls noverify mysqls)
like "$out" "the server does not offer TLS; the plain session is refused .*exit 69.*fake: login=True query=False$" \
	"verify = false: Connector/C logs in, herald drops the session before any query"

# --- a webhook worker over amqps:// and MySQL TLS --------------------------------------------
wait "$vhpid"
ok $? "a broker vhost for this test"
vhpid=
hsend() { HERALD_AMQP_URL=$amqps timeout 60 "$send" -c "$tmp/ca.conf" --json "$1" 2>&1; }
out=$(hsend "{\"user_id\":\"${p}_u\",\"channels\":{\"webhook\":{\"event\":\"e\"}},\"data\":{}}")
tx=$(wk_tx "$out")
like "$tx" '^[0-9a-f-]{36}$' "herald-send over amqps: received"

HERALD_AMQP_URL=$amqps HERALD_MYSQL_URL=$tlsurl wk_start worker -c "$tmp/brokerother.conf" --worker webhook
for _ in $(seq 100); do grep -q broker_connect_failed "$tmp/worker.log" && break; sleep 0.1; done
like "$(cat "$tmp/worker.log")" "event=broker_connect_failed err=\"TLS to localhost:${HERALD_AMQPS_URL##*:}: the broker's certificate is not trusted \(verified with broker\.tls\.ca_file $other/ca\.pem\)\"" \
	"worker, broker.tls.ca_file another CA: refused, the error names the setting"
is "$(wk_status "$tx" webhook)" "" "... nothing consumed"
wk_stop worker
mv "$tmp/worker.log" "$tmp/worker-broker.log"

HERALD_AMQP_URL=$amqps HERALD_MYSQL_URL=$tlsurl wk_start worker -c "$tmp/dbother.conf" --worker webhook
for _ in $(seq 200); do [ -e "/proc/$(cat "$tmp/worker.pid")" ] || break; sleep 0.1; done
wk_stop worker
is "$?" 75 "worker, mysql.tls.ca_file another CA: exits 75 (tempfail)"
like "$(cat "$tmp/worker.log")" "the server's certificate is not trusted \(verified with mysql\.tls\.ca_file $other/ca\.pem\)" \
	"... the error names mysql.tls.ca_file"
mv "$tmp/worker.log" "$tmp/worker-db.log"

HERALD_AMQP_URL=$amqps HERALD_MYSQL_URL=$tlsurl wk_start worker -c "$tmp/ca.conf" --worker webhook
is "$(wk_wait "$tx" webhook 30)" "done" "worker with the right CAs: the queued notification is done"
is "$(grep -c "$tx" "$tmp/hooks.jsonl")" 1 "the receiver got it once"
is "$(root "SELECT COUNT(*) > 0 FROM information_schema.PROCESSLIST WHERE USER = 'herald_tls'")" 1 \
	"the worker's db session is the REQUIRE SSL user's (so encrypted)"
out=$(hsend "{\"user_id\":\"${p}_u\",\"channels\":{\"webhook\":{\"event\":\"e2\"}},\"data\":{}}")
tx2=$(wk_tx "$out")
is "$(wk_wait "$tx2" webhook 30)" "done" "a second one sent while it runs: done"
out=$(tctl ca "$tlsurl" status "$tx2")
like "$out" "\"webhook\".*done.*exit 0$" "heraldctl status over TLS reads it back: done"
wk_stop worker
is "$?" 0 "the worker stops cleanly"
is "$(grep -c 'event=broker_connect_failed\|db_unavailable' "$tmp/worker.log")" 0 "... no connect failure in its log"
is "$("$peek" "$amqp" herald.webhook.v1 2> /dev/null | grep -c .)" 0 "herald.webhook.v1 is empty"
done_testing
