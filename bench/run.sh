#!/bin/sh
# bench/run.sh [NAME...] - runs every benchmark in bench/ (each executable
# file here but this one, and each directory's executable `run`), or only
# the ones named, one after the other, and
# exits non-zero if any of them failed.  `make bench` builds first and calls
# this.  Benchmarks print ratios against a peer run side by side in the same
# invocation; they assert nothing about speed.  Environment: MAAS_BIN (the
# binaries, default bin), BENCH_SECONDS (seconds per measurement).
set -u
cd "$(dirname "$0")/.." || exit 1
if [ $# -eq 0 ]; then
	for f in bench/*; do
		case "${f##*/}" in run.sh|*.md|*.txt|*.lua|*.json) continue ;; esac
		if [ -f "$f" ] && [ -x "$f" ]; then
			set -- "$@" "${f##*/}"
		elif [ -d "$f" ] && [ -x "$f/run" ]; then
			set -- "$@" "${f##*/}"
		fi
	done
fi
if [ $# -eq 0 ]; then
	echo "bench/run.sh: no benchmarks in bench/" >&2
	exit 1
fi
failed=""
for b in "$@"; do
	cmd="bench/$b"
	[ -d "$cmd" ] && cmd="$cmd/run"
	if [ ! -f "$cmd" ] || [ ! -x "$cmd" ]; then
		echo "bench/run.sh: no benchmark bench/$b" >&2
		failed="$failed $b"
		continue
	fi
	echo "=== bench/$b"
	if ! "$cmd"; then
		failed="$failed $b"
	fi
	echo
done
if [ -n "$failed" ]; then
	echo "bench/run.sh: failed:$failed" >&2
	exit 1
fi
echo "bench/run.sh: all benchmarks ran"
