#!/usr/bin/env bash
# tests/check.sh: the sanitizer check (`make check-sanitize`, which builds
# build-asan/, build-tsan/ and build-fuzz/ first).
#
#  (a) ASan+UBSan: the unit programs and the black-box suite (tests/run.py)
#      against build-asan/fileserv; fails on any report, including those
#      that forked workers write to $T/asan.* (log_path);
#  (b) TSan: the unit programs and the thread-mode black-box tests against
#      build-tsan/fileserv; fails on any report in $T/tsan.*;
#  (c) libFuzzer: every committed corpus replayed (-runs=0).
#
# Prints what failed and ends with one line "N passed, N failed" (the sum
# of the three stages); exit status 1 if anything failed.
#
# Environment: CHECK_JOBS (parallel black-box tests, default 3: most of
# them wait on sockets and timers), CHECK_STAGES (default "asan tsan fuzz").
set -u
cd "$(dirname "$0")/.."

JOBS=${CHECK_JOBS:-3}
STAGES=${CHECK_STAGES:-asan tsan fuzz}
T=$(mktemp -d "${TMPDIR:-/tmp}/fileserv-check.XXXXXX")
trap 'rm -rf "$T"' EXIT
PASSED=0
FAILED=0
SKIPPED=0
UNITS=$(ls tests/t_*.c | sed 's|tests/\(.*\)\.c|\1|')
t_start=$(date +%s)

say() { printf '%s\n' "$*"; }

# Adds the "N passed, N failed[, N skipped]" summary at the end of file $1.
add_summary() {
	local line
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$1" | tail -1)
	if [ -z "$line" ]; then
		say "FAIL $2: no summary line"
		FAILED=$((FAILED + 1))
		return
	fi
	set -- ${line//,/}
	PASSED=$((PASSED + $1))
	FAILED=$((FAILED + $3))
	SKIPPED=$((SKIPPED + ${5:-0}))
}

# Counts one failure per sanitizer log $1.* and prints them.
sanitizer_logs() {
	local f n=0
	for f in "$1".*; do
		[ -e "$f" ] || continue
		n=$((n + 1))
		say "FAIL $2 report $(basename "$f"):"
		sed -n '1,60p' "$f" | sed 's/^/     /'
	done
	FAILED=$((FAILED + n))
	[ "$n" = 0 ] && PASSED=$((PASSED + 1)) && say "ok   $2: no sanitizer reports"
}

# Runs a unit program directly: its "NAME: N passed, N failed (N checks)"
# line counts its test functions; a crash or a missing line is one more
# failure.
run_unit() {
	local bin=${*: -1} out=$T/unit.out st line
	timeout 600 "$@" >"$out" 2>&1
	st=$?
	line=$(grep -E '^[^ ]+: [0-9]+ passed, [0-9]+ failed \([0-9]+ checks\)$' "$out" | tail -1)
	if [ -n "$line" ]; then
		set -- ${line#*: }
		PASSED=$((PASSED + $1))
		FAILED=$((FAILED + $3))
		[ "$3" = 0 ] || grep '^FAIL' "$out" | head -20
	fi
	if [ "$st" != 0 ] || [ -z "$line" ]; then
		FAILED=$((FAILED + 1))
		say "FAIL $bin: exit status $st"
		tail -30 "$out" | sed 's/^/     /'
	else
		say "ok   $bin: $line"
	fi
}

stage_asan() {
	say "== ASan+UBSan: unit programs and black-box suite (build-asan)"
	local units="" u
	for u in $UNITS; do units="$units build-asan/tests/$u"; done
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:log_path=$T/asan \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		python3 tests/run.py --bin build-asan/fileserv -j "$JOBS" -v \
		--units "$units $(echo tests/t_*.lua)" | tee "$T/run-asan.txt"
	add_summary "$T/run-asan.txt" "asan run.py"
	sanitizer_logs "$T/asan" "ASan/UBSan"
}

stage_tsan() {
	say "== TSan: unit programs and thread-mode black-box tests (build-tsan)"
	# clang-14 TSan cannot map its shadow with 32 bits of mmap entropy
	# (google/sanitizers#1716): run without ASLR there.
	local wrap="" u
	if [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28)" -gt 28 ]; then
		wrap="setarch $(uname -m) -R"
	fi
	export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:log_path=$T/tsan
	for u in $UNITS; do run_unit $wrap "build-tsan/tests/$u"; done
	$wrap python3 tests/run.py --bin build-tsan/fileserv -k thread \
		-j "$JOBS" -v | tee "$T/run-tsan.txt"
	unset TSAN_OPTIONS
	add_summary "$T/run-tsan.txt" "tsan run.py"
	sanitizer_logs "$T/tsan" "TSan"
}

stage_fuzz() {
	say "== libFuzzer: corpus replay (build-fuzz)"
	local c t n
	for c in tests/fuzz/corpus/*/; do
		t=$(basename "$c")
		n=$(ls "$c" | wc -l)
		if [ ! -x "build-fuzz/$t" ]; then
			say "FAIL $t: build-fuzz/$t missing (make fuzz-build)"
			FAILED=$((FAILED + 1))
		elif "build-fuzz/$t" -runs=0 -timeout=5 -rss_limit_mb=2048 \
			-artifact_prefix="$T/$t-" "$c" >"$T/$t.log" 2>&1; then
			say "ok   $t: $n inputs replayed"
			PASSED=$((PASSED + 1))
		else
			say "FAIL $t: replay of $n inputs"
			tail -40 "$T/$t.log" | sed 's/^/     /'
			FAILED=$((FAILED + 1))
		fi
	done
}

for s in $STAGES; do
	s0=$(date +%s)
	"stage_$s"
	say "# $s: $(($(date +%s) - s0))s"
done
say "# check-sanitize: $(($(date +%s) - t_start))s"
[ "$SKIPPED" = 0 ] || say "# $SKIPPED skipped (not counted)"
say "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
