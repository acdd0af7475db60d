package client_test

import (
	"context"
	"testing"

	"github.com/majordomo-go/majordomo/worker"
)

// BenchmarkRequest measures one synchronous round trip through an
// in-process broker and worker.
func BenchmarkRequest(b *testing.B) {
	br := startBroker(b)
	runWorker(b, br.endpoint, "echo", worker.HandlerFunc(echo))
	c := connect(b, br.endpoint)
	waitService(b, c, "echo")
	ctx := context.Background()
	body := []byte("hello")
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Request(ctx, "echo", body); err != nil {
			b.Fatal(err)
		}
	}
}
