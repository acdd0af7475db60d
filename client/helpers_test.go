package client_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/mdp"
	"github.com/majordomo-go/majordomo/worker"
)

// testHeartbeat is short so that failures are detected within a test's time.
const testHeartbeat = 50 * time.Millisecond

// logger discards logs unless MDP_TEST_LOG is set, so that goroutines that
// log after a test ends cannot upset the testing package.
func logger() *slog.Logger {
	if os.Getenv("MDP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testBroker is an in-process broker that a test can stop and restart on
// the same endpoint.
type testBroker struct {
	t        testing.TB
	cfg      broker.Config
	b        *broker.Broker
	endpoint string
	done     chan struct{}
}

func startBroker(t testing.TB, tweak ...func(*broker.Config)) *testBroker {
	t.Helper()
	cfg := broker.Config{
		Endpoints:         []string{"tcp://127.0.0.1:*"},
		HeartbeatInterval: testHeartbeat,
		HeartbeatLiveness: 3,
		Logger:            logger(),
	}
	for _, f := range tweak {
		f(&cfg)
	}
	tb := &testBroker{t: t, cfg: cfg}
	tb.start()
	tb.endpoint = tb.b.Endpoints()[0]
	tb.cfg.Endpoints = []string{tb.endpoint}
	t.Cleanup(tb.stop)
	return tb
}

func (tb *testBroker) start() {
	tb.t.Helper()
	var b *broker.Broker
	var err error
	// The port of a broker just closed may take a moment to be free.
	for i := 0; i < 50; i++ {
		if b, err = broker.New(tb.cfg); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		tb.t.Fatalf("broker.New: %v", err)
	}
	tb.b = b
	tb.done = make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		b.Run(context.Background())
	}(tb.done)
}

func (tb *testBroker) stop() {
	if tb.b == nil {
		return
	}
	tb.b.Close()
	<-tb.done
	tb.b = nil
}

func (tb *testBroker) restart() {
	tb.t.Helper()
	tb.stop()
	tb.start()
}

// runWorker runs a worker until the test ends.
func runWorker(t testing.TB, endpoint, service string, h worker.Handler, opts ...worker.Option) *worker.Worker {
	t.Helper()
	opts = append([]worker.Option{worker.WithHeartbeat(testHeartbeat), worker.WithLogger(logger()),
		worker.WithReconnect(10*time.Millisecond, 200*time.Millisecond)}, opts...)
	w, err := worker.New(endpoint, service, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			t.Errorf("worker.Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

func echo(ctx context.Context, req *worker.Request) ([][]byte, error) {
	return req.Body, nil
}

func connect(t testing.TB, endpoint string, opts ...client.Option) *client.Client {
	t.Helper()
	opts = append([]client.Option{client.WithLogger(logger())}, opts...)
	c, err := client.Connect(endpoint, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitService waits until the broker reports a worker for service.
func waitService(t testing.TB, c *client.Client, service string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ok, err := c.ServiceExists(ctx, service)
		cancel()
		if err == nil && ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("service %q never appeared", service)
}

func versions() []mdp.Version { return []mdp.Version{mdp.V1, mdp.V2} }

func frames(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func strs(fs [][]byte) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = string(f)
	}
	return out
}
