#!/usr/bin/env bash
# valgrind-suite.sh - the test suite with every herald program under valgrind (memcheck): no
# error and no leak in any process, or the test fails.
#
#   scripts/valgrind-suite.sh [TEST...]     TEST: t/NAME.t or t/unit/NAME (default: all of them,
#                                           unit tests first, in Makefile.am's order)
#
# It builds a plain tree (no sanitizers: they and valgrind exclude each other) in _build-vg
# (CFLAGS -O1 -g; HERALD_VG_BUILDDIR=DIR to use another), then makes a directory of wrappers,
# _build-vg/vg-logs/bin, holding heraldd, heraldctl, herald-send and t/itest/*: each execs valgrind on
# the real program (herald-send: libtool's .libs binary on the tree's libherald), and the
# integration tests run with HERALD_BUILDDIR pointing there, so every herald process a test starts,
# and every child heraldd forks, runs under memcheck with its own log in
# _build-vg/vg-logs/TEST/PROG.PID.log. t/install.t runs on the real tree (it runs `make install`).
# After each test every log is read: a process whose log shows an error (invalid access, use of
# uninitialised memory, bad free, syscall on undefined bytes...) or a definite/indirect leak makes
# the test "not ok", with the log named. Third-party noise is suppressed by scripts/valgrind.supp
# (each entry says why), nothing else.
#
# Each test prints two results: its own checks ("ok - t/X.t: 12/12 checks") and valgrind's
# ("ok - t/X.t: valgrind clean, 17 processes"); the last line is "N passed, N failed".
#
# Environment:
#   HERALD_T_STACK=DIR       use a running private stack (scripts/stack.sh up DIR) instead of
#                            starting one
#   HERALD_T_TIMEOUT=K       multiply the tests' waiting limits by K (t/lib honours it; default
#                            here: 4, valgrind being 10-30x slower)
#   HERALD_VG_ORIGINS=1      --track-origins=yes (slower; says where an uninitialised value came from)
#   HERALD_VG_TEST_LIMIT=S   seconds one test may run (default 1800)
#   HERALD_VG_NOBUILD=1      skip configure/make (the tree is already built)
#   HERALD_VG_LOGS=DIR       where the wrappers and the logs go (default _build-vg/vg-logs; emptied)
set -uo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=${HERALD_VG_BUILDDIR:-$src/_build-vg}
supp=$src/scripts/valgrind.supp
die() { echo "valgrind-suite: $*" >&2; echo "0 passed, 1 failed"; exit 1; }
command -v valgrind > /dev/null || die "valgrind is not installed (scripts/deps.sh check)"

# --- build -----------------------------------------------------------------------------------
if [ "${HERALD_VG_NOBUILD:-0}" != 1 ]; then
	mkdir -p "$build" || die "cannot make $build"
	if [ ! -f "$build/Makefile" ]; then
		[ -x "$src/configure" ] || (cd "$src" && autoreconf -fi > /dev/null 2>&1) || die "autoreconf failed"
		(cd "$build" && "$src/configure" -q CFLAGS="-O1 -g") || die "configure failed"
	fi
	grep -q -- '-fsanitize' "$build/Makefile" && die "$build was configured with sanitizers: use a plain tree"
	make -C "$build" -s -j2 > "$build/vg-make.log" 2>&1 && make -C "$build" -s -j2 check TESTS= >> "$build/vg-make.log" 2>&1 ||
		{ tail -n 30 "$build/vg-make.log"; die "the build failed (log: $build/vg-make.log)"; }
fi
build=$(cd "$build" && pwd)

