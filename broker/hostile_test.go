package broker

// Hostile-input tests: every malformed message is dropped and counted by
// reason, valid but unexpected commands get DISCONNECT and nothing more, and
// no input makes the broker panic, wedge or leak.

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
)

// Headers and command bytes spelled out as wire literals, so that the tests
// check the broker against the specs rather than against the codec.
const (
	hC1, hW1, hC2, hW2 = "MDPC01", "MDPW01", "MDPC02", "MDPW02"

	w1Ready, w1Request, w1Reply, w1Heartbeat, w1Disconnect            = "\x01", "\x02", "\x03", "\x04", "\x05"
	w2Ready, w2Request, w2Partial, w2Final, w2Heartbeat, w2Disconnect = "\x01", "\x02", "\x03", "\x04", "\x05", "\x06"
	c2Request, c2Partial, c2Final                                     = "\x01", "\x02", "\x03"
)

// hf builds a multipart message from strings; "" is an empty frame.
func hf(frames ...string) [][]byte {
	out := make([][]byte, len(frames))
	for i, f := range frames {
		out[i] = []byte(f)
	}
	return out
}

// hcat concatenates frame lists.
func hcat(parts ...[][]byte) [][]byte {
	var out [][]byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// hrepeat returns n copies of frame f.
func hrepeat(n int, f string) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(f)
	}
	return out
}

