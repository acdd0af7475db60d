package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
	"github.com/majordomo-go/majordomo/worker"
)

// The tests of issue 15: after a timeout the client asks mmi.service
// before it resends.

// A request for a service nobody serves fails with ErrNoWorkers within
// twice the per-attempt timeout, and the broker holds the one copy sent.
func TestNoWorkersAfterTimeout(t *testing.T) {
	const timeout = 250 * time.Millisecond
	for _, v := range harness.Versions() {
		t.Run(v.String(), func(t *testing.T) {
			b := harness.StartBroker(t)
			c := harness.Connect(t, b.Endpoint, client.WithVersion(v), client.WithTimeout(timeout), client.WithRetries(3))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			_, err := c.Request(ctx, "nosuch", []byte("hello"))
			elapsed := time.Since(start)
			if !errors.Is(err, client.ErrNoWorkers) || !strings.Contains(err.Error(), `"nosuch"`) {
				t.Fatalf("err = %v, want ErrNoWorkers naming the service", err)
			}
			if errors.Is(err, client.ErrTimeout) {
				t.Fatalf("err = %v also matches ErrTimeout", err)
			}
			t.Logf("ErrNoWorkers after %v (timeout %v)", elapsed, timeout)
			if elapsed >= 2*timeout {
				t.Fatalf("ErrNoWorkers after %v, want under %v", elapsed, 2*timeout)
			}
			// One request and one mmi.service question reached the broker,
			// and the request is the one copy queued.
			s := b.B().Stats()
			if s.Queued != 1 || s.Requests-s.MMIRequests != 1 || s.MMIRequests != 1 {
				t.Fatalf("broker holds %d queued, %d requests (%d mmi); want 1 queued, 1 request, 1 mmi",
					s.Queued, s.Requests, s.MMIRequests)
			}
			// The client stays usable for the same service: a worker that
			// comes now gets the queued copy first (its reply is not ours),
			// then the new request.
			var runs atomic.Int32
			harness.RunWorker(t, b.Endpoint, "nosuch", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
				runs.Add(1)
				return req.Body, nil
			}), worker.WithVersion(v))
			harness.WaitService(t, c, "nosuch")
			rep, err := c.Request(ctx, "nosuch", []byte("again"))
			if err != nil || string(rep[0]) != "again" {
				t.Fatalf("second request: %q, %v", rep, err)
			}
			if n := runs.Load(); n != 2 {
				t.Fatalf("worker ran %d requests, want 2 (the queued copy and the new one)", n)
			}
		})
	}
}

// WithServiceCheck asks before the first send: no wait, nothing queued.
func TestServiceCheckFirst(t *testing.T) {
	b := harness.StartBroker(t)
	harness.RunWorker(t, b.Endpoint, "echo", worker.HandlerFunc(harness.Echo))
	c := harness.Connect(t, b.Endpoint, client.WithServiceCheck(), client.WithTimeout(5*time.Second))
	harness.WaitService(t, c, "echo")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Request(ctx, "nosuch", []byte("hello"))
	elapsed := time.Since(start)
	if !errors.Is(err, client.ErrNoWorkers) {
		t.Fatalf("err = %v, want ErrNoWorkers", err)
	}
	t.Logf("ErrNoWorkers after %v with WithServiceCheck (timeout 5s)", elapsed)
	if s := b.B().Stats(); s.Queued != 0 || s.Requests != s.MMIRequests {
		t.Fatalf("broker got %d non-mmi requests, %d queued; want none", s.Requests-s.MMIRequests, s.Queued)
	}
	rep, err := c.Request(ctx, "echo", []byte("checked"))
	if err != nil || string(rep[0]) != "checked" {
		t.Fatalf("echo with check: %q, %v", rep, err)
	}
	// mmi.* requests are never asked about.
	if ok, err := c.ServiceExists(ctx, "echo"); err != nil || !ok {
		t.Fatalf("ServiceExists with check: %v, %v", ok, err)
	}
}

