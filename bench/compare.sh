#!/usr/bin/env bash
# bench/compare.sh: the libzmq build (BASE, default 2bbce1e, the commit
# before the pure-Go ZMTP engine) against the current tree, in one run:
# both builds made here, every cell run RUNS times with the two variants
# interleaved (A B, then B A on the next repetition, so that neither always
# runs first), unpinned and pinned (taskset -c $PIN_CPU on every process),
# medians and min–max printed as Markdown, every raw result kept.
#
#   bench/compare.sh                          # RUNS=5 DUR=3s, all cells
#   RUNS=2 DUR=2s CELLS="a g" bench/compare.sh
#   BASE=v0.3.0 MODES=pinned bench/compare.sh
#
# Cells (see bench/README.md; targets from issue 11, "Performance"):
#   a  a-2w a-8w  broker CPU per request and req/s, 2 and 8 workers, window
#                 100: the current mdbench (same peers for both) spawning the
#                 baseline or the current mdbroker, --peers procs.
#   b  b-sync     synchronous req/s (window 1, 1 worker): the same, with
#                 the baseline or the current mdbroker.
#   c  c-w100 c-sync  Go client and worker CPU per request: the baseline or
#                 the current mdbench (old libzmq peers, new peers) against
#                 the current mdbroker; window 100 (2 workers) and window 1.
#   d  d-sync     the all-Go stack: baseline mdbench + mdbroker against
#                 current mdbench + mdbroker, window 1, 1 worker, 1 client.
#   e  e-titanic  Titanic durable submissions per second:
#                 BenchmarkTitanicSubmit (titanic/bench.sh's benchmark),
#                 test binaries built from both trees, -benchtime TITANIC_N x.
#   f  f-curve    CURVE next to NULL, current build, 2 workers, window 100.
#   g  g-w100 g-sync  bench/relay, a plain Go TCP relay of the broker's
#                 shape (no ZeroMQ): 2 workers window 100, and synchronous.
#   h  h-titanic  Titanic as shipped: the current mdbench --titanic (8
#                 clients, window 256, durable submissions) spawning the
#                 baseline or the current mdbroker with --titanic-dir; the
#                 broker's CPU includes its Titanic.
# CELLS takes letters or cell names (CELLS="a-2w g-sync").
#
# Environment: RUNS (5), DUR (3s), WARMUP (500ms), MODES ("unpinned
# pinned"), PIN_CPU (0), TITANIC_N (20000), BASE (2bbce1e), OUT (default
# bench/results/compare-STAMP), TIMEOUT (seconds per run, 300).
# Needs Go, gcc and libzmq3-dev (the baseline uses cgo), git, taskset.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH=$PATH:/usr/local/go/bin

RUNS=${RUNS:-5}
DUR=${DUR:-3s}
WARMUP=${WARMUP:-500ms}
MODES=${MODES:-unpinned pinned}
PIN_CPU=${PIN_CPU:-0}
TITANIC_N=${TITANIC_N:-20000}
BASE=${BASE:-2bbce1e}
TIMEOUT=${TIMEOUT:-300}
CELLS=${CELLS:-a b c d e f g h}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-bench/results/compare-$STAMP}

die() {
	echo "compare.sh: $*" >&2
	exit 2
}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$RUNS'"
[[ $TITANIC_N =~ ^[1-9][0-9]*$ ]] || die "TITANIC_N must be a positive integer, not '$TITANIC_N'"
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "TIMEOUT must be a positive integer (seconds), not '$TIMEOUT'"
for m in $MODES; do
	[[ $m == pinned || $m == unpinned ]] || die "MODES takes pinned and unpinned, not '$m'"
done
for t in go git taskset timeout; do
	command -v "$t" >/dev/null || die "$t not found"
done
BASE_REV=$(git rev-parse --verify --quiet "$BASE^{commit}") || die "BASE '$BASE' is not a commit"

# Expand CELLS into cell names.
SEL=()
for c in $CELLS; do
	case $c in
	a) SEL+=(a-2w a-8w) ;;
	b) SEL+=(b-sync) ;;
	c) SEL+=(c-w100 c-sync) ;;
	d) SEL+=(d-sync) ;;
	e) SEL+=(e-titanic) ;;
	f) SEL+=(f-curve) ;;
	g) SEL+=(g-w100 g-sync) ;;
	h) SEL+=(h-titanic) ;;
	a-2w | a-8w | b-sync | c-w100 | c-sync | d-sync | e-titanic | f-curve | g-w100 | g-sync | h-titanic) SEL+=("$c") ;;
	*) die "unknown cell '$c' (letters a-h or names such as a-2w, g-sync)" ;;
	esac