// hjunk returns n pseudo-random bytes from a fixed seed.
func hjunk(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// workerPrefix returns the frames that open a worker command: the empty
// frame 0 and the header for 0.1, the header alone for 0.2.
func workerPrefix(v mdp.Version, cmd1, cmd2 string) [][]byte {
	if v == mdp.V1 {
		return hf("", hW1, cmd1)
	}
	return hf(hW2, cmd2)
}

// newPeerID is newPeer with a fixed ROUTER identity.
func newPeerID(t *testing.T, ep string, id []byte) *peer {
	t.Helper()
	return newPeerOf(t, ep, transport.Dealer, transport.Options{Identity: id})
}

// waitUpTo is waitFor with its own deadline that reports failure instead of
// stopping the test, so that one broken expectation does not hide the others.
func waitUpTo(t *testing.T, b *testBroker, d time.Duration, cond func(Stats) bool) (Stats, bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		s := b.Stats()
		if cond(s) {
			return s, true
		}
		if time.Now().After(deadline) {
			return s, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expectDisconnectV waits for a DISCONNECT in version v; earlier HEARTBEATs
// are skipped (they may have been queued before the offending command).
// It reports failure with Errorf and returns whether the DISCONNECT came.
func expectDisconnectV(t *testing.T, p *peer, v mdp.Version, d time.Duration) bool {
	t.Helper()
	f := p.recvSkip(d)
	if f == nil {
		t.Errorf("no DISCONNECT within %v", d)
		return false
	}
	m, err := mdp.DecodeFromBroker(f)
	if err != nil || m.Role != mdp.RoleWorker || m.Command != mdp.Disconnect || m.Version != v {
		t.Errorf("want %v DISCONNECT, got %q (%v)", v, f, err)
		return false
	}
	return true
}

// named is a peer and the test case it stands for.
type named struct {
	name string
	p    *peer
}

// expectQuiet checks that the peers (workers the broker removed) were sent
// nothing at all, not even a HEARTBEAT, since: it waits until a worker of
// its own has been sent two HEARTBEATs, so that the broker's heartbeat
// timer has run at least once more, then proves with a round trip on each
// peer that nothing sent earlier is still on its way (peer.barrier).
func expectQuiet(t *testing.T, b *testBroker, peers []named) {
	t.Helper()
	clock := newPeer(t, b.ep)
	clock.ready(mdp.V1, "quiet.clock")
	for range 2 {
		f := clock.recv(5 * time.Second)
		if m, err := mdp.DecodeFromBroker(f); f == nil || err != nil || m.Command != mdp.Heartbeat {
			t.Fatalf("clock worker: got %q, want a HEARTBEAT within 5s", f)
		}
	}
	clock.sendMsg(&mdp.Message{Version: mdp.V1, Role: mdp.RoleWorker, Command: mdp.Disconnect})
	for _, q := range peers {
		if f := q.p.barrier(false); f != nil {
			t.Errorf("%s: received %q, want nothing", q.name, f)
		}
	}
}

// patientConfig is fastConfig with a liveness long enough that raw test
// peers, which do not heartbeat, stay registered for the whole test, while
// the broker still heartbeats every 100 ms.
func patientConfig() Config {
	cfg := fastConfig()
	cfg.HeartbeatLiveness = 100
	return cfg
}

// checkNormalTraffic registers a 0.1 and a 0.2 worker on services named after
// prefix, has clients of both versions call both workers, and checks MMI. It
// returns the peers it created so that callers can close them.
func checkNormalTraffic(t *testing.T, b *testBroker, prefix string) []*peer {
	t.Helper()
	const d = 2 * time.Second
	before := b.Stats()
	svc := map[mdp.Version]string{mdp.V1: prefix + ".v1", mdp.V2: prefix + ".v2"}
	workers := map[mdp.Version]*peer{mdp.V1: newPeer(t, b.ep), mdp.V2: newPeer(t, b.ep)}
	workers[mdp.V1].ready(mdp.V1, svc[mdp.V1])
	workers[mdp.V2].ready(mdp.V2, svc[mdp.V2])
	waitFor(t, b, "normal workers", func(s Stats) bool {
		return s.Workers == before.Workers+2 && s.Registered == before.Registered+2
	})
	// The workers heartbeat as they go, as 7/MDP requires, so that they stay
	// alive under a short liveness.
	beat := func() {
		for v, w := range workers {
			w.sendMsg(&mdp.Message{Version: v, Role: mdp.RoleWorker, Command: mdp.Heartbeat})
		}
	}
	clients := map[mdp.Version]*peer{mdp.V1: newPeer(t, b.ep), mdp.V2: newPeer(t, b.ep)}
	for _, cv := range []mdp.Version{mdp.V1, mdp.V2} {
		c := clients[cv]
		for _, wv := range []mdp.Version{mdp.V1, mdp.V2} {
			beat()
			w := workers[wv]
			tag := fmt.Sprintf("%v->%v", cv, wv)
			c.request(cv, svc[wv], "ping", tag)
			client, body := w.getRequest(d)
			if !eq(bstr(body), "ping", tag) {
				t.Fatalf("%s: worker got body %q", tag, body)
			}
			if wv == mdp.V2 && cv == mdp.V2 {
				w.reply(wv, mdp.Partial, client, "part", tag)
			}
			w.reply(wv, mdp.Final, client, "pong", tag)
			if wv == mdp.V2 && cv == mdp.V2 {
				if s, rb := c.getReply(d, cv, mdp.Partial); s != svc[wv] || !eq(rb, "part", tag) {
					t.Fatalf("%s: PARTIAL %q %q", tag, s, rb)
				}
			}
			if s, rb := c.getReply(d, cv, mdp.Final); s != svc[wv] || !eq(rb, "pong", tag) {
				t.Fatalf("%s: reply %q %q", tag, s, rb)
			}
		}
		// MMI, in the client's own version.
		mmi := func(service string, body ...string) []string {
			t.Helper()
			beat()
			c.request(cv, service, body...)
			s, rb := c.getReply(d, cv, mdp.Final)
			if s != service {
				t.Fatalf("%v %s: reply for service %q", cv, service, s)
			}
			return rb
		}
		for _, v := range []mdp.Version{mdp.V1, mdp.V2} {
			if rb := mmi("mmi.service", svc[v]); !eq(rb, "200") {
				t.Fatalf("%v mmi.service %s = %q, want 200", cv, svc[v], rb)
			}
		}
		if rb := mmi("mmi.service", prefix+".nobody"); !eq(rb, "404") {
			t.Fatalf("%v mmi.service for unknown = %q, want 404", cv, rb)
		}
		if rb := mmi("mmi.nosuch", "x"); !eq(rb, "501") {
			t.Fatalf("%v mmi.nosuch = %q, want 501", cv, rb)
		}
		if rb := mmi("mmi.services", "x"); len(rb) < 3 || rb[0] != "200" ||
			!slices.Contains(rb, svc[mdp.V1]) || !slices.Contains(rb, svc[mdp.V2]) {
			t.Fatalf("%v mmi.services = %q", cv, rb)
		}
		if rb := mmi("mmi.workers", svc[mdp.V1]); !eq(rb, "200", "1", "0", "0") {
			t.Fatalf("%v mmi.workers = %q, want 200 1 0 0", cv, rb)
		}
	}
	return []*peer{workers[mdp.V1], workers[mdp.V2], clients[mdp.V1], clients[mdp.V2]}
}

func bstr(frames [][]byte) []string {
	out := make([]string, len(frames))
	for i, f := range frames {
		out[i] = string(f)
	}
	return out
}

// hostileCase is one malformed message and the reason it must be counted
// under.
type hostileCase struct {
	name   string
	frames [][]byte
	want   DropReason
}

// hostileCatalogue returns the malformed messages of TestHostileCatalogue:
// 79 shapes. None of them is a valid MDP message in either version, so each
// must be dropped, counted once under its reason, and answered with nothing.
//
// DropEmpty is not in the catalogue: it cannot be produced over the wire. A
// ZeroMQ message has at least one frame and the ROUTER socket prepends the
// identity, so the broker always sees two frames or more; the nearest shape
// a peer can send, a single empty frame, is a missing header.
func hostileCatalogue(maxFrames int) []hostileCase {
	mib := hjunk(1, 1<<20)
	mib[0] = 'M' // Looks like the start of a header, and still is not one.
	return []hostileCase{
		// Framing and headers.
		{"only an empty frame", hf(""), DropHeader},
		{"two empty frames", hf("", ""), DropHeader},
		{"three empty frames", hf("", "", ""), DropHeader},
		{"empty frame then a body", hf("", "hello"), DropHeader},
		{"wrong header MDPX01", hf("", "MDPX01", "echo", "x"), DropHeader},
		{"wrong header MDPX02 undelimited", hf("MDPX02", c2Request, "echo", "x"), DropHeader},
		{"5-byte header MDPC0", hf("", "MDPC0", "echo", "x"), DropHeader},
		{"5-byte header MDPW0", hf("MDPW0", w2Ready, "echo"), DropHeader},
		{"7-byte header MDPC011", hf("", "MDPC011", "echo", "x"), DropHeader},
		{"7-byte header MDPW02 plus NUL", hf("MDPW02\x00", w2Heartbeat), DropHeader},
		{"lower-case header mdpc01", hf("", "mdpc01", "echo", "x"), DropHeader},
		{"lower-case header mdpw02", hf("mdpw02", w2Ready, "echo"), DropHeader},
		{"header after two empty frames", hf("", "", hC1, "echo", "x"), DropHeader},
		{"header after the service name", hf("", "echo", hC1, "x"), DropHeader},
		{"0.1 client without empty frame", hf(hC1, "echo", "x"), DropDelimiter},
		{"0.1 worker READY without empty frame", hf(hW1, w1Ready, "echo"), DropDelimiter},
		{"0.1 worker HEARTBEAT without empty frame", hf(hW1, w1Heartbeat), DropDelimiter},
		{"junk frame in place of the empty frame", hf("junk", hC1, "echo", "x"), DropDelimiter},

		// 0.1 client.
		{"0.1 client without service", hf("", hC1), DropShort},
		{"0.1 client empty service", hf("", hC1, "", "x"), DropService},
		{"0.1 client without body", hf("", hC1, "echo"), DropShort},

		// 0.2 client.
		{"0.2 client without command", hf(hC2), DropCommand},
		{"0.2 client empty command frame", hf(hC2, "", "echo", "x"), DropCommand},
		{"0.2 client 2-byte command", hf(hC2, "\x01\x01", "echo", "x"), DropCommand},
		{"0.2 client command 0x00", hf(hC2, "\x00", "echo", "x"), DropCommand},
		{"0.2 client command 0x07", hf(hC2, "\x07", "echo", "x"), DropCommand},
		{"0.2 client command 0xff", hf(hC2, "\xff", "echo", "x"), DropCommand},
		{"0.2 client sends PARTIAL", hf(hC2, c2Partial, "echo", "x"), DropCommand},
		{"0.2 client sends FINAL", hf(hC2, c2Final, "echo", "x"), DropCommand},
		{"0.2 client without service", hf(hC2, c2Request), DropShort},
		{"0.2 client empty service", hf(hC2, c2Request, "", "x"), DropService},
		{"0.2 client without body", hf(hC2, c2Request, "echo"), DropShort},
		{"0.2 client delimited, empty service", hf("", hC2, c2Request, "", "x"), DropService},

		// Worker command frame.
		{"0.1 worker without command", hf("", hW1), DropCommand},
		{"0.2 worker without command", hf(hW2), DropCommand},
		{"0.2 worker empty command frame", hf(hW2, ""), DropCommand},
		{"0.1 worker 2-byte command", hf("", hW1, "\x01\x00", "echo"), DropCommand},
		{"0.2 worker 2-byte command", hf(hW2, "\x01\x01", "echo"), DropCommand},
		{"0.1 worker command 0x00", hf("", hW1, "\x00"), DropCommand},
		{"0.1 worker command 0x06 (0.2 DISCONNECT)", hf("", hW1, "\x06"), DropCommand},
		{"0.1 worker command 0x07", hf("", hW1, "\x07"), DropCommand},
		{"0.1 worker command 0xff", hf("", hW1, "\xff"), DropCommand},
		{"0.2 worker command 0x00", hf(hW2, "\x00"), DropCommand},
		{"0.2 worker command 0x07", hf(hW2, "\x07"), DropCommand},
		{"0.2 worker command 0xff", hf(hW2, "\xff"), DropCommand},
		{"0.1 worker sends REQUEST", hf("", hW1, w1Request, "client", "", "x"), DropCommand},
		{"0.2 worker sends REQUEST", hf(hW2, w2Request, "client", "", "x"), DropCommand},

		// READY.
		{"0.1 READY without service", hf("", hW1, w1Ready), DropShort},
		{"0.2 READY without service", hf(hW2, w2Ready), DropShort},
		{"0.1 READY empty service", hf("", hW1, w1Ready, ""), DropService},
		{"0.2 READY empty service", hf(hW2, w2Ready, ""), DropService},
		{"0.1 READY extra frame", hf("", hW1, w1Ready, "echo", "extra"), DropExtraFrames},
		{"0.2 READY extra frames", hf(hW2, w2Ready, "echo", "", "x"), DropExtraFrames},

		// HEARTBEAT and DISCONNECT.
		{"0.1 HEARTBEAT extra frame", hf("", hW1, w1Heartbeat, "x"), DropExtraFrames},
		{"0.2 HEARTBEAT extra empty frame", hf(hW2, w2Heartbeat, ""), DropExtraFrames},
		{"0.1 DISCONNECT extra frame", hf("", hW1, w1Disconnect, "bye"), DropExtraFrames},
		{"0.2 DISCONNECT extra frames", hf(hW2, w2Disconnect, "bye", "bye"), DropExtraFrames},

		// Replies: the client envelope (7/MDP and 18/MDP "Request and Reply
		// Processing": precisely one client address, then an empty frame).
		{"0.1 REPLY nothing after command", hf("", hW1, w1Reply), DropEnvelope},
		{"0.1 REPLY without client address", hf("", hW1, w1Reply, "body"), DropEnvelope},
		{"0.1 REPLY empty client address", hf("", hW1, w1Reply, "", "", "body"), DropEnvelope},
		{"0.1 REPLY non-empty delimiter", hf("", hW1, w1Reply, "client", "x", "body"), DropEnvelope},
		{"0.1 REPLY without body", hf("", hW1, w1Reply, "client", ""), DropShort},
		{"0.2 PARTIAL without client address", hf(hW2, w2Partial, "body"), DropEnvelope},
		{"0.2 PARTIAL empty client address", hf(hW2, w2Partial, "", "", "body"), DropEnvelope},
		{"0.2 PARTIAL non-empty delimiter", hf(hW2, w2Partial, "client", "x", "body"), DropEnvelope},
		{"0.2 PARTIAL without body", hf(hW2, w2Partial, "client", ""), DropShort},
		{"0.2 FINAL nothing after command", hf(hW2, w2Final), DropEnvelope},
		{"0.2 FINAL without client address", hf(hW2, w2Final, "body"), DropEnvelope},
		{"0.2 FINAL empty client address", hf(hW2, w2Final, "", "", "body"), DropEnvelope},
		{"0.2 FINAL non-empty delimiter", hf(hW2, w2Final, "client", "x", "body"), DropEnvelope},
		{"0.2 FINAL without body", hf(hW2, w2Final, "client", ""), DropShort},
		{"0.2 FINAL two client addresses", hf(hW2, w2Final, "c1", "c2", "", "body"), DropEnvelope},

		// Size.
		{"1 MiB garbage frame", [][]byte{mib}, DropHeader},
		{"1 MiB frame in place of the header", [][]byte{{}, mib}, DropHeader},
		{"1 MiB command frame", hcat(hf(hC2), [][]byte{mib}, hf("echo", "x")), DropCommand},
		{"5000 empty frames", hrepeat(5000, ""), DropTooManyFrames},
		{"valid 0.2 request of 5000 frames", hcat(hf(hC2, c2Request, "echo"), hrepeat(4997, "x")), DropTooManyFrames},
		{"valid 0.1 request of MaxFrames+1 frames",
			hcat(hf("", hC1, "echo"), hrepeat(maxFrames+1-3, "x")), DropTooManyFrames},

		// Junk.
		{"random binary junk", [][]byte{hjunk(7, 37), hjunk(8, 3), hjunk(9, 64)}, DropHeader},
	}
}

// TestHostileCatalogue sends every shape of hostileCatalogue (79 shapes) from
// a fresh unregistered peer, checks that each is counted once under its
// reason and changes nothing else, that no peer hears anything back, and
// then that normal traffic still flows.
func TestHostileCatalogue(t *testing.T) {
	b := startBroker(t, patientConfig())
	cat := hostileCatalogue(DefaultMaxFrames)
	names := make(map[string]bool)
	var peers []*peer
	for _, c := range cat {
		if names[c.name] {
			t.Fatalf("duplicate catalogue name %q", c.name)
		}
		names[c.name] = true
		before := b.Stats()
		p := newPeer(t, b.ep)
		peers = append(peers, p)
		p.send(c.frames...)
		after := waitFor(t, b, fmt.Sprintf("%q counted as %v", c.name, c.want), func(s Stats) bool {
			return s.Dropped[c.want] > before.Dropped[c.want]
		})
		// Exactly one drop, under exactly this reason, and nothing else
		// changed: no request, no worker, no service, no removal.
		// (No worker is registered here, so even Heartbeats is constant.)
		// Connections counts this test's own peers, so it is left out.
		got := after
		got.Dropped[c.want]--
		got.Connections = before.Connections
		if got != before {
			t.Errorf("%q: stats changed beyond one %v drop:\nbefore %+v\nafter  %+v", c.name, c.want, before, after)
		}
	}
	t.Logf("hostile catalogue: %d malformed shapes, all dropped and counted by reason", len(cat))

	// Nothing came back to any sender, not even a DISCONNECT: they never
	// registered. Anything the broker sent would have been sent before it
	// counted the drop, so a round trip on each proves it.
	for _, p := range peers {
		p.expectSilent()
		p.close()
	}

	// Boundary: MaxFrames frames after the identity are accepted.
	before := b.Stats()
	p := newPeer(t, b.ep)
	p.send(hcat(hf(hC2, c2Request, "boundary"), hrepeat(DefaultMaxFrames-3, "x"))...)
	s := waitFor(t, b, "MaxFrames-frame request accepted", func(s Stats) bool { return s.Requests == before.Requests+1 })
	if s.TotalDropped() != before.TotalDropped() || s.Queued != before.Queued+1 {
		t.Errorf("a %d-frame request was not queued: %+v", DefaultMaxFrames, s)
	}

	checkNormalTraffic(t, b, "after.catalogue")
	if s := b.Stats(); s.Removed != before.Removed {
		t.Errorf("workers removed during normal traffic: %v", s.Removed)
	}
}

// registeredCase is a malformed message from a registered worker that holds
// a request for client.
type registeredCase struct {
	name   string
	frames func(v mdp.Version, client []byte) [][]byte
	want   DropReason
}

func registeredCases() []registeredCase {
	reply := func(v mdp.Version) [][]byte { return workerPrefix(v, w1Reply, w2Final) }
	return []registeredCase{
		{"wrong header", func(v mdp.Version, c []byte) [][]byte {
			return hcat(hf("", "MDPX01", w1Reply), [][]byte{c}, hf("", "body"))
		}, DropHeader},
		{"unknown command 0x07", func(v mdp.Version, c []byte) [][]byte {
			return workerPrefix(v, "\x07", "\x07")
		}, DropCommand},
		{"REQUEST to the broker", func(v mdp.Version, c []byte) [][]byte {
			return hcat(workerPrefix(v, w1Request, w2Request), [][]byte{c}, hf("", "body"))
		}, DropCommand},
		{"HEARTBEAT with extra frame", func(v mdp.Version, c []byte) [][]byte {
			return hcat(workerPrefix(v, w1Heartbeat, w2Heartbeat), hf("x"))
		}, DropExtraFrames},
		{"second READY with extra frame", func(v mdp.Version, c []byte) [][]byte {
			return hcat(workerPrefix(v, w1Ready, w2Ready), hf("svc", "x"))
		}, DropExtraFrames},
		{"reply with non-empty delimiter", func(v mdp.Version, c []byte) [][]byte {
			return hcat(reply(v), [][]byte{c}, hf("x", "body"))
		}, DropEnvelope},
		{"reply with empty client address", func(v mdp.Version, c []byte) [][]byte {
			return hcat(reply(v), hf("", "", "body"))
		}, DropEnvelope},
		{"reply without body", func(v mdp.Version, c []byte) [][]byte {
			return hcat(reply(v), [][]byte{c}, hf(""))
		}, DropShort},
		{"reply of 5000 frames", func(v mdp.Version, c []byte) [][]byte {
			return hcat(reply(v), [][]byte{c}, hf(""), hrepeat(5000, "x"))
		}, DropTooManyFrames},
	}
}

// TestHostileFromRegisteredWorker: a registered worker holding a request that
// sends a malformed message is treated as invalid (7/MDP: "The broker SHOULD
// respond to invalid messages by dropping them and treating that peer as
// invalid"): it is removed with DISCONNECT and hears nothing more, and the
// request it held goes to another worker.
//
// The cases run one after another on one broker, each on its own service,
// and share one final quiet window.
func TestHostileFromRegisteredWorker(t *testing.T) {
	b := startBroker(t, patientConfig())
	// Short windows: the whole test stays well inside the workers' liveness,
	// so that expiry cannot hide a worker that was not removed.
	const win = 300 * time.Millisecond
	var quiet []named
	n := 0
	for _, v := range []mdp.Version{mdp.V1, mdp.V2} {
		for _, c := range registeredCases() {
			n++
			name := fmt.Sprintf("%v/%s", v, c.name)
			t.Logf("case %s", name)
			svc := fmt.Sprintf("svc-%d", n)
			base := b.Stats().Workers
			a := newPeer(t, b.ep)
			a.ready(v, svc)
			waitFor(t, b, name+": A registered", func(s Stats) bool { return s.Workers == base+1 })
			client := newPeer(t, b.ep)
			client.request(mdp.V2, svc, "job", "42")
			addr, body := a.getRequest(2 * time.Second)
			if !eq(bstr(body), "job", "42") {
				t.Fatalf("%s: worker A got %q", name, body)
			}
			bw := newPeer(t, b.ep)
			bw.ready(v, svc)
			waitFor(t, b, name+": B registered", func(s Stats) bool { return s.Workers == base+2 })
			before := b.Stats()

			a.send(c.frames(v, addr)...)
			if _, ok := waitUpTo(t, b, 2*time.Second, func(s Stats) bool {
				return s.Dropped[c.want] == before.Dropped[c.want]+1
			}); !ok {
				t.Fatalf("%s: message not counted as %v", name, c.want)
			}
			if expectDisconnectV(t, a, v, win) {
				quiet = append(quiet, named{name, a})
			}
			s, ok := waitUpTo(t, b, win, func(s Stats) bool {
				return s.Removed[RemovedInvalid] == before.Removed[RemovedInvalid]+1
			})
			if !ok {
				t.Errorf("%s: worker not removed as invalid: Workers=%d Busy=%d Removed=%v Dropped=%v",
					name, s.Workers-base, s.BusyWorkers, s.Removed, s.Dropped)
			}
			if s.TotalDropped() != before.TotalDropped()+1 {
				t.Errorf("%s: dropped %d messages, want 1: %v", name, s.TotalDropped()-before.TotalDropped(), s.Dropped)
			}

			// The held request goes to worker B, whose reply reaches the
			// client.
			f := bw.recvSkip(win)
			if f == nil {
				// Show the consequence: A, heartbeating like any live
				// worker, stays busy for ever with a request whose reply
				// was thrown away, and the client never hears back.
				a.sendMsg(&mdp.Message{Version: v, Role: mdp.RoleWorker, Command: mdp.Heartbeat})
				got := "nothing"
				if cf := client.recv(win); cf != nil {
					got = fmt.Sprintf("%q", cf)
				}
				s := b.Stats()
				t.Errorf("%s: held request not redelivered to the other worker: A still registered and busy "+
					"(broker-wide Busy=%d Idle=%d Queued=%d), client got %s: A is wedged for as long as it heartbeats",
					name, s.BusyWorkers, s.IdleWorkers, s.Queued, got)
				continue
			}
			m, err := mdp.DecodeFromBroker(f)
			if err != nil || m.Command != mdp.Request || !bytes.Equal(m.Client, addr) || !eq(bstr(m.Body), "job", "42") {
				t.Fatalf("%s: worker B got %q (%v), want the redelivered request", name, f, err)
			}
			bw.reply(v, mdp.Final, m.Client, "done by B")
			if _, rb := client.getReply(2*time.Second, mdp.V2, mdp.Final); !eq(rb, "done by B") {
				t.Errorf("%s: client got %q", name, rb)
			}
			if s := b.Stats(); s.Redelivered != before.Redelivered+1 || s.Workers != base+1 {
				t.Errorf("%s: Redelivered +%d, Workers +%d; want +1 and +1 (B)",
					name, s.Redelivered-before.Redelivered, s.Workers-base)
			}
		}
	}
	t.Logf("%d malformed-message cases from registered workers", n)
	// The removed workers hear nothing more, not even a HEARTBEAT, while
	// the broker's heartbeat timer runs.
	expectQuiet(t, b, quiet)
}

// TestUnexpectedCommands: 7/MDP and 18/MDP "The broker MUST respond to any
// valid but unexpected command by sending DISCONNECT and then no further
// commands to that worker"; DISCONNECT is allowed at any time.
//
// The cases run one after another on one broker, each on its own service,
// and share one final quiet window.
func TestUnexpectedCommands(t *testing.T) {
	type tcase struct {
		name string
		v    mdp.Version
		// registered: the peer has sent READY; holding: it also holds a
		// request.
		registered, holding bool
		send                func(w *peer, svc string)
	}
	var cases []tcase
	for _, v := range []mdp.Version{mdp.V1, mdp.V2} {
		finalName := map[mdp.Version]string{mdp.V1: "REPLY", mdp.V2: "FINAL"}[v]
		other := mdp.V1
		if v == mdp.V1 {
			other = mdp.V2
		}
		cases = append(cases,
			tcase{"HEARTBEAT before READY", v, false, false, func(w *peer, svc string) {
				w.sendMsg(&mdp.Message{Version: v, Role: mdp.RoleWorker, Command: mdp.Heartbeat})
			}},
			tcase{finalName + " before READY", v, false, false, func(w *peer, svc string) {
				w.reply(v, mdp.Final, []byte("someone"), "body")
			}},
			tcase{"second READY, same service", v, true, false, func(w *peer, svc string) {
				w.ready(v, svc)
			}},
			tcase{"second READY, other service", v, true, false, func(w *peer, svc string) {
				w.ready(v, svc+"-other")
			}},
			tcase{finalName + " from an idle worker", v, true, false, func(w *peer, svc string) {
				w.reply(v, mdp.Final, []byte("someone"), "body")
			}},
			tcase{finalName + " naming a client it was not given", v, true, true, func(w *peer, svc string) {
				w.reply(v, mdp.Final, []byte("victim"), "forged")
			}},
			tcase{"READY while holding a request", v, true, true, func(w *peer, svc string) {
				w.ready(v, svc)
			}},
			tcase{fmt.Sprintf("switch to %v mid-conversation", other), v, true, false, func(w *peer, svc string) {
				w.sendMsg(&mdp.Message{Version: other, Role: mdp.RoleWorker, Command: mdp.Heartbeat})
			}},
		)
	}
	cases = append(cases,
		tcase{"PARTIAL before READY", mdp.V2, false, false, func(w *peer, svc string) {
			w.reply(mdp.V2, mdp.Partial, []byte("someone"), "body")
		}},
		tcase{"PARTIAL from an idle worker", mdp.V2, true, false, func(w *peer, svc string) {
			w.reply(mdp.V2, mdp.Partial, []byte("someone"), "body")
		}},
		tcase{"PARTIAL naming a client it was not given", mdp.V2, true, true, func(w *peer, svc string) {
			w.reply(mdp.V2, mdp.Partial, []byte("victim"), "forged")
		}},
	)

	b := startBroker(t, patientConfig())
	// A real client whose identity the forged replies name: it must never
	// receive a forgery.
	victim := newPeerID(t, b.ep, []byte("victim"))
	victim.request(mdp.V2, "mmi.service", "svc")
	victim.getReply(2*time.Second, mdp.V2, mdp.Final) // Now known to the ROUTER.

	var quiet []named // Peers that must hear nothing more.
	for i, c := range cases {
		name := fmt.Sprintf("%v/%s", c.v, c.name)
		t.Logf("case %s", name)
		svc := fmt.Sprintf("svc-%d", i)
		w := newPeer(t, b.ep)
		if c.registered {
			w.ready(c.v, svc)
			waitFor(t, b, name+": registered", func(s Stats) bool { return s.Workers == 1 })
		}
		if c.holding {
			requester := newPeer(t, b.ep)
			requester.request(mdp.V2, svc, "job")
			w.getRequest(2 * time.Second)
			quiet = append(quiet, named{name + " (its requester)", requester})
		}
		before := b.Stats()

		c.send(w, svc)
		if expectDisconnectV(t, w, c.v, 2*time.Second) {
			quiet = append(quiet, named{name, w})
		}
		wantRemoved := before.Removed
		if c.registered {
			wantRemoved[RemovedProtocol]++
		}
		s, ok := waitUpTo(t, b, time.Second, func(s Stats) bool {
			return s.Dropped[DropUnexpected] == before.Dropped[DropUnexpected]+1 && s.Removed == wantRemoved
		})
		if !ok {
			t.Errorf("%s: Dropped[unexpected] +%d (want +1), Removed=%v (want %v)",
				name, s.Dropped[DropUnexpected]-before.Dropped[DropUnexpected], s.Removed, wantRemoved)
		}
		if s.TotalDropped() != before.TotalDropped()+1 || s.Workers != 0 {
			t.Errorf("%s: TotalDropped +%d (want +1), Workers=%d (want 0)",
				name, s.TotalDropped()-before.TotalDropped(), s.Workers)
		}
		if c.holding && (s.Queued != before.Queued+1 || s.Replies != before.Replies || s.Partials != before.Partials) {
			t.Errorf("%s: held request: Queued +%d (want +1: back in its queue), Replies +%d, Partials +%d (want 0)",
				name, s.Queued-before.Queued, s.Replies-before.Replies, s.Partials-before.Partials)
		}
	}

	// DISCONNECT before READY: allowed, nothing sent back, nothing counted.
	for _, v := range []mdp.Version{mdp.V1, mdp.V2} {
		name := fmt.Sprintf("%v/DISCONNECT before READY", v)
		t.Logf("case %s", name)
		p := newPeer(t, b.ep)
		before := b.Stats()
		p.sendMsg(&mdp.Message{Version: v, Role: mdp.RoleWorker, Command: mdp.Disconnect})
		// A marker from the same peer, which the broker handles after the
		// DISCONNECT: messages from one peer stay in order.
		p.send(hf("", "MDPX01")...)
		s := waitFor(t, b, name+": marker", func(s Stats) bool { return s.Dropped[DropHeader] == before.Dropped[DropHeader]+1 })
		if s.TotalDropped() != before.TotalDropped()+1 || s.Removed != before.Removed || s.Workers != 0 {
			t.Errorf("%s: changed counters: Dropped=%v Removed=%v Workers=%d", name, s.Dropped, s.Removed, s.Workers)
		}
		quiet = append(quiet, named{name, p})
	}
	// DISCONNECT after READY: the worker is removed, and the broker "MUST
	// send no further commands to that worker".
	for _, v := range []mdp.Version{mdp.V1, mdp.V2} {
		name := fmt.Sprintf("%v/DISCONNECT after READY", v)
		t.Logf("case %s", name)
		p := newPeer(t, b.ep)
		p.ready(v, "svc-disconnect")
		waitFor(t, b, name+": registered", func(s Stats) bool { return s.Workers == 1 })
		before := b.Stats()
		p.sendMsg(&mdp.Message{Version: v, Role: mdp.RoleWorker, Command: mdp.Disconnect})
		s := waitFor(t, b, name+": removed", func(s Stats) bool { return s.Workers == 0 })
		if s.Removed[RemovedDisconnect] != before.Removed[RemovedDisconnect]+1 || s.TotalDropped() != before.TotalDropped() {
			t.Errorf("%s: Removed=%v Dropped=%v", name, s.Removed, s.Dropped)
		}
		// HEARTBEATs sent before the DISCONNECT was handled may still be in
		// flight; nothing else may come, then or later.
		if f := p.barrier(true); f != nil {
			t.Errorf("%s: got %q after DISCONNECT", name, f)
		}
		quiet = append(quiet, named{name, p})
	}

	// Nothing more for any of them, not even a HEARTBEAT, while the
	// heartbeat timer runs; nothing for the clients either, so no forged
	// reply was forwarded.
	quiet = append(quiet, named{"victim client", victim})
	expectQuiet(t, b, quiet)
	t.Logf("%d unexpected-command cases, 4 DISCONNECT cases", len(cases))
}

// TestMMIWorkerRejected: 8/MMI, the broker "MUST disconnect any workers that
// attempt to register services in this namespace". What counts is the
// service name, not the worker's identity.
func TestMMIWorkerRejected(t *testing.T) {
	b := startBroker(t, patientConfig())
	var rejected []*peer
	n := 0
	for _, v := range []mdp.Version{mdp.V1, mdp.V2} {
		for _, name := range []string{"mmi.service", "mmi.foo", "mmi."} {
			before := b.Stats()
			p := newPeer(t, b.ep)
			p.ready(v, name)
			// The DISCONNECT is the very first thing it hears (p.hrecv, not
			// hrecvSkip: it must not have been sent a HEARTBEAT either).
			f := p.recv(2 * time.Second)
			m, err := mdp.DecodeFromBroker(f)
			if f == nil || err != nil || m.Command != mdp.Disconnect || m.Version != v {
				t.Fatalf("%v READY %q: want DISCONNECT, got %q (%v)", v, name, f, err)
			}
			n++
			s := waitFor(t, b, "mmi worker counted", func(s Stats) bool {
				return s.Dropped[DropMMIWorker] == before.Dropped[DropMMIWorker]+1
			})
			if s.Workers != 0 || s.Registered != 0 || s.TotalDropped() != before.TotalDropped()+1 {
				t.Errorf("%v READY %q: Workers=%d Registered=%d Dropped=%v", v, name, s.Workers, s.Registered, s.Dropped)
			}
			rejected = append(rejected, p)
		}
	}
	if s := b.Stats(); s.Dropped[DropMMIWorker] != uint64(n) || s.Services != 0 {
		t.Errorf("Dropped[mmi_worker]=%d, want %d; Services=%d, want 0", s.Dropped[DropMMIWorker], n, s.Services)
	}
	t.Logf("Removed[mmi_service]=%d", b.Stats().Removed[RemovedMMIService])

	// None of them registered.
	for _, cv := range []mdp.Version{mdp.V1, mdp.V2} {
		c := newPeer(t, b.ep)
		for _, name := range []string{"mmi.service", "mmi.foo", "mmi."} {
			c.request(cv, "mmi.service", name)
			if _, rb := c.getReply(2*time.Second, cv, mdp.Final); !eq(rb, "404") {
				t.Errorf("%v mmi.service %q = %q, want 404", cv, name, rb)
			}
		}
		c.request(cv, "mmi.services", "x")
		if _, rb := c.getReply(2*time.Second, cv, mdp.Final); !eq(rb, "200") {
			t.Errorf("%v mmi.services = %q, want only 200", cv, rb)
		}
	}

	// A worker whose identity, not service, starts with "mmi." is fine.
	before := b.Stats()
	for i, v := range []mdp.Version{mdp.V1, mdp.V2} {
		w := newPeerID(t, b.ep, []byte(fmt.Sprintf("mmi.worker%d", i)))
		w.ready(v, "echo")
		waitFor(t, b, "mmi.worker registered", func(s Stats) bool { return s.Workers == 1 })
		c := newPeer(t, b.ep)
		c.request(mdp.V2, "mmi.service", "echo")
		if _, rb := c.getReply(2*time.Second, mdp.V2, mdp.Final); !eq(rb, "200") {
			t.Fatalf("mmi.service echo = %q, want 200", rb)
		}
		c.request(v, "echo", "hi")
		addr, body := w.getRequest(2 * time.Second)
		if !eq(bstr(body), "hi") {
			t.Fatalf("worker got %q", body)
		}
		w.reply(v, mdp.Final, addr, "hi back")
		if _, rb := c.getReply(2*time.Second, v, mdp.Final); !eq(rb, "hi back") {
			t.Fatalf("reply %q", rb)
		}
		w.sendMsg(&mdp.Message{Version: v, Role: mdp.RoleWorker, Command: mdp.Disconnect})
		waitWorkers(t, b, 0)
		if f := w.barrier(true); f != nil {
			t.Errorf("worker got %q after its DISCONNECT", f)
		}
	}
	if s := b.Stats(); s.Dropped[DropMMIWorker] != before.Dropped[DropMMIWorker] || s.Registered != before.Registered+2 {
		t.Errorf("mmi.* identities: Dropped[mmi_worker] +%d, Registered +%d (want 0, 2)",
			s.Dropped[DropMMIWorker]-before.Dropped[DropMMIWorker], s.Registered-before.Registered)
	}

	// The refused workers heard nothing after their DISCONNECT.
	var refused []named
	for i, p := range rejected {
		refused = append(refused, named{fmt.Sprintf("refused worker %d", i), p})
	}
	expectQuiet(t, b, refused)
}

// randomMessage returns a random frame list of 0..20 frames, often shaped
// like MDP (empty frame 0, real headers, real command bytes, known service
// names and peer identities) so that it gets past the first checks.
func randomMessage(r *rand.Rand, ids [][]byte) [][]byte {
	junk := func() []byte {
		b := make([]byte, r.IntN(65))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return b
	}
	n := r.IntN(21)
	if r.IntN(4) == 0 { // Pure junk.
		f := make([][]byte, n)
		for i := range f {
			f[i] = junk()
		}
		return f
	}
	headers := []string{hC1, hW1, hC2, hW2}
	services := []string{"r.a", "r.b", "", "mmi.service", "mmi.services", "mmi.workers", "mmi.zz", "mmi."}
	var f [][]byte
	if r.IntN(2) == 0 {
		f = append(f, []byte{})
	}
	switch r.IntN(10) {
	case 0:
		f = append(f, junk())
	case 1: // A header with one byte changed.
		h := []byte(headers[r.IntN(4)])
		h[r.IntN(6)] ^= byte(1 + r.IntN(255))
		f = append(f, h)
	default:
		f = append(f, []byte(headers[r.IntN(4)]))
	}
	if r.IntN(5) > 0 {
		f = append(f, []byte{byte(r.IntN(9))})
	}
	for len(f) < n {
		switch r.IntN(6) {
		case 0:
			f = append(f, []byte{})
		case 1:
			f = append(f, []byte(services[r.IntN(len(services))]))
		case 2:
			f = append(f, ids[r.IntN(len(ids))])
		default:
			f = append(f, junk())
		}
	}
	if len(f) > n && r.IntN(3) > 0 {
		f = f[:n]
	}
	if len(f) > 20 {
		f = f[:20]
	}
	return f
}

// TestRandomFramesDoNotWedge sends 3000 random frame lists from several
// peers, plus garbage on raw TCP connections, and checks that the broker
// forgets everything they created, still serves normal traffic, and leaks no
// goroutine.
func TestRandomFramesDoNotWedge(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	cfg := tcpConfig()
	cfg.RequestTimeout = 200 * time.Millisecond
	cfg.ServiceTTL = 200 * time.Millisecond
	b := startBroker(t, cfg)

	const nPeers, nMessages = 8, 3000
	r := rand.New(rand.NewPCG(20240601, 7))
	ids := make([][]byte, nPeers)
	peers := make([]*peer, nPeers)
	for i := range peers {
		ids[i] = []byte(fmt.Sprintf("rnd-%d", i))
		peers[i] = newPeerID(t, b.ep, ids[i])
	}
	sent, empty := 0, 0
	for i := 0; i < nMessages; i++ {
		f := randomMessage(r, ids)
		if len(f) == 0 {
			empty++ // A ZeroMQ message cannot have zero frames.
			continue
		}
		peers[r.IntN(nPeers)].send(f...)
		sent++
	}
	// A marker per peer: an MMI request whose reply proves that the broker
	// has handled everything that peer sent before it.
	for i, p := range peers {
		marker := fmt.Sprintf("mmi.marker-%d", i)
		p.request(mdp.V2, marker, "x")
		deadline := time.Now().Add(3 * time.Second)
		for {
			f := p.recv(time.Until(deadline))
			if f == nil {
				t.Fatalf("peer %d: no reply to its marker; broker wedged? stats %+v", i, b.Stats())
			}
			if m, err := mdp.DecodeFromBroker(f); err == nil && m.Command == mdp.Final && string(m.Service) == marker {
				break
			}
		}
	}
	s := b.Stats()
	t.Logf("random: %d messages sent (%d empty skipped); dropped %d %v; requests %d, registered %d, removed %v",
		sent, empty, s.TotalDropped(), s.Dropped, s.Requests, s.Registered, s.Removed)
	if s.TotalDropped() == 0 {
		t.Errorf("no message dropped out of %d random ones", sent)
	}
	for _, p := range peers {
		p.close()
	}

	// Raw TCP garbage: not even ZMTP.
	hostport := strings.TrimPrefix(b.ep, "tcp://")
	greeting := append([]byte{0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0}, []byte("NULL")...)
	greeting = append(greeting, make([]byte, 16+1+31)...)
	for i, payload := range [][]byte{
		nil,
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		hjunk(11, 4096),
		append(bytes.Clone(greeting), hjunk(12, 512)...),
		append(bytes.Clone(greeting), 0x06, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), // Huge long frame.
	} {
		conn, err := net.DialTimeout("tcp", hostport, time.Second)
		if err != nil {
			t.Fatalf("raw %d: %v", i, err)
		}
		conn.SetDeadline(time.Now().Add(time.Second))
		conn.Write(payload)
		time.Sleep(10 * time.Millisecond)
		conn.Close()
	}

	// Everything the random peers created goes away: workers expire or
	// become unreachable, queued requests expire, services are forgotten.
	waitFor(t, b, "state left by random peers to drain", func(s Stats) bool {
		return s.Workers == 0 && s.Queued == 0 && s.QueuedBytes == 0 && s.Services == 0
	})

	normal := checkNormalTraffic(t, b, "after.random")
	if s := b.Stats(); s.TotalDropped() == 0 {
		t.Errorf("TotalDropped = 0")
	}

	for _, p := range normal {
		p.close()
	}
	b.Close()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > goroutines+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d before, %d after\n%s", goroutines, runtime.NumGoroutine(), buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
