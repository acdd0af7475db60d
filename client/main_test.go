package client_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/leakcheck"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	"github.com/majordomo-go/majordomo/worker"
)

// TestMain fails the run if any goroutine of the client, worker or broker
// packages outlives the tests: every test must clean up after itself.
func TestMain(m *testing.M) {
	leakcheck.Main(m, "majordomo/client.", "majordomo/worker.", "majordomo/broker.")
}

// requestAcross sends a request for "svc" through a client with opts, to a
// worker that holds the request's first run until its broker goes away;
// once the worker has it, disrupt takes the broker away (and back). The
// request must still get its reply within limit. It returns how many
// times the handler ran.
func requestAcross(t *testing.T, b *harness.Broker, limit time.Duration, disrupt func(), opts ...client.Option) int32 {
	t.Helper()
	var runs atomic.Int32
	got := make(chan struct{}, 10)
	harness.RunWorker(t, b.Endpoint, "svc", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		n := runs.Add(1)
		got <- struct{}{}
		if n == 1 {
			<-ctx.Done() // Held until the broker goes away.
			return nil, context.Cause(ctx)
		}
		return req.Body, nil
	}))
	c := harness.Connect(t, b.Endpoint, opts...)
	harness.WaitService(t, c, "svc")
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	type result struct {
		rep [][]byte
		err error
	}
	res := make(chan result, 1)
	go func() {
		rep, err := c.Request(ctx, "svc", []byte("survivor"))
		res <- result{rep, err}
	}()
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("request never reached the worker")
	}
	disrupt()
	r := <-res
	if r.err != nil {
		t.Fatalf("request across the broker's outage: %v", r.err)
	}
	if string(r.rep[0]) != "survivor" {
		t.Fatalf("reply %q", r.rep)
	}
	return runs.Load()
}
