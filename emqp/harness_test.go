package emqp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/emqp/wire"
	"github.com/majordomo-go/majordomo/internal/leakcheck"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/transport"
)

func TestMain(m *testing.M) {
	leakcheck.Main(m, "majordomo/emqp.", "majordomo/internal/transport.")
}

// Test timing: short, so that expiry is seen within a test.
const (
	testInterval = 100 * time.Millisecond
	testTimeout  = 400 * time.Millisecond
	waitLimit    = 5 * time.Second
)

// testServer is a running server and the contexts of the test's peers.
type testServer struct {
	t    testing.TB
	s    *Server
	ep   Endpoints
	zctx transport.Context // DEALER peers.
	pctx transport.Context // SUB peers.
	err  chan error
	ids  atomic.Int64
	// peers to close at cleanup, before the contexts.
	peers []transport.Socket
}

func startServer(t testing.TB, tweak ...func(*Config)) *testServer {
	t.Helper()
	cfg := Config{
		Frontend:          "tcp://127.0.0.1:*",
		Backend:           "tcp://127.0.0.1:*",
		Admin:             "tcp://127.0.0.1:*",
		PubIn:             "tcp://127.0.0.1:*",
		PubOut:            "tcp://127.0.0.1:*",
		HeartbeatInterval: testInterval,
		HeartbeatTimeout:  testTimeout,
		Logger:            testutil.Logger(),
	}
	for _, f := range tweak {
		f(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, s: s, ep: s.Endpoints(), err: make(chan error, 1)}
	if ts.zctx, err = transport.NewContext(); err != nil {
		t.Fatal(err)
	}
	if ts.pctx, err = transport.NewContext(); err != nil {
		t.Fatal(err)
	}
	go func() { ts.err <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		s.Close()
		select {
		case <-ts.err:
		case <-time.After(waitLimit):
			t.Error("Run did not return after Close")
		}
		for _, p := range ts.peers {
			p.Close()
		}
		ts.zctx.Term()
		ts.pctx.Term()
	})
	return ts
}

// peer is a DEALER speaking eMQP frame by frame, owned by the test
// goroutine.
type peer struct {
	ts       *testServer
	t        testing.TB
	name     string
	sock     transport.Socket
	front    int  // The server's socket it is connected to (sockFront...).
	autoBeat bool // Send HEARTBEAT while waiting, as a live job manager does.
	lastBeat time.Time
}

func (ts *testServer) dial(endpoint, name string) *peer {
	ts.t.Helper()
	sock, err := ts.zctx.NewSocket(transport.Dealer, transport.Options{Identity: []byte(name), Linger: 0})
	if err != nil {
		ts.t.Fatal(err)
	}
	if err := sock.Connect(endpoint); err != nil {
		ts.t.Fatal(err)
	}
	ts.peers = append(ts.peers, sock)
	front := map[string]int{ts.ep.Frontend: sockFront, ts.ep.Backend: sockBack, ts.ep.Admin: sockAdmin, ts.ep.PubIn: sockPubIn}
	return &peer{ts: ts, t: ts.t, name: name, sock: sock, front: front[endpoint]}
}

func (ts *testServer) msgid() string { return fmt.Sprintf("msg-%04d", ts.ids.Add(1)) }

// sendRaw sends frames as given.
func (p *peer) sendRaw(frames ...string) {
	p.t.Helper()
	out := make([][]byte, len(frames))
	for i, f := range frames {
		out[i] = []byte(f)
	}
	if err := p.sock.Send(out, false); err != nil {
		p.t.Fatalf("%s: send: %v", p.name, err)
	}
}

// send sends a command with a fresh msgid and returns the msgid.
func (p *peer) send(cmd string, args ...string) string {
	p.t.Helper()
	id := p.ts.msgid()
	p.sendRaw(append([]string{"", wire.Protocol, cmd, id}, args...)...)
	return id
}

func (p *peer) close() { p.sock.Close() }

// recv returns the next message, or nil after d. HEARTBEATs are returned
// like anything else.
func (p *peer) recv(d time.Duration) [][]byte {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		if p.autoBeat && time.Since(p.lastBeat) >= testInterval {
			p.send("HEARTBEAT", "0")
			p.lastBeat = time.Now()
		}
		ok, err := p.sock.WaitReadable(min(left, testInterval/2))
		if err != nil {
			p.t.Fatalf("%s: wait: %v", p.name, err)
		}
		if !ok {
			continue
		}
		f, _, err := p.sock.Recv(0, true)
		if err != nil {
			if errors.Is(err, transport.ErrAgain) {
				continue
			}
			p.t.Fatalf("%s: recv: %v", p.name, err)
		}
		return f
	}
}

