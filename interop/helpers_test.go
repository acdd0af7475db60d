package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/internal/testutil"
)

// python is the interpreter the peers run under. It is the system one on
// purpose: Debian's python3-zmq installs there, while a python3 found on
// PATH (pyenv, virtualenv) often lacks pyzmq.
const python = "/usr/bin/python3"

const (
	// heartbeat is the broker's interval; the Python workers are given the
	// same value, as 7/MDP requires ("agreed-upon intervals").
	heartbeat   = 250 * time.Millisecond
	heartbeatMS = "250"
	liveness    = 3 // broker.DefaultHeartbeatLiveness

	// procLimit bounds every Python process (each also arms its own
	// 20-second alarm); waitLimit bounds any single wait in a test.
	procLimit = 25 * time.Second
	waitLimit = 10 * time.Second
)

// pyDir holds the Python peers; go test runs in the package directory.
var pyDir = func() string {
	d, err := filepath.Abs("py")
	if err != nil {
		panic(err)
	}
	return d
}()

var pyCheck struct {
	once sync.Once
	err  error
	out  string
}

// requirePython fails (never skips) the test when /usr/bin/python3 cannot
// import zmq: CI installs python3-zmq, and a silent skip would hide a broken
// setup behind a green run.
func requirePython(t *testing.T) {
	t.Helper()
	pyCheck.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, python, "-c",
			"import zmq; print('libzmq', zmq.zmq_version(), 'pyzmq', zmq.pyzmq_version())").CombinedOutput()
		pyCheck.out = strings.TrimSpace(string(out))
		pyCheck.err = err
	})
	if pyCheck.err != nil {
		t.Fatalf("interop tests need %s with the zmq module (Debian/Ubuntu: apt-get install python3-zmq); "+
			"`%s -c 'import zmq'` failed: %v\n%s", python, python, pyCheck.err, pyCheck.out)
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines omitted)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------------------
// In-process broker.

type testBroker struct {
	*broker.Broker
	ep  string
	log *testutil.SyncBuffer
}

// startBroker runs the project's broker on an ephemeral 127.0.0.1 port with
// a 250 ms heartbeat. Its log is printed if the test fails.
func startBroker(t *testing.T) *testBroker {
	t.Helper()
	requirePython(t)
	logs := &testutil.SyncBuffer{}
	b, err := broker.New(broker.Config{
		Endpoints:         []string{"tcp://127.0.0.1:*"},
		HeartbeatInterval: heartbeat,
		Logger:            slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- b.Run(context.Background()) }()
	t.Cleanup(func() {
		b.Close()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("broker Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("broker Run did not return after Close")
		}
		if t.Failed() {
			t.Logf("broker log:\n%s", tail(logs.String(), 60))
		}
	})
	return &testBroker{Broker: b, ep: b.Endpoints()[0], log: logs}
}

// waitStats polls the broker until cond holds and returns that snapshot.
func (b *testBroker) waitStats(t *testing.T, what string, cond func(s broker.Stats) bool) broker.Stats {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		s := b.Stats()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker never reached %q; stats: %s", what, fmtStats(s))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fmtStats(s broker.Stats) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "workers=%d idle=%d busy=%d services=%d queued=%d requests=%d mmi=%d dispatched=%d "+
		"redelivered=%d replies=%d partials=%d registered=%d heartbeats=%d",
		s.Workers, s.IdleWorkers, s.BusyWorkers, s.Services, s.Queued, s.Requests, s.MMIRequests,
		s.Dispatched, s.Redelivered, s.Replies, s.Partials, s.Registered, s.Heartbeats)
	for _, r := range broker.DropReasons() {
		if n := s.DroppedBy(r); n > 0 {
			fmt.Fprintf(&sb, " dropped[%s]=%d", r, n)
		}
	}
	for _, r := range broker.RemoveReasons() {
		if n := s.RemovedBy(r); n > 0 {
			fmt.Fprintf(&sb, " removed[%s]=%d", r, n)
		}
	}
	return sb.String()
}

// droppedExcept is the number of dropped messages for every reason but the
// given ones.
func droppedExcept(s broker.Stats, except ...broker.DropReason) uint64 {
	n := s.TotalDropped()
	for _, r := range except {
		n -= s.DroppedBy(r)
	}
	return n
}

