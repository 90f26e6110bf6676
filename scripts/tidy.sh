#!/usr/bin/env bash
# tidy.sh - clang-tidy (the checks of .clang-tidy) over every .c of shared/ producer/ workers/ ctl/,
# two at a time; any finding fails.
#
#   scripts/tidy.sh [BUILDDIR] [FILE...]   BUILDDIR: a configured tree, for its config.h and the
#                                          libraries' -I flags (default: _build); FILE: only those
#
# Compile flags are the build's: -std=c11, config.h, the project's -I and the pkg-config -I of
# the libraries, read from BUILDDIR/Makefile (no compile_commands.json needed). Prints
# "ok - clang-tidy clean" or the findings and "not ok - clang-tidy: N findings"; exit 0 or 1.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/_build}" 2> /dev/null && pwd) || { echo "not ok - clang-tidy: no build directory ${1:-$src/_build}"; exit 1; }
shift $(($# > 0 ? 1 : 0))
tidy=$(command -v clang-tidy || command -v clang-tidy-14) || { echo "not ok - clang-tidy: not installed (scripts/deps.sh check)"; exit 1; }
[ -f "$build/Makefile" ] && [ -f "$build/config.h" ] || { echo "not ok - clang-tidy: $build is not configured"; exit 1; }

# the libraries' -I flags, as configure wrote them into the Makefile (read, not run: make would
# first regenerate a Makefile older than its Makefile.am)
libflags=$(sed -n 's/^\(RABBITMQ\|JSONC\|CURL\|LIBCONFIG\|MYSQL\|CRYPTO\|MHD\)_CFLAGS = //p' "$build/Makefile" | tr '\n' ' ')
cd "$src" || exit 1
if [ $# -gt 0 ]; then files=("$@"); else files=(shared/*.c producer/*.c workers/*.c ctl/*.c); fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# xargs: two clang-tidy processes at once, four files each; the flags after "--" are the compiler's
export TIDY_BIN=$tidy TIDY_FLAGS="-std=c11 -DHAVE_CONFIG_H -I$build -I$src -I$src/shared -I$src/workers -I$src/producer -DHERALD_SQL_DIR=\"/usr/share/herald/sql\" $libflags"
printf '%s\n' "${files[@]}" | xargs -P 2 -n 4 bash -c '"$TIDY_BIN" --quiet --warnings-as-errors="*" "$@" -- $TIDY_FLAGS' tidy > "$out" 2>&1
rc=$?
n=$(grep -c ': \(warning\|error\): ' "$out")
if [ "$rc" -eq 0 ] && [ "$n" -eq 0 ]; then
	echo "ok - clang-tidy clean (${#files[@]} files)"
	exit 0
fi
grep -v '^[0-9]* warnings\? \(and [0-9]* errors\? \)\?generated\.$' "$out"
echo "not ok - clang-tidy: $n findings in ${#files[@]} files"
exit 1
