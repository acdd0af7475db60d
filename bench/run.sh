#!/usr/bin/env bash
# bench/run.sh: the standard mdbench matrix, pinned to one CPU (taskset -c 0,
# every process of a run and all its children) and unpinned, RUNS runs of
# every cell, interleaved so that the machine's noise spreads over all cells;
# prints the medians and keeps every raw figure under bench/results/.
#
#   bench/run.sh                      # RUNS=5 DUR=4s WARMUP=500ms MODES="pinned unpinned"
#   RUNS=3 DUR=3s MODES=pinned bench/run.sh
#   CELLS="c-w100-100 b-w100-2w-100" bench/run.sh   # a subset (names below)
#
# Cells (sync = window 1, wN = window N; 100 = 100 B, 64k = 64 KiB body):
#   c-*          bench/c/echo_client against bench/c/echo_server: libzmq's
#                own limit, no Go, no broker. c-w2 and c-w8 keep only 2 or 8
#                round trips in flight, as 2 or 8 Majordomo workers (one
#                request each) allow on the broker-worker hop.
#   b-*-Nw-*     mdbench with the broker as an mdbroker child process and the
#                workers and clients in two child processes of their own
#                (--peers procs): every process separate, as deployed. The
#                2-worker cells also run the same clients against a plain Go
#                ROUTER echo child (--raw) in the same run.
#   b-w100-1000w100s-100   1,000 workers over 100 services.
#   inproc-*     everything in one mdbench process (broker, workers,
#                clients, raw echo): the in-process figure, for comparison.
# Needs gcc, libzmq3-dev, Go; perf only for PERF=1 (a perf record of the
# spawned broker in the 2-worker window-100 cell of the first pinned run).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DUR=${DUR:-4s}
WARMUP=${WARMUP:-500ms}
MODES=${MODES:-pinned unpinned}
PERF=${PERF:-0}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-bench/results/$STAMP}
BIN=bench/bin
mkdir -p "$BIN" "$OUT"

echo "building into $BIN" >&2
gcc -O2 -Wall -o "$BIN/echo_server" bench/c/echo_server.c -lzmq
gcc -O2 -Wall -o "$BIN/echo_client" bench/c/echo_client.c -lzmq
go build -o "$BIN/mdbench" ./cmd/mdbench
go build -o "$BIN/mdbroker" ./cmd/mdbroker

ALL_CELLS="c-sync-100 c-w100-100 c-sync-64k c-w100-64k c-w2-100 c-w8-100
b-sync-1w-100 b-sync-2w-100 b-sync-8w-100 b-sync-2w-64k
b-w100-1w-100 b-w100-2w-100 b-w100-8w-100
b-w100-1w-64k b-w100-2w-64k b-w100-8w-64k
b-w100-1000w100s-100
inproc-sync-2w-100 inproc-w100-2w-100"
CELLS=${CELLS:-$ALL_CELLS}

# secs DURATION prints a Go duration (5s, 500ms, 1m) in seconds, for the C client.
secs() {
	case $1 in
	*ms) awk -v v="${1%ms}" 'BEGIN { print v / 1000 }' ;;
	*s) echo "${1%s}" ;;
	*m) awk -v v="${1%m}" 'BEGIN { print v * 60 }' ;;
	*) echo "$1" ;;
	esac
}

# args_for CELL prints the command line of a cell (without the pinning).
args_for() {
	local cell=$1 window size workers services=1 raw=()
	IFS=- read -r kind win w sz <<<"$cell"
	[[ $win == sync ]] && window=1 || window=${win#w}
	case $kind in
	c)
		sz=$w
		[[ $sz == 64k ]] && size=65536 || size=100
		echo "$BIN/echo_client -j -e $CEP -w $window -s $size -d $(secs "$DUR") -W $(secs "$WARMUP")"
		return
		;;
	esac
	[[ $sz == 64k ]] && size=65536 || size=100
	case $w in
	1000w100s) workers=1000 services=100 ;;
	*) workers=${w%w} ;;
	esac
	[[ $workers == 2 ]] && raw=(--raw)
	local where="--spawn-broker $BIN/mdbroker --peers procs"
	[[ $kind == inproc ]] && where="--peers inproc" && raw=(--raw)
	echo "$BIN/mdbench --json $where --workers $workers --services $services --window $window --size $size --duration $DUR --warmup $WARMUP ${raw[*]:-} --label $cell"
}

RESULTS="$OUT/results.jsonl"
LOG="$OUT/run.log"
{
	echo "# bench/run.sh $STAMP: RUNS=$RUNS DUR=$DUR WARMUP=$WARMUP MODES=$MODES"
	echo "# $(uname -srm); $(nproc) CPUs; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
	echo "# $(go version); libzmq $(pkg-config --modversion libzmq)"
} | tee -a "$LOG" >&2

for rep in $(seq 1 "$RUNS"); do
	for mode in $MODES; do
		pin=()
		[[ $mode == pinned ]] && pin=(taskset -c 0)
		# One C echo server per mode and repetition, pinned like the rest.
		CEP="tcp://127.0.0.1:$((5600 + rep))"
		"${pin[@]}" "$BIN/echo_server" "$CEP" >/dev/null &
		spid=$!
		sleep 0.2
		for cell in $CELLS; do
			cmd=$(args_for "$cell")
			extra=()
			if [[ $PERF == 1 && $rep == 1 && $mode == pinned && $cell == b-w100-2w-100 ]]; then
				extra=(--perf-record "$OUT/broker-$cell.perf.data")
			fi
			echo "[$mode run $rep] $cell: ${pin[*]} $cmd ${extra[*]}" | tee -a "$LOG" >&2
			kind=mdbench
			[[ $cell == c-* ]] && kind=c
			if ! res=$("${pin[@]}" $cmd "${extra[@]}" 2>>"$LOG"); then
				echo "  FAILED (see $LOG)" | tee -a "$LOG" >&2
				continue
			fi
			res=$(tail -n 1 <<<"$res")
			printf '{"mode":"%s","rep":%d,"cell":"%s","kind":"%s","result":%s}\n' "$mode" "$rep" "$cell" "$kind" "$res" >>"$RESULTS"
		done
		kill "$spid" 2>/dev/null || true
		wait "$spid" 2>/dev/null || true
	done
done

"$BIN/mdbench" summarize "$RESULTS" | tee "$OUT/summary.md"
"$BIN/mdbench" summarize --json "$RESULTS" >"$OUT/summary.json"
echo "raw results: $RESULTS; medians: $OUT/summary.md" >&2
