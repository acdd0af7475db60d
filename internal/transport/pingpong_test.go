package transport

import (
	"errors"
	"testing"
	"time"
)

// BenchmarkPingPong measures a raw DEALER->ROUTER echo round trip through
// this package, the transport's own cost with no broker in between.
func BenchmarkPingPong(b *testing.B) {
	for _, im := range impls {
		newCtx := im.new
		b.Run(im.name+"/sync", func(b *testing.B) { pingPong(b, newCtx, true, 1, nil, nil) })
		b.Run(im.name+"/window100", func(b *testing.B) { pingPong(b, newCtx, false, 100, nil, nil) })
	}
}

// pingPong echoes 100-byte messages from a DEALER (security dsec) through a
// ROUTER (rsec) that sends them back: with poll the ROUTER waits with
// WaitReadable before each receive; window is how many are in flight.
func pingPong(b *testing.B, newCtx func() (Context, error), poll bool, window int, rsec, dsec *Security) {
	zc, err := newCtx()
	if err != nil {
		b.Fatal(err)
	}
	defer zc.Term()
	r, _ := zc.NewSocket(Router, Options{Security: rsec})
	defer r.Close()
	ep, err := r.Bind("tcp://127.0.0.1:*")
	if err != nil {
		b.Fatal(err)
	}
	d, _ := zc.NewSocket(Dealer, Options{Security: dsec})
	defer d.Close()
	d.Connect(ep)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if poll {
				ok, err := r.WaitReadable(100 * time.Millisecond)
				if err != nil {
					return
				}
				if !ok {
					continue
				}
			}
			f, _, err := r.Recv(0, false)
			if errors.Is(err, ErrInterrupted) {
				continue // A blocking receive is interrupted by Go's own signals.
			}
			if err != nil {
				return
			}
			if len(f) == 2 && string(f[1]) == "stop" {
				return
			}
			r.Send(f, false)
		}
	}()
	msg := [][]byte{make([]byte, 100)}
	b.SetBytes(100)
	b.ReportAllocs()
	b.ResetTimer()
	if window > 1 {
		pipeline(b, d, msg, window)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		d.Send([][]byte{[]byte("stop")}, false)
		<-done
		return
	}
	for i := 0; i < b.N; i++ {
		d.Send(msg, false)
		if poll {
			d.WaitReadable(time.Second)
		}
		_, _, err := d.Recv(0, false)
		for errors.Is(err, ErrInterrupted) {
			_, _, err = d.Recv(0, false)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	d.Send([][]byte{[]byte("stop")}, false)
	<-done
}

// pipeline sends b.N copies of msg on d keeping window in flight, and
// receives as many replies.
func pipeline(b *testing.B, d Socket, msg [][]byte, window int) {
	b.Helper()
	sent, got := 0, 0
	for got < b.N {
		for sent < b.N && sent-got < window {
			d.Send(msg, false)
			sent++
		}
		if _, _, err := d.Recv(0, false); err != nil {
			b.Fatal(err)
		}
		got++
	}
}
