#!/usr/bin/env bash
# Runs every Go fuzz target in the module for FUZZTIME each (default 15s).
# go test accepts one -fuzz target per run, so targets are found by name.
#
# Go before 1.27 has a race in its fuzz coordinator (golang/go#75804): when a
# duration -fuzztime expires while a worker is mid-call, the target fails with
# a bare "context deadline exceeded" although no input failed. A run that fails
# with exactly that, writes no reproducer and whose seed corpus then replays
# clean is counted as that race and fuzzed once more; every other failure
# (a written input, a panic, a t.Error) fails at once.
set -euo pipefail
fuzztime="${FUZZTIME:-15s}"
tries="${FUZZ_TRIES:-3}"
found=0
raced=0
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# is_shutdown_race LOG: the failure is the coordinator's deadline race only.
is_shutdown_race() {
	grep -q '^    context deadline exceeded$' "$1" &&
		! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' "$1"
}

# corpus_count DIR TARGET: files under the target's generated corpus.
corpus_count() {
	local d="$1/testdata/fuzz/$2"
	if [ -d "$d" ]; then find "$d" -type f | wc -l; else echo 0; fi
}

while IFS= read -r file; do
	dir="./$(dirname "$file")"
	for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
		found=$((found + 1))
		for ((try = 1; ; try++)); do
			echo "fuzz: $dir $target for $fuzztime"
			before="$(corpus_count "$dir" "$target")"
			if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$dir" 2>&1 | tee "$log"; then
				break
			fi
			after="$(corpus_count "$dir" "$target")"
			if [ "$after" != "$before" ] || ! is_shutdown_race "$log"; then
				echo "fuzz: $target failed" >&2
				exit 1
			fi
			# The deadline race writes nothing; make sure the seeds still pass.
			go test -count=1 -run "^${target}\$" "$dir" >/dev/null || {
				echo "fuzz: $target failed its seed corpus" >&2
				exit 1
			}
			raced=$((raced + 1))
			if [ "$try" -ge "$tries" ]; then
				echo "fuzz: $target hit the fuzztime deadline race $try times in a row" >&2
				exit 1
			fi
			echo "fuzz: $target: Go's fuzztime deadline race (golang/go#75804), no input failed; again"
		done
	done
done < <(grep -rl --include='*_test.go' -E '^func Fuzz' . | sort)
[ "$found" -gt 0 ] || { echo "fuzz: no fuzz targets found" >&2; exit 1; }
echo "fuzz: $found targets, $raced deadline race(s) retried"
