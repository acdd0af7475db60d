package titanic_test

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/titanic"
	"github.com/majordomo-go/majordomo/worker"
)

// TestProtocol checks every status frame of 9/TSP against a live server.
func TestProtocol(t *testing.T) {
	ep := startBroker(t)
	srv := startTitanic(t, testConfig(ep, t.TempDir()))
	c := connect(t, ep)

	// titanic.request: 200 and a UUID of 32 hex digits.
	id := submit(t, c, "echo", "hello", "world")
	if strings.ToLower(id) != id {
		t.Errorf("UUID %q: want lower case", id)
	}
	// titanic.reply while no worker serves echo: 300, every time.
	for range 3 {
		if rep := call(t, c, titanic.ServiceReply, id); !reflect.DeepEqual(rep, []string{"300"}) {
			t.Fatalf("titanic.reply pending: %q, want [300]", rep)
		}
	}
	// Unknown, malformed: 400.
	for _, bad := range []string{"0123456789abcdef0123456789abcdef", "nonsense", "", id + "0", strings.Repeat("g", 32)} {
		if rep := call(t, c, titanic.ServiceReply, bad); !reflect.DeepEqual(rep, []string{"400"}) {
			t.Errorf("titanic.reply %q: %q, want [400]", bad, rep)
		}
	}
	// The UUID is accepted in upper case too (9/TSP: 'A' to 'Z' or 'a' to 'z').
	if rep := call(t, c, titanic.ServiceReply, strings.ToUpper(id)); rep[0] != "300" {
		t.Errorf("titanic.reply upper case: %q, want [300]", rep)
	}
	// titanic.close of an unknown or malformed UUID: 200.
	for _, bad := range []string{"0123456789abcdef0123456789abcdef", "nonsense"} {
		if rep := call(t, c, titanic.ServiceClose, bad); !reflect.DeepEqual(rep, []string{"200"}) {
			t.Errorf("titanic.close %q: %q, want [200]", bad, rep)
		}
	}
	// A request with only a service name is stored, and its worker gets one
	// empty frame.
	bare := submit(t, c, "echo")
	// No service name: 400.
	if rep := call(t, c, titanic.ServiceRequest, ""); !reflect.DeepEqual(rep, []string{"400"}) {
		t.Errorf("titanic.request with empty service: %q, want [400]", rep)
	}

	// A worker arrives: the stored requests are dispatched.
	runWorker(t, ep, "echo", echo)
	if rep := awaitReply(t, c, id, 10*time.Second); !reflect.DeepEqual(rep, []string{"hello", "world"}) {
		t.Fatalf("reply %q, want [hello world]", rep)
	}
	if rep := awaitReply(t, c, bare, 10*time.Second); !reflect.DeepEqual(rep, []string{""}) {
		t.Fatalf("reply to bare request %q, want one empty frame", rep)
	}
	// titanic.reply is idempotent: the same answer again.
	for range 3 {
		if rep := call(t, c, titanic.ServiceReply, id); !reflect.DeepEqual(rep, []string{"200", "hello", "world"}) {
			t.Fatalf("titanic.reply again: %q", rep)
		}
	}
	// titanic.close: 200, then the UUID is unknown; closing again is 200.
	for range 2 {
		if rep := call(t, c, titanic.ServiceClose, id); !reflect.DeepEqual(rep, []string{"200"}) {
			t.Fatalf("titanic.close: %q, want [200]", rep)
		}
		if rep := call(t, c, titanic.ServiceReply, id); !reflect.DeepEqual(rep, []string{"400"}) {
			t.Fatalf("titanic.reply after close: %q, want [400]", rep)
		}
	}
	st := srv.srv.Stats()
	if st.Submitted != 2 || st.Replied != 2 || st.Closed != 1 || st.Invalid < 1 {
		t.Errorf("stats %+v", st)
	}
	if st.Store.Pending != 0 || st.Store.Replies != 1 {
		t.Errorf("store counts %+v, want 0 pending and 1 reply", st.Store)
	}
}

