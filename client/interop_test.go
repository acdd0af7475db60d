package client_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	"github.com/majordomo-go/majordomo/worker"
)

// startGuideBroker runs testdata/guide_broker.py, a plain 7/MDP broker
// written after the Guide's Python mdbroker, and returns its endpoint. The
// test fails when no Python with pyzmq is available: CI installs it, and a
// skip would hide a broken setup.
func startGuideBroker(t *testing.T, heartbeat time.Duration) string {
	t.Helper()
	var python string
	for _, p := range []string{os.Getenv("MDP_TEST_PYTHON"), "/usr/bin/python3", "python3"} {
		if p == "" {
			continue
		}
		if exec.Command(p, "-c", "import zmq").Run() == nil {
			python = p
			break
		}
	}
	if python == "" {
		t.Fatal("no python3 with pyzmq (install Debian python3-zmq, or set MDP_TEST_PYTHON)")
	}
	cmd := exec.Command(python, "testdata/guide_broker.py", fmt.Sprint(heartbeat.Seconds()))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("guide broker did not start: %v", err)
	}
	return "tcp://127.0.0.1:" + strings.TrimSpace(line)
}

// Both libraries, unchanged, against a 7/MDP broker from another
// implementation.
func TestInteropGuideBroker(t *testing.T) {
	const hb = 100 * time.Millisecond
	ep := startGuideBroker(t, hb)
	harness.RunWorker(t, ep, "echo", worker.HandlerFunc(harness.Echo), worker.WithHeartbeat(hb))
	// The Guide's broker heartbeats idle workers only: a handler longer
	// than liveness × heartbeat needs WithBusyLiveness(false).
	harness.RunWorker(t, ep, "slow", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		select {
		case <-time.After(5 * hb):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return req.Body, nil
	}), worker.WithHeartbeat(hb), worker.WithBusyLiveness(false))
	c := harness.Connect(t, ep, client.WithTimeout(2*time.Second))
	harness.WaitService(t, c, "echo")
	harness.WaitService(t, c, "slow")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 20 {
		body := fmt.Sprint("hello ", i)
		rep, err := c.Request(ctx, "echo", []byte(body), []byte("two"))
		if err != nil || len(rep) != 2 || string(rep[0]) != body {
			t.Fatalf("echo: %q, %v", rep, err)
		}
	}
	rep, err := c.Request(ctx, "slow", []byte("patience"))
	if err != nil || string(rep[0]) != "patience" {
		t.Fatalf("slow: %q, %v", rep, err)
	}
	if ok, err := c.ServiceExists(ctx, "nope"); err != nil || ok {
		t.Fatalf("ServiceExists(nope) = %v, %v", ok, err)
	}
	if _, err := c.Services(ctx); !errors.Is(err, client.ErrNotImplemented) {
		t.Fatalf("Services on a Guide broker: %v", err)
	}
	p, err := c.Pipeline(0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := p.Send(ctx, "echo", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		if _, err := p.Recv(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// Against a broker without mmi.workers ("501"), the client asks the
// standard mmi.service after a timeout: no worker is ErrNoWorkers at once,
// and a slow worker runs the request once.
//
// The heartbeat is long on purpose: this broker answers mmi.service with
// "200" whenever some worker is idle, so a request it lost (sent to a worker
// that had reconnected under load, its old entry not yet purged) would be
// waited for until ctx ends. Only mmi.workers can tell that case apart.
func TestInteropGuideBrokerQuestions(t *testing.T) {
	const hb = 500 * time.Millisecond
	const timeout = 150 * time.Millisecond
	ep := startGuideBroker(t, hb)
	var runs atomic.Int32
	harness.RunWorker(t, ep, "slow", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		runs.Add(1)
		select {
		case <-time.After(4 * timeout):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return req.Body, nil
	}), worker.WithHeartbeat(hb), worker.WithBusyLiveness(false), worker.WithConcurrency(2))
	c := harness.Connect(t, ep, client.WithTimeout(timeout), client.WithRetries(3))
	harness.WaitService(t, c, "slow")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Request(ctx, "nosuch", []byte("x"))
	t.Logf("ErrNoWorkers from the Guide broker after %v (timeout %v)", time.Since(start), timeout)
	if !errors.Is(err, client.ErrNoWorkers) {
		t.Fatalf("nosuch: %v", err)
	}
	rep, err := c.Request(ctx, "slow", []byte("once"))
	if err != nil || string(rep[0]) != "once" {
		t.Fatalf("slow: %q, %v", rep, err)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("slow handler ran %d times, want 1", n)
	}
}
