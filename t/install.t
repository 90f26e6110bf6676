#!/usr/bin/env bash
# install.t - `make install` into a temporary DESTDIR from the build directory: the programs,
# libherald (exporting only herald_*), its header and pkg-config file, the five man pages (each
# rendering without a groff warning) and the samples (config, systemd unit, cron, logrotate,
# SQL) land under the prefix; the installed heraldctl and herald-send run; a small C program
# builds against the installed libherald through pkg-config and runs; uninstall removes it all.
# Needs no server.
. "$HERALD_SRCDIR/t/lib/tap.sh"
plan 12

b=$HERALD_BUILDDIR
tmp=$(mktemp -d /tmp/herald-install-t.XXXXXX)
cleanup() { [ "${HERALD_T_KEEP:-0}" = 1 ] || rm -rf "$tmp"; }
trap cleanup EXIT
dest=$tmp/dest
# var NAME - a variable of the build's Makefile, expanded
var() {
	make -s --no-print-directory -C "$b" -f Makefile -f - "print-$1" <<'EOF'
print-%:
	@echo '$($*)'
EOF
}
for v in prefix bindir sbindir libdir includedir mandir docdir pkgdatadir SAN_CFLAGS; do
	eval "$v=\$(var $v)"
done

make -s -C "$b" install DESTDIR="$dest" > "$tmp/install.log" 2>&1
ok $? "make install DESTDIR=... succeeds"
want="$bindir/heraldctl $bindir/herald-send $sbindir/heraldd $libdir/libherald.so
$libdir/libherald.so.0 $includedir/herald.h $libdir/pkgconfig/herald.pc
$mandir/man1/herald-send.1 $mandir/man3/libherald.3 $mandir/man5/herald.conf.5
$mandir/man8/heraldd.8 $mandir/man8/heraldctl.8
$docdir/examples/herald.conf $docdir/examples/heraldd.service $docdir/examples/herald.cron
$docdir/examples/herald.logrotate $docdir/examples/sample-users.jsonl
$docdir/examples/sample-batch.jsonl $pkgdatadir/sql/0001_core.sql $pkgdatadir/sql/0002_templates.sql"
missing=""
for f in $want; do [ -e "$dest$f" ] || missing="$missing $f"; done
is "$missing" "" "programs, library, header, pkg-config file, 5 man pages and samples are installed under $prefix"
outside=$(cd "$dest" && find . -type f | sed 's|^\.||' | grep -v "^$prefix/" | head -3)
is "$outside" "" "nothing is installed outside the prefix"
grep -h '@[a-z]*@' "$dest$docdir/examples/heraldd.service" "$dest$docdir/examples/herald.cron"
is $? 1 "the unit and the cron file carry the configured paths (no @var@ left)"
like "$(grep '^ExecStart=' "$dest$docdir/examples/heraldd.service")" "^ExecStart=$sbindir/heraldd -c " \
	"the unit starts the installed heraldd"
is "$(nm -D --defined-only "$dest$libdir/libherald.so" | awk '$2 == "T" { print $3 }' |
	grep -vc '^herald_')" 0 "libherald exports only herald_* functions"

warn=""
for f in $(cd "$dest$mandir" && ls man*/*); do
	[ -n "$(groff -man -Tutf8 -ww "$dest$mandir/$f" 2>&1 > /dev/null)" ] && warn="$warn $f"
done
is "$warn" "" "every installed man page renders without a groff warning"

like "$("$dest$bindir/heraldctl" --version 2>&1)" "^heraldctl [0-9]" "the installed heraldctl runs"
like "$(LD_LIBRARY_PATH=$dest$libdir "$dest$bindir/herald-send" --help 2>&1; echo "rc=$?")" \
	"^usage: herald-send .*rc=0$" "the installed herald-send runs on the installed libherald"

cat > "$tmp/prog.c" <<'EOF'
#include <stdio.h>
#include <herald.h>

int main(void)
{
	struct herald *h = NULL;
	char err[256] = "";
	int rc = herald_open("/nonexistent/herald.conf", &h, err, sizeof err);

	printf("%d %s|%s\n", rc == HERALD_ECONFIG && h == NULL, herald_strerror(HERALD_EINVAL), err);
	herald_close(h);
	return 0;
}
EOF
export PKG_CONFIG_PATH=$dest$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
# shellcheck disable=SC2046,SC2086
cc -std=c11 -Wall -Werror $SAN_CFLAGS -o "$tmp/prog" "$tmp/prog.c" $(pkg-config --cflags --libs herald) \
	> "$tmp/cc.log" 2>&1
ok $? "a C program compiles and links against the installed libherald via pkg-config"
like "$(LD_LIBRARY_PATH=$dest$libdir "$tmp/prog" 2>&1)" "^1 [a-z].*\|.*/nonexistent/herald.conf" \
	"it runs: herald_open reports the missing file, herald_strerror names a status"

make -s -C "$b" uninstall DESTDIR="$dest" > "$tmp/uninstall.log" 2>&1
is "$(find "$dest" -type f | wc -l)" 0 "make uninstall removes every installed file"
done_testing