// TestDurableAcrossRestart: requests stored while their service has no
// worker survive a restart of Titanic and are then dispatched.
func TestDurableAcrossRestart(t *testing.T) {
	ep := startBroker(t)
	srv := startTitanic(t, testConfig(ep, t.TempDir()))
	c := connect(t, ep)
	var ids []string
	for i := range 20 {
		ids = append(ids, submit(t, c, "later", strings.Repeat("x", i)))
	}
	srv.restart()
	if n := srv.srv.Stats().Pending; n != 20 {
		t.Fatalf("pending after restart: %d, want 20", n)
	}
	runWorker(t, ep, "later", echo)
	for i, id := range ids {
		if rep := awaitReply(t, c, id, 10*time.Second); !reflect.DeepEqual(rep, []string{strings.Repeat("x", i)}) {
			t.Fatalf("reply %d: %q", i, rep)
		}
	}
}

// TestManyInFlight: the dispatcher keeps many requests at workers at once,
// not one at a time.
func TestManyInFlight(t *testing.T) {
	ep := startBroker(t)
	cfg := testConfig(ep, t.TempDir())
	cfg.MaxInFlight = 32
	cfg.MaxInFlightPerService = 32
	startTitanic(t, cfg)
	var cur, peak atomic.Int32
	runWorker(t, ep, "slow", func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
		cur.Add(-1)
		return req.Body, nil
	}, worker.WithConcurrency(32))
	c := connect(t, ep)
	const n = 128
	ids := make([]string, n)
	for i := range ids {
		ids[i] = submit(t, c, "slow", "x")
	}
	start := time.Now()
	for _, id := range ids {
		awaitReply(t, c, id, 20*time.Second)
	}
	// One at a time would take n × 50ms = 6.4s.
	if p := peak.Load(); p < 8 {
		t.Errorf("at most %d requests at workers at once, want many", p)
	}
	t.Logf("%d requests of 50ms in %v, peak %d in flight", n, time.Since(start), peak.Load())
}

// TestRetryWithBackoff: attempts that get no reply are retried until one
// does.
func TestRetryWithBackoff(t *testing.T) {
	ep := startBroker(t)
	cfg := testConfig(ep, t.TempDir())
	cfg.AttemptTimeout = 150 * time.Millisecond
	srv := startTitanic(t, cfg)
	var calls atomic.Int32
	runWorker(t, ep, "flaky", func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		if calls.Add(1) <= 2 {
			// Too slow: Titanic's attempt times out, and the late reply
			// goes to a socket it has closed.
			time.Sleep(400 * time.Millisecond)
			return [][]byte{[]byte("late")}, nil
		}
		return [][]byte{[]byte("finally")}, nil
	}, worker.WithConcurrency(4))
	c := connect(t, ep)
	id := submit(t, c, "flaky", "x")
	if rep := awaitReply(t, c, id, 20*time.Second); !reflect.DeepEqual(rep, []string{"finally"}) {
		t.Fatalf("reply %q", rep)
	}
	st := srv.srv.Stats()
	if calls.Load() != 3 || st.Timeouts < 2 || st.Retries < 2 || st.Attempts < 3 {
		t.Errorf("handler calls %d, stats %+v: want 3 calls, 2 timeouts and retries", calls.Load(), st)
	}
}

// TestWorkerLeaves: a service whose workers vanish keeps its requests in
// Titanic (the dispatcher asks mmi.service), and they go out when a worker
// comes back.
func TestWorkerLeaves(t *testing.T) {
	ep := startBroker(t)
	cfg := testConfig(ep, t.TempDir())
	cfg.AttemptTimeout = 300 * time.Millisecond
	srv := startTitanic(t, cfg)
	c := connect(t, ep)
	stop := runWorker(t, ep, "svc", echo)
	id := submit(t, c, "svc", "one")
	awaitReply(t, c, id, 10*time.Second)
	stop()
	ids := []string{submit(t, c, "svc", "two"), submit(t, c, "svc", "three")}
	time.Sleep(500 * time.Millisecond)
	if rep := call(t, c, titanic.ServiceReply, ids[0]); rep[0] != "300" {
		t.Fatalf("reply without worker: %q", rep)
	}
	attempts := srv.srv.Stats().Attempts
	time.Sleep(300 * time.Millisecond)
	if a := srv.srv.Stats().Attempts; a > attempts+2 {
		t.Errorf("attempts grew from %d to %d with no worker: requests should wait in Titanic", attempts, a)
	}
	runWorker(t, ep, "svc", echo)
	for _, id := range ids {
		awaitReply(t, c, id, 10*time.Second)
	}
}

