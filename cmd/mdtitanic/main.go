// Command mdtitanic runs a Titanic server (9/TSP) against any 7/MDP broker:
// it serves titanic.request, titanic.reply and titanic.close, stores
// requests and replies durably in DIR (or in PostgreSQL, shared by several
// mdtitanic or mdbroker processes), and sends stored requests to their
// services whenever they have workers.
//
//	mdtitanic -b tcp://127.0.0.1:5555 --dir /var/lib/titanic
//	mdtitanic -b tcp://127.0.0.1:5555 --store postgres://titanic@db/titanic
//
// A bad flag gets one line naming it and exit status 2; a store that cannot
// be opened (corrupted, locked, unreadable) gets one line naming the file
// and exit status 1. SIGINT or SIGTERM stops it gracefully (exit 0): it
// stops taking requests, waits for attempts in flight, commits and closes
// the store. SIGKILL loses nothing that was answered 200.
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
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/titanic"
	"github.com/majordomo-go/majordomo/worker"
)

const defaultEndpoint = "tcp://127.0.0.1:5555"

const usage = `Usage: mdtitanic -b ENDPOINT (--dir DIR | --store URL) [flags]

Titanic (9/TSP): durable, disconnected request-reply over a 7/MDP broker.

Flags:
  -b ENDPOINT                    broker endpoint (default $MDP_BROKER, else ` + defaultEndpoint + `)
  --dir DIR                      store directory; the store is the bbolt file DIR/` + titanic.DBFile + `
  --store URL                    PostgreSQL store instead of --dir, e.g. postgres://user@host/db
                                 ($MDTITANIC_STORE); several Titanics may share it
  --lease-ttl D                  with --store: a dead Titanic's requests are taken over after D (default 15s)
  --reply-ttl D                  keep replies nobody closed this long, then expire them (default 168h; -1s: for ever)
  --request-ttl D                expire requests still without a reply after D (default 0: never)
  --sweep-interval D             how often expiry runs (default 1m)
  --max-store-bytes N            bound the store file; at the bound, titanic.request answers 500 (default 0: none)
  --verify                       check every page of the store at start
  --max-in-flight N              requests at workers at once (default 128)
  --max-in-flight-per-service N  of which to one service (default 64)
  --attempt-timeout D            wait this long for a worker's reply before retrying (default 30s)
  --retry-min D, --retry-max D   backoff between attempts (default 500ms, 1m)
  --request-workers N            titanic.request concurrency: the group commit size bound (default 128)
  --query-workers N              titanic.reply and titanic.close concurrency (default 16)
  --max-batch N                  requests per group commit at most (default 4096)
  --heartbeat D, --liveness N    worker heartbeat; must match the broker's (default 2.5s, 3)
  --shutdown-grace D             at shutdown, wait this long for attempts in flight (default 5s)
  --curve-server-key KEY|FILE    use CURVE: the broker's public key, in Z85 or as a
                                 certificate file (default $MDP_CURVE_SERVER_KEY)
  --curve-cert FILE              Titanic's secret certificate, made by "mdcli keygen"
                                 (default $MDP_CURVE_CERT)
  --log-level LEVEL              debug, info, warn, error (default info)
  --log-json                     JSON logs
`

func main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr, sigs))
}

// run parses args, runs Titanic until a signal arrives on sigs and returns
// the exit status.
func run(args []string, getenv func(string) string, stderr io.Writer, sigs <-chan os.Signal) int {
	cfg, logCfg, code, ok := parse(args, getenv, stderr)
	if !ok {
		return code
	}
	opts := &slog.HandlerOptions{Level: logCfg.level}
	var h slog.Handler = slog.NewTextHandler(stderr, opts)
	if logCfg.json {
		h = slog.NewJSONHandler(stderr, opts)
	}
	cfg.Logger = slog.New(h)

	srv, err := titanic.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "mdtitanic: %s\n", oneLine(err))
		if errors.Is(err, titanic.ErrConfig) {
			return 2
		}
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case err = <-done:
	case sig := <-sigs:
		cfg.Logger.Info("signal received; stopping", "signal", sig.String())
		cancel()
		err = <-done
	}
	if err != nil {
		fmt.Fprintf(stderr, "mdtitanic: %s\n", oneLine(err))
		return 1
	}
	return 0
}

type logConfig struct {
	level slog.Level
	json  bool
}

