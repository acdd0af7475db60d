package client_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	"github.com/majordomo-go/majordomo/worker"
)

// BenchmarkRequest measures one synchronous round trip through an
// in-process broker and worker.
func BenchmarkRequest(b *testing.B) {
	br := harness.StartBroker(b)
	harness.RunWorker(b, br.Endpoint, "echo", worker.HandlerFunc(harness.Echo))
	c := harness.Connect(b, br.Endpoint)
	harness.WaitService(b, c, "echo")
	ctx := context.Background()
	body := []byte("hello")
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Request(ctx, "echo", body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConcurrentSlowService measures rounds of 4 concurrent calls to
// one service whose handler takes 20 ms, with the default socket pool and
// with one socket: about 20 ms a round when the calls overlap, about 80 ms
// when they go one after the other.
func BenchmarkConcurrentSlowService(b *testing.B) {
	const n, work = 4, 20 * time.Millisecond
	br := harness.StartBroker(b)
	harness.RunWorker(b, br.Endpoint, "slow", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		time.Sleep(work)
		return req.Body, nil
	}), worker.WithConcurrency(n))
	for _, sockets := range []int{client.DefaultSockets, 1} {
		b.Run(fmt.Sprintf("sockets=%d", sockets), func(b *testing.B) {
			c := harness.Connect(b, br.Endpoint, client.WithSockets(sockets))
			harness.WaitService(b, c, "slow")
			ctx := context.Background()
			for b.Loop() {
				var wg sync.WaitGroup
				for range n {
					wg.Go(func() {
						if _, err := c.Request(ctx, "slow", []byte("x")); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
		})
	}
}
