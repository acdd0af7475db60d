package client_test

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/mdp"
	"github.com/majordomo-go/majordomo/worker"
)

// 10,000 requests in flight at once on one pipeline: every one is answered
// exactly once.
func TestPipeline10000InFlight(t *testing.T) {
	for _, v := range harness.Versions() {
		t.Run(v.String(), func(t *testing.T) {
			const n = 10000
			// A slower heartbeat than the other tests use: 10,000 requests
			// under -race on a loaded machine can stall a loop for longer
			// than 3 × 50 ms, and needless purges would blur what this test
			// checks (that nothing is lost or duplicated).
			slowBeat := func(c *broker.Config) { c.HeartbeatInterval = 250 * time.Millisecond }
			b := harness.StartBroker(t, bigQueue, slowBeat)
			harness.RunWorker(t, b.Endpoint, "echo", worker.HandlerFunc(harness.Echo), worker.WithConcurrency(8), worker.WithVersion(v),
				worker.WithHeartbeat(250*time.Millisecond))
			c := harness.Connect(t, b.Endpoint, client.WithVersion(v))
			harness.WaitService(t, c, "echo")
			p, err := c.Pipeline(n)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()

			start := time.Now()
			for i := range n {
				if err := p.Send(ctx, "echo", binary.BigEndian.AppendUint32(nil, uint32(i))); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
			}
			sent := time.Since(start)
			seen := make([]bool, n)
			for range n {
				r, err := p.Recv(ctx)
				if err != nil {
					st := b.B().Stats()
					t.Fatalf("recv after %d: %v (outstanding %d); broker dropped %d (expired %d, attempts %d, unroutable %d), removed expired %d",
						countTrue(seen), err, p.Outstanding(), st.TotalDropped(), st.DroppedBy(broker.DropExpired),
						st.DroppedBy(broker.DropAttemptsExhausted), st.DroppedBy(broker.DropReplyUnroutable),
						st.RemovedBy(broker.RemovedExpired))
				}
				if !r.Final || r.Service != "echo" || len(r.Body) != 1 || len(r.Body[0]) != 4 {
					t.Fatalf("bad reply %+v", r)
				}
				id := binary.BigEndian.Uint32(r.Body[0])
				if id >= n || seen[id] {
					t.Fatalf("reply %d unexpected or duplicated", id)
				}
				seen[id] = true
			}
			elapsed := time.Since(start)
			if p.Outstanding() != 0 {
				t.Fatalf("outstanding %d", p.Outstanding())
			}
			t.Logf("%s: %d requests in flight: all sent in %v, all answered in %v (%.0f req/s)",
				v, n, sent, elapsed, n/elapsed.Seconds())
		})
	}
}

func countTrue(b []bool) int {
	n := 0
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}

func TestPipelineStreamAndReset(t *testing.T) {
	b := harness.StartBroker(t)
	harness.RunWorker(t, b.Endpoint, "stream", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		req.Partial([]byte("p"))
		return [][]byte{[]byte("f")}, nil
	}), worker.WithVersion(mdp.V2))
	c := harness.Connect(t, b.Endpoint, client.WithVersion(mdp.V2))
	harness.WaitService(t, c, "stream")
	p, err := c.Pipeline(2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Send(ctx, "stream"); err != nil {
		t.Fatal(err)
	}
	r1, err1 := p.Recv(ctx)
	r2, err2 := p.Recv(ctx)
	if err1 != nil || err2 != nil || r1.Final || string(r1.Body[0]) != "p" || !r2.Final || string(r2.Body[0]) != "f" {
		t.Fatalf("got %+v %v, %+v %v", r1, err1, r2, err2)
	}

	// Two requests nobody serves fill the window; Send blocks until Reset.
	for range 2 {
		if err := p.Send(ctx, "nobody"); err != nil {
			t.Fatal(err)
		}
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if err := p.Send(short, "nobody"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("send on full window: %v", err)
	}
	if _, err := p.Recv(short); !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("recv with nothing to come: %v", err)
	}
	n, err := p.Reset(ctx)
	if err != nil || n != 2 || p.Outstanding() != 0 {
		t.Fatalf("Reset = %d, %v; outstanding %d", n, err, p.Outstanding())
	}
	if err := p.Send(ctx, "stream"); err != nil {
		t.Fatal(err)
	}
	if r, err := p.Recv(ctx); err != nil || string(r.Body[0]) != "p" {
		t.Fatalf("after reset: %+v %v", r, err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Send(ctx, "stream"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}
