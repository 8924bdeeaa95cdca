#!/bin/sh
# scripts/deps.sh [run|test|bench] - installs the Debian 12 packages maas
# needs that are missing (apt-get, as root).  Installs nothing when all are
# present, so it is cheap to call before every build.
set -eu
profile=${1:-test}
build="gcc make pkg-config libevent-dev libssl-dev libsqlite3-dev
libjansson-dev libopenblas-dev libjwt-dev libprotobuf-c-dev
protobuf-c-compiler libseccomp-dev libonnx-dev curl openssl"
testing="libcmocka-dev python3-pytest python3-requests python3-numpy
python3-onnx python3-jwt python3-cryptography clang libclang-rt-14-dev
testssl.sh prometheus libonnx-testdata python3-regex nodejs chromium"
bench="wrk nginx-light"
case "$profile" in
run) want="$build libcmocka-dev" ;;
test) want="$build $testing" ;;
bench) want="$build $testing $bench" ;;
*) echo "usage: $0 [run|test|bench]" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
# Node's own packages ship npm; Debian's nodejs needs the npm package.
if [ "$profile" != run ] && ! command -v npm >/dev/null 2>&1; then
	missing="$missing npm"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "maas needs these Debian packages:$missing" >&2
	echo "run as root: apt-get install -y$missing" >&2
	exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