// A worker slower than three timeouts runs the request once, and the
// client gets its one reply.
func TestSlowWorkerRunsOnce(t *testing.T) {
	const timeout = 100 * time.Millisecond
	b := harness.StartBroker(t)
	var runs atomic.Int32
	harness.RunWorker(t, b.Endpoint, "slow", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		runs.Add(1)
		select {
		case <-time.After(4 * timeout):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return req.Body, nil
	}), worker.WithConcurrency(2)) // A second copy would run at once.
	c := harness.Connect(t, b.Endpoint, client.WithTimeout(timeout), client.WithRetries(3))
	harness.WaitService(t, c, "slow")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	rep, err := c.Request(ctx, "slow", []byte("once"))
	elapsed := time.Since(start)
	if err != nil || string(rep[0]) != "once" {
		t.Fatalf("reply %q, %v", rep, err)
	}
	t.Logf("slow reply after %v (handler %v, timeout %v)", elapsed, 4*timeout, timeout)
	s := b.B().Stats()
	if n := runs.Load(); n != 1 || s.Dispatched != 1 || s.Queued != 0 || s.BusyWorkers != 0 {
		t.Fatalf("handler ran %d times; broker dispatched %d, %d queued, %d busy; want 1, 1, 0, 0",
			n, s.Dispatched, s.Queued, s.BusyWorkers)
	}
	if s.MMIRequests < 3 {
		t.Fatalf("%d mmi.service questions, want one per timeout (at least 3)", s.MMIRequests)
	}
}

// The broker is killed while a request waits for a slow worker and stays
// down for several timeouts: the questions go unanswered, so the client
// reconnects and resends, and the restarted broker gets the request.
func TestResendAfterBrokerDown(t *testing.T) {
	const timeout = 100 * time.Millisecond
	b := harness.StartBroker(t)
	n := requestAcross(t, b, 20*time.Second, func() {
		b.Stop()
		time.Sleep(5 * timeout) // Down for several attempts: questions unanswered.
		b.Restart()
	}, client.WithTimeout(timeout), client.WithRetries(20))
	if n != 2 {
		t.Fatalf("handler ran %d times, want 2 (once per broker)", n)
	}
}

