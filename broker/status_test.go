package broker

import (
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/mdp"
)

func TestStatus(t *testing.T) {
	cfg := fastConfig()
	cfg.HeartbeatLiveness = 50 // Raw peers here do not heartbeat.
	b := startBroker(t, cfg)
	w1, w2 := newPeer(t, b.ep), newPeer(t, b.ep)
	w1.ready(mdp.V1, "echo")
	w2.ready(mdp.V2, "echo")
	waitWorkers(t, b, 2)
	c := newPeer(t, b.ep)
	for i := 0; i < 3; i++ {
		c.request(mdp.V2, "echo", "x")
		var w *peer
		var addr []byte
		// Either worker may take it; find which.
		for _, cand := range []*peer{w1, w2} {
			if f := cand.recvSkip(100 * time.Millisecond); f != nil {
				m, err := mdp.DecodeFromBroker(f)
				if err != nil || m.Command != mdp.Request {
					t.Fatalf("got %q", f)
				}
				w, addr = cand, m.Client
				break
			}
		}
		if w == nil {
			t.Fatal("no worker got the request")
		}
		v := mdp.V1
		if w == w2 {
			v = mdp.V2
			w.reply(v, mdp.Partial, addr, "p")
			c.getReply(wait, mdp.V2, mdp.Partial)
		}
		w.reply(v, mdp.Final, addr, "y")
		c.getReply(wait, mdp.V2, mdp.Final)
	}
	c.request(mdp.V1, "nobody", "q")
	waitFor(t, b, "queued", func(s Stats) bool { return s.Queued == 1 })

	st := b.Status()
	if len(st.Services) != 2 || st.Services[0].Name != "echo" || st.Services[1].Name != "nobody" {
		t.Fatalf("services %+v", st.Services)
	}
	echo, nobody := st.Services[0], st.Services[1]
	if echo.Workers != 2 || echo.Idle != 2 || echo.Requests != 3 || echo.Replies != 3 || !echo.Registered {
		t.Fatalf("echo %+v", echo)
	}
	if echo.QueueWait.Count != 3 || echo.ServiceTime.Count != 3 || len(echo.ServiceTime.Counts) != len(LatencyBuckets)+1 {
		t.Fatalf("echo histograms %+v %+v", echo.QueueWait, echo.ServiceTime)
	}
	if nobody.Registered || nobody.Queued != 1 || nobody.QueuedBytes != 1 || nobody.Requests != 1 {
		t.Fatalf("nobody %+v", nobody)
	}
	if len(st.Workers) != 2 || st.Workers[0].Service != "echo" || st.Workers[0].Since.IsZero() {
		t.Fatalf("workers %+v", st.Workers)
	}
	var served uint64
	for _, w := range st.Workers {
		served += w.Served
		if w.LastSeen < 0 || w.LastSeen > 5*time.Second {
			t.Fatalf("last seen %v", w.LastSeen)
		}
	}
	if served != 3 || st.Started.IsZero() || len(st.Endpoints) != 1 {
		t.Fatalf("served %d, status %+v", served, st)
	}
	// The snapshot is a copy: later traffic does not change it.
	before := st.Services[0].QueueWait.Counts[0]
	c.request(mdp.V1, "echo", "z")
	waitFor(t, b, "dispatch", func(s Stats) bool { return s.BusyWorkers == 1 })
	if st.Services[0].QueueWait.Counts[0] != before {
		t.Fatal("snapshot shares memory with the loop")
	}
}
