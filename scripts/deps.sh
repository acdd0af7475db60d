#!/usr/bin/env bash
# Installs what is missing. Building needs only Go (no cgo, no libzmq). With
# --test, also what the tests need: Debian's pyzmq and libzmq (the interop
# oracle: Python and C libzmq peers), gcc for the C peers, chromium for the
# status-page browser test, and the PostgreSQL server, whose binaries the
# Titanic tests run throwaway clusters with (internal/pgtest).
set -euo pipefail
need=()
if [ "${1:-}" = "--test" ]; then
	dpkg -s python3-zmq >/dev/null 2>&1 || need+=(python3-zmq)
	dpkg -s libzmq3-dev >/dev/null 2>&1 || need+=(libzmq3-dev)
	command -v gcc >/dev/null 2>&1 || need+=(gcc)
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
