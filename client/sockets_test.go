package client_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/worker"
)

// gate is a handler that counts the requests being served at once and
// records the most seen. With release > 0 a request is held until that
// many are being served together, so that calls the client sends one after
// the other never get their reply (they fail when the hold gives up).
type gate struct {
	release    int32
	giveUp     time.Duration
	inFlight   atomic.Int32
	peak       atomic.Int32
	opened     chan struct{}
	openedOnce sync.Once
}

func newGate(release int32) *gate {
	return &gate{release: release, giveUp: 10 * time.Second, opened: make(chan struct{})}
}

func (g *gate) serve(ctx context.Context, req *worker.Request) ([][]byte, error) {
	n := g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if g.release == 0 {
		time.Sleep(20 * time.Millisecond) // The work; overlap is what is counted.
		return req.Body, nil
	}
	if n >= g.release {
		g.openedOnce.Do(func() { close(g.opened) })
	}
	t := time.NewTimer(g.giveUp)
	defer t.Stop()
	select {
	case <-g.opened:
		return req.Body, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, errors.New("the calls never overlapped")
	}
}

// waitIdle waits until the broker has n idle workers for service.
func waitIdle(t *testing.T, c *client.Client, service string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		wc, err := c.Workers(ctx, service)
		cancel()
		if err == nil && wc.Idle >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d workers for %q never registered", n, service)
}

// callAll makes n concurrent calls to service and returns their errors.
func callAll(c *client.Client, service string, n int) []error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := fmt.Appendf(nil, "call %d", i)
			rep, err := c.Request(ctx, service, body)
			if err == nil && (len(rep) != 1 || string(rep[0]) != string(body)) {
				err = fmt.Errorf("reply %q to %q", rep, body)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return errs
}

// N calls to one slow service overlap on sockets of their own, as net/http
// opens another connection to a busy host: the handler holds every
// request until all N are being served at once, so the calls finish in
// about one handler time, and would not finish at all (the hold gives up)
// if the client sent them one after the other. The time taken is logged,
// not asserted.
func TestConcurrentCallsToOneService(t *testing.T) {
	const n = client.DefaultSockets
	b := harness.StartBroker(t)
	g := newGate(n)
	harness.RunWorker(t, b.Endpoint, "slow", worker.HandlerFunc(g.serve), worker.WithConcurrency(n))
	c := harness.Connect(t, b.Endpoint, client.WithTimeout(time.Second))
	waitIdle(t, c, "slow", n)
	start := time.Now()
	for i, err := range callAll(c, "slow", n) {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if p := g.peak.Load(); p != n {
		t.Errorf("at most %d requests served at once, want %d", p, n)
	}
	t.Logf("%d concurrent calls held until all were served at once: %v", n, time.Since(start))
	if t.Failed() {
		return
	}
	// The sockets stay: the same again reuses them.
	for i, err := range callAll(c, "slow", n) {
		if err != nil {
			t.Errorf("second round, call %d: %v", i, err)
		}
	}
}

// WithSockets bounds the overlap: calls beyond it wait their turn inside
// the client, and all of them get their own reply.
func TestSocketsBoundConcurrency(t *testing.T) {
	const n, sockets = 6, 2
	b := harness.StartBroker(t)
	g := newGate(0)
	harness.RunWorker(t, b.Endpoint, "slow", worker.HandlerFunc(g.serve), worker.WithConcurrency(n))
	c := harness.Connect(t, b.Endpoint, client.WithSockets(sockets))
	waitIdle(t, c, "slow", n)
	for i, err := range callAll(c, "slow", n) {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if p := g.peak.Load(); p > sockets || p < 1 {
		t.Errorf("%d requests served at once, want 1 to %d", p, sockets)
	}
	// One socket: strictly one after the other.
	c1 := harness.Connect(t, b.Endpoint, client.WithSockets(1))
	g.peak.Store(0)
	for i, err := range callAll(c1, "slow", 3) {
		if err != nil {
			t.Errorf("one socket, call %d: %v", i, err)
		}
	}
	if p := g.peak.Load(); p != 1 {
		t.Errorf("one socket: %d requests served at once", p)
	}
	for _, bad := range []int{0, -1, client.MaxSockets + 1} {
		if _, err := client.Connect(b.Endpoint, client.WithSockets(bad)); !errors.Is(err, client.ErrInvalidOption) {
			t.Errorf("WithSockets(%d): %v, want ErrInvalidOption", bad, err)
		}
	}
}
