#!/usr/bin/env bash
# fuzz.sh - build the libFuzzer harnesses of fuzz/ with clang (ASan + UBSan), replay the kept
# crash inputs of fuzz/regress/NAME/, then fuzz each harness for SECONDS (default 30) from a
# scratch copy of fuzz/corpus/NAME/. Prints "ok - fuzz NAME (N runs, S s)" or "not ok - ..." with
# the crashing input (copied to _fuzz/); exits 1 when any harness failed. Nothing else in the
# tree changes: the build, the grown corpus and the logs live in a scratch directory.
# usage: scripts/fuzz.sh [SECONDS] [NAME...]   (0: build and replay only; NAME: request, note,
#        template, conf; env FUZZ_KEEP=1 keeps the scratch dir, FUZZ_CRASH_DIR where crash
#        inputs are copied, default _fuzz/ in the source tree, ignored by git)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
src=$(pwd)
secs=${1:-30}
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(request note template conf)
case $secs in '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a number" >&2; exit 2 ;; esac
command -v clang > /dev/null || { echo "fuzz.sh: clang not found (scripts/deps.sh check)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/herald-fuzz.XXXXXX")
[ "${FUZZ_KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
export TMPDIR=$work

# The modules under test are compiled here, not by the autotools build (gcc): a minimal
# config.h stands for configure's.
printf '#ifndef _GNU_SOURCE\n#define _GNU_SOURCE 1\n#endif\n#define PACKAGE_VERSION "fuzz"\n' \
	> "$work/config.h"
# Warnings shown, not errors: a new clang warning must not stop the fuzzing.
# shellcheck disable=SC2054
cflags=(-g -O1 -std=c11 -Wall -Wextra -fsanitize=fuzzer,address,undefined
	-fno-sanitize-recover=undefined -fno-omit-frame-pointer -I "$work" -I shared -I workers)
export LSAN_OPTIONS=suppressions=$src/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}
read -ra pkg_cflags <<< "$(pkg-config --cflags json-c libconfig)"
read -ra pkg_libs <<< "$(pkg-config --libs json-c libconfig)"
codec_src=(shared/codec.c shared/jsoncheck.c shared/rfc3339.c shared/txid.c)
declare -A srcs=(
	[request]="${codec_src[*]}"
	[note]="${codec_src[*]}"
	[template]="workers/template.c"
	[conf]="shared/conf.c shared/log.c shared/url.c shared/rfc3339.c"
)

# each module compiled once into an object, then each harness linked from its objects
obj() { echo "$work/$(echo "$1" | tr / _).o"; }
declare -A compiled=()
for name in "${names[@]}"; do
	for f in "fuzz/fuzz_$name.c" ${srcs[$name]:-}; do
		[ -z "${compiled[$f]:-}" ] || continue
		clang "${cflags[@]}" "${pkg_cflags[@]}" -c -o "$(obj "$f")" "$f" > "$work/cc.log" 2>&1
		compiled[$f]=$?
		cat "$work/cc.log" >&2
	done
done

fail=0
for name in "${names[@]}"; do
	[ -n "${srcs[$name]:-}" ] || { echo "not ok - fuzz $name (no such harness)"; fail=1; continue; }
	bin=$work/fuzz_$name
	objs=() cc=0
	for f in "fuzz/fuzz_$name.c" ${srcs[$name]}; do
		objs+=("$(obj "$f")")
		[ "${compiled[$f]}" -eq 0 ] || cc=1
	done
	if [ $cc -ne 0 ] || ! clang "${cflags[@]}" -o "$bin" "${objs[@]}" "${pkg_libs[@]}"; then
		echo "not ok - fuzz $name (build failed)"
		fail=1
		continue
	fi
	opts=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
	[ -f "fuzz/$name.dict" ] && opts+=(-dict="fuzz/$name.dict")
	# every input once kept from an earlier crash must now pass
	if [ -d "fuzz/regress/$name" ] && [ -n "$(ls -A "fuzz/regress/$name")" ]; then
		if ! "$bin" "${opts[@]}" -runs=1 "fuzz/regress/$name"/* > "$work/regress_$name.log" 2>&1; then
			grep -E 'Running: |ERROR: |runtime error|ALARM: |SUMMARY' "$work/regress_$name.log" |
				tail -n 6
			echo "not ok - fuzz $name (a regression input of fuzz/regress/$name fails)"
			fail=1
			continue
		fi
	fi
	if [ "$secs" -eq 0 ]; then
		echo "ok - fuzz $name (built, regression inputs pass)"
		continue
	fi
	corpus=$work/corpus_$name
	mkdir -p "$corpus" "$work/crash_$name"
	cp fuzz/corpus/"$name"/* "$corpus"/ 2> /dev/null
	log=$work/fuzz_$name.log
	start=$SECONDS
	# conf: libconfig's own (suppressed) leak on most syntax errors makes LeakSanitizer scan the
	# process on most runs, ten times slower; fuzz without it, then run every input kept (the
	# seeds and each one that reached new code) once with it.
	leaks=()
	[ "$name" = conf ] && leaks=(-detect_leaks=0)
	"$bin" "${opts[@]}" "${leaks[@]}" -max_total_time="$secs" \
		-artifact_prefix="$work/crash_$name/" "$corpus" > "$log" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && [ ${#leaks[@]} -gt 0 ]; then
		"$bin" "${opts[@]}" -runs=0 -artifact_prefix="$work/crash_$name/" "$corpus" \
			> "$log.leaks" 2>&1
		rc=$?
		cat "$log.leaks" >> "$log"
	fi
	took=$((SECONDS - start))
	runs=$(awk '/stat::number_of_executed_units:/ && !seen { n = $2; seen = 1 } END { print n + 0 }' "$log")
	if [ $rc -eq 0 ]; then
		echo "ok - fuzz $name ($runs runs, $took s)"
		continue
	fi
	fail=1
	crash=$(find "$work/crash_$name" -type f | head -n 1)
	if [ -n "$crash" ]; then
		# keep the input past the scratch dir's removal
		keep=${FUZZ_CRASH_DIR:-$src/_fuzz}
		mkdir -p "$keep"
		cp "$crash" "$keep/"
		crash=$keep/$(basename "$crash")
	fi
	grep -m 3 -E 'ERROR: |runtime error|ALARM: |SUMMARY' "$log"
	echo "not ok - fuzz $name (exit $rc after $runs runs, $took s; input: ${crash:-none})"
done
exit $fail
