package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/mdp"
)

// Exit statuses.
const (
	exitOK    = 0 // A reply came (call), or the answer is yes (service).
	exitFail  = 1 // Broker unreachable, timeout, or another error.
	exitUsage = 2 // Bad flags or arguments.
	// exitNoWorkers: the broker has no worker for the service (issue 15),
	// except in "titanic reply", where 3 is "pending" (exitTitanicNoWorkers).
	exitNoWorkers = 3
)

// defaultEndpoint is used when neither -b nor MDP_BROKER says otherwise.
const defaultEndpoint = "tcp://127.0.0.1:5555"

const mainUsage = `Usage: mdcli [GLOBAL FLAGS] COMMAND [FLAGS] [ARGS...]

Talk to a Majordomo (7/MDP, 18/MDP) broker.

Commands:
  call SERVICE [FRAME ...]         send one request, print the reply frames
  service NAME                     print the broker's MMI code for NAME (200 or 404)
  services                         list the services that have workers
  workers NAME                     print idle, busy and queued counts of NAME
  serve SERVICE -- COMMAND [ARGS]  serve SERVICE by running COMMAND per request
  keygen NAME                      write a new CURVE certificate pair NAME, NAME_secret
  titanic submit|reply|close ...   durable requests through Titanic (9/TSP)

Global flags, accepted before or after the command name (and, for titanic,
after the subcommand name too), for every command; a command that has no
use for one ignores it (serve sends no requests, keygen connects nowhere):
` + globalFlagsUsage + `
Exit status: 0 success, 1 broker unreachable or other error, 2 usage,
3 no workers for the service (the broker said so; "titanic reply": 5).
Run "mdcli COMMAND --help" for a command's flags and exit statuses.
`

const globalFlagsUsage = `  -b ENDPOINT[,ENDPOINT...]    broker endpoint, or several separated by commas
                               (default $MDP_BROKER, else ` + defaultEndpoint + `): requests
                               are spread over them and move to another broker when
                               one stops answering; serve registers with each
  -v                           log debug messages to standard error
  --timeout D                  time to wait for a reply per attempt, e.g. 500ms, 5s
                               (default 2.5s); then the broker is asked about the service
  --retries N                  resends on a new socket when the broker does not answer
                               (default 3)
  --curve-server-key KEY|FILE  use CURVE: the broker's public key, in Z85 or as a
                               certificate file (default $MDP_CURVE_SERVER_KEY)
  --curve-cert FILE            this peer's secret certificate, made by "mdcli keygen"
                               (default $MDP_CURVE_CERT)
`

// cli is one invocation, with its standard streams and environment, so that
// tests can run it in-process.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	// The global flags, set by whichever flag set parses them last.
	endpoint string
	verbose  bool
	timeout  time.Duration
	retries  int
	sec      securityFlags // --curve-server-key, --curve-cert (keygen.go).

	usage map[*flag.FlagSet]string // Each flag set's --help text.
}

// run executes the command line args and returns the exit status.
func (c *cli) run(ctx context.Context, args []string) int {
	if c.usage == nil {
		c.usage = make(map[*flag.FlagSet]string)
	}
	fs := c.flags("mdcli", mainUsage)
	c.endpoint = c.getenv("MDP_BROKER")
	if c.endpoint == "" {
		c.endpoint = defaultEndpoint
	}
	c.timeout, c.retries = client.DefaultTimeout, client.DefaultRetries
	c.sec = securityFlags{serverKey: c.getenv("MDP_CURVE_SERVER_KEY"), cert: c.getenv("MDP_CURVE_CERT")}
	if code, ok := c.parse(fs, "mdcli", args); !ok {
		return code
	}
	args = fs.Args()
	if len(args) == 0 {
		return c.usageError("mdcli", "missing command")
	}
	name, args := args[0], args[1:]
	switch name {
	case "call":
		return c.call(ctx, args)
	case "service":
		return c.service(ctx, args)
	case "services":
		return c.services(ctx, args)
	case "workers":
		return c.workers(ctx, args)
	case "serve":
		return c.serve(ctx, args)
	case "keygen":
		return c.keygen(ctx, args)
	case "titanic":
		return c.titanic(ctx, args)
	case "help":
		if len(args) == 1 && args[0] != "help" {
			return c.run(ctx, []string{args[0], "--help"})
		}
		fmt.Fprint(c.stdout, mainUsage)
		return exitOK
	}
	return c.usageError("mdcli", fmt.Sprintf("unknown command %q", name))
}

