package broker

// Hostile-input tests: every malformed message is dropped and counted by
// reason. The helpers here serve unexpected_test.go (valid commands at the
// wrong moment get DISCONNECT and nothing more) and random_test.go (no
// input makes the broker panic, wedge or leak).

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/testutil"
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
	var s Stats
	ok := testutil.Poll(d, func() bool { s = b.Stats(); return cond(s) })
	return s, ok
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

// longService is one byte over DefaultMaxServiceName.
var longService = strings.Repeat("s", DefaultMaxServiceName+1)

// hostileCatalogue returns the malformed messages of TestHostileCatalogue:
// 83 shapes. None of them is a valid MDP message in either version, so each
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
		{"0.1 client service name over MaxServiceName", hf("", hC1, longService, "x"), DropService},
		{"0.2 client service name over MaxServiceName", hf(hC2, c2Request, longService, "x"), DropService},

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
		{"0.1 READY service name over MaxServiceName", hf("", hW1, w1Ready, longService), DropService},
		{"0.2 READY service name over MaxServiceName", hf(hW2, w2Ready, longService), DropService},
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

// TestHostileCatalogue sends every shape of hostileCatalogue (83 shapes) from
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

	// Boundary: a service name of MaxServiceName bytes is accepted.
	before = b.Stats()
	p.send(hf(hC2, c2Request, longService[1:], "x")...)
	s = waitFor(t, b, "MaxServiceName-byte service accepted", func(s Stats) bool { return s.Requests == before.Requests+1 })
	if s.TotalDropped() != before.TotalDropped() || s.Queued != before.Queued+1 {
		t.Errorf("a request for a %d-byte service was not queued: %+v", DefaultMaxServiceName, s)
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