// expect returns the next message with command cmd, skipping HEARTBEATs;
// any other command fails the test.
func (p *peer) expect(cmd string) [][]byte {
	p.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		f := p.recv(time.Until(deadline))
		if f == nil {
			break
		}
		if len(f) < 4 || string(f[0]) != "" || string(f[1]) != wire.Protocol {
			p.t.Fatalf("%s: not eMQP: %q", p.name, f)
		}
		if string(f[2]) == "HEARTBEAT" && cmd != "HEARTBEAT" {
			continue
		}
		if string(f[2]) != cmd {
			p.t.Fatalf("%s: got %s %q, want %s", p.name, f[2], f[3:], cmd)
		}
		return f
	}
	p.t.Fatalf("%s: no %s within %v", p.name, cmd, waitLimit)
	return nil
}

// quiet checks that nothing but HEARTBEATs reached p before now, without
// watching for a guessed while: the server's loop sends p a marker, and p
// must see it before anything else. The server's messages to one peer keep
// their order, so whatever it sent p earlier arrives first. Where the
// server acts on another peer's message, wait for that to be counted in
// Stats first.
func (p *peer) quiet() {
	p.t.Helper()
	marker := fmt.Sprintf("barrier-%d", p.ts.ids.Add(1))
	var err error
	if !p.ts.s.inLoop(func() {
		sock := p.ts.s.socks[p.front]
		err = sock.Send([][]byte{[]byte(p.name), {}, []byte("BARRIER"), []byte(marker)}, true)
		sock.Flush()
	}) {
		p.t.Fatalf("%s: the server's loop is not running", p.name)
	}
	if err != nil {
		p.t.Fatalf("%s: marker: %v", p.name, err)
	}
	for {
		f := p.recv(waitLimit)
		switch {
		case f == nil:
			p.t.Fatalf("%s: no marker within %v", p.name, waitLimit)
		case len(f) == 3 && string(f[1]) == "BARRIER" && string(f[2]) == marker:
			return
		case len(f) > 2 && string(f[2]) == "HEARTBEAT":
		default:
			p.t.Fatalf("%s: unexpected %q", p.name, f)
		}
	}
}

// jobManager connects a job manager and registers it; queues is the
// INFORM queue frame.
func (ts *testServer) jobManager(name, queues string) *peer {
	ts.t.Helper()
	p := ts.dial(ts.ep.Backend, name)
	p.autoBeat = true
	p.lastBeat = time.Now()
	id := p.send("INFORM", queues, "worker")
	ack := p.expect("ACK")
	if len(ack) != 5 || string(ack[4]) != id {
		ts.t.Fatalf("ACK %q does not acknowledge %s", ack, id)
	}
	return p
}

func (ts *testServer) client(name string) *peer { return ts.dial(ts.ep.Frontend, name) }

func (ts *testServer) scheduler(name string) *peer {
	ts.t.Helper()
	p := ts.dial(ts.ep.Frontend, name)
	p.autoBeat = true
	p.lastBeat = time.Now()
	id := p.send("INFORM", "", "scheduler")
	if ack := p.expect("ACK"); string(ack[4]) != id {
		ts.t.Fatalf("scheduler ACK %q", ack)
	}
	return p
}

func (ts *testServer) admin(name string) *peer { return ts.dial(ts.ep.Admin, name) }

// adminJSON sends an admin command and decodes the JSON of its REPLY.
func (p *peer) adminJSON(cmd string, args ...string) map[string]any {
	p.t.Helper()
	p.send(cmd, args...)
	r := p.expect("REPLY")
	if len(r) != 5 {
		p.t.Fatalf("admin REPLY %q", r)
	}
	var out map[string]any
	if err := json.Unmarshal(r[4], &out); err != nil {
		p.t.Fatalf("admin REPLY is not JSON: %v: %s", err, r[4])
	}
	return out
}

// waitFor polls the server's Stats until cond holds.
func (ts *testServer) waitFor(what string, cond func(Stats) bool) Stats {
	ts.t.Helper()
	var st Stats
	if !testutil.Poll(waitLimit, func() bool { st = ts.s.Stats(); return cond(st) }) {
		ts.t.Fatalf("timed out waiting for %s; stats %+v", what, st)
	}
	return st
}

// request sends REQUEST [queue, headers, payload] and returns its msgid.
func (p *peer) request(queue, headers, payload string) string {
	return p.send("REQUEST", queue, headers, payload)
}

// expectRequest checks a forwarded REQUEST: the client's frames, same
// msgid.
func (p *peer) expectRequest(msgid, queue, headers, payload string) [][]byte {
	p.t.Helper()
	f := p.expect("REQUEST")
	want := []string{"", wire.Protocol, "REQUEST", msgid, queue, headers, payload}
	if len(f) != len(want) {
		p.t.Fatalf("%s: REQUEST %q, want %q", p.name, f, want)
	}
	for i := range want {
		if string(f[i]) != want[i] {
			p.t.Fatalf("%s: REQUEST %q, want %q", p.name, f, want)
		}
	}
	return f
}

func strs(f [][]byte) string {
	s := make([]string, len(f))
	for i, b := range f {
		s[i] = string(b)
	}
	return strings.Join(s, "|")
}
