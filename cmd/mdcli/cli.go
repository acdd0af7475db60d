package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/mdp"
)

// Exit statuses.
const (
	exitOK    = 0 // A reply came (call), or the answer is yes (service).
	exitFail  = 1 // Timeout, error, or "no" (service: not 200).
	exitUsage = 2 // Bad flags or arguments.
)

// defaultEndpoint is used when neither -b nor MDP_BROKER says otherwise.
const defaultEndpoint = "tcp://127.0.0.1:5555"

const mainUsage = `Usage: mdcli [-b ENDPOINT] [-v] COMMAND [ARGS...]

Talk to a Majordomo (7/MDP, 18/MDP) broker.

Commands:
  call SERVICE [FRAME ...]         send one request, print the reply frames
  service NAME                     print the broker's MMI code for NAME (200 or 404)
  services                         list the services that have workers
  workers NAME                     print idle, busy and queued counts of NAME
  serve SERVICE -- COMMAND [ARGS]  serve SERVICE by running COMMAND per request
  keygen NAME                      write a new CURVE certificate pair NAME, NAME_secret
  titanic submit|reply|close ...   durable requests through Titanic (9/TSP)

Global flags:
  -b ENDPOINT   broker endpoint (default $MDP_BROKER, else ` + defaultEndpoint + `)
  -v            log debug messages to standard error

Run "mdcli COMMAND --help" for a command's flags.
`

// cli is one invocation, with its standard streams and environment, so that
// tests can run it in-process.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	endpoint string
	verbose  bool
	usage    map[*flag.FlagSet]string // Each flag set's --help text.
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
	fs.StringVar(&c.endpoint, "b", c.endpoint, "broker endpoint")
	fs.BoolVar(&c.verbose, "v", false, "debug logging")
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

// flags returns a flag set that reports errors through parse and prints
// usage on -h/--help.
func (c *cli) flags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The flag package calls Usage on every parse error too; parse prints
	// the usage itself, for --help only.
	fs.Usage = func() {}
	c.usage[fs] = usage
	return fs
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

// logger is the client's logger: quiet unless -v, so that a failure is the
// one line fail prints (retries are logged at Warn).
func (c *cli) logger() *slog.Logger {
	level := slog.LevelError
	if c.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level}))
}

// clientFlags are the flags of every command that sends requests.
type clientFlags struct {
	timeout time.Duration
	retries int
	v2      bool
	sec     *securityFlags // --curve-server-key, --curve-cert (keygen.go).
}

func (c *cli) addClientFlags(fs *flag.FlagSet) *clientFlags {
	f := &clientFlags{}
	fs.StringVar(&c.endpoint, "b", c.endpoint, "broker endpoint")
	fs.DurationVar(&f.timeout, "timeout", client.DefaultTimeout, "time to wait for a reply, per attempt")
	fs.IntVar(&f.retries, "retries", client.DefaultRetries, "attempts after the first one times out")
	fs.BoolVar(&f.v2, "v2", false, "speak MDP/0.2 (18/MDP) instead of MDP/0.1")
	f.sec = c.addSecurityFlags(fs)
	return f
}

const clientFlagsUsage = `  -b ENDPOINT      broker endpoint (default $MDP_BROKER, else ` + defaultEndpoint + `)
  --timeout D      time to wait for a reply per attempt, e.g. 500ms, 5s (default 2.5s)
  --retries N      resend on a new socket N times after a timeout (default 3)
  --v2             speak MDP/0.2 (18/MDP) instead of MDP/0.1
` + securityFlagsUsage

// connect creates a client from the flags.
func (c *cli) connect(f *clientFlags) (*client.Client, error) {
	if f.timeout <= 0 {
		return nil, fmt.Errorf("--timeout must be positive")
	}
	if f.retries < 0 {
		return nil, fmt.Errorf("--retries must not be negative")
	}
	v := mdp.V1
	if f.v2 {
		v = mdp.V2
	}
	sec, err := f.sec.clientOptions()
	if err != nil {
		return nil, err
	}
	return client.Connect(c.endpoint, append([]client.Option{client.WithVersion(v), client.WithTimeout(f.timeout),
		client.WithRetries(f.retries), client.WithLogger(c.logger())}, sec...)...)
}
