package zmtp

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"math/rand"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/zmtp/wire"
)

// Hostile peers (issue 11, item 6): whatever a peer sends, the engine
// closes the connection, counts it, and goes on; nothing panics or leaks.

// Garbage is recognised as such and closed at once, long before the
// handshake deadline (an hour here, so a close can only come from the
// engine seeing the garbage).
func TestHostileGreetingsClosedAtOnce(t *testing.T) {
	rnd := make([]byte, 64)
	rand.New(rand.NewSource(1)).Read(rnd)
	rnd[0] = 0x17 // Not 0xFF: never a ZMTP signature.
	zmtp2 := []byte{0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 0x01, 0x05, 0x00, 0x00}
	zmtp31 := rawGreeting(1)
	cmdMore := wire.AppendCommand(nil, "READY", rawReady("DEALER", "")[2:])
	cmdMore[0] |= wire.FlagMore
	cases := []struct {
		name string
		send []byte
	}{
		{"random bytes", rnd},
		{"HTTP request", []byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")},
		// ZMTP 1.0: a bare identity frame (length 1, flags 0), then waits.
		{"ZMTP 1.0", []byte{0x01, 0x00}},
		// ZMTP 2.0: signature, revision 1, socket type, empty identity;
		// it then waits for ours, so only its version octet tells.
		{"ZMTP 2.0", zmtp2},
		{"version 2 in a whole greeting", func() []byte { g := rawGreeting(1); g[10] = 2; return g }()},
		{"mechanism mismatch", wire.Greeting{Major: 3, Minor: 1, Mechanism: "PLAIN"}.Append(nil)},
		{"message frame in the handshake", append(append([]byte{}, zmtp31...), rawMessage([]byte("hello"))...)},
		{"command with MORE in the handshake", append(append([]byte{}, zmtp31...), cmdMore...)},
		{"reserved flag bit in the handshake", append(append([]byte{}, zmtp31...), 0x84, 0)},
		{"READY of a PUB to a ROUTER", append(append([]byte{}, zmtp31...), rawReady("PUB", "")...)},
		{"handshake command over the limit", append(append([]byte{}, zmtp31...),
			binary.BigEndian.AppendUint64([]byte{wire.FlagCommand | wire.FlagLong}, 1<<40)...)},
	}
	ctx := NewContext()
	r := newSock(t, ctx, Router, Options{HandshakeTimeout: time.Hour})
	ep := bind(t, r, "tcp://127.0.0.1:*")
	for i, c := range cases {
		nc := dialRaw(t, ep)
		if _, err := nc.Write(c.send); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		waitClosed(t, nc)
		testutil.Eventually(t, 10*time.Second, c.name+" counted", func() bool { return r.Stats().HandshakeFailed == int64(i+1) })
	}
	if s := r.Stats(); s.Active != 0 || s.Accepted != int64(len(cases)) || s.Disconnected != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// Peers that send part of a greeting, or nothing, are closed at the
// handshake deadline.
func TestHalfOpenClosedAtDeadline(t *testing.T) {
	const deadline = 300 * time.Millisecond
	cases := []struct {
		name string
		send []byte
	}{
		{"nothing", nil},
		{"signature only", rawGreeting(1)[:10]},
		{"truncated greeting", rawGreeting(1)[:40]},
		{"greeting without READY", rawGreeting(1)},
		{"truncated READY", append(rawGreeting(1), rawReady("DEALER", "x")[:12]...)},
	}
	ctx := NewContext()
	r := newSock(t, ctx, Router, Options{HandshakeTimeout: deadline})
	ep := bind(t, r, "tcp://127.0.0.1:*")
	conns := make([]net.Conn, len(cases))
	start := time.Now()
	for i, c := range cases {
		conns[i] = dialRaw(t, ep)
		if _, err := conns[i].Write(c.send); err != nil {
			t.Fatal(err)
		}
	}
	for i, nc := range conns {
		waitClosed(t, nc)
		// A deadline cannot fire early: the lower bound is safe to check.
		if el := time.Since(start); el < deadline {
			t.Errorf("%s: closed after %v, before the %v deadline", cases[i].name, el, deadline)
		}
	}
	testutil.Eventually(t, 10*time.Second, "handshake failures counted", func() bool { return r.Stats().HandshakeFailed == int64(len(cases)) })
}

// After a valid handshake: malformed frames close the connection and are
// counted as protocol errors; an oversized frame is refused from its
// header alone.
func TestHostileFrames(t *testing.T) {
	const maxMsg = 32 << 20
	cases := []struct {
		name     string
		send     []byte
		tooLarge bool
	}{
		{"reserved flag bit", []byte{0x10, 1, 'x'}, false},
		{"command with MORE", append([]byte{wire.FlagCommand | wire.FlagMore}, wire.AppendPing(nil, wire.Ping{})[1:]...), false},
		{"command name past its end", []byte{wire.FlagCommand, 3, 9, 'P', 'I'}, false},
		{"command name with a digit", []byte{wire.FlagCommand, 3, 2, 'P', '1'}, false},
		{"empty command", []byte{wire.FlagCommand, 0}, false},
		{"PING with a 17-octet context", wire.AppendCommand(nil, "PING", make([]byte, 19)), false},
		{"long frame one over MaxMsgSize", binary.BigEndian.AppendUint64([]byte{wire.FlagLong}, maxMsg+1), true},
		{"long frame of 2^62", binary.BigEndian.AppendUint64([]byte{wire.FlagLong | wire.FlagMore}, 1<<62), true},
		{"long frame with the top bit", binary.BigEndian.AppendUint64([]byte{wire.FlagLong}, 1<<63), true},
	}
	ctx := NewContext()
	r := newSock(t, ctx, Router, Options{MaxMsgSize: maxMsg})
	ep := bind(t, r, "tcp://127.0.0.1:*")
	var proto, large int64
	for i, c := range cases {
		nc := dialRaw(t, ep)
		nullHandshake(t, nc, 1, "DEALER", "")
		testutil.Eventually(t, 10*time.Second, "handshake", func() bool { return r.Stats().Active == 1 })
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := nc.Write(c.send); err != nil {
			t.Fatal(err)
		}
		waitClosed(t, nc)
		if c.tooLarge {
			large++
		} else {
			proto++
		}
		testutil.Eventually(t, 10*time.Second, c.name+" counted", func() bool {
			s := r.Stats()
			return s.ProtocolErrors == proto && s.TooLarge == large && s.Disconnected == int64(i+1) && s.Active == 0
		})
		runtime.ReadMemStats(&after)
		// The engine must not have allocated the frame it refused.
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
			t.Errorf("%s: %d bytes allocated while refusing it", c.name, grew)
		}
	}
	// The socket still serves well-behaved peers.
	nc := dialRaw(t, ep)
	nullHandshake(t, nc, 1, "DEALER", "ok")
	nc.Write(rawMessage([]byte("still"), []byte("here")))
	if m := recvWait(t, r, 10*time.Second); len(m) != 3 || string(m[0]) != "ok" || string(m[2]) != "here" {
		t.Fatalf("after the hostile peers: %q", m)
	}
}

// The cap counts every accepted connection still open, handshaking or
// not: half-open peers must not get round it. The first refusal logs one
// line; every refusal is counted.
func TestMaxConnections(t *testing.T) {
	var logBuf testutil.SyncBuffer
	ctx := NewContext()
	r := newSock(t, ctx, Router, Options{MaxConnections: 3, HandshakeTimeout: time.Hour,
		Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	ep := bind(t, r, "tcp://127.0.0.1:*")
	// Two established peers and one that sends nothing.
	for i := 0; i < 2; i++ {
		nullHandshake(t, dialRaw(t, ep), 1, "DEALER", "")
	}
	dialRaw(t, ep)
	testutil.Eventually(t, 10*time.Second, "three accepted", func() bool { return r.Stats().Accepted == 3 && r.Stats().Active == 2 })
	for i := 1; i <= 3; i++ {
		nc := dialRaw(t, ep)
		nc.Write(rawGreeting(1))
		waitClosed(t, nc)
		testutil.Eventually(t, 10*time.Second, "refusal counted", func() bool { return r.Stats().RefusedLimit == int64(i) })
	}
	logged := logBuf.String()
	if strings.Count(logged, "connection limit reached") != 1 || !strings.Contains(logged, "limit=3") {
		t.Fatalf("log:\n%s", logged)
	}
	if s := r.Stats(); s.Active != 2 || s.HandshakeFailed != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// Thousands of idle connections cost a bounded amount each: a 4 KiB read
// buffer, two parked goroutines and the connection's state.
func TestManyIdleConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 connections")
	}
	const n = 2000
	ctx := NewContext()
	r := newSock(t, ctx, Router, Options{})
	ep := bind(t, r, "tcp://127.0.0.1:*")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, n)
	for i := range conns {
		nc, err := net.DialTimeout("tcp", strings.TrimPrefix(ep, "tcp://"), 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns[i] = nc
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := nc.Write(append(rawGreeting(1), rawReady("DEALER", "")...)); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	testutil.Eventually(t, 10*time.Second, "every connection established", func() bool { return r.Stats().Active == n })
	// The ROUTER's owner learns of them all.
	if _, err := r.WaitReadable(0); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	stack := int64(after.StackInuse) - int64(before.StackInuse)
	per := (heap + stack) / n
	t.Logf("%d idle connections: heap %+d B, stacks %+d B, %d B per connection (test's client side included); %d goroutines",
		n, heap, stack, per, runtime.NumGoroutine())
	// 4 KiB buffer + two goroutine stacks + state, with room for the
	// runtime's rounding; a regression to a 64 KiB buffer fails it.
	if per > 32<<10 {
		t.Errorf("%d B per idle connection", per)
	}
	if s := r.Stats(); s.Accepted != n || s.HandshakeFailed != 0 {
		t.Fatalf("stats %+v", s)
	}
	for _, nc := range conns {
		nc.Close()
	}
	testutil.Eventually(t, 10*time.Second, "every connection gone", func() bool { return r.Stats().Active == 0 && r.Stats().Disconnected == n })
}

// A peer that never reads: our output to it stays within SendHWM
// messages, sends beyond fail or are dropped, and the owner never blocks.
func TestPeerThatNeverReads(t *testing.T) {
	const hwm, size, sends = 10, 64 << 10, 2000
	body := make([]byte, size)
	for _, mandatory := range []bool{true, false} {
		ctx := NewContext()
		r := newSock(t, ctx, Router, Options{SendHWM: hwm, RouterMandatory: mandatory})
		ep := bind(t, r, "tcp://127.0.0.1:*")
		nc := dialRaw(t, ep)
		nullHandshake(t, nc, 1, "DEALER", "slow")
		testutil.Eventually(t, 10*time.Second, "handshake", func() bool { return r.Stats().Active == 1 })
		ok, again := 0, 0
		for i := 0; i < sends; i++ {
			switch err := r.Send([][]byte{[]byte("slow"), body}, true); {
			case err == nil:
				ok++
			case errors.Is(err, ErrAgain) && mandatory:
				again++
			default:
				t.Fatalf("send %d: %v", i, err)
			}
		}
		c := liveConns(r)[0]
		queued := c.queuedBytes()
		dropped := r.Stats().Dropped
		t.Logf("mandatory=%v: %d sends of %d KiB to a peer that never reads: %d taken, %d ErrAgain, %d dropped; %d B queued in the engine",
			mandatory, sends, size>>10, ok, again, dropped, queued)
		if limit := (hwm + 1) * (size + 16); queued > limit {
			t.Errorf("%d B queued, over SendHWM's %d", queued, limit)
		}
		if mandatory && (again == 0 || ok+again != sends || dropped != 0) {
			t.Errorf("with ROUTER_MANDATORY: %d sent, %d ErrAgain, %d dropped", ok, again, dropped)
		}
		if !mandatory && (dropped == 0 || dropped > int64(sends-hwm)) {
			t.Errorf("without ROUTER_MANDATORY: %d dropped", dropped)
		}
	}
}

// A peer that floods PINGs and never reads must not make the engine queue
// PONGs without bound.
func TestPingFloodFromPeerThatNeverReads(t *testing.T) {
	const pings = 400000
	ctx := NewContext()
	r := newSock(t, ctx, Router, Options{})
	ep := bind(t, r, "tcp://127.0.0.1:*")
	nc := dialRaw(t, ep)
	nullHandshake(t, nc, 1, "DEALER", "pinger")
	ping := wire.AppendPing(nil, wire.Ping{Context: []byte("0123456789abcdef")})
	flood := make([]byte, 0, len(ping)*10000)
	for len(flood)+len(ping) <= cap(flood) {
		flood = append(flood, ping...)
	}
	for sent := 0; sent < pings; sent += 10000 {
		if _, err := nc.Write(flood); err != nil {
			t.Fatal(err)
		}
	}
	// A message after the PINGs: once it arrives, every PING was read.
	nc.Write(rawMessage([]byte("last")))
	if m := recvWait(t, r, 30*time.Second); string(m[1]) != "last" {
		t.Fatalf("got %q", m)
	}
	queued := liveConns(r)[0].queuedBytes()
	t.Logf("%d PINGs (%d B of PONGs) from a peer that never reads: %d B queued", pings, pings*(len(ping)-2), queued)
	if queued > 64<<10 {
		t.Errorf("%d B of PONGs queued for a peer that does not read", queued)
	}
}

// Peers in their handshake that announce a command of nearly the 1 MiB
// handshake limit and send nothing more must not make the engine allocate
// that megabyte each before the deadline.
func TestHandshakeCommandHeaderAllocatesNothing(t *testing.T) {
	const n = 100
	r := newSock(t, NewContext(), Router, Options{HandshakeTimeout: 300 * time.Millisecond})
	ep := bind(t, r, "tcp://127.0.0.1:*")
	hdr := binary.BigEndian.AppendUint64(append(rawGreeting(1), wire.FlagCommand|wire.FlagLong), 1<<20-100)
	hdr = append(hdr, 5, 'R', 'E', 'A', 'D', 'Y')
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		nc := dialRaw(t, ep)
		if _, err := nc.Write(hdr); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, "every handshake timed out", func() bool { return r.Stats().HandshakeFailed == n })
	runtime.ReadMemStats(&after)
	grew := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d peers announcing a %d B READY: %d B allocated in all", n, 1<<20-100, grew)
	if grew > n<<17 {
		t.Errorf("%d B allocated for %d peers that sent %d B each", grew, n, len(hdr))
	}
}
