#!/usr/bin/env bash
# Installs what building needs, if it is missing: libzmq (with pkg-config for
# cgo) and gcc. With --test, also what the tests need: Debian's pyzmq for the
# interop tests, chromium for the status-page browser test and the PostgreSQL
# server, whose binaries the Titanic tests run throwaway clusters with
# (internal/pgtest).
set -euo pipefail
need=()
dpkg -s libzmq3-dev >/dev/null 2>&1 || need+=(libzmq3-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
if [ "${1:-}" = "--test" ]; then
	dpkg -s python3-zmq >/dev/null 2>&1 || need+=(python3-zmq)
	dpkg -s chromium >/dev/null 2>&1 || need+=(chromium)
	dpkg -s postgresql >/dev/null 2>&1 || need+=(postgresql)
fi
if [ ${#need[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "installing: ${need[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v go >/dev/null 2>&1 || { echo "deps: Go is not on PATH (expected /usr/local/go/bin)" >&2; exit 1; }
go mod download