// ---------------------------------------------------------------------------
// Python processes.

// event is one JSON line printed by a Python peer (see py/mdinterop.py and
// py/pybroker.py); fields a given event does not carry stay zero.
type event struct {
	Event           string     `json:"event"`
	I               int        `json:"i"`
	N               int        `json:"n"`
	Service         string     `json:"service"`
	Request         []string   `json:"request"`
	Body            []string   `json:"body"`
	Partials        [][]string `json:"partials"`
	Final           []string   `json:"final"`
	Frames          []string   `json:"frames"`
	Replies         int        `json:"replies"`
	Failures        int        `json:"failures"`
	Requests        int        `json:"requests"`
	Reason          string     `json:"reason"`
	Endpoint        string     `json:"endpoint"`
	Error           string     `json:"error"`
	HeartbeatsSent  int        `json:"heartbeats_sent"`
	HeartbeatsRecv  int        `json:"heartbeats_recv"`
	DisconnectsRecv int        `json:"disconnects_recv"`
	raw             string
}

// pyProc is a running Python peer whose stdout is parsed line by line.
type pyProc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stderr testutil.SyncBuffer

	mu      sync.Mutex
	events  []event
	lines   []string // every stdout line, for failure reports
	pending []byte
	changed chan struct{} // closed and replaced whenever something happens

	done    chan struct{}
	waitErr error
}

// Write receives the process's stdout.
func (p *pyProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = append(p.pending, b...)
	for {
		i := bytes.IndexByte(p.pending, '\n')
		if i < 0 {
			break
		}
		line := string(p.pending[:i])
		p.pending = p.pending[i+1:]
		p.lines = append(p.lines, line)
		var ev event
		if err := json.Unmarshal([]byte(line), &ev); err == nil && ev.Event != "" {
			ev.raw = line
			p.events = append(p.events, ev)
		}
	}
	p.notifyLocked()
	return len(b), nil
}

func (p *pyProc) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// startPy starts py/<script> with args. The process is killed (SIGKILL) when
// the test ends, whatever happens, and bounded by procLimit regardless.
func startPy(t *testing.T, name, script string, args ...string) *pyProc {
	t.Helper()
	requirePython(t)
	ctx, cancel := context.WithTimeout(context.Background(), procLimit)
	p := &pyProc{t: t, name: name, changed: make(chan struct{}), done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, python, append([]string{"-u", "-B", filepath.Join(pyDir, script)}, args...)...)
	p.cmd.Dir = pyDir
	p.cmd.Stdout = p
	p.cmd.Stderr = &p.stderr
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("%s: start: %v", name, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		close(p.done)
		p.notifyLocked()
		p.mu.Unlock()
	}()
	t.Cleanup(func() {
		p.kill()
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s: pid %d did not exit after SIGKILL", name, p.cmd.Process.Pid)
		}
		cancel()
		if t.Failed() {
			t.Logf("%s (%s %s): exit %v\nstdout:\n%s\nstderr:\n%s", name, script, strings.Join(args, " "),
				p.exitErr(), tail(p.stdout(), 25), tail(p.stderr.String(), 25))
		}
	})
	return p
}

// stdout returns what the process printed, with runs of heartbeat events
// collapsed so that failure reports stay readable.
func (p *pyProc) stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	beats := 0
	flush := func() {
		if beats > 0 {
			out = append(out, fmt.Sprintf("(%d heartbeat events)", beats))
			beats = 0
		}
	}
	for _, l := range p.lines {
		if strings.HasPrefix(l, `{"event": "heartbeat"`) {
			beats++
			continue
		}
		flush()
		out = append(out, l)
	}
	flush()
	return strings.Join(out, "\n")
}

