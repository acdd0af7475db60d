// Command mdbroker runs a Majordomo broker: 7/MDP and 18/MDP clients and
// workers on the same endpoints, with the 8/MMI management services.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/majordomo-go/majordomo/broker"
)

// endpoints is a repeatable string flag.
type endpoints []string

func (e *endpoints) String() string { return strings.Join(*e, ",") }
func (e *endpoints) Set(v string) error {
	if v == "" {
		return errors.New("empty endpoint")
	}
	*e = append(*e, v)
	return nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run parses args, runs the broker until SIGINT or SIGTERM, and returns the
// exit status: 0 on a clean shutdown, 1 on a runtime failure, 2 on bad usage.
func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("mdbroker", flag.ContinueOnError)
	// flag's own error output is the message plus the whole usage; we
	// print one line instead and keep the usage for --help.
	fs.SetOutput(io.Discard)
	var eps endpoints
	fs.Var(&eps, "endpoint", "endpoint to bind, tcp:// or ipc:// (repeatable; default "+broker.DefaultEndpoint+")")
	heartbeat := fs.Duration("heartbeat", broker.DefaultHeartbeatInterval, "heartbeat interval")
	liveness := fs.Int("liveness", broker.DefaultHeartbeatLiveness, "heartbeats a worker may miss before it is removed")
	reqTimeout := fs.Duration("request-timeout", broker.DefaultRequestTimeout, "how long a request may wait for a worker")
	maxQueue := fs.Int("max-queue", broker.DefaultMaxQueue, "most requests queued per service")
	maxBytes := fs.Int64("max-queued-bytes", broker.DefaultMaxQueuedBytes, "most body bytes queued over all services")
	maxServices := fs.Int("max-services", broker.DefaultMaxServices, "most services tracked at once")
	serviceTTL := fs.Duration("service-ttl", broker.DefaultServiceTTL, "how long an unused service is remembered")
	maxAttempts := fs.Int("max-attempts", broker.DefaultMaxAttempts, "deliveries per request when workers die holding it")
	noRedeliver := fs.Bool("no-redelivery", false, "drop a request whose worker dies instead of redelivering it")
	maxFrames := fs.Int("max-frames", broker.DefaultMaxFrames, "most frames accepted in one message")
	maxFrameSize := fs.Int64("max-frame-size", broker.DefaultMaxFrameSize, "largest frame accepted, in bytes")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logJSON := fs.Bool("log-json", false, "log in JSON instead of text")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mdbroker [flags]\n\nA Majordomo (7/MDP, 18/MDP, 8/MMI) broker.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.Usage()
			return 0
		}
		fmt.Fprintf(stderr, "mdbroker: %v (see mdbroker --help)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mdbroker: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "mdbroker: invalid value %q for flag -log-level: want debug, info, warn or error\n", *logLevel)
		return 2
	}
	var h slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	if *logJSON {
		h = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	}
	cfg := broker.Config{
		Endpoints:         eps,
		HeartbeatInterval: *heartbeat,
		HeartbeatLiveness: *liveness,
		RequestTimeout:    *reqTimeout,
		MaxQueue:          *maxQueue,
		MaxQueuedBytes:    *maxBytes,
		MaxServices:       *maxServices,
		ServiceTTL:        *serviceTTL,
		MaxAttempts:       *maxAttempts,
		DisableRedelivery: *noRedeliver,
		MaxFrames:         *maxFrames,
		MaxFrameSize:      *maxFrameSize,
		Logger:            slog.New(h),
	}
	if err := nonZero(cfg); err != nil {
		fmt.Fprintf(stderr, "mdbroker: %v\n", err)
		return 2
	}
	b, err := broker.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "mdbroker: %v\n", err)
		if errors.Is(err, broker.ErrConfig) {
			return 2
		}
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := b.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "mdbroker: %v\n", err)
		return 1
	}
	return 0
}

// nonZero rejects explicit zero values, which broker.Config would otherwise
// silently replace with defaults.
func nonZero(c broker.Config) error {
	type check struct {
		name string
		zero bool
	}
	for _, c := range []check{
		{"heartbeat", c.HeartbeatInterval == 0},
		{"liveness", c.HeartbeatLiveness == 0},
		{"request-timeout", c.RequestTimeout == 0},
		{"max-queue", c.MaxQueue == 0},
		{"max-queued-bytes", c.MaxQueuedBytes == 0},
		{"max-services", c.MaxServices == 0},
		{"max-attempts", c.MaxAttempts == 0},
		{"service-ttl", c.ServiceTTL == 0},
		{"max-frames", c.MaxFrames == 0},
		{"max-frame-size", c.MaxFrameSize == 0},
	} {
		if c.zero {
			return fmt.Errorf("invalid value 0 for flag -%s: must be positive", c.name)
		}
	}
	return nil
}
