package emqp

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/majordomo-go/majordomo/emqp/wire"
)

// Malformed input to every socket is dropped and counted under its reason;
// nothing is answered to an unregistered sender; the server keeps serving.
func TestMalformedInputCatalogue(t *testing.T) {
	ts := startServer(t)
	type shape struct {
		frames []string
		reason DropReason
	}
	P := wire.Protocol
	catalogue := []shape{
		{[]string{""}, DropShort}, // A lone delimiter.
		{[]string{"x"}, DropDelimiter},
		{[]string{"", "MDPC01", "echo", "hi"}, DropProtocol},
		{[]string{"", P}, DropShort},
		{[]string{"", P, "EXPLODE", "id"}, DropCommand},
		{[]string{"", P, "request", "id", "q", "", "p"}, DropCommand},
		{[]string{"", P, "REQUEST"}, DropMsgID},
		{[]string{"", P, "REQUEST", ""}, DropMsgID},
		{[]string{"", P, "REQUEST", strings.Repeat("i", 300)}, DropMsgID},
		{[]string{"", P, "REQUEST", "id", "q", ""}, DropShort},
		{[]string{"", P, "REQUEST", "id", "q", "", "p", "extra"}, DropExtraFrames},
		{[]string{"", P, "INFORM", "id", "[]"}, DropShort},
		{[]string{"", P, "READY", "id", "x"}, DropExtraFrames},
		{[]string{"", P, "REQUEST", "id", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, DropTooManyFrames},
	}
	socks := map[string]string{"front": ts.ep.Frontend, "back": ts.ep.Backend, "admin": ts.ep.Admin, "pubin": ts.ep.PubIn}
	want := map[DropReason]uint64{}
	sent := 0
	for name, ep := range socks {
		p := ts.dial(ep, "hostile-"+name)
		for _, sh := range catalogue {
			p.sendRaw(sh.frames...)
			want[sh.reason]++
		}
		sent += len(catalogue)
		ts.waitFor(name+" drops", func(s Stats) bool { return s.TotalDropped() >= uint64(sent) })
		p.quiet()
	}
	st := ts.s.Stats()
	for r, n := range want {
		if st.Dropped[r] != n {
			t.Errorf("%s: %d drops, want %d", r, st.Dropped[r], n)
		}
	}

	// Valid commands in the wrong place.
	back := ts.dial(ts.ep.Backend, "confused")
	back.send("READY")                   // Before INFORM: ignored.
	back.send("INFORM", "", "scheduler") // Schedulers belong on the frontend.
	back.send("INFORM", "{not json", "worker")
	back.send("INFORM", `[[10, ""]]`, "worker")
	ts.waitFor("back's four", func(s Stats) bool { return s.Dropped[DropUnknownPeer] == 1 && s.Dropped[DropBadInform] == 3 })
	back.quiet() // No ACK for a bad INFORM.
	front := ts.client("confused-front")
	front.send("INFORM", `[[10, "q"]]`, "worker") // Job managers belong on the backend.
	front.send("READY")
	front.send("KBYE")
	ts.waitFor("front's three", func(s Stats) bool { return s.Dropped[DropBadInform] == 4 && s.Dropped[DropUnexpected] == 2 })
	front.quiet()

	checkStillServing(t, ts)
}

// Random frames, valid and not, must not break the server.
func TestRandomFrames(t *testing.T) {
	ts := startServer(t)
	r := rand.New(rand.NewPCG(3, 4))
	words := []string{"", wire.Protocol, "REQUEST", "READY", "INFORM", "REPLY", "HEARTBEAT", "KBYE",
		"SCHEDULE", "UNSCHEDULE", "PUBLISH", "DISCONNECT", "STATUS", "HELLO", "ROUTER_SHOW_WORKERS",
		"worker", "scheduler", `[[10, "default"]]`, "default", "guarantee,reply-requested", "id-1", "\x00\xff"}
	var peers []*peer
	for name, ep := range map[string]string{"f": ts.ep.Frontend, "b": ts.ep.Backend, "a": ts.ep.Admin, "p": ts.ep.PubIn} {
		peers = append(peers, ts.dial(ep, "random-"+name))
	}
	for i := 0; i < 3000; i++ {
		p := peers[r.IntN(len(peers))]
		n := r.IntN(10)
		frames := make([]string, n)
		for k := range frames {
			if r.IntN(4) == 0 {
				b := make([]byte, r.IntN(20))
				for j := range b {
					b[j] = byte(r.Uint32())
				}
				frames[k] = string(b)
			} else {
				frames[k] = words[r.IntN(len(words))]
			}
		}
		if n == 0 {
			frames = []string{""}
		}
		if r.IntN(2) == 0 && n >= 3 { // Often well-formed enough to get past the header.
			frames[0], frames[1] = "", wire.Protocol
		}
		// Admin DISCONNECT would stop the server, which is its job.
		if p.name == "random-a" && n >= 3 && frames[2] == "DISCONNECT" {
			frames[2] = "HELLO"
		}
		p.sendRaw(frames...)
	}
	ts.waitFor("drops", func(s Stats) bool { return s.TotalDropped() > 100 })
	checkStillServing(t, ts)
}

// checkStillServing runs the normal path end to end.
func checkStillServing(t *testing.T, ts *testServer) {
	t.Helper()
	jm := ts.jobManager("healthy-jm", `[[10, "healthy"]]`)
	c := ts.client("healthy-client")
	jm.send("READY")
	id := c.request("healthy", "reply-requested", "ping")
	jm.expectRequest(id, "healthy", "reply-requested", "ping")
	jm.send("REPLY", `{"value": "pong"}`, id)
	for {
		r := c.expect("REPLY")
		if len(r) == 6 && string(r[5]) == id {
			break
		}
	}
	a := ts.admin("healthy-admin")
	a.adminJSON("STATUS")
}
