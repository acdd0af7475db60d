package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/majordomo-go/majordomo/internal/bench"
)

const usage = `mdbench [flags]: load a Majordomo broker with echo workers and clients

Broker: in this process by default; --spawn-broker PATH runs the mdbroker
binary at PATH as a child process (its own CPU time is then reported);
-b ENDPOINT uses a running broker. --raw also measures the same clients
against a plain ROUTER echo (no broker) in the same run.

Peers: --peers inproc (default) runs workers and clients as goroutines of
this process; --peers procs runs all workers in one child process and all
clients in another, each pinnable (--workers-cpu, --clients-cpu), so that
peers and broker do not share one Go runtime.

Window 1 is synchronous (client.Request); a larger window uses
client.Pipeline with that many requests in flight per client.

Titanic: --titanic loads mdbroker's Titanic service instead: clients submit
durable requests (titanic.request, 9/TSP) for a service nobody serves, and
each reply means a request stored on disk. It needs --spawn-broker (run
with --titanic-dir in a temporary directory) or -b (a broker running
Titanic); no echo workers run.

Flags:
`

func run(args []string, stdout, stderr io.Writer) int {
	cfg := bench.Defaults()
	fs := flag.NewFlagSet("mdbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	external := fs.String("b", "", "use the running broker at `ENDPOINT`")
	fs.StringVar(&cfg.BrokerBin, "spawn-broker", "", "run the mdbroker binary at `PATH` as a child process")
	fs.StringVar(&cfg.Endpoint, "endpoint", "", "endpoint for the in-process or spawned broker to bind (default: a free loopback TCP port)")
	fs.StringVar(&cfg.BrokerCPU, "broker-cpu", "", "taskset `CPU list` for the spawned broker (and the spawned raw echo)")
	fs.StringVar(&cfg.Peers, "peers", cfg.Peers, "where workers and clients run: inproc or procs")
	fs.StringVar(&cfg.WorkersCPU, "workers-cpu", "", "taskset `CPU list` for the workers' process (--peers procs)")
	fs.StringVar(&cfg.ClientsCPU, "clients-cpu", "", "taskset `CPU list` for the clients' process (--peers procs)")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "echo workers")
	fs.IntVar(&cfg.Services, "services", cfg.Services, "services the workers are spread over (clients spread requests over them)")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "clients, each with its own connection")
	fs.IntVar(&cfg.Window, "window", cfg.Window, "requests in flight per client (1: synchronous)")
	fs.IntVar(&cfg.Size, "size", cfg.Size, "request body size in bytes (at least 8)")
	fs.IntVar(&cfg.Frames, "frames", cfg.Frames, "body frames per request")
	fs.IntVar(&cfg.Protocol, "protocol", cfg.Protocol, "Majordomo version of workers and clients: 1 (7/MDP) or 2 (18/MDP)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured time (with --requests: the longest it may take)")
	fs.Uint64Var(&cfg.Requests, "requests", 0, "stop after this many measured replies")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "load before measuring starts")
	fs.BoolVar(&cfg.Raw, "raw", false, "also measure the clients against a plain ROUTER echo")
	fs.BoolVar(&cfg.RawOnly, "raw-only", false, "measure only the raw echo")
	fs.StringVar(&cfg.RawEndpoint, "raw-endpoint", "", "use an external echo server (e.g. bench/c/echo_server) for --raw")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a pprof CPU profile of this process over the broker phase to `FILE`")
	fs.StringVar(&cfg.PerfRecord, "perf-record", "", "perf record the spawned broker over the broker phase into `FILE`")
	fs.BoolVar(&cfg.ThreadCPU, "thread-cpu", false, "in-process broker/echo on a locked OS thread; report its threads' CPU (changes scheduling)")
	fs.DurationVar(&cfg.Progress, "progress", 0, "print a progress line every `INTERVAL` (default: every 5s on runs of 10s or more)")
	fs.StringVar(&cfg.Label, "label", "", "free text copied into the JSON result")
	fs.BoolVar(&cfg.Curve, "curve", false, "CURVE-encrypt the broker's connections (certificates made by mdbench, or given below for -b)")
	fs.StringVar(&cfg.CurveServerKey, "curve-server-key", "", "with -b: the broker's public key (Z85) or certificate `FILE`")
	fs.StringVar(&cfg.CurveCert, "curve-cert", "", "with -b: the secret certificate `FILE` of clients and workers")
	fs.BoolVar(&cfg.Titanic, "titanic", false, "submit durable requests to the broker's Titanic service instead of echo requests")
	jsonOut := fs.Bool("json", false, "print one JSON object instead of text")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mdbench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *external != "" {
		cfg.Broker, cfg.Endpoint = bench.BrokerExternal, *external
	} else if cfg.BrokerBin != "" {
		cfg.Broker = bench.BrokerSpawn
	}
	progressSet := false
	fs.Visit(func(f *flag.Flag) { progressSet = progressSet || f.Name == "progress" })
	if !progressSet && cfg.Duration >= 10e9 {
		cfg.Progress = 5e9
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "mdbench: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "mdbench: %v\n", err)
		return 1
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "mdbench: %v\n", err)
			return 1
		}
	} else {
		bench.WriteText(stdout, res)
	}
	for _, p := range res.Phases {
		if p.Requests == 0 {
			fmt.Fprintf(stderr, "mdbench: %s: no replies\n", p.Name)
			return 1
		}
	}
	return 0
}
