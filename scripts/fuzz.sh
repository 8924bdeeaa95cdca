#!/bin/sh
# scripts/fuzz.sh [SECONDS] - runs every libFuzzer target in build/fuzz for
# SECONDS (default $FUZZ_SECONDS or 60) each, starting from a copy of its
# seed corpus in tests/fuzz/corpus/<target>/ (the committed seeds are never
# modified).  Prints each target's executions and ends with
# "fuzz: N passed, N failed".
set -u
cd "$(dirname "$0")/.."
secs=${1:-${FUZZ_SECONDS:-60}}
pass=0
fail=0
for t in build/fuzz/fuzz_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	work=$(mktemp -d)
	mkdir -p "$work/corpus"
	[ -d "tests/fuzz/corpus/$name" ] &&
	    cp -r "tests/fuzz/corpus/$name/." "$work/corpus/"
	if (cd "$work" && "$OLDPWD/$t" -max_total_time="$secs" \
	    -print_final_stats=1 corpus >log 2>&1); then
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' \
		    "$work/log")
		echo "fuzz $name: ${secs}s, ${execs:-?} executions, no findings"
		pass=$((pass + 1))
	else
		tail -n 40 "$work/log"
		echo "fuzz $name: FAILED (crash input kept in $work)"
		fail=$((fail + 1))
		continue
	fi
	rm -rf "$work"
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
