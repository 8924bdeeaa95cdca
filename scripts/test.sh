#!/bin/sh
# scripts/test.sh - runs every suite after `make all unit asan` built both
# the plain and the ASan+UBSan trees:
#   unit tests (cmocka)            plain and sanitized
#   integration tests (pytest)     against bin/ and build/asan/bin
#   fuzz targets (libFuzzer)       a short run of each from its seeds
# and ends with one line "N passed, N failed" counting test cases.
set -u
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
pass=0
fail=0
failed_suites=""

note_fail() {
	failed_suites="$failed_suites $1"
}

# cmocka prints "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s)".
run_unit() {
	label=$1
	shift
	for t in "$@"; do
		[ -x "$t" ] || continue
		out=$("$t" 2>&1)
		rc=$?
		p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
		f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
		p=${p:-0}
		f=${f:-0}
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
			f=1	# crashed or sanitizer report
		fi
		pass=$((pass + p))
		fail=$((fail + f))
		if [ "$f" -ne 0 ]; then
			printf '%s\n' "$out"
			note_fail "$label:$(basename "$t")"
		fi
		echo "$label $(basename "$t"): $p passed, $f failed"
	done
}

# pytest -q ends with e.g. "12 passed, 1 failed, 2 errors in 3.4s".
run_pytest() {
	label=$1
	bindir=$2
	shift 2
	log=$(mktemp)
	MAAS_BIN=$bindir $PY -m pytest -q -p no:cacheprovider "$@" 2>&1 |
	    tee "$log"
	last=$(grep -E '[0-9]+ (passed|failed|error)' "$log" | tail -n 1)
	p=$(printf '%s' "$last" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
	f=$(printf '%s' "$last" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
	e=$(printf '%s' "$last" | grep -oE '[0-9]+ errors?' | grep -oE '[0-9]+')
	p=${p:-0}
	f=$(( ${f:-0} + ${e:-0} ))
	if [ -z "$last" ]; then
		f=$((f + 1))
	fi
	pass=$((pass + p))
	fail=$((fail + f))
	[ "$f" -ne 0 ] && note_fail "$label"
	rm -f "$log"
	echo "$label: $p passed, $f failed"
}

# scripts/fuzz.sh ends with "fuzz: N passed, N failed".
run_fuzz() {
	log=$(mktemp)
	scripts/fuzz.sh "$FUZZ_SECONDS" 2>&1 | tee "$log"
	p=$(sed -n 's/^fuzz: \([0-9]*\) passed.*/\1/p' "$log")
	f=$(sed -n 's/^fuzz: [0-9]* passed, \([0-9]*\) failed.*/\1/p' "$log")
	[ -z "$p" ] && f=1
	pass=$((pass + ${p:-0}))
	fail=$((fail + ${f:-0}))
	[ "${f:-0}" -ne 0 ] && note_fail "fuzz"
	rm -f "$log"
}

# onnx_conformance ends with "conformance: N passed, N failed, N skipped";
# it fails when a baseline test stops passing.
run_conformance() {
	label=$1
	bin=$2
	log=$(mktemp)
	"$bin" -b tests/conformance/baseline.txt >"$log" 2>&1
	rc=$?
	grep -v '^conformance:' "$log" | tail -n 40
	last=$(grep '^conformance:' "$log" | tail -n 1)
	echo "$label $last"
	p=$(printf '%s' "$last" | sed -n 's/.* \([0-9]*\) passed.*/\1/p')
	f=$(printf '%s' "$last" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
	p=${p:-0}
	f=${f:-0}
	[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
	pass=$((pass + p))
	fail=$((fail + f))
	[ "$f" -ne 0 ] && note_fail "$label"
	rm -f "$log"
}

# node --test ends with "# pass N" and "# fail N".  npm ci installs the
# pinned packages of the suite's package-lock.json first.
run_node() {
	label=$1
	dir=$2
	shift 2
	log=$(mktemp)
	if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1 ||
		    { cat "$log"; echo "$label: npm ci failed"; }
	fi
	"$@" 2>&1 | tee "$log"
	p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log" | tail -n 1)
	f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log" | tail -n 1)
	[ -z "$p" ] && f=$(( ${f:-0} + 1 ))
	p=${p:-0}
	f=${f:-0}
	pass=$((pass + p))
	fail=$((fail + f))
	[ "$f" -ne 0 ] && note_fail "$label"
	rm -f "$log"
	echo "$label: $p passed, $f failed"
}

echo "== unit tests (plain)"
run_unit unit build/tests/test_*
echo "== unit tests (ASan+UBSan)"
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
    run_unit unit-asan build/asan/tests/test_*
echo "== ONNX conformance (libonnx-testdata node tests)"
run_conformance conformance build/tests/onnx_conformance
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
    run_conformance conformance-asan build/asan/tests/onnx_conformance
# The portable kernels, as a CPU without AVX2 or AVX-512 runs them
# (common/cpu.h): the products on OpenBLAS, the LLM rows and attention in
# plain C, checked by the kernel tests, the conformance runner and the
# numpy reference.
echo "== portable kernels (MAAS_KERNELS=portable)"
MAAS_KERNELS=portable run_unit unit-portable build/tests/test_llm_quant \
    build/tests/test_gemm build/tests/test_onnx_gemm \
    build/tests/test_llm_gguf build/tests/test_kernels \
    build/tests/test_onnx_ops build/tests/test_onnx_nn \
    build/tests/test_onnx_fuse build/tests/test_sampler
MAAS_KERNELS=portable run_conformance conformance-portable \
    build/tests/onnx_conformance
MAAS_KERNELS=portable run_pytest integration-portable bin \
    tests/integration/test_llm_ref.py tests/integration/test_llm_runtime.py \
    tests/integration/test_llm_chunked.py
unset MAAS_KERNELS
echo "== integration tests (plain)"
run_pytest integration bin tests/integration
echo "== integration tests (ASan+UBSan)"
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
    run_pytest integration-asan build/asan/bin tests/integration
echo "== end-to-end: the openai SDK against maasd (node --test)"
MAAS_BIN=bin run_node e2e-openai tests/e2e node tests/e2e/launch.mjs
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
    MAAS_BIN=build/asan/bin run_node e2e-openai-asan tests/e2e \
    node tests/e2e/launch.mjs
echo "== end-to-end: the web console in chromium (Playwright)"
run_node e2e-console tests/e2e/console sh -c \
    'cd tests/e2e/console && MAAS_BIN=$PWD/../../../bin node --test --test-concurrency=1'
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
    run_node e2e-console-asan tests/e2e/console sh -c \
    'cd tests/e2e/console && MAAS_BIN=$PWD/../../../build/asan/bin node --test --test-concurrency=1'
echo "== fuzz targets (${FUZZ_SECONDS}s each)"
if make --no-print-directory fuzz-build >/dev/null 2>&1; then
	run_fuzz
else
	echo "fuzz targets failed to build"
	make --no-print-directory fuzz-build 2>&1 | tail -n 20
	fail=$((fail + 1))
	note_fail "fuzz-build"
fi
[ -n "$failed_suites" ] && echo "failed:$failed_suites"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
