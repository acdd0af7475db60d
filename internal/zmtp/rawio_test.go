package zmtp

import (
	"net"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/testutil"
)

// An end of stream that arrives together with a peer's last data raises no
// readiness event of its own after the reader has read that data: the
// reader must still notice it (rawio.go, conn.armEOFCheck).
func TestEndOfStreamWithLastData(t *testing.T) {
	r := newSock(t, NewContext(), Router, Options{RecvHWM: 1})
	ep := bind(t, r, "tcp://127.0.0.1:*")
	nc := dialRaw(t, ep)
	nullHandshake(t, nc, 1, "DEALER", "")
	if _, err := nc.Write(rawMessage([]byte("one"))); err != nil {
		t.Fatal(err)
	}
	// With RecvHWM 1 the reader now waits for the owner to take "one"
	// before it reads again, so "two" and the FIN reach the socket's
	// receive queue before that read: one readiness event for both.
	testutil.Eventually(t, 10*time.Second, "reader waiting for room", func() bool {
		r.in.mu.Lock()
		defer r.in.mu.Unlock()
		return r.in.waiting == 1
	})
	if _, err := nc.Write(rawMessage([]byte("two"))); err != nil {
		t.Fatal(err)
	}
	nc.(*net.TCPConn).CloseWrite()
	for _, want := range []string{"one", "two"} {
		if m := recvWait(t, r, 10*time.Second); len(m) != 2 || string(m[1]) != want {
			t.Fatalf("got %q, want %q", m, want)
		}
	}
	waitClosed(t, nc)
	testutil.Eventually(t, 10*time.Second, "disconnection counted", func() bool {
		s := r.Stats()
		return s.Disconnected == 1 && s.Active == 0
	})
}
