#!/usr/bin/env bash
# ctl_admin.t - heraldctl caps get|set and suppress list|add|remove against the private MariaDB
# of t/run. Client ids and addresses start with "ctla"; the caps rows for all clients that were
# there before are put back at the end.
. "$HERALD_SRCDIR/t/lib/tap.sh"
. "$HERALD_SRCDIR/t/lib/sql.sh"
need_ctl
plan 38

tmp=$(mktemp -d /tmp/herald-ctl-admin.XXXXXX)
sql_init "$tmp"
"$ctl" db migrate > /dev/null || bail "heraldctl db migrate failed"
saved=$(sql "SELECT CONCAT('(''', channel, ''', '''', ', IFNULL(daily_cap, 'NULL'), ')') FROM caps WHERE client_id = ''" | paste -sd, -)
cleanup() {
	sql "DELETE FROM caps WHERE client_id = '' OR client_id LIKE 'ctla%'; DELETE FROM client_quotas WHERE client_id LIKE 'ctla%'; DELETE FROM suppressions WHERE address LIKE '%ctla%' OR detail = 'ctla'" 2> /dev/null
	[ -z "$saved" ] || sql "INSERT INTO caps (channel, client_id, daily_cap) VALUES $saved"
	rm -rf "$tmp"
}
trap cleanup EXIT
sql "DELETE FROM caps WHERE client_id = '' OR client_id LIKE 'ctla%'; DELETE FROM client_quotas WHERE client_id LIKE 'ctla%'; DELETE FROM suppressions WHERE address LIKE '%ctla%' OR detail = 'ctla'"

