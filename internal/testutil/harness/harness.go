// Package harness holds the test fixtures of every package that runs the
// broker from outside it (client, worker, titanic, interop, the commands):
// an in-process broker that can be restarted on the same endpoint, and
// workers and clients that clean up after the test.
package harness

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/mdp"
	"github.com/majordomo-go/majordomo/worker"
)

// Heartbeat is short so that failures are detected within a test's time.
const Heartbeat = 50 * time.Millisecond

// Broker is an in-process broker that a test can stop and restart on the
// same endpoint.
type Broker struct {
	t        testing.TB
	cfg      broker.Config
	b        *broker.Broker
	done     chan error
	Endpoint string // The resolved endpoint, stable across restarts.
}

// StartBroker starts a broker on an ephemeral loopback port with a
// Heartbeat interval and testutil.Logger; tweak adjusts its configuration
// (a test that wants the broker's log sets Logger). It is stopped when the
// test ends, and a Run that returns an error fails the test.
func StartBroker(t testing.TB, tweak ...func(*broker.Config)) *Broker {
	t.Helper()
	cfg := broker.Config{
		Endpoints:         []string{"tcp://127.0.0.1:*"},
		HeartbeatInterval: Heartbeat,
		HeartbeatLiveness: 3,
		Logger:            testutil.Logger(),
	}
	for _, f := range tweak {
		f(&cfg)
	}
	tb := &Broker{t: t, cfg: cfg}
	tb.start()
	tb.Endpoint = tb.b.Endpoints()[0]
	tb.cfg.Endpoints = []string{tb.Endpoint}
	t.Cleanup(tb.Stop)
	return tb
}

// B returns the running broker.
func (tb *Broker) B() *broker.Broker { return tb.b }

func (tb *Broker) start() {
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
	tb.done = make(chan error, 1)
	go func(done chan error) { done <- b.Run(context.Background()) }(tb.done)
}

// Stop stops the broker; it is safe to call twice.
func (tb *Broker) Stop() {
	if tb.b == nil {
		return
	}
	tb.b.Close()
	select {
	case err := <-tb.done:
		if err != nil {
			tb.t.Errorf("broker Run: %v", err)
		}
	case <-time.After(testutil.WaitLimit):
		tb.t.Errorf("broker Run did not return within %v of Close", testutil.WaitLimit)
	}
	tb.b = nil
}

// Restart stops the broker and starts a new one on the same endpoint.
func (tb *Broker) Restart() {
	tb.t.Helper()
	tb.Stop()
	tb.start()
}

// RunWorker runs a worker until the test ends.
func RunWorker(t testing.TB, endpoint, service string, h worker.Handler, opts ...worker.Option) *worker.Worker {
	t.Helper()
	w, _ := StartWorker(t, endpoint, service, h, opts...)
	return w
}

// StartWorker is RunWorker that also returns a stop function, which ends
// the worker's Run and waits for it (later calls and the test's end do
// nothing more).
func StartWorker(t testing.TB, endpoint, service string, h worker.Handler, opts ...worker.Option) (*worker.Worker, func()) {
	t.Helper()
	opts = append([]worker.Option{worker.WithHeartbeat(Heartbeat), worker.WithLogger(testutil.Logger()),
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
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return w, stop
}

// Echo is a handler that replies with the request body.
func Echo(ctx context.Context, req *worker.Request) ([][]byte, error) {
	return req.Body, nil
}

// Connect connects a client that is closed when the test ends.
func Connect(t testing.TB, endpoint string, opts ...client.Option) *client.Client {
	t.Helper()
	opts = append([]client.Option{client.WithLogger(testutil.Logger())}, opts...)
	c, err := client.Connect(endpoint, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// WaitService waits until the broker reports a worker for service.
func WaitService(t testing.TB, c *client.Client, service string) {
	t.Helper()
	testutil.Eventually(t, testutil.WaitLimit, "service "+service, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ok, err := c.ServiceExists(ctx, service)
		return err == nil && ok
	})
}

// Versions lists both protocol versions, for table tests.
func Versions() []mdp.Version { return []mdp.Version{mdp.V1, mdp.V2} }

// WaitStats polls the running broker's Stats until cond accepts them and
// returns them; a test waits on a counter this way instead of sleeping.
func (tb *Broker) WaitStats(what string, cond func(broker.Stats) bool) broker.Stats {
	tb.t.Helper()
	var s broker.Stats
	testutil.Eventually(tb.t, testutil.WaitLimit, what, func() bool {
		s = tb.b.Stats()
		return cond(s)
	})
	return s
}