// TestCloseBeforeDispatch: a request closed before its service has workers
// is never sent to it.
func TestCloseBeforeDispatch(t *testing.T) {
	ep := startBroker(t)
	srv := startTitanic(t, testConfig(ep, t.TempDir()))
	c := connect(t, ep)
	id := submit(t, c, "never", "x")
	if rep := call(t, c, titanic.ServiceClose, id); rep[0] != "200" {
		t.Fatal(rep)
	}
	var calls atomic.Int32
	runWorker(t, ep, "never", func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		calls.Add(1)
		return req.Body, nil
	})
	other := submit(t, c, "never", "y")
	awaitReply(t, c, other, 10*time.Second)
	if n := calls.Load(); n != 1 {
		t.Errorf("worker called %d times, want 1 (the closed request must not be sent)", n)
	}
	// The store's counters follow its commit: a reader may see the reply
	// just before Pending drops.
	drained := testutil.Poll(5*time.Second, func() bool { return srv.srv.Stats().Store.Pending == 0 })
	if st := srv.srv.Stats(); !drained {
		t.Errorf("store %+v", st.Store)
	}
}

// TestRetention: replies nobody closes expire after ReplyTTL; requests that
// never get a reply expire after RequestTTL; both are counted.
func TestRetention(t *testing.T) {
	ep := startBroker(t)
	cfg := testConfig(ep, t.TempDir())
	cfg.ReplyTTL = 300 * time.Millisecond
	cfg.RequestTTL = 300 * time.Millisecond
	cfg.SweepInterval = 20 * time.Millisecond
	srv := startTitanic(t, cfg)
	c := connect(t, ep)
	runWorker(t, ep, "echo", echo)
	replied := submit(t, c, "echo", "x")
	if rep := awaitReply(t, c, replied, 5*time.Second); rep[0] != "x" {
		t.Fatal(rep)
	}
	orphan := submit(t, c, "nobody", "x")
	testutil.Eventually(t, 5*time.Second, "expiry", func() bool {
		st := srv.srv.Stats()
		return st.ExpiredReplies == 1 && st.ExpiredRequests == 1
	})
	for _, id := range []string{replied, orphan} {
		if rep := call(t, c, titanic.ServiceReply, id); rep[0] != "400" {
			t.Errorf("reply after expiry: %q, want 400", rep)
		}
	}
	if st := srv.srv.Stats(); st.Store.Pending != 0 || st.Store.Replies != 0 || st.Pending != 0 {
		t.Errorf("after expiry: %+v", st)
	}
}

// TestGroupCommit: many concurrent submissions share transactions, and each
// is answered only after its transaction committed.
func TestGroupCommit(t *testing.T) {
	ep := startBroker(t)
	cfg := testConfig(ep, t.TempDir())
	cfg.RequestWorkers = 64
	srv := startTitanic(t, cfg)
	const clients, each = 32, 20
	var wg sync.WaitGroup
	for range clients {
		c := connect(t, ep)
		wg.Go(func() {
			for range each {
				submit(t, c, "nobody", "x")
			}
		})
	}
	wg.Wait()
	st := srv.srv.Stats()
	if st.Submitted != clients*each || st.Store.Pending != clients*each {
		t.Fatalf("stats %+v", st)
	}
	if st.Commits >= st.CommittedOps || st.MaxBatch < 2 {
		t.Errorf("%d commits for %d ops (largest batch %d): want batches", st.Commits, st.CommittedOps, st.MaxBatch)
	}
	t.Logf("%d ops in %d commits, mean batch %.1f, largest %d, mean commit %v", st.CommittedOps, st.Commits,
		float64(st.CommittedOps)/float64(st.Commits), st.MaxBatch, st.CommitTime/time.Duration(st.Commits))
}
