package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/majordomo-go/majordomo/mdp"
	"github.com/majordomo-go/majordomo/worker"
)

const serveUsage = `Usage: mdcli serve [flags] SERVICE -- COMMAND [ARGS ...]

Register as a worker for SERVICE and run COMMAND once per request. The
request's body frames, separated by newlines, are COMMAND's standard input;
its standard output, unchanged, is the reply (one frame). COMMAND's
standard error is copied to mdcli's. The environment variable MDP_SERVICE
holds the service name. mdcli serves until interrupted (SIGINT, SIGTERM).

When COMMAND fails (non-zero exit, killed, cannot start) the failure is
logged and the reply is an error reply of three frames:
  1. "ERROR"
  2. what happened, e.g. "exit status 3"
  3. the last 4 KiB of COMMAND's standard error
"mdcli call" prints it as three lines and still exits 0: a reply came.

With several brokers (-b A,B or MDP_BROKER=A,B) mdcli registers with each
of them, N workers per broker with --concurrency N, and still runs at most N
commands at once in total: a request that arrives while N run waits for the
first to finish. A broker that dies or restarts affects only its own
registrations.

Example: mdcli serve echo -- cat

Flags:
  --concurrency N    run up to N commands at once, as N registered workers (default 1)
  --v2               speak MDP/0.2 (18/MDP) instead of MDP/0.1
  --heartbeat D      heartbeat interval; must match the broker's (default 2.5s)
  --liveness N       heartbeats of silence before the broker is deemed dead (default 3)
  --busy-liveness    check the broker's heartbeats while a command runs
                     (default true; use --busy-liveness=false with brokers
                     that heartbeat idle workers only, like the Guide's)

Global flags (before or after the command name; see mdcli --help; serve
ignores --timeout and --retries, which are about requests):
` + globalFlagsUsage

// stderrTail is how much of a failed command's standard error goes into
// the error reply.
const stderrTail = 4 << 10

func (c *cli) serve(ctx context.Context, args []string) int {
	const cmd = "mdcli serve"
	fs := c.flags(cmd, serveUsage)
	concurrency := fs.Int("concurrency", 1, "concurrent commands")
	v2 := fs.Bool("v2", false, "MDP/0.2")
	heartbeat := fs.Duration("heartbeat", worker.DefaultHeartbeat, "heartbeat interval")
	liveness := fs.Int("liveness", worker.DefaultLiveness, "liveness")
	busyLiveness := fs.Bool("busy-liveness", true, "check liveness while busy")
	if code, ok := c.parse(fs, cmd, args); !ok {
		return code
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return c.usageError(cmd, "missing SERVICE")
	}
	service, command := rest[0], rest[1:]
	if len(command) > 0 && command[0] == "--" {
		command = command[1:]
	}
	if len(command) == 0 {
		return c.usageError(cmd, "missing COMMAND after --")
	}
	v := mdp.V1
	if *v2 {
		v = mdp.V2
	}
	// The logger and the commands share standard error.
	errw := &lockedWriter{w: c.stderr}
	level := slog.LevelInfo // A long-running server reports its connections.
	if c.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(errw, &slog.HandlerOptions{Level: level}))
	h := &commandHandler{service: service, argv: command, stderr: errw}
	sec, err := c.sec.workerOptions()
	if err != nil {
		return c.fail(cmd, err)
	}
	eps, err := c.brokers()
	if err != nil {
		return c.usageError(cmd, err.Error())
	}
	w, err := worker.New(eps[0], service, h, append([]worker.Option{worker.WithBrokers(eps[1:]...),
		worker.WithVersion(v), worker.WithConcurrency(*concurrency),
		worker.WithHeartbeat(*heartbeat), worker.WithLiveness(*liveness),
		worker.WithBusyLiveness(*busyLiveness), worker.WithLogger(log)}, sec...)...)
	if err != nil {
		return c.usageError(cmd, err.Error())
	}
	if err := w.Run(ctx); err != nil {
		return c.fail(cmd, err)
	}
	return exitOK
}

// commandHandler runs a command per request.
type commandHandler struct {
	service string
	argv    []string
	stderr  io.Writer // Shared by concurrent commands.
}

// ServeMDP runs the command for one request.
func (h *commandHandler) ServeMDP(ctx context.Context, req *worker.Request) ([][]byte, error) {
	cmd := exec.CommandContext(ctx, h.argv[0], h.argv[1:]...)
	cmd.Stdin = bytes.NewReader(bytes.Join(req.Body, []byte("\n")))
	cmd.Env = append(os.Environ(), "MDP_SERVICE="+h.service)
	var stdout bytes.Buffer
	tail := &tailBuffer{max: stderrTail}
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(tail, h.stderr)
	// A command that leaves a child holding its pipes must not hold the
	// worker for ever once it exits or is killed.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err == nil {
		return [][]byte{stdout.Bytes()}, nil
	}
	what := err.Error()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		what = strings.TrimPrefix(what, "exec: ")
	}
	return nil, worker.ErrorReply(fmt.Errorf("%s: %s", h.argv[0], what),
		[]byte("ERROR"), []byte(what), tail.bytes())
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

// Write keeps the tail of p.
func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) bytes() []byte { return t.buf }

// lockedWriter serialises writes from concurrent commands.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// Write writes p under the lock.
func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
