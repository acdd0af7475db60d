package broker

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/testutil"
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
	benchEchoWith(b, cfg, func(string) *transport.Security { return nil }, window)
}

// benchEchoWith runs a broker with cfg, two raw echo workers and one raw
// client keeping window requests in flight; peerSec gives the security of
// the peer of each role ("worker", "client").
func benchEchoWith(b *testing.B, cfg Config, peerSec func(role string) *transport.Security, window int) {
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
		sec := peerSec("worker")
		wg.Go(func() { benchWorker(b, ep, sec, stop) })
	}
	defer func() { close(stop); wg.Wait() }()

	zc, _ := transport.NewContext()
	defer zc.Term()
	c, err := zc.NewSocket(transport.Dealer, transport.Options{Security: peerSec("client")})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.Connect(ep)
	testutil.Eventually(b, testutil.WaitLimit, "2 workers", func() bool { return br.Stats().Workers == 2 })
	req, _ := mdp.Encode(&mdp.Message{Version: mdp.V2, Role: mdp.RoleClient, Command: mdp.Request,
		Service: []byte("echo"), Body: [][]byte{make([]byte, 100)}})
	b.SetBytes(100)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
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
	// CPU time of the whole process (broker, workers and client) per
	// request: unlike req/s, it hardly depends on what else the machine is
	// running.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/req")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchWorker is a raw 18/MDP echo worker for service "echo".
func benchWorker(b *testing.B, ep string, sec *transport.Security, stop chan struct{}) {
	zc, _ := transport.NewContext()
	defer zc.Term()
	w, err := zc.NewSocket(transport.Dealer, transport.Options{Security: sec})
	if err != nil {
		b.Error(err)
		return
	}
	defer w.Close()
	w.Connect(ep)
	ready, _ := mdp.Encode(&mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Ready, Service: []byte("echo")})
	w.Send(ready, false)
	out := make([][]byte, 0, 8)
	for {
		select {
		case <-stop:
			return
		default:
		}
		ok, err := w.WaitReadable(10 * time.Millisecond)
		if err != nil {
			b.Error(err)
			return
		}
		if !ok {
			continue
		}
		for {
			f, _, err := w.Recv(0, true)
			if err != nil {
				break
			}
			m, err := mdp.DecodeFromBroker(f)
			if err != nil || m.Command != mdp.Request {
				continue
			}
			reply := mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Final, Client: m.Client, Body: m.Body}
			out, _ = mdp.Append(out[:0], &reply)
			w.Send(out, false)
		}
	}
}
