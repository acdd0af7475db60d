package zmtp

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/leakcheck"
	"github.com/majordomo-go/majordomo/internal/zmtp/mech"
	"github.com/majordomo-go/majordomo/internal/zmtp/wire"
)

func TestMain(m *testing.M) { leakcheck.Main(m, "majordomo/internal/zmtp.") }

// A raw peer is a bare net.Conn that speaks ZMTP by hand, so that tests
// can send what no well-behaved library would and see exactly what the
// engine puts on the wire.

// dialRaw connects to a tcp:// endpoint; the connection is closed at
// cleanup and every read or write on it gives up after 20 s.
func dialRaw(t testing.TB, ep string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", strings.TrimPrefix(ep, "tcp://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return nc
}

// rawGreeting is a NULL greeting of ZMTP 3.minor.
func rawGreeting(minor byte) []byte {
	return wire.Greeting{Major: 3, Minor: minor, Mechanism: mech.Null}.Append(nil)
}

// rawReady is a READY command frame announcing typ (and id, if any).
func rawReady(typ, id string) []byte {
	md := mech.Metadata{{Name: "Socket-Type", Value: []byte(typ)}}
	if id != "" {
		md = append(md, mech.Property{Name: "Identity", Value: []byte(id)})
	}
	return wire.AppendCommand(nil, "READY", md.Append(nil))
}

// nullHandshake completes a NULL handshake as a typ peer speaking ZMTP
// 3.minor and returns the engine's greeting.
func nullHandshake(t testing.TB, nc net.Conn, minor byte, typ, id string) wire.Greeting {
	t.Helper()
	if _, err := nc.Write(append(rawGreeting(minor), rawReady(typ, id)...)); err != nil {
		t.Fatal(err)
	}
	var g [wire.GreetingSize]byte
	if _, err := io.ReadFull(nc, g[:]); err != nil {
		t.Fatalf("engine greeting: %v", err)
	}
	pg, err := wire.ParseGreeting(g[:])
	if err != nil {
		t.Fatalf("engine greeting %x: %v", g, err)
	}
	flags, body, err := readRawFrame(nc)
	if err != nil || flags&wire.FlagCommand == 0 || !wire.CommandIs(body, "READY") {
		t.Fatalf("engine READY: flags %#x %q %v", flags, body, err)
	}
	return pg
}

// readRawFrame reads one whole frame.
func readRawFrame(r io.Reader) (flags byte, body []byte, err error) {
	var h [9]byte
	if _, err := io.ReadFull(r, h[:2]); err != nil {
		return 0, nil, err
	}
	size := uint64(h[1])
	if h[0]&wire.FlagLong != 0 {
		if _, err := io.ReadFull(r, h[2:9]); err != nil {
			return 0, nil, err
		}
		size = binary.BigEndian.Uint64(h[1:9])
	}
	if size > 64<<20 {
		return 0, nil, errors.New("raw peer: frame over 64 MiB")
	}
	body = make([]byte, size)
	_, err = io.ReadFull(r, body)
	return h[0], body, err
}

// rawMessage encodes a message's frames.
func rawMessage(frames ...[]byte) []byte {
	var b []byte
	for i, f := range frames {
		var flags byte
		if i < len(frames)-1 {
			flags = wire.FlagMore
		}
		b = append(wire.AppendFrameHeader(b, flags, len(f)), f...)
	}
	return b
}

// waitClosed reads until the engine closes the connection and reports
// how long that took. Data the engine sends first is discarded.
func waitClosed(t testing.TB, nc net.Conn) time.Duration {
	t.Helper()
	start := time.Now()
	_, err := io.Copy(io.Discard, nc)
	if err != nil && !isEOF(err) {
		t.Fatalf("connection not closed by the engine: %v", err)
	}
	return time.Since(start)
}

// newSock makes a socket closed at cleanup.
func newSock(t testing.TB, ctx *Context, typ Type, o Options) *Socket {
	t.Helper()
	s, err := ctx.NewSocket(typ, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func bind(t testing.TB, s *Socket, ep string) string {
	t.Helper()
	bound, err := s.Bind(ep)
	if err != nil {
		t.Fatal(err)
	}
	return bound
}

// liveConns returns the socket's network connections.
func liveConns(s *Socket) []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cs []*conn
	for c := range s.live {
		cs = append(cs, c)
	}
	return cs
}

// queuedBytes is what the engine holds for a connection and has not yet
// handed to the kernel.
func (c *conn) queuedBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.out) + len(c.wbuf)
}
