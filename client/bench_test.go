package client_test

import (
	"context"
	"testing"

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
