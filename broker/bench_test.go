package broker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
)

// BenchmarkEchoThroughBroker measures requests through an in-process broker
// with two raw echo workers and one raw client keeping a window of requests
// in flight. It measures the whole path (client, broker, workers share the
// machine), so compare it only with runs on the same machine.
func BenchmarkEchoThroughBroker(b *testing.B) {
	for _, window := range []int{1, 100} {
		b.Run(map[int]string{1: "sync", 100: "window100"}[window], func(b *testing.B) {
			benchEcho(b, window)
		})
	}
}

func benchEcho(b *testing.B, window int) {
	cfg := tcpConfig()
	cfg.HeartbeatInterval = time.Second
	br, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { br.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	ep := br.Endpoints()[0]

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			benchWorker(b, ep, stop)
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	zc, _ := transport.NewContext()
	defer zc.Term()
	c, _ := zc.NewSocket(transport.Dealer, transport.Options{})
	defer c.Close()
	c.Connect(ep)
	for br.Stats().Workers < 2 {
		time.Sleep(time.Millisecond)
	}
	req, _ := mdp.Encode(&mdp.Message{Version: mdp.V2, Role: mdp.RoleClient, Command: mdp.Request,
		Service: []byte("echo"), Body: [][]byte{make([]byte, 100)}})
	b.SetBytes(100)
	b.ReportAllocs()
	b.ResetTimer()
	sent, got := 0, 0
	for got < b.N {
		for sent < b.N && sent-got < window {
			if err := c.Send(req, false); err != nil {
				b.Fatal(err)
			}
			sent++
		}
		ok, err := c.WaitReadable(5 * time.Second)
		if err != nil || !ok {
			b.Fatalf("no reply after %d of %d: %v", got, b.N, err)
		}
		if _, _, err := c.Recv(0, true); err != nil {
			b.Fatal(err)
		}
		got++
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func benchWorker(b *testing.B, ep string, stop chan struct{}) {
	benchSecureWorker(b, ep, nil, stop)
}
