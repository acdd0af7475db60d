#!/usr/bin/env bash
# Runs every Go fuzz target in the module for FUZZTIME each (default 15s).
# go test accepts one -fuzz target per run, so targets are found by name.
set -euo pipefail
fuzztime="${FUZZTIME:-15s}"
found=0
while IFS= read -r file; do
	dir="./$(dirname "$file")"
	for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
		found=$((found + 1))
		echo "fuzz: $dir $target for $fuzztime"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$dir"
	done
done < <(grep -rl --include='*_test.go' -E '^func Fuzz' . | sort)
[ "$found" -gt 0 ] || { echo "fuzz: no fuzz targets found" >&2; exit 1; }