// flags returns a flag set that has the global flags, reports errors
// through parse and prints usage on -h/--help.
func (c *cli) flags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The flag package calls Usage on every parse error too; parse prints
	// the usage itself, for --help only.
	fs.Usage = func() {}
	c.usage[fs] = usage
	c.addGlobalFlags(fs)
	return fs
}

// addGlobalFlags defines the global flags on fs, bound to the cli's fields
// with their current values as defaults: what the flags before the command
// name set stays unless the same flag comes again after it.
func (c *cli) addGlobalFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.endpoint, "b", c.endpoint, "broker endpoint")
	fs.BoolVar(&c.verbose, "v", c.verbose, "debug logging")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "time to wait for a reply, per attempt")
	fs.IntVar(&c.retries, "retries", c.retries, "resends when the broker does not answer")
	fs.StringVar(&c.sec.serverKey, "curve-server-key", c.sec.serverKey, "broker's public key")
	fs.StringVar(&c.sec.cert, "curve-cert", c.sec.cert, "own secret certificate")
}

// parse parses args. On --help it prints usage and returns (exitOK, false);
// on a bad flag it prints one line naming it and returns (exitUsage,
// false).
func (c *cli) parse(fs *flag.FlagSet, cmd string, args []string) (int, bool) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(c.stdout, c.usage[fs])
		return exitOK, false
	}
	return c.usageError(cmd, err.Error()), false
}

func (c *cli) usageError(cmd, msg string) int {
	help := "mdcli --help"
	if cmd != "mdcli" {
		help = cmd + " --help"
	}
	fmt.Fprintf(c.stderr, "%s: %s (see %s)\n", cmd, msg, help)
	return exitUsage
}

// fail prints a one-line error and returns exitFail.
func (c *cli) fail(cmd string, err error) int {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(c.stderr, "%s: %s\n", cmd, msg)
	return exitFail
}

// failRequest reports the error of a request to service: exitNoWorkers
// (code, if not zero) with "no workers for service X" when the broker said
// service has no worker, else as fail does.
func (c *cli) failRequest(cmd, service string, err error, code int) int {
	if !errors.Is(err, client.ErrNoWorkers) {
		return c.fail(cmd, err)
	}
	if code == 0 {
		code = exitNoWorkers
	}
	hint := ""
	switch {
	case strings.HasPrefix(service, "titanic."):
		hint = " (is a Titanic server running?)"
	case c.sec.serverKey != "":
		hint = " (or this client may not call it)"
	}
	fmt.Fprintf(c.stderr, "%s: no workers for service %s%s\n", cmd, service, hint)
	return code
}

// logger is the client's logger: quiet unless -v, so that a failure is the
// one line fail prints (retries are logged at Warn).
func (c *cli) logger() *slog.Logger {
	level := slog.LevelError
	if c.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level}))
}

// clientFlags are the command flags of every command that sends requests.
type clientFlags struct {
	v2 bool
}

func (c *cli) addClientFlags(fs *flag.FlagSet) *clientFlags {
	f := &clientFlags{}
	fs.BoolVar(&f.v2, "v2", false, "speak MDP/0.2 (18/MDP) instead of MDP/0.1")
	return f
}

const clientFlagsUsage = `  --v2             speak MDP/0.2 (18/MDP) instead of MDP/0.1

Global flags (before or after the command name; see mdcli --help):
` + globalFlagsUsage

// connect creates a client from the flags.
func (c *cli) connect(f *clientFlags, opts ...client.Option) (*client.Client, error) {
	if c.timeout <= 0 {
		return nil, fmt.Errorf("--timeout must be positive")
	}
	if c.retries < 0 {
		return nil, fmt.Errorf("--retries must not be negative")
	}
	v := mdp.V1
	if f.v2 {
		v = mdp.V2
	}
	sec, err := c.sec.clientOptions()
	if err != nil {
		return nil, err
	}
	opts = append([]client.Option{client.WithVersion(v), client.WithTimeout(c.timeout),
		client.WithRetries(c.retries), client.WithLogger(c.logger())}, opts...)
	eps, err := c.brokers()
	if err != nil {
		return nil, err
	}
	opts = append(opts, client.WithBrokers(eps[1:]...))
	return client.Connect(eps[0], append(opts, sec...)...)
}

// brokers splits the -b (or MDP_BROKER) list: endpoints separated by
// commas, as in "tcp://a:5555,tcp://b:5555".
func (c *cli) brokers() ([]string, error) {
	parts := strings.Split(c.endpoint, ",")
	eps := make([]string, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("-b %q: empty endpoint in the list", c.endpoint)
		}
		if slices.Contains(eps, p) {
			return nil, fmt.Errorf("-b %q: %s listed twice", c.endpoint, p)
		}
		eps = append(eps, p)
	}
	return eps, nil
}