// parse turns args into a Config. On error it prints one line naming the
// flag and returns (2, false); on --help, the usage and (0, false).
func parse(args []string, getenv func(string) string, stderr io.Writer) (titanic.Config, logConfig, int, bool) {
	var cfg titanic.Config
	var lc logConfig
	fs := flag.NewFlagSet("mdtitanic", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	endpoint := getenv("MDP_BROKER")
	if endpoint == "" {
		endpoint = defaultEndpoint
	}
	fs.StringVar(&cfg.Broker, "b", endpoint, "")
	fs.StringVar(&cfg.Dir, "dir", "", "")
	// The URL may hold a password: the environment keeps it off the
	// process list.
	fs.StringVar(&cfg.Postgres, "store", getenv("MDTITANIC_STORE"), "")
	fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", titanic.DefaultLeaseTTL, "")
	fs.DurationVar(&cfg.ReplyTTL, "reply-ttl", titanic.DefaultReplyTTL, "")
	fs.DurationVar(&cfg.RequestTTL, "request-ttl", 0, "")
	fs.DurationVar(&cfg.SweepInterval, "sweep-interval", titanic.DefaultSweepInterval, "")
	fs.Int64Var(&cfg.MaxStoreBytes, "max-store-bytes", 0, "")
	fs.BoolVar(&cfg.VerifyStore, "verify", false, "")
	fs.IntVar(&cfg.MaxInFlight, "max-in-flight", titanic.DefaultMaxInFlight, "")
	fs.IntVar(&cfg.MaxInFlightPerService, "max-in-flight-per-service", titanic.DefaultMaxInFlightPerService, "")
	fs.DurationVar(&cfg.AttemptTimeout, "attempt-timeout", titanic.DefaultAttemptTimeout, "")
	fs.DurationVar(&cfg.RetryMin, "retry-min", titanic.DefaultRetryMin, "")
	fs.DurationVar(&cfg.RetryMax, "retry-max", titanic.DefaultRetryMax, "")
	fs.IntVar(&cfg.RequestWorkers, "request-workers", titanic.DefaultRequestWorkers, "")
	fs.IntVar(&cfg.QueryWorkers, "query-workers", titanic.DefaultQueryWorkers, "")
	fs.IntVar(&cfg.MaxBatch, "max-batch", titanic.DefaultMaxBatch, "")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", worker.DefaultHeartbeat, "")
	fs.IntVar(&cfg.Liveness, "liveness", worker.DefaultLiveness, "")
	fs.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", titanic.DefaultShutdownGrace, "")
	serverKey := fs.String("curve-server-key", getenv("MDP_CURVE_SERVER_KEY"), "")
	certFile := fs.String("curve-cert", getenv("MDP_CURVE_CERT"), "")
	level := fs.String("log-level", "info", "")
	fs.BoolVar(&lc.json, "log-json", false, "")

	fail := func(msg string) (titanic.Config, logConfig, int, bool) {
		fmt.Fprintf(stderr, "mdtitanic: %s (see mdtitanic --help)\n", msg)
		return cfg, lc, 2, false
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usage)
			return cfg, lc, 0, false
		}
		return fail(err.Error())
	}
	if fs.NArg() > 0 {
		return fail(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	switch {
	case cfg.Dir == "" && cfg.Postgres == "":
		return fail("flag --dir (or --store) is required")
	case cfg.Dir != "" && cfg.Postgres != "":
		return fail("flags --dir and --store cannot be combined: choose one store")
	case cfg.Postgres != "" && !strings.HasPrefix(cfg.Postgres, "postgres://") && !strings.HasPrefix(cfg.Postgres, "postgresql://"):
		return fail(fmt.Sprintf("invalid value %q for flag -store: want a postgres:// URL", titanic.RedactURL(cfg.Postgres)))
	}
	if err := lc.level.UnmarshalText([]byte(*level)); err != nil {
		return fail(fmt.Sprintf("invalid value %q for flag -log-level: want debug, info, warn or error", *level))
	}
	// Zero means "default" in titanic.Config; on the command line a zero
	// is a mistake, except where it means "off".
	for _, f := range []struct {
		name string
		bad  bool
	}{
		{"sweep-interval", cfg.SweepInterval <= 0},
		{"max-in-flight", cfg.MaxInFlight <= 0},
		{"max-in-flight-per-service", cfg.MaxInFlightPerService <= 0},
		{"attempt-timeout", cfg.AttemptTimeout <= 0},
		{"retry-min", cfg.RetryMin <= 0},
		{"retry-max", cfg.RetryMax <= 0},
		{"request-workers", cfg.RequestWorkers <= 0},
		{"query-workers", cfg.QueryWorkers <= 0},
		{"max-batch", cfg.MaxBatch <= 0},
		{"heartbeat", cfg.Heartbeat <= 0},
		{"liveness", cfg.Liveness <= 0},
		{"request-ttl", cfg.RequestTTL < 0},
		{"max-store-bytes", cfg.MaxStoreBytes < 0},
		{"shutdown-grace", cfg.ShutdownGrace < 0},
		{"lease-ttl", cfg.LeaseTTL < 10*time.Millisecond},
	} {
		if f.bad {
			return fail(fmt.Sprintf("invalid value %q for flag -%s: must be positive", fs.Lookup(f.name).Value.String(), f.name))
		}
	}
	// The same CURVE flags, and the same messages, as mdcli's.
	switch {
	case *serverKey != "" && *certFile == "":
		return fail("--curve-server-key needs --curve-cert (make one with \"mdcli keygen\")")
	case *serverKey == "" && *certFile != "":
		return fail("--curve-cert needs --curve-server-key")
	case *serverKey != "":
		key, err := auth.LoadPublicKey(*serverKey)
		if err != nil {
			return fail(fmt.Sprintf("--curve-server-key: %s", oneLine(err)))
		}
		cert, err := auth.LoadSecretCert(*certFile)
		if err != nil {
			return fail(fmt.Sprintf("--curve-cert: %s", oneLine(err)))
		}
		cfg.CurveServerKey, cfg.CurveCert = key, cert
	}
	if cfg.ReplyTTL == 0 {
		return fail("invalid value \"0s\" for flag -reply-ttl: must be positive (negative: keep for ever)")
	}
	return cfg, lc, 0, true
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}
