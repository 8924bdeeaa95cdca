#!/bin/sh
# scripts/run-unit.sh - runs cmocka test binaries; prints one summary line
# "unit: N passed, N failed" and exits non-zero if any binary failed.
pass=0; fail=0
for t in "$@"; do
	if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $t"; fi
done
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