// Questions share the mmi.service slot with the caller's own mmi.service
// requests: each answer reaches the one who asked.
func TestQuestionsAndMMIRequestsDoNotMix(t *testing.T) {
	const timeout = 100 * time.Millisecond
	b := harness.StartBroker(t)
	harness.RunWorker(t, b.Endpoint, "echo", worker.HandlerFunc(harness.Echo))
	c := harness.Connect(t, b.Endpoint, client.WithTimeout(timeout))
	harness.WaitService(t, c, "echo")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 8 {
		wg.Go(func() {
			svc := fmt.Sprintf("nobody%d", i)
			if _, err := c.Request(ctx, svc); !errors.Is(err, client.ErrNoWorkers) || !strings.Contains(err.Error(), svc) {
				errs <- fmt.Errorf("%s: %v", svc, err)
			}
		})
		wg.Go(func() {
			for range 20 {
				ok, err := c.ServiceExists(ctx, "echo")
				if err != nil || !ok {
					errs <- fmt.Errorf("ServiceExists(echo) = %v, %v", ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// The only worker of a service dies while holding the request: the next
// question is answered "404" and the call fails with ErrNoWorkers instead
// of waiting for ever.
func TestWorkerGoneWhileWaiting(t *testing.T) {
	const timeout = 100 * time.Millisecond
	b := harness.StartBroker(t)
	started := make(chan struct{}, 1)
	w, err := worker.New(b.Endpoint, "fragile", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}), worker.WithHeartbeat(harness.Heartbeat), worker.WithLogger(testutil.Logger()))
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(context.Background())
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		w.Run(wctx)
	}()
	defer func() { stop(); <-wdone }()
	c := harness.Connect(t, b.Endpoint, client.WithTimeout(timeout))
	harness.WaitService(t, c, "fragile")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		_, err := c.Request(ctx, "fragile", []byte("x"))
		res <- err
	}()
	<-started
	time.Sleep(3 * timeout) // Answered "200" at least once meanwhile.
	stop()
	<-wdone
	if err := <-res; !errors.Is(err, client.ErrNoWorkers) {
		t.Fatalf("err = %v, want ErrNoWorkers", err)
	}
	b.WaitStats("no workers", func(s broker.Stats) bool { return s.Workers == 0 })
}

// A peer that takes requests and never answers, not even mmi.service: each
// attempt's question goes unanswered, so the client resends on a new
// connection, retries times, then fails with ErrTimeout.
func TestUnansweredQuestionResends(t *testing.T) {
	const timeout, retries = 50 * time.Millisecond, 2
	zctx, err := transport.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	sink, err := zctx.NewSocket(transport.Router, transport.Options{Linger: 0})
	if err != nil {
		t.Fatal(err)
	}
	ep, err := sink.Bind("tcp://127.0.0.1:*")
	if err != nil {
		t.Fatal(err)
	}
	type seen struct{ peers, requests, questions int }
	quit := make(chan struct{})
	out := make(chan seen, 1)
	go func() {
		defer zctx.Term()
		defer sink.Close()
		peers := map[string]bool{}
		var s seen
		for {
			select {
			case <-quit:
				s.peers = len(peers)
				out <- s
				return
			default:
			}
			if ok, _ := sink.WaitReadable(5 * time.Millisecond); !ok {
				continue
			}
			for {
				f, _, err := sink.Recv(0, true)
				if err != nil {
					break
				}
				m, err := mdp.DecodeToBroker(f[1:])
				if err != nil {
					continue
				}
				peers[string(f[0])] = true
				if strings.HasPrefix(string(m.Service), "mmi.") {
					s.questions++
				} else {
					s.requests++
				}
			}
		}
	}()
	c := harness.Connect(t, ep, client.WithTimeout(timeout), client.WithRetries(retries))
	start := time.Now()
	_, err = c.Request(context.Background(), "svc", []byte("x"))
	elapsed := time.Since(start)
	close(quit)
	s := <-out
	if !errors.Is(err, client.ErrTimeout) || !strings.Contains(err.Error(), "no answer to mmi.") {
		t.Fatalf("err = %v, want ErrTimeout after unanswered questions", err)
	}
	t.Logf("gave up after %v: %v", elapsed, err)
	if s.requests != retries+1 || s.questions != retries+1 || s.peers != retries+1 {
		t.Fatalf("peer saw %d requests and %d questions from %d connections; want %d of each",
			s.requests, s.questions, s.peers, retries+1)
	}
}

// A worker fails without replying and the broker, with redelivery off,
// drops the request: mmi.workers shows the broker no longer holds it, so the
// client resends it on the same connection instead of waiting for ever.
func TestDroppedRequestResent(t *testing.T) {
	const timeout = 100 * time.Millisecond
	b := harness.StartBroker(t, func(cfg *broker.Config) { cfg.DisableRedelivery = true })
	var runs atomic.Int32
	harness.RunWorker(t, b.Endpoint, "flaky", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		if runs.Add(1) == 1 {
			return nil, errors.New("first attempt fails without a reply")
		}
		return req.Body, nil
	}))
	c := harness.Connect(t, b.Endpoint, client.WithTimeout(timeout), client.WithRetries(1))
	harness.WaitService(t, c, "flaky")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := c.Request(ctx, "flaky", []byte("again"))
	if err != nil || string(rep[0]) != "again" {
		t.Fatalf("reply %q, %v", rep, err)
	}
	if n := runs.Load(); n != 2 {
		t.Fatalf("handler ran %d times, want 2", n)
	}
	// Out of retries, the loss is an ErrTimeout that says so.
	runs.Store(0)
	c0 := harness.Connect(t, b.Endpoint, client.WithTimeout(timeout), client.WithRetries(0))
	if _, err := c0.Request(ctx, "flaky", []byte("x")); !errors.Is(err, client.ErrTimeout) ||
		!strings.Contains(err.Error(), "no longer holds") {
		t.Fatalf("err = %v, want ErrTimeout for a dropped request", err)
	}
}