# --- the wrappers ------------------------------------------------------------------------------
logs=${HERALD_VG_LOGS:-$build/vg-logs}
wrap=$logs/bin
rm -rf "$wrap" "$logs"
mkdir -p "$wrap/t/itest" "$logs"
vgopts="--leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect"
vgopts="$vgopts --error-exitcode=97 --trace-children=yes --trace-children-skip=/bin/*,/sbin/*,/usr/bin/*,/usr/sbin/*,/usr/lib/*"
vgopts="$vgopts --num-callers=30 --suppressions=$supp"
[ "${HERALD_VG_ORIGINS:-0}" = 1 ] && vgopts="$vgopts --track-origins=yes"
# mkwrap NAME REAL [ENV] - $wrap/NAME execs valgrind on REAL; the log goes to $HERALD_VG_LOGDIR
# (set per test; a run outside this script logs to $logs/other)
mkwrap() {
	local base
	base=$(basename "$1")
	[ -x "$2" ] || die "$2 is not built"
	cat > "$wrap/$1" <<EOF
#!/bin/sh
# made by scripts/valgrind-suite.sh: $1 under valgrind
${3:+export $3}
exec valgrind $vgopts --log-file="\${HERALD_VG_LOGDIR:-$logs/other}/$base.%p.log" "$2" "\$@"
EOF
	chmod 755 "$wrap/$1"
}
mkdir -p "$logs/other"
mkwrap heraldd "$build/heraldd"
mkwrap heraldctl "$build/heraldctl"
# herald-send is libtool's wrapper script around .libs/herald-send (linked to libherald.so)
if [ -x "$build/.libs/herald-send" ]; then
	mkwrap herald-send "$build/.libs/herald-send" "LD_LIBRARY_PATH=$build/.libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
else
	mkwrap herald-send "$build/herald-send"     # --disable-shared: a plain program
