package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/leakcheck"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	"github.com/majordomo-go/majordomo/titanic"
	"github.com/majordomo-go/majordomo/worker"
)

// childEnv makes the test binary run mdtitanic's main instead of the tests,
// so that tests can run the real program as a child process (and kill it)
// without building it first.
const childEnv = "MDTITANIC_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main()
		return
	}
	leakcheck.Main(m, "majordomo/client.", "majordomo/worker.", "majordomo/broker.", "majordomo/titanic.", "os/exec.")
}

// testHeartbeat is short so that tests run quickly, but not so short that
// a loaded machine running the race detector misses heartbeats.
const testHeartbeat = 250 * time.Millisecond

func startBroker(t *testing.T) string {
	t.Helper()
	return harness.StartBroker(t, func(c *broker.Config) { c.HeartbeatInterval = testHeartbeat }).Endpoint
}

// child is mdtitanic running as a child process.
type child struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	done   chan struct{}
	err    error
}

// startChild runs mdtitanic with args; wrap, if set, is a shell prefix such
// as "ulimit -f 1000;".
func startChild(t *testing.T, wrap string, args ...string) *child {
	t.Helper()
	var cmd *exec.Cmd
	if wrap == "" {
		cmd = exec.Command(os.Args[0], args...)
	} else {
		cmd = exec.Command("/bin/sh", append([]string{"-c", wrap + ` exec "$0" "$@"`, os.Args[0]}, args...)...)
	}
	c := &child{t: t, cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() { c.kill() })
	return c
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// stop sends SIGTERM and returns the exit status.
func (c *child) stop(d time.Duration) int {
	c.t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(d):
		c.kill()
		c.t.Fatalf("mdtitanic did not stop within %v on SIGTERM; stderr:\n%s", d, c.stderr)
	}
	return c.cmd.ProcessState.ExitCode()
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// childArgs are the flags every child gets: test heartbeats, quiet logs.
func childArgs(endpoint, dir string, more ...string) []string {
	return append([]string{"-b", endpoint, "--dir", dir, "--heartbeat", testHeartbeat.String(),
		"--log-level", "warn", "--retry-min", "20ms", "--shutdown-grace", "1s"}, more...)
}

// connect returns a client with the given timeout and Lazy Pirate retries.
func connect(t *testing.T, endpoint string, timeout time.Duration, retries int) *client.Client {
	t.Helper()
	c, err := client.Connect(endpoint, client.WithTimeout(timeout), client.WithRetries(retries),
		client.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitTitanic waits until the broker has titanic.request workers.
func waitTitanic(t *testing.T, c *client.Client, ch *child) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ch != nil && ch.exited() {
			t.Fatalf("mdtitanic exited: %v; stderr:\n%s", ch.err, ch.stderr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ok, err := c.ServiceExists(ctx, titanic.ServiceRequest)
		cancel()
		if err == nil && ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("titanic.request never appeared")
}

func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"-b", "tcp://x:1"}, "dir"},
		{[]string{"--dir", "d", "--reply-ttl", "soon"}, "reply-ttl"},
		{[]string{"--dir", "d", "--reply-ttl", "0"}, "reply-ttl"},
		{[]string{"--dir", "d", "--max-in-flight", "0"}, "max-in-flight"},
		{[]string{"--dir", "d", "--max-in-flight", "many"}, "max-in-flight"},
		{[]string{"--dir", "d", "--attempt-timeout", "-1s"}, "attempt-timeout"},
		{[]string{"--dir", "d", "--request-workers", "0"}, "request-workers"},
		{[]string{"--dir", "d", "--retry-min", "2s", "--retry-max", "1s"}, "retry-max"},
		{[]string{"--dir", "d", "--log-level", "loud"}, "log-level"},
		{[]string{"--dir", "d", "-b", "udp://x"}, "broker"},
		{[]string{"--dir", "d", "--nope"}, "nope"},
		{[]string{"--dir", "d", "extra"}, "extra"},
		{[]string{"--dir", "d", "--max-in-flight", "100000"}, "max-in-flight"},
		{[]string{"--dir", "d", "--store", "postgres://h/db"}, "store"},
		{[]string{"--store", "mysql://h/db"}, "store"},
		{[]string{"--store", "postgres://h/db", "--lease-ttl", "1ms"}, "lease-ttl"},
		{[]string{"--dir", "d", "--curve-server-key", "nope"}, "curve-cert"},
		{[]string{"--dir", "d", "--curve-cert", "nope_secret"}, "curve-server-key"},
		{[]string{"--dir", "d", "--curve-server-key", "not-a-key", "--curve-cert", "nope_secret"}, "curve-server-key"},
	} {
		var stderr bytes.Buffer
		code := run(tc.args, func(string) string { return "" }, &stderr, nil)
		out := stderr.String()
		if code != 2 || strings.Count(out, "\n") != 1 || !strings.Contains(out, tc.flag) {
			t.Errorf("mdtitanic %q: exit %d, stderr %q; want exit 2 and one line naming %q", tc.args, code, out, tc.flag)
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"--help"}, os.Getenv, &stderr, nil); code != 0 || !strings.HasPrefix(stderr.String(), "Usage: mdtitanic") {
		t.Errorf("--help: exit %d, %q", code, stderr.String())
	}
}

