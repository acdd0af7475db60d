package zmtp

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/testutil"
)

func recvWait(t *testing.T, s *Socket, d time.Duration) [][]byte {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ok, err := s.WaitReadable(time.Until(deadline))
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		m, _, err := s.Recv(0, true)
		if err == ErrAgain {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	t.Fatalf("no message within %v", d)
	return nil
}

func endpoints(t *testing.T) []string {
	return []string{
		"tcp://127.0.0.1:*",
		"ipc://" + filepath.Join(t.TempDir(), "s.sock"),
		fmt.Sprintf("ipc://@zmtp-test-%d", time.Now().UnixNano()),
		fmt.Sprintf("inproc://test-%d", time.Now().UnixNano()),
	}
}

// routerDealer binds a ROUTER to ep and connects a DEALER to it, both
// closed when the test ends.
func routerDealer(t *testing.T, ep string, ro, do Options) (r, d *Socket) {
	t.Helper()
	ctx := NewContext()
	r, err := ctx.NewSocket(Router, ro)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	bound, err := r.Bind(ep)
	if err != nil {
		t.Fatal(err)
	}
	d, err = ctx.NewSocket(Dealer, do)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.Connect(bound); err != nil {
		t.Fatal(err)
	}
	return r, d
}

func TestRouterDealerEcho(t *testing.T) {
	for _, ep := range endpoints(t) {
		t.Run(ep[:3], func(t *testing.T) {
			r, d := routerDealer(t, ep, Options{RouterMandatory: true}, Options{Identity: []byte("me")})
			big := bytes.Repeat([]byte("x"), 300000)
			for i := 0; i < 50; i++ {
				if err := d.Send([][]byte{[]byte("hello"), {}, big[:i*6000]}, false); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < 50; i++ {
				m := recvWait(t, r, 5*time.Second)
				if len(m) != 4 || string(m[0]) != "me" || string(m[1]) != "hello" || len(m[2]) != 0 || len(m[3]) != i*6000 {
					t.Fatalf("message %d: %d frames, id %q", i, len(m), m[0])
				}
				if err := r.Send([][]byte{m[0], []byte("back"), m[3]}, true); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < 50; i++ {
				m := recvWait(t, d, 5*time.Second)
				if len(m) != 2 || string(m[0]) != "back" || len(m[1]) != i*6000 {
					t.Fatalf("reply %d: %q", i, m)
				}
			}
			if err := r.Send([][]byte{[]byte("nobody"), []byte("x")}, true); err != ErrUnroutable {
				t.Fatalf("send to unknown peer: %v", err)
			}
		})
	}
}

// A ROUTER_MANDATORY send to a peer whose connection is closing, before
// the owner has seen it go, fails with ErrUnroutable as libzmq's
// EHOSTUNREACH does, not ErrAgain: the peer is gone, not slow, and the
// broker counts the two apart (reply_unroutable, reply_blocked).
func TestRouterSendToClosingPeer(t *testing.T) {
	for _, ep := range endpoints(t) {
		t.Run(ep[:3], func(t *testing.T) {
			r, d := routerDealer(t, ep, Options{RouterMandatory: true}, Options{Identity: []byte("me")})
			if err := d.Send([][]byte{[]byte("hi")}, false); err != nil {
				t.Fatal(err)
			}
			recvWait(t, r, 5*time.Second)
			p := r.routes["me"]
			if p == nil || p.link == nil {
				t.Fatal("no route to the dealer")
			}
			p.link.close()
			// trySend, not Send: Send would first take the detach the
			// closing connection posts, which may or may not be there yet.
			if err := r.trySend([][]byte{[]byte("me"), []byte("x")}); err != ErrUnroutable {
				t.Fatalf("send to a closing peer: %v, want ErrUnroutable", err)
			}
		})
	}
}

// Sends made after Hold leave in one write per connection at the Flush;
// without Hold each send is its own write.
func TestHoldBatchesWrites(t *testing.T) {
	for _, ep := range endpoints(t)[:2] { // Connections, not inproc links.
		t.Run(ep[:3], func(t *testing.T) {
			r, d := routerDealer(t, ep, Options{}, Options{})
			// The first message waits for the connection; its arrival
			// proves the handshake is done.
			if err := d.Send([][]byte{[]byte("hi")}, false); err != nil {
				t.Fatal(err)
			}
			recvWait(t, r, 5*time.Second)
			// The connection's writer sent what waited for the handshake;
			// once it is idle, the owner writes itself.
			testutil.Eventually(t, 5*time.Second, "writer idle", func() bool {
				d.sync() // The owner learns of the connection.
				c, ok := d.pipes[0].link.(*conn)
				if !ok {
					return false
				}
				c.mu.Lock()
				defer c.mu.Unlock()
				return !c.writing
			})
			const n = 50
			burst := func(hold bool) int64 {
				before := d.Stats().Flushes
				if hold {
					d.Hold()
				}
				for i := range n {
					if err := d.Send([][]byte{fmt.Appendf(nil, "m%d", i)}, true); err != nil {
						t.Fatal(err)
					}
				}
				d.Flush()
				for i := range n {
					if m := recvWait(t, r, 5*time.Second); string(m[1]) != fmt.Sprintf("m%d", i) {
						t.Fatalf("message %d: %q", i, m)
					}
				}
				return d.Stats().Flushes - before
			}
			if got := burst(true); got != 1 {
				t.Errorf("%d held sends took %d writes, want 1", n, got)
			}
			if got := burst(false); got != n {
				t.Errorf("%d sends without Hold took %d writes, want %d", n, got, n)
			}
		})
	}
}