fi
for p in "$build"/t/itest/*; do
	[ -x "$p" ] && [ -f "$p" ] && mkwrap "t/itest/$(basename "$p")" "$p"
done

# --- which tests ------------------------------------------------------------------------------
# mkvar NAME - a list variable of Makefile.am (backslash-continued)
mkvar() { awk -v v="$1" '$1 == v && $2 == "=" { on = 1 } on { for (i = 1; i <= NF; i++) if ($i ~ /^t\//) print $i; if ($NF != "\\") on = 0 }' "$src/Makefile.am"; }
if [ $# -gt 0 ]; then tests=("$@"); else mapfile -t tests < <(mkvar UNIT_TESTS; mkvar INTEGRATION_TESTS); fi
[ ${#tests[@]} -gt 0 ] || die "no tests"

# --- the stack ---------------------------------------------------------------------------------
own_stack=0 stack=""
need_stack=0
for t in "${tests[@]}"; do case $t in *.t) need_stack=1 ;; esac; done
teardown() {
	[ $own_stack = 1 ] || return 0
	"$src/scripts/stack.sh" down "$stack" > /dev/null 2>&1
	rm -rf "$stack"
}
trap teardown EXIT
trap 'exit 130' INT TERM
if [ $need_stack = 1 ]; then
	if [ -n "${HERALD_T_STACK:-}" ]; then
		stack=$HERALD_T_STACK
	else
		stack=$(mktemp -d /tmp/herald-vg-stack.XXXXXX)
		own_stack=1
		"$src/scripts/stack.sh" up "$stack" > "$stack.up.log" 2>&1 || { cat "$stack.up.log"; rm -f "$stack.up.log"; die "the private stack did not start"; }
		rm -f "$stack.up.log"
	fi
	eval "$("$src/scripts/stack.sh" env "$stack")"
fi

# --- run -----------------------------------------------------------------------------------------
passed=0 failed=0
res() { if [ "$1" -eq 0 ]; then echo "ok - $2"; passed=$((passed + 1)); else echo "not ok - $2"; failed=$((failed + 1)); fi; }
# vgcheck DIR - print each log of DIR with an error or a leak; status 0 when there is none
vgcheck() {
	local f n bad=0
	for f in "$1"/*.log; do
		[ -e "$f" ] || continue
		n=$(sed -n 's/^==[0-9]*== ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$f" | tail -n 1)
		if [ -z "$n" ]; then
			# no summary: the process was killed (SIGKILL) or is still running; its errors are
			# in the log as they happened (a leak check needs an exit)
			n=$(grep -cE '^==[0-9]+== (Invalid (read|write|free)|Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap|Argument .* of function|[A-Za-z_]+\(\): invalid|Jump to the invalid)' "$f")
		fi
		if [ "$n" -gt 0 ]; then
			bad=$((bad + 1))
			echo "#   $n error(s) in $f:"
			grep -E '^==[0-9]+== ( {3}(at|by) |[A-Z][a-z]+|[0-9,]+ (\([0-9,]+ direct, [0-9,]+ indirect\) )?bytes in )' "$f" | grep -v -E '== (Memcheck|Copyright|Using Valgrind|Command|Parent PID|HEAP SUMMARY|LEAK SUMMARY|ERROR SUMMARY|For lists|Use --|To see|Rerun|For counts)' |
				head -n 40 | sed 's/^/#     /'
		fi
	done
	[ "$bad" -eq 0 ]
}
limit=${HERALD_VG_TEST_LIMIT:-1800}
export HERALD_T_TIMEOUT=${HERALD_T_TIMEOUT:-4}
for t in "${tests[@]}"; do
	t=${t#./}
	name=$(basename "$t")
	dir=$logs/$name
	mkdir -p "$dir"
	chmod 1777 "$dir"       # heraldd's children drop to heraldd.user (ops.t) before they log
	start=$(date +%s)
	case $t in
	t/unit/*)
		[ -x "$build/$t" ] || { res 1 "$t: not built"; continue; }
		HERALD_VG_LOGDIR=$dir timeout "$limit" valgrind $vgopts --log-file="$dir/$name.%p.log" \
			"$build/$t" > "$dir/tap.out" 2>&1 ;;
	t/install.t)
		HERALD_SRCDIR=$src HERALD_BUILDDIR=$build HERALD_SQL_DIR=$src/sql HERALD_VG_LOGDIR=$dir \
			timeout "$limit" bash "$src/$t" > "$dir/tap.out" 2>&1 < /dev/null ;;
	*.t)
		HERALD_SRCDIR=$src HERALD_BUILDDIR=$wrap HERALD_SQL_DIR=$src/sql HERALD_VG_LOGDIR=$dir \
			timeout "$limit" bash "$src/$t" > "$dir/tap.out" 2>&1 < /dev/null ;;
	*) res 1 "$t: not a test (t/NAME.t or t/unit/NAME)"; continue ;;
	esac
	rc=$?
	secs=$(($(date +%s) - start))
	plan=$(sed -n 's/^1\.\.\([0-9]*\).*/\1/p' "$dir/tap.out" | head -n 1)
	okn=$(grep -c '^ok ' "$dir/tap.out")
	nok=$(grep -c '^not ok ' "$dir/tap.out")
	if [ "$rc" -eq 0 ] && [ "$nok" -eq 0 ] && [ -n "$plan" ] && [ "$okn" -eq "$plan" ]; then
		res 0 "$t: $okn/$plan checks (${secs}s)"
	else
		grep -E '^(not ok|Bail out|#)' "$dir/tap.out" | head -n 30
		[ "$rc" -eq 124 ] && echo "#   timed out after ${limit}s"
		res 1 "$t: $okn/${plan:-?} checks, exit $rc (${secs}s; output: $dir/tap.out)"
	fi
	[ "$t" = t/install.t ] && continue     # its programs are the installed ones, run once each
	[ "$t" = t/stack.t ] && continue       # it starts the servers only, no herald program
	nlogs=$(find "$dir" -name '*.log' | wc -l)
	if [ "$nlogs" -eq 0 ]; then
		res 1 "$t: no process ran under valgrind"
	elif vgcheck "$dir" > "$dir/vgcheck.out"; then
		res 0 "$t: valgrind clean, $nlogs processes"
	else
		cat "$dir/vgcheck.out"
		res 1 "$t: valgrind found errors or leaks in $(grep -c '^#   [0-9]* error' "$dir/vgcheck.out") of $nlogs processes"
	fi
done
echo "valgrind-suite: logs in $logs"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