done

TMP=$(mktemp -d)
BIN=$TMP/bin
BASEDIR=$TMP/base
mkdir -p "$BIN" "$OUT"
cleanup() {
	if [[ -d $BASEDIR ]]; then
		git worktree remove --force "$BASEDIR" 2>/dev/null || true
	fi
	git worktree prune 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
# Absolute: the Titanic cells run from the titanic/ folder.
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/run.log
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

need() { # need LETTER: is any cell of that letter selected?
	local c
	for c in "${SEL[@]}"; do [[ $c == "$1"-* ]] && return 0; done
	return 1
}

echo "compare.sh: building baseline $BASE ($BASE_REV) and the current tree into $BIN" >&2
git worktree add --quiet --detach "$BASEDIR" "$BASE_REV"
(
	cd "$BASEDIR"
	# mdbench's own teardown fix (no effect on what it measures: a stopped
	# child no longer waits out a 15 s timeout), into baselines that lack it.
	p=$ROOT/bench/patches/mdbench-child-stop.patch
	if git apply --check "$p" 2>/dev/null; then
		git apply "$p"
		echo "compare.sh: applied bench/patches/mdbench-child-stop.patch to the baseline's mdbench" >&2
	elif ! git apply --reverse --check "$p" 2>/dev/null; then
		echo "compare.sh: warning: the baseline's mdbench takes the patch neither way; its runs may each take 15 s longer" >&2
	fi
	CGO_ENABLED=1 go build -o "$BIN/base-mdbench" ./cmd/mdbench
	CGO_ENABLED=1 go build -o "$BIN/base-mdbroker" ./cmd/mdbroker
	if need e; then CGO_ENABLED=1 go test -c -o "$BIN/base-titanic.test" ./titanic; fi
)
go build -o "$BIN/cur-mdbench" ./cmd/mdbench
go build -o "$BIN/cur-mdbroker" ./cmd/mdbroker
if need e; then go test -c -o "$BIN/cur-titanic.test" ./titanic; fi
go build -o "$BIN/relay" ./bench/relay
go build -o "$BIN/compare" ./bench/compare

CUR_REV=$(git rev-parse HEAD)
[[ -z $(git status --porcelain --untracked-files=no) ]] || CUR_REV="$CUR_REV (with uncommitted changes)"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
HEADER=$(
	echo "# bench/compare.sh $STAMP"
	echo "- baseline: $BASE ($BASE_REV); current: $CUR_REV"
	echo "- RUNS=$RUNS DUR=$DUR WARMUP=$WARMUP MODES=\"$MODES\" PIN_CPU=$PIN_CPU TITANIC_N=$TITANIC_N cells: ${SEL[*]}"
	echo "- $(uname -srm); $(nproc) CPUs;$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2); $(go version | cut -d' ' -f3); libzmq $(pkg-config --modversion libzmq 2>/dev/null || echo '?') (baseline)"
	echo "- load average at start: $(loadavg)"
)
echo "$HEADER" | tee "$LOG" >&2

# variants CELL prints the two variants of a cell (one for the relay).
variants() {
	case $1 in
	f-*) echo "null curve" ;;
	g-*) echo "relay" ;;
	*) echo "base cur" ;;
	esac
}

