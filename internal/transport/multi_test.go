package transport

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// routers binds n ROUTER sockets and connects a DEALER to each.
func routers(t *testing.T, newCtx func() (Context, error), n int) ([]Socket, []Socket) {
	t.Helper()
	zc := newTestContext(t, newCtx)
	var rs, ds []Socket
	for i := 0; i < n; i++ {
		r, d, _ := connectPair(t, zc, fmt.Sprint("d", i))
		rs, ds = append(rs, r), append(ds, d)
	}
	return rs, ds
}

func TestPollerSeveralSockets(t *testing.T) {
	forEach(t, func(t *testing.T, newCtx func() (Context, error)) {
		rs, ds := routers(t, newCtx, 3)
		p, err := NewPoller(rs...)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		// Nothing yet: a short wait times out.
		start := time.Now()
		if ready, err := p.Wait(30 * time.Millisecond); ready != 0 || err != nil {
			t.Fatalf("idle Wait = %b, %v", ready, err)
		}
		if el := time.Since(start); el < 25*time.Millisecond {
			t.Fatalf("idle Wait returned after %v", el)
		}
		// One message on socket 2, then on socket 0: each is reported.
		for _, i := range []int{2, 0, 1, 2} {
			if err := ds[i].Send([][]byte{[]byte(fmt.Sprint("to", i))}, false); err != nil {
				t.Fatal(err)
			}
			ready, err := p.Wait(2 * time.Second)
			if err != nil || ready&(1<<i) == 0 {
				t.Fatalf("Wait after a send on %d = %b, %v", i, ready, err)
			}
			f, _, err := rs[i].Recv(0, true)
			if err != nil || string(f[1]) != fmt.Sprint("to", i) {
				t.Fatalf("Recv %d: %q %v", i, f, err)
			}
			if _, _, err := rs[i].Recv(0, true); !errors.Is(err, ErrAgain) {
				t.Fatalf("drain %d: %v", i, err)
			}
		}
	})
}

// A burst of messages from many senders, received only through Wait and
// non-blocking Recv, all arrives: no ZMQ_FD edge is lost.
func TestPollerNoLostWakeups(t *testing.T) {
	forEach(t, func(t *testing.T, newCtx func() (Context, error)) {
		rs, ds := routers(t, newCtx, 4)
		p, err := NewPoller(rs...)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		const per = 2000
		// The dealers belong to one sender goroutine each.
		var wg sync.WaitGroup
		for i := range ds {
			wg.Add(1)
			go func(d Socket) {
				defer wg.Done()
				for k := 0; k < per; k++ {
					if err := d.Send([][]byte{[]byte("m")}, false); err != nil {
						t.Error(err)
						return
					}
					if k%200 == 0 {
						time.Sleep(time.Millisecond) // Let the receiver go idle.
					}
				}
			}(ds[i])
		}
		got := make([]int, len(rs))
		total := 0
		deadline := time.Now().Add(20 * time.Second)
		for total < per*len(rs) && time.Now().Before(deadline) {
			ready, err := p.Wait(time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if ready == 0 {
				// A timeout with a message waiting is a lost wake-up.
				if again, _ := p.Check(); again != 0 {
					t.Fatalf("Wait timed out with sockets %b readable", again)
				}
			}
			for i := range rs {
				if ready&(1<<i) == 0 {
					continue
				}
				for n := 0; n < 64; n++ { // A bounded batch, as a loop does.
					if _, _, err := rs[i].Recv(0, true); err != nil {
						break
					}
					got[i]++
					total++
				}
			}
		}
		wg.Wait()
		if total != per*len(rs) {
			t.Fatalf("received %v, want %d each", got, per)
		}
	})
}

func TestPollerWake(t *testing.T) {
	forEach(t, func(t *testing.T, newCtx func() (Context, error)) {
		rs, _ := routers(t, newCtx, 1)
		p, err := NewPoller(rs...)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		go func() {
			time.Sleep(20 * time.Millisecond)
			p.Wake()
		}()
		start := time.Now()
		if _, err := p.Wait(-1); !errors.Is(err, ErrWoken) {
			t.Fatalf("Wait = %v, want ErrWoken", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("Wake did not interrupt Wait")
		}
		// A Wake before Wait is not lost.
		p.Wake()
		if _, err := p.Wait(5 * time.Second); !errors.Is(err, ErrWoken) {
			t.Fatalf("Wait after Wake = %v", err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Wait(0); !errors.Is(err, ErrClosed) {
			t.Fatalf("Wait after Close = %v", err)
		}
	})
}

func TestPollerArguments(t *testing.T) {
	if _, err := NewPoller(); err == nil {
		t.Fatal("NewPoller with no socket")
	}
	if _, err := NewPoller(fakeSocket{}); err == nil {
		t.Fatal("NewPoller with a foreign socket")
	}
}

type fakeSocket struct{ Socket }

func TestPubSub(t *testing.T) {
	zc, err := NewContext()
	if err != nil {
		t.Fatal(err)
	}
	defer zc.Term()
	pub, err := NewPub(zc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ep, err := pub.Bind("tcp://127.0.0.1:*")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := NewSub(zc, Options{}, []byte("news"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.Connect(ep); err != nil {
		t.Fatal(err)
	}
	// Subscriptions propagate asynchronously: publish until one arrives.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := pub.Send([][]byte{[]byte("sports"), []byte("x")}, true); err != nil {
			t.Fatal(err)
		}
		if err := pub.Send([][]byte{[]byte("news.world"), []byte("hello")}, true); err != nil {
			t.Fatal(err)
		}
		ok, err := sub.WaitReadable(20 * time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no message reached the subscriber")
		}
	}
	f, _, err := sub.Recv(0, true)
	if err != nil || len(f) != 2 || string(f[0]) != "news.world" || string(f[1]) != "hello" {
		t.Fatalf("got %q %v", f, err)
	}
}
