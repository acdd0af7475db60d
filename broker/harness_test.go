package broker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/inproc"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
)

// testBroker runs a broker on an ephemeral loopback port for one test.
type testBroker struct {
	*Broker
	ep   string
	errc chan error
}

// testEndpoints numbers the in-process endpoints of this package's brokers.
var testEndpoints atomic.Int64

// inprocEndpoint returns an inproc:// name no other broker of this test
// binary uses.
func inprocEndpoint() string {
	return fmt.Sprintf("inproc://broker-test-%d", testEndpoints.Add(1))
}

// tcpConfig is fastConfig listening on a loopback TCP port.
func tcpConfig() Config {
	cfg := fastConfig()
	cfg.Endpoints = []string{"tcp://127.0.0.1:*"}
	return cfg
}

// fastConfig returns settings with short timers so that tests finish fast.
// Its broker listens in process (inproc://): protocol tests need no port
// and no handshake. Tests of the network itself (security, IP filters,
// raw TCP peers, connection counts) set a tcp:// endpoint.
func fastConfig() Config {
	return Config{
		Endpoints:         []string{inprocEndpoint()},
		HeartbeatInterval: 100 * time.Millisecond,
		HeartbeatLiveness: 3,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// runBroker starts a broker's Run and leaves its end to the test, which
// reads Run's result from errc (a test of Shutdown, which ends Run).
func runBroker(t *testing.T, cfg Config) *testBroker {
	t.Helper()
	if len(cfg.Endpoints) == 0 {
		cfg.Endpoints = []string{inprocEndpoint()}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tb := &testBroker{Broker: b, ep: b.Endpoints()[0], errc: make(chan error, 1)}
	go func() { tb.errc <- b.Run(context.Background()) }()
	return tb
}

// startBroker runs a broker until the test ends.
func startBroker(t *testing.T, cfg Config) *testBroker {
	t.Helper()
	tb := runBroker(t, cfg)
	b := tb.Broker
	testutil.Eventually(t, testutil.WaitLimit, "the broker's loop", func() bool { return b.inLoop(func() {}) })
	t.Cleanup(func() {
		b.Close()
		select {
		case err := <-tb.errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return after Close")
		}
	})
	return tb
}

// peer is a raw DEALER socket that speaks MDP frame by frame.
type peer struct {
	t    *testing.T
	ctx  transport.Context
	sock transport.Socket
}

func newPeer(t *testing.T, ep string) *peer {
	t.Helper()
	return newPeerOf(t, ep, transport.Dealer, transport.Options{})
}

// newPeerOf connects a socket of type typ to ep: in the broker's own
// transport context for an inproc:// endpoint (the only context where that
// name exists), in a context of its own otherwise.
func newPeerOf(t *testing.T, ep string, typ transport.Type, opts transport.Options) *peer {
	t.Helper()
	ctx, err := peerContext(ep)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ctx.NewSocket(typ, opts)
	if err != nil {
		ctx.Term()
		t.Fatal(err)
	}
	if err := s.Connect(ep); err != nil {
		s.Close()
		ctx.Term()
		t.Fatal(err)
	}
	p := &peer{t: t, ctx: ctx, sock: s}
	t.Cleanup(p.close)
	return p
}

func (p *peer) close() {
	if p.sock != nil {
		p.sock.Close()
		p.ctx.Term()
		p.sock = nil
	}
}

func (p *peer) send(frames ...[]byte) {
	p.t.Helper()
	if err := p.sock.Send(frames, false); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

func (p *peer) sendStr(frames ...string) {
	p.t.Helper()
	f := make([][]byte, len(frames))
	for i, s := range frames {
		f[i] = []byte(s)
	}
	p.send(f...)
}

// recv waits up to d for a message; nil means none came. The engine's
// waits are channel selects, so a signal (Go's preemption SIGURG) cannot
// end one early with EINTR as libzmq's poll could.
func (p *peer) recv(d time.Duration) [][]byte {
	p.t.Helper()
	ok, err := p.sock.WaitReadable(d)
	if err != nil {
		p.t.Fatalf("poll: %v", err)
	}
	if !ok {
		return nil
	}
	f, _, err := p.sock.Recv(0, true)
	if err != nil {
		p.t.Fatalf("recv: %v", err)
	}
	return f
}

// recvSkip is recv that ignores HEARTBEATs, as a worker must.
func (p *peer) recvSkip(d time.Duration) [][]byte {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left < 0 {
			return nil
		}
		f := p.recv(left)
		if f == nil {
			return nil
		}
		if m, err := mdp.DecodeFromBroker(f); err == nil && m.Command == mdp.Heartbeat {
			continue
		}
		return f
	}
}

func (p *peer) mustRecv(d time.Duration) [][]byte {
	p.t.Helper()
	f := p.recvSkip(d)
	if f == nil {
		p.t.Fatalf("no message within %v", d)
	}
	return f
}

// expectNothing checks that nothing but HEARTBEATs reached p before now,
// without watching for a guessed while: it asks mmi.service as a 0.1
// client and fails if anything else arrives ahead of the answer. The
// broker handles one connection's messages in order and its answers reach
// p in order, so whatever it sent p earlier arrives first. (It counts one
// MMI request.) Where the broker acts on another peer's message, wait for
// that to be counted in Stats first.
func (p *peer) expectNothing() {
	p.t.Helper()
	if f := p.barrier(true); f != nil {
		p.t.Fatalf("unexpected message %q", f)
	}
}

// expectSilent is expectNothing for a peer that may not even be sent a
// HEARTBEAT (a removed worker, a sender that never registered).
func (p *peer) expectSilent() {
	p.t.Helper()
	if f := p.barrier(false); f != nil {
		p.t.Fatalf("unexpected message %q", f)
	}
}

// barrier asks mmi.service and returns the first message other than its
// answer (and HEARTBEATs, with skipBeats) that arrives ahead of it.
func (p *peer) barrier(skipBeats bool) [][]byte {
	p.t.Helper()
	p.request(mdp.V1, "mmi.service", "mmi.service")
	deadline := time.Now().Add(5 * time.Second)
	var first [][]byte
	for {
		f := p.recv(max(time.Until(deadline), 0))
		if f == nil {
			p.t.Fatalf("no mmi.service answer within 5s")
		}
		m, err := mdp.DecodeFromBroker(f)
		switch {
		case err == nil && m.Role == mdp.RoleClient && string(m.Service) == "mmi.service":
			return first
		case err == nil && m.Command == mdp.Heartbeat && skipBeats:
		case first == nil:
			first = f
		}
	}
}

// expectNoneQueued checks that nothing is waiting at p, for a peer whose
// handshake the broker refused (so that it cannot ask anything): call it
// after the refusal is counted.
func (p *peer) expectNoneQueued() {
	p.t.Helper()
	if f := p.recv(0); f != nil {
		p.t.Fatalf("unexpected message %q", f)
	}
}

func (p *peer) expectDisconnect(d time.Duration) {
	p.t.Helper()
	f := p.mustRecv(d)
	m, err := mdp.DecodeFromBroker(f)
	if err != nil || m.Command != mdp.Disconnect {
		p.t.Fatalf("want DISCONNECT, got %q (%v)", f, err)
	}
}

// Worker helpers, in either protocol version.

func (p *peer) ready(v mdp.Version, service string) {
	p.t.Helper()
	p.sendMsg(&mdp.Message{Version: v, Role: mdp.RoleWorker, Command: mdp.Ready, Service: []byte(service)})
}

// register sends READY for service and waits until b counts one more
// worker.
func (p *peer) register(b *testBroker, v mdp.Version, service string) {
	p.t.Helper()
	before := b.Stats().Workers
	p.ready(v, service)
	waitFor(p.t, b, fmt.Sprintf("%d workers", before+1), func(s Stats) bool { return s.Workers == before+1 })
}

// echo sends body to service as client c, checks that worker w gets it,
// answers it with a FINAL of the same body and checks c's reply.
func echo(c, w *peer, v mdp.Version, service, body string) {
	c.t.Helper()
	c.request(v, service, body)
	addr, got := w.getRequest(wait)
	if len(got) != 1 || string(got[0]) != body {
		c.t.Fatalf("worker got %q, want %q", got, body)
	}
	w.reply(v, mdp.Final, addr, body)
	if _, reply := c.getReply(wait, v, mdp.Final); !eq(reply, body) {
		c.t.Fatalf("client got %q, want %q", reply, body)
	}
}

func (p *peer) sendMsg(m *mdp.Message) {
	p.t.Helper()
	f, err := mdp.Encode(m)
	if err != nil {
		p.t.Fatal(err)
	}
	p.send(f...)
}

// getRequest waits for a REQUEST and returns the client address and body.
func (p *peer) getRequest(d time.Duration) (client []byte, body [][]byte) {
	p.t.Helper()
	f := p.mustRecv(d)
	m, err := mdp.DecodeFromBroker(f)
	if err != nil || m.Role != mdp.RoleWorker || m.Command != mdp.Request {
		p.t.Fatalf("want worker REQUEST, got %q (%v)", f, err)
	}
	return m.Client, m.Body
}

func (p *peer) reply(v mdp.Version, cmd mdp.Command, client []byte, body ...string) {
	p.t.Helper()
	m := mdp.Message{Version: v, Role: mdp.RoleWorker, Command: cmd, Client: client}
	for _, b := range body {
		m.Body = append(m.Body, []byte(b))
	}
	p.sendMsg(&m)
}

// Client helpers.

func (p *peer) request(v mdp.Version, service string, body ...string) {
	p.t.Helper()
	m := mdp.Message{Version: v, Role: mdp.RoleClient, Command: mdp.Request, Service: []byte(service)}
	for _, b := range body {
		m.Body = append(m.Body, []byte(b))
	}
	p.sendMsg(&m)
}

// getReply waits for a client reply and checks its version and command.
func (p *peer) getReply(d time.Duration, v mdp.Version, cmd mdp.Command) (service string, body []string) {
	p.t.Helper()
	f := p.mustRecv(d)
	m, err := mdp.DecodeFromBroker(f)
	if err != nil || m.Role != mdp.RoleClient || m.Version != v || m.Command != cmd {
		p.t.Fatalf("want %v client %v, got %q (%v)", v, cmd, f, err)
	}
	for _, b := range m.Body {
		body = append(body, string(b))
	}
	return string(m.Service), body
}

// waitFor polls the broker's stats until cond holds.
func waitFor(t *testing.T, b *testBroker, what string, cond func(Stats) bool) Stats {
	t.Helper()
	var s Stats
	testutil.Eventually(t, testutil.WaitLimit, what, func() bool {
		s = b.Stats()
		return cond(s)
	})
	return s
}

func waitWorkers(t *testing.T, b *testBroker, n int) {
	t.Helper()
	waitFor(t, b, fmt.Sprintf("%d workers", n), func(s Stats) bool { return s.Workers == n })
}

func eq(a []string, b ...string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal([]byte(a[i]), []byte(b[i])) {
			return false
		}
	}
	return true
}

// newReqPeer is a REQ socket client, as the Guide's 0.1 clients use.
func newReqPeer(t *testing.T, ep string) *peer {
	t.Helper()
	return newPeerOf(t, ep, transport.Req, transport.Options{})
}

func peerContext(ep string) (transport.Context, error) {
	if inproc.IsEndpoint(ep) {
		return inproc.Context(ep)
	}
	return transport.NewContext()
}
