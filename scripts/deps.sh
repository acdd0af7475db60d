#!/usr/bin/env bash
# Installs what building and testing need, if it is missing: libzmq (with
# pkg-config for cgo), Debian's pyzmq for the interop tests, gcc for cgo.
set -euo pipefail
need=()
dpkg -s libzmq3-dev >/dev/null 2>&1 || need+=(libzmq3-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need+=(pkg-config)
dpkg -s python3-zmq >/dev/null 2>&1 || need+=(python3-zmq)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
# Debian chromium drives the status-page browser test (ops/browser_test.go).
dpkg -s chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "installing: ${need[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v go >/dev/null 2>&1 || { echo "deps: Go is not on PATH (expected /usr/local/go/bin)" >&2; exit 1; }
go mod download