// TestBadStore: a store that cannot be used is one line naming the file and
// exit status 1, at start.
func TestBadStore(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt")
	os.Mkdir(corrupt, 0o700)
	os.WriteFile(filepath.Join(corrupt, titanic.DBFile), bytes.Repeat([]byte("garbage!"), 4096), 0o600)
	notDir := filepath.Join(dir, "file")
	os.WriteFile(notDir, []byte("x"), 0o600)
	locked := filepath.Join(dir, "locked")
	os.Mkdir(locked, 0o700)
	s, err := titanic.OpenBolt(filepath.Join(locked, titanic.DBFile), titanic.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dir, want string }{
		{corrupt, "corrupt"},
		{notDir, "not a directory"},
		{locked, "locked"},
	} {
		var stderr bytes.Buffer
		code := run([]string{"-b", "tcp://127.0.0.1:1", "--dir", tc.dir}, os.Getenv, &stderr, nil)
		out := stderr.String()
		if code != 1 || strings.Count(out, "\n") != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("--dir %s: exit %d, stderr %q; want exit 1, one line saying %q", tc.dir, code, out, tc.want)
		}
	}
	s.Close()
}

// TestSignals: the real program serves, and stops with exit status 0 on
// SIGTERM.
func TestSignals(t *testing.T) {
	ep := startBroker(t)
	c := connect(t, ep, 2*time.Second, 3)
	ch := startChild(t, "", childArgs(ep, t.TempDir())...)
	waitTitanic(t, c, ch)
	rep, err := c.Request(context.Background(), titanic.ServiceRequest, []byte("echo"), []byte("x"))
	if err != nil || string(rep[0]) != "200" {
		t.Fatalf("titanic.request: %q %v", rep, err)
	}
	if code := ch.stop(10 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, ch.stderr)
	}
}

// runs counts a "count" worker's invocations per request id (the request's
// first frame); its mutex guards n.
type runs struct {
	mu sync.Mutex
	n  map[string]int
}

// runCountWorker serves "count" on ep until the test ends: each request is
// answered [id, how many times this id ran], and counted in r.
func runCountWorker(t *testing.T, ep string, concurrency int, r *runs) {
	t.Helper()
	r.mu.Lock()
	if r.n == nil {
		r.n = make(map[string]int)
	}
	r.mu.Unlock()
	harness.RunWorker(t, ep, "count", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		id := string(req.Body[0])
		r.mu.Lock()
		r.n[id]++
		n := r.n[id]
		r.mu.Unlock()
		return [][]byte{req.Body[0], []byte(strconv.Itoa(n))}, nil
	}), worker.WithHeartbeat(testHeartbeat), worker.WithConcurrency(concurrency))
}
