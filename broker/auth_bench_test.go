package broker

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
)

// BenchmarkEchoSecurity measures echo requests through an in-process broker
// (two raw echo workers, one raw client keeping 100 requests in flight, 100
// byte bodies) without security, with CURVE, and with CURVE and a policy
// checked on every request. cpu-us/req is the process's CPU time per
// request, which a busy machine disturbs far less than req/s. Compare runs
// on one machine only, e.g.
//
//	go test -run - -bench EchoSecurity -count 3 ./broker
//	taskset -c 0 go test -run - -bench EchoSecurity -count 3 ./broker
func BenchmarkEchoSecurity(b *testing.B) {
	for _, mode := range []string{"off", "curve", "curve+policy"} {
		b.Run(mode, func(b *testing.B) { benchSecureEcho(b, mode, 100) })
	}
}

func benchSecureEcho(b *testing.B, mode string, window int) {
	p := newPKI(b, "client", "worker")
	cfg := tcpConfig()
	cfg.HeartbeatInterval = time.Second
	peerSec := func(string) *transport.Security { return nil }
	if mode != "off" {
		policy := ""
		if mode == "curve+policy" {
			policy = "worker register echo\nclient call echo\n"
		}
		cfg.Security = p.security(policy)
		peerSec = func(name string) *transport.Security { return p.curve(p.cert(name)) }
	}
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
		wg.Go(func() { benchSecureWorker(b, ep, sec, stop) })
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
	for br.Stats().Workers < 2 {
		time.Sleep(time.Millisecond)
	}
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
	// CPU time of the whole process (broker, workers, client and libzmq's
	// I/O threads) per request: unlike req/s, it hardly depends on what
	// else the machine is running.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/req")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchSecureWorker(b *testing.B, ep string, sec *transport.Security, stop chan struct{}) {
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