# command CELL VARIANT sets CMD (an argv) and KIND for one run.
command_for() {
	local cell=$1 v=$2
	local md=(--json --peers procs --clients 1 --duration "$DUR" --warmup "$WARMUP" --label "$cell/$v")
	KIND=mdbench
	case $cell in
	a-2w) CMD=("$BIN/cur-mdbench" "${md[@]}" --spawn-broker "$BIN/$v-mdbroker" --workers 2 --window 100) ;;
	a-8w) CMD=("$BIN/cur-mdbench" "${md[@]}" --spawn-broker "$BIN/$v-mdbroker" --workers 8 --window 100) ;;
	b-sync) CMD=("$BIN/cur-mdbench" "${md[@]}" --spawn-broker "$BIN/$v-mdbroker" --workers 1 --window 1) ;;
	c-w100) CMD=("$BIN/$v-mdbench" "${md[@]}" --spawn-broker "$BIN/cur-mdbroker" --workers 2 --window 100) ;;
	c-sync) CMD=("$BIN/$v-mdbench" "${md[@]}" --spawn-broker "$BIN/cur-mdbroker" --workers 1 --window 1) ;;
	d-sync) CMD=("$BIN/$v-mdbench" "${md[@]}" --spawn-broker "$BIN/$v-mdbroker" --workers 1 --window 1) ;;
	h-titanic) CMD=("$BIN/cur-mdbench" "${md[@]}" --spawn-broker "$BIN/$v-mdbroker" --titanic --clients 8 --window 256) ;;
	f-curve)
		CMD=("$BIN/cur-mdbench" "${md[@]}" --spawn-broker "$BIN/cur-mdbroker" --workers 2 --window 100)
		if [[ $v == curve ]]; then CMD+=(--curve); fi
		;;
	g-w100) CMD=("$BIN/relay" -json -workers 2 -window 100 -duration "$DUR" -warmup "$WARMUP" -label "$cell") KIND=relay ;;
	g-sync) CMD=("$BIN/relay" -json -workers 1 -window 1 -duration "$DUR" -warmup "$WARMUP" -label "$cell") KIND=relay ;;
	e-titanic)
		CMD=("$BIN/$v-titanic.test" -test.run '^$' -test.bench '^BenchmarkTitanicSubmit$' -test.benchtime "${TITANIC_N}x")
		KIND=titanic
		;;
	esac
}

# titanic_json turns "BenchmarkTitanicSubmit-2 N v1 u1 v2 u2 ..." into
# {"u1":v1,"u2":v2,...}.
titanic_json() {
	awk '/^BenchmarkTitanicSubmit/ {
		printf "{\"n\":%s", $2
		for (i = 3; i < NF; i += 2) printf ",\"%s\":%s", $(i+1), $i
		print "}"
		found = 1
		exit
	}
	END { if (!found) exit 1 }'
}

total=$((RUNS * $(for m in $MODES; do echo x; done | wc -l)))
n=0
for rep in $(seq 1 "$RUNS"); do
	for mode in $MODES; do
		n=$((n + 1))
		pin=()
		[[ $mode == pinned ]] && pin=(taskset -c "$PIN_CPU")
		echo "[$n/$total] run $rep $mode; load average $(loadavg)" | tee -a "$LOG" >&2
		for cell in "${SEL[@]}"; do
			vs=($(variants "$cell"))
			# Alternate which variant goes first.
			if ((rep % 2 == 0 && ${#vs[@]} == 2)); then vs=("${vs[1]}" "${vs[0]}"); fi
			for v in "${vs[@]}"; do
				command_for "$cell" "$v"
				dir=$ROOT
				[[ $cell == e-* && $v == base ]] && dir=$BASEDIR
				echo "  $cell $v: ${pin[*]} ${CMD[*]}" >>"$LOG"
				rc=0
				out=$(cd "$dir/$([[ $KIND == titanic ]] && echo titanic || echo .)" &&
					timeout -k 10 "$TIMEOUT" "${pin[@]}" "${CMD[@]}" 2>>"$LOG") || rc=$?
				if ((rc != 0)); then
					why="exit status $rc"
					((rc == 124)) && why="timed out after ${TIMEOUT}s"
					echo "  $cell $v: FAILED, $why (see $LOG)" | tee -a "$LOG" >&2
					continue
				fi
				if [[ $KIND == titanic ]]; then
					if ! res=$(titanic_json <<<"$out"); then
						echo "  $cell $v: no benchmark line (see $LOG)" | tee -a "$LOG" >&2
						echo "$out" >>"$LOG"
						continue
					fi
				else
					res=$(tail -n 1 <<<"$out")
				fi
				printf '{"cell":"%s","mode":"%s","variant":"%s","rep":%d,"kind":"%s","result":%s}\n' \
					"$cell" "$mode" "$v" "$rep" "$KIND" "$res" >>"$RESULTS"
				echo "  $cell $v: done" >&2
			done
		done
	done
done

{
	echo "$HEADER"
	echo "- load average at end: $(loadavg)"
	"$BIN/compare" "$RESULTS"
} | tee "$OUT/summary.md"
echo "raw results: $RESULTS; log: $LOG; tables: $OUT/summary.md" >&2
