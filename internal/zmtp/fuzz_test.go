package zmtp

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/zmtp/wire"
)

// FuzzConnAfterHandshake feeds arbitrary bytes to a real connection's
// reader after a valid greeting and NULL handshake, over loopback TCP,
// while the ROUTER's owner receives and echoes whatever whole messages come
// out. A panic anywhere in the engine fails the run; so does a connection
// the engine neither serves to the end of its input nor closes.
func FuzzConnAfterHandshake(f *testing.F) {
	f.Add(rawMessage([]byte("hello"), nil, make([]byte, 300)))
	f.Add(wire.AppendPing(nil, wire.Ping{TTL: 1, Context: []byte("ctx")}))
	f.Add(wire.AppendCommand(nil, "SUBSCRIBE", []byte("t")))
	f.Add(wire.AppendError(nil, "bye"))
	f.Add([]byte{wire.FlagLong, 0, 0, 0, 0, 0, 0x10, 0, 0, 'x'})
	f.Add([]byte{0x81, 0})
	r, err := NewContext().NewSocket(Router, Options{MaxMsgSize: 1 << 20, MaxFrames: 64, HandshakeTimeout: 5 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	ep, err := r.Bind("tcp://127.0.0.1:*")
	if err != nil {
		f.Fatal(err)
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() { // The owner: the only goroutine that uses r.
		defer close(stopped)
		defer r.Close()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if ok, _ := r.WaitReadable(20 * time.Millisecond); !ok {
				continue
			}
			if m, _, err := r.Recv(0, true); err == nil {
				r.Send(m, true)
			}
		}
	}()
	f.Cleanup(func() { close(stop); <-stopped })
	hello := append(rawGreeting(1), rawReady("DEALER", "")...)
	f.Fuzz(func(t *testing.T, data []byte) {
		nc, err := net.DialTimeout("tcp", strings.TrimPrefix(ep, "tcp://"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write(hello); err != nil {
			t.Fatal(err)
		}
		nc.Write(data) // The engine may already have closed on bad input.
		nc.(*net.TCPConn).CloseWrite()
		// The engine closes once it has read to the end of the input.
		if _, err := io.Copy(io.Discard, nc); err != nil && !isEOF(err) {
			t.Fatalf("engine did not close the connection: %v", err)
		}
	})
}