func (p *pyProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *pyProc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// signal sends sig to the process if it is still running.
func (p *pyProc) signal(sig syscall.Signal) {
	if !p.exited() {
		_ = p.cmd.Process.Signal(sig)
	}
}

func (p *pyProc) kill() { p.signal(syscall.SIGKILL) }

// all returns the events seen so far with the given name ("" for all).
func (p *pyProc) all(name string) []event {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []event
	for _, ev := range p.events {
		if name == "" || ev.Event == name {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvents waits until the process has printed n events named name (""
// for any) and returns them; it fails the test on timeout or if the process
// exits first.
func (p *pyProc) waitEvents(name string, n int) []event {
	p.t.Helper()
	deadline := time.After(waitLimit)
	for {
		p.mu.Lock()
		var got []event
		for _, ev := range p.events {
			if name == "" || ev.Event == name {
				got = append(got, ev)
			}
		}
		changed := p.changed
		p.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if p.exited() {
			p.t.Fatalf("%s exited (%v) after %d of %d %q events\nstdout:\n%s\nstderr:\n%s", p.name,
				p.exitErr(), len(got), n, name, tail(p.stdout(), 25), tail(p.stderr.String(), 25))
		}
		select {
		case <-changed:
		case <-deadline:
			p.t.Fatalf("%s: %d of %d %q events after %v", p.name, len(got), n, name, waitLimit)
		}
	}
}

func (p *pyProc) waitEvent(name string) event { p.t.Helper(); return p.waitEvents(name, 1)[0] }

// wait waits for the process to exit and returns Wait's error.
func (p *pyProc) wait() error {
	p.t.Helper()
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(procLimit):
		p.t.Fatalf("%s did not exit within %v", p.name, procLimit)
		return nil
	}
}

// mustSucceed waits for the process and fails the test unless it exited 0.
func (p *pyProc) mustSucceed() []event {
	p.t.Helper()
	if err := p.wait(); err != nil {
		p.t.Fatalf("%s failed: %v\nstdout:\n%s\nstderr:\n%s", p.name, err,
			tail(p.stdout(), 25), tail(p.stderr.String(), 25))
	}
	return p.all("")
}

// ---------------------------------------------------------------------------
// Peer shorthands (py/mdinterop.py).

// startWorker starts a Python worker heartbeating at the broker's interval.
func startWorker(t *testing.T, name, ep string, args ...string) *pyProc {
	t.Helper()
	return startPy(t, name, "mdinterop.py", append([]string{"worker", "--endpoint", ep,
		"--heartbeat-ms", heartbeatMS, "--liveness", strconv.Itoa(liveness)}, args...)...)
}

// startClient starts a Python client; runClient also waits for it to
// succeed and returns its events.
func startClient(t *testing.T, name, ep string, args ...string) *pyProc {
	t.Helper()
	return startPy(t, name, "mdinterop.py", append([]string{"client", "--endpoint", ep}, args...)...)
}

func runClient(t *testing.T, name, ep string, args ...string) []event {
	t.Helper()
	return startClient(t, name, ep, args...).mustSucceed()
}

// mmiQueries builds a --requests argument from [service, body] pairs.
func mmiQueries(t *testing.T, pairs ...[2]string) string {
	t.Helper()
	reqs := make([][]string, len(pairs))
	for i, p := range pairs {
		reqs[i] = []string{p[0], p[1]}
	}
	b, err := json.Marshal(reqs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// replies returns a client's reply events, checking there is exactly one
// per request index 0..n-1, in order, and a clean "done".
func replies(t *testing.T, who string, evs []event, n int) []event {
	t.Helper()
	var out []event
	var done *event
	for i := range evs {
		switch evs[i].Event {
		case "reply":
			out = append(out, evs[i])
		case "done":
			done = &evs[i]
		case "timeout", "extra", "mismatch", "protocol_error", "alarm":
			t.Errorf("%s: %s", who, evs[i].raw)
		}
	}
	if len(out) != n {
		t.Fatalf("%s: %d replies, want %d", who, len(out), n)
	}
	for i, ev := range out {
		if ev.I != i {
			t.Fatalf("%s: reply %d has index %d", who, i, ev.I)
		}
	}
	if done == nil || done.Replies != n || done.Failures != 0 {
		t.Fatalf("%s: bad or missing done event: %+v", who, done)
	}
	return out
}

func eq(a, b []string) bool { return slices.Equal(a, b) }

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var _ io.Writer = (*pyProc)(nil)