# run ARGS - heraldctl ARGS; stdout in $out, stderr in $err, status in $rc
run() { "$ctl" "$@" > "$tmp/out" 2> "$tmp/err"; rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err"); }

# a config with caps of its own and a client with caps and quotas
cat > "$tmp/herald.conf" <<'EOC'
caps = { email = 4; sms = 2; push = 0; webhook = 0; };
clients = { ctlashop = { caps = { sms = 6; }; quotas = { email = 500; }; }; };
EOC
conf="$tmp/herald.conf"

# --- caps ---------------------------------------------------------------------------------
run -c "$conf" caps get
is "$rc/$out" '0/{"email":{"cap":4,"source":"file","scope":"all"},"sms":{"cap":2,"source":"file","scope":"all"},"push":{"cap":null,"source":"file","scope":"all"},"webhook":{"cap":null,"source":"file","scope":"all"}}' \
	"caps get: the file's caps (0 = none, shown as null)"
run caps get
like "$out" '^\{"email":\{"cap":3,"source":"file","scope":"all"\},"sms":\{"cap":2,.*"push":\{"cap":5,' \
	"without a file: the documented defaults (email 3, sms 2, push 5)"
run -c "$conf" caps set email=7 push=none sms=0
is "$rc/$out" '0/{"email":{"cap":7,"source":"database","scope":"all"},"sms":{"cap":null,"source":"database","scope":"all"},"push":{"cap":null,"source":"database","scope":"all"},"webhook":{"cap":null,"source":"file","scope":"all"}}' \
	"caps set N|none: database values win over the file; caps set prints the result"
is "$(sql "SELECT channel, client_id, IFNULL(daily_cap, 'NULL') FROM caps WHERE client_id = '' ORDER BY channel" | tr '\t\n' ': ')" \
	"email::7 push::NULL sms::0 " "rows with client_id '' (none is NULL; 0 means no cap too, as in the file)"
run -c "$conf" caps get --client ctlashop
is "$out" '{"client":"ctlashop","email":{"cap":7,"source":"database","scope":"all","quota":500,"quota_source":"file"},"sms":{"cap":6,"source":"file","scope":"client","quota":null,"quota_source":"file"},"push":{"cap":null,"source":"database","scope":"all","quota":null,"quota_source":"file"},"webhook":{"cap":null,"source":"file","scope":"all","quota":null,"quota_source":"file"}}' \
	"caps get --client: the file's client cap beats the value for all, quotas shown"
run -c "$conf" caps set --client ctlashop sms=1 webhook=10
like "$out" '"sms":\{"cap":1,"source":"database","scope":"client",.*"webhook":\{"cap":10,"source":"database","scope":"client"' \
	"caps set --client: the client's database row wins over everything"
is "$(sql "SELECT channel, daily_cap FROM caps WHERE client_id = 'ctlashop' ORDER BY channel" | tr '\t\n' ': ')" \
	"sms:1 webhook:10 " "stored with the client id"
run -c "$conf" caps set --client ctlashop --quota email=100 sms=none push=20
like "$out" '"email":\{"cap":7,.*"quota":100,"quota_source":"database"\},"sms":\{.*"quota":null,"quota_source":"database"\},"push":\{.*"quota":20,' \
	"caps set --quota sets client quotas (none: no quota)"
is "$(sql "SELECT channel, daily_quota FROM client_quotas WHERE client_id = 'ctlashop' ORDER BY channel" | tr '\t\n' ': ')" \
	"email:100 push:20 sms:0 " "in client_quotas (0 = no quota, as in the file)"
run -c "$conf" caps set --client ctlashop --quota email=default
like "$out" '"email":\{[^}]*"quota":500,"quota_source":"file"' "quota default: the file's value again"
run -c "$conf" caps set email=default push=default sms=default
is "$out" '{"email":{"cap":4,"source":"file","scope":"all"},"sms":{"cap":2,"source":"file","scope":"all"},"push":{"cap":null,"source":"file","scope":"all"},"webhook":{"cap":null,"source":"file","scope":"all"}}' \
	"caps set default: the rows go and the file applies"
is "$(sql "SELECT COUNT(*) FROM caps WHERE client_id = ''")" 0 "no row left for all clients"
run caps set fax=3
is "$rc" 64 "an unknown channel: EX_USAGE"
like "$err" "'fax': unknown channel" "naming it"
run caps set email=-2
like "$rc/$err" "64/.*email: '-2' is not a number" "a negative cap is refused"
run caps set email=99999999999
is "$rc" 64 "a cap beyond INT UNSIGNED is refused"
run caps set email=3 email=4
like "$rc/$err" "64/.*channel 'email' given twice" "a channel given twice is refused"
run caps set --quota email=3
like "$rc/$err" "64/.*--quota needs --client" "--quota without --client is refused"
run caps set --client 'bad client' email=3
like "$rc/$err" "64/.*--client 'bad client': not a client id" "a bad client id is refused"
run caps set
is "$rc" 64 "caps set without values: EX_USAGE"
is "$(sql "SELECT COUNT(*) FROM caps WHERE client_id = ''")" 0 "nothing was written by the refused commands"

# --- suppress -----------------------------------------------------------------------------
run suppress add Bounce.CTLA@Example.ORG --reason hard_bounce --detail "550 5.1.1 no such user"
is "$rc/$out" "0/suppressed bounce.ctla@example.org on email" "suppress add: email inferred, lower-cased"
run suppress add +15550001234 --detail ctla
is "$rc/$out" "0/suppressed +15550001234 on sms" "a +digits address is sms"
run suppress add ctla-device-token-1 --channel push --reason unregistered
is "$rc/$out" "0/suppressed ctla-device-token-1 on push" "a push token with --channel push"
run suppress add ctla-device-token-2
is "$rc" 64 "an address of no inferable channel: EX_USAGE"
like "$err" "cannot tell the channel from the address: give --channel" "asking for --channel"
run suppress add ctla@bad --channel email
like "$rc/$err" "65/.*'ctla@bad': not a valid email address" "a bad email address: EX_DATAERR"
run suppress add +0123 --detail ctla
is "$rc" 65 "a bad phone number: EX_DATAERR"
run suppress add x@ctla.org --channel fax
like "$rc/$err" "64/.*--channel 'fax': not a channel" "an unknown channel: EX_USAGE"
run suppress add bounce.ctla@example.org --reason "Not Valid"
like "$rc/$err" "64/.*--reason 'Not Valid'" "a bad reason: EX_USAGE"
run suppress add bounce.ctla@example.org --reason hard_bounce --detail "550 5.1.1 no such user"
is "$out" "already suppressed: bounce.ctla@example.org on email" "adding it again changes nothing"
is "$(sql "SELECT address, channel, reason, detail FROM suppressions WHERE address LIKE '%ctla%' OR detail = 'ctla' ORDER BY channel" | tr '\t' '|')" \
	"bounce.ctla@example.org|email|hard_bounce|550 5.1.1 no such user
ctla-device-token-1|push|unregistered|NULL
+15550001234|sms|manual|ctla" "the rows"
run suppress list --channel email
like "$out" '\{"address":"bounce.ctla@example.org","channel":"email","reason":"hard_bounce","detail":"550 5.1.1 no such user","created_at":"20[0-9-]+T[0-9:]+\.[0-9]{6}Z"\}' \
	"suppress list --channel: JSON Lines"
is "$(echo "$out" | grep -c '"channel":"sms"')" 0 "only that channel"
run suppress list
is "$(echo "$out" | grep -c 'ctla')" 3 "suppress list: every channel"
run suppress remove BOUNCE.ctla@example.org
is "$rc/$out" "0/removed bounce.ctla@example.org on email" "suppress remove (the email lower-cased first)"
run suppress remove bounce.ctla@example.org
is "$rc/$err" "1/heraldctl suppress remove: bounce.ctla@example.org is not suppressed on email" \
	"removing what is not there: exit 1"
run suppress remove ctla-device-token-1 --channel push
is "$rc/$(sql "SELECT COUNT(*) FROM suppressions WHERE address LIKE 'ctla%'")" "0/0" "suppress remove --channel push"
done_testing
