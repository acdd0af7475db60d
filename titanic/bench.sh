#!/bin/sh
# Titanic throughput, the way titanic/README-section.md reports it: the
# benchmarks of titanic/bench_test.go (broker, Titanic with its default
# bbolt store on the local disk, clients pipelining titanic.request, all in
# one process), RUNS times pinned to one CPU (taskset -c 0) and RUNS times
# unpinned, then the median of each figure.
#
#   titanic/bench.sh                 # RUNS=5 N=20000
#   RUNS=3 N=50000 titanic/bench.sh
#
# TITANIC_BENCH_CLIENTS, TITANIC_BENCH_WINDOW and
# TITANIC_BENCH_REQUEST_WORKERS change the load (defaults 8, 256, 128);
# PIN_CPU picks the CPU of the pinned runs (default 0).
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
N=${N:-20000}
BENCH=${BENCH:-Titanic|StoreGroupCommit}
PIN_CPU=${PIN_CPU:-0}
bin=$(mktemp -d)/titanic.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
go test -c -o "$bin" ./titanic
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -sr); $(nproc) CPUs; $(go version | cut -d' ' -f3); RUNS=$RUNS N=$N PIN_CPU=$PIN_CPU"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$RUNS"); do
	for mode in pinned unpinned; do
		pre=""
		[ "$mode" = pinned ] && pre="taskset -c $PIN_CPU"
		(cd titanic && $pre "$bin" -test.run '^$' -test.bench "$BENCH" -test.benchtime "${N}x") |
			grep '^Benchmark' | sed "s/^/$mode /" | tee /dev/stderr
	done
done 2>&1 >/dev/null | awk '
	{
		# mode name N value unit value unit ...
		key = $1 " " $2
		for (i = 4; i < NF; i += 2) {
			k = key " " $(i+1)
			vals[k] = vals[k] " " $i
			if (!(k in seen)) { seen[k] = 1; order[++n] = k }
		}
		print "# " $0
	}
	END {
		for (j = 1; j <= n; j++) {
			k = order[j]
			m = split(substr(vals[k], 2), a, " ")
			# insertion sort
			for (x = 2; x <= m; x++) { v = a[x] + 0; y = x - 1; while (y > 0 && a[y] + 0 > v) { a[y+1] = a[y]; y-- } a[y+1] = v }
			med = (m % 2) ? a[(m+1)/2] : (a[m/2] + a[m/2+1]) / 2
			split(k, p, " ")
			sub(/-[0-9]+$/, "", p[2])
			printf "%-9s %-28s %-10s median %9.1f   min %9.1f   max %9.1f   (%d runs)\n", p[1], p[2], p[3], med, a[1], a[m], m
		}
	}'
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
