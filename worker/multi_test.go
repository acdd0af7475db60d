package worker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	"github.com/majordomo-go/majordomo/worker"
)

func TestWithBrokersValidates(t *testing.T) {
	h := worker.HandlerFunc(harness.Echo)
	if _, err := worker.New("tcp://127.0.0.1:1", "x", h, worker.WithBrokers("")); !errors.Is(err, worker.ErrInvalidOption) {
		t.Errorf("empty endpoint: %v", err)
	}
	if _, err := worker.New("tcp://127.0.0.1:1", "x", h, worker.WithBrokers("tcp://127.0.0.1:2", "tcp://127.0.0.1:1")); !errors.Is(err, worker.ErrInvalidOption) {
		t.Errorf("duplicate endpoint: %v", err)
	}
	w, err := worker.New("tcp://127.0.0.1:1", "x", h, worker.WithBrokers("tcp://127.0.0.1:2"))
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Brokers(); len(got) != 2 || got[0] != "tcp://127.0.0.1:1" || got[1] != "tcp://127.0.0.1:2" {
		t.Errorf("Brokers() = %q", got)
	}
}

// One worker with a list of brokers serves clients of each of them.
func TestServesEveryBroker(t *testing.T) {
	bs := []*harness.Broker{harness.StartBroker(t), harness.StartBroker(t), harness.StartBroker(t)}
	w := harness.RunWorker(t, bs[0].Endpoint, "echo", worker.HandlerFunc(harness.Echo),
		worker.WithBrokers(bs[1].Endpoint, bs[2].Endpoint))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, b := range bs {
		c := harness.Connect(t, b.Endpoint, client.WithTimeout(time.Second))
		harness.WaitService(t, c, "echo")
		msg := fmt.Sprint("via broker ", i)
		rep, err := c.Request(ctx, "echo", []byte(msg))
		if err != nil || len(rep) != 1 || string(rep[0]) != msg {
			t.Fatalf("broker %d: %q, %v", i, rep, err)
		}
	}
	// The worker counts a reply once written, which may be after the client
	// has it.
	counted := testutil.Poll(5*time.Second, func() bool {
		s := w.Stats()
		return s.Connects == 3 && s.Replies == 3
	})
	if s := w.Stats(); !counted {
		t.Errorf("stats %+v: want 3 connections (one per broker) and 3 replies", s)
	}
}

// Concurrency 2 over three brokers: six requests reach the worker (two per
// broker), yet never more than two handlers run at once, and every request
// is answered once slots free up.
func TestConcurrencySharedAcrossBrokers(t *testing.T) {
	const n, brokers = 2, 3
	bs := make([]*harness.Broker, brokers)
	for i := range bs {
		bs[i] = harness.StartBroker(t)
	}
	var running, peak atomic.Int32
	release := make(chan struct{})
	h := worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		r := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if r <= p || peak.CompareAndSwap(p, r) {
				break
			}
		}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		return req.Body, nil
	})
	w := harness.RunWorker(t, bs[0].Endpoint, "slow", h, worker.WithConcurrency(n),
		worker.WithBrokers(bs[1].Endpoint, bs[2].Endpoint))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n*brokers)
	for i, b := range bs {
		probe := harness.Connect(t, b.Endpoint)
		harness.WaitService(t, probe, "slow")
		for j := range n {
			// One client per request: a Client keeps one request per
			// service on the wire.
			c := harness.Connect(t, b.Endpoint, client.WithTimeout(5*time.Second))
			msg := fmt.Sprintf("%d/%d", i, j)
			wg.Go(func() {
				rep, err := c.Request(ctx, "slow", []byte(msg))
				if err == nil && (len(rep) != 1 || string(rep[0]) != msg) {
					err = fmt.Errorf("reply %q to %q", rep, msg)
				}
				if err != nil {
					errs <- err
				}
			})
		}
	}
	// Every request is inside the worker: n running, the rest waiting.
	for w.Stats().Requests < n*brokers {
		if ctx.Err() != nil {
			t.Fatalf("requests received: %d of %d", w.Stats().Requests, n*brokers)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r := running.Load(); r != n {
		t.Fatalf("%d handlers running with all requests received, want %d", r, n)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p := peak.Load(); p != n {
		t.Errorf("peak concurrency %d, want %d", p, n)
	}
	// The counter moves just after the send, so possibly after the client
	// has its reply.
	for w.Stats().Replies < n*brokers && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	if s := w.Stats(); s.Replies != n*brokers {
		t.Errorf("stats %+v: want %d replies", s, n*brokers)
	}
}

// A broker that dies affects only its own sessions: a request in progress
// through another broker goes on (its context is not cancelled) and is
// answered, and that broker keeps getting answers while the dead one is
// away; when it comes back, the worker registers with it again.
func TestBrokerLossAffectsOnlyItsSessions(t *testing.T) {
	a, b := harness.StartBroker(t), harness.StartBroker(t)
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	var cancelled atomic.Bool
	h := worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		if string(req.Body[0]) != "hold" {
			return req.Body, nil
		}
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			cancelled.Store(true)
			return nil, context.Cause(ctx)
		}
		return req.Body, nil
	})
	w := harness.RunWorker(t, a.Endpoint, "svc", h, worker.WithConcurrency(2), worker.WithBrokers(b.Endpoint))
	ca := harness.Connect(t, a.Endpoint, client.WithTimeout(time.Second), client.WithRetries(20))
	cb := harness.Connect(t, b.Endpoint, client.WithTimeout(time.Second))
	cb2 := harness.Connect(t, b.Endpoint, client.WithTimeout(time.Second))
	harness.WaitService(t, ca, "svc")
	harness.WaitService(t, cb, "svc")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	held := make(chan error, 1)
	go func() {
		_, err := cb.Request(ctx, "svc", []byte("hold"))
		held <- err
	}()
	<-started
	connects := w.Stats().Connects
	a.Stop()
	// Long enough for the worker's sessions on a to find it dead
	// (liveness × heartbeat) and start reconnecting.
	deadline := time.Now().Add(2 * time.Second)
	for w.Stats().Expired == 0 && time.Now().Before(deadline) {
		if rep, err := cb2.Request(ctx, "svc", []byte("meanwhile")); err != nil || string(rep[0]) != "meanwhile" {
			t.Fatalf("through b while a is down: %q, %v", rep, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if w.Stats().Expired == 0 {
		t.Fatal("the worker never noticed that a died")
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatalf("request held through b: %v", err)
	}
	if cancelled.Load() {
		t.Fatal("a's death cancelled a handler serving b")
	}
	a.Restart()
	harness.WaitService(t, ca, "svc")
	if rep, err := ca.Request(ctx, "svc", []byte("back")); err != nil || string(rep[0]) != "back" {
		t.Fatalf("through a after its restart: %q, %v", rep, err)
	}
	if s := w.Stats(); s.Connects <= connects || s.Lost != 0 {
		t.Errorf("stats %+v: want new connections to a (had %d) and nothing lost", s, connects)
	}
}
