// Command mdbench is the Majordomo load tool: it runs a broker (in process,
// as an mdbroker child process, or an external one), echo workers and
// clients built on this project's libraries, and reports requests/s, latency
// percentiles and the CPU time per request of every process it owns; --raw
// measures the same clients against a plain ROUTER echo in the same run.
// See mdbench --help and bench/README-section.md.
package main

import (
	"os"

	"github.com/majordomo-go/majordomo/internal/bench"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case bench.PeerCommand: // Hidden: mdbench's own child processes.
			os.Exit(bench.PeerMain(os.Args[2:], os.Stdin, os.Stdout))
		case "summarize": // Medians of bench/run.sh results.
			os.Exit(bench.SummarizeMain(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
