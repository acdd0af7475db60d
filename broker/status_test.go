package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/mdp"
)

func TestStatus(t *testing.T) {
	cfg := fastConfig()
	cfg.HeartbeatLiveness = 50 // Raw peers here do not heartbeat.
	b := startBroker(t, cfg)
	w1, w2 := newPeer(t, b.ep), newPeer(t, b.ep)
	w1.register(b, mdp.V1, "echo")
	w2.register(b, mdp.V2, "echo")
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

func TestShutdownDrainsInFlight(t *testing.T) {
	tb := runBroker(t, fastConfig())
	b := tb.Broker
	w := newPeer(t, tb.ep)
	w.register(tb, mdp.V1, "slow")
	c := newPeer(t, tb.ep)
	c.request(mdp.V1, "slow", "in-flight")
	addr, _ := w.getRequest(wait)
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- b.Shutdown(ctx)
	}()
	// Draining: a new request is accepted but not dispatched.
	testutil.Eventually(t, testutil.WaitLimit, "draining", func() bool {
		var paused bool
		return b.inLoop(func() { paused = b.pool.Paused() }) && paused
	})
	c.request(mdp.V1, "slow", "late")
	waitFor(t, tb, "late queued", func(s Stats) bool { return s.Queued == 1 })
	// The in-flight request completes and its reply is delivered.
	w.reply(mdp.V1, mdp.Final, addr, "done")
	if _, got := c.getReply(wait, mdp.V1, mdp.Final); !eq(got, "done") {
		t.Fatalf("got %q", got)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-tb.errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	w.expectDisconnect(wait)
	s := b.Stats()
	if s.Dropped[DropShutdown] != 1 || s.Removed[RemovedShutdown] != 1 {
		t.Fatalf("shutdown drops %d, removals %d", s.Dropped[DropShutdown], s.Removed[RemovedShutdown])
	}
}

func TestShutdownGraceExpires(t *testing.T) {
	tb := runBroker(t, fastConfig())
	b := tb.Broker
	w := newPeer(t, tb.ep)
	w.ready(mdp.V1, "stuck")
	c := newPeer(t, tb.ep)
	c.request(mdp.V1, "stuck", "x")
	w.getRequest(wait)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := b.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-tb.errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestReload(t *testing.T) {
	b := startBroker(t, fastConfig())
	cfg := fastConfig()
	cfg.Endpoints = b.Endpoints() // The same endpoint: nothing to restart for.
	cfg.MaxQueue = 1
	cfg.MaxFrameSize = 1 << 20
	kept, err := b.Reload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 1 || kept[0] != "MaxFrameSize" {
		t.Fatalf("kept %q, want [MaxFrameSize]", kept)
	}
	c := newPeer(t, b.ep)
	c.request(mdp.V1, "q", "1")
	c.request(mdp.V1, "q", "2")
	waitFor(t, b, "new limit", func(s Stats) bool { return s.Dropped[DropQueueFull] == 1 })
	bad := fastConfig()
	bad.HeartbeatLiveness = -1
	_, err = b.Reload(bad)
	var ce *ConfigError
	if !errors.Is(err, ErrConfig) || !errors.As(err, &ce) || ce.Field != "HeartbeatLiveness" || ce.Value != -1 {
		t.Fatalf("bad reload: %v; want a ConfigError naming HeartbeatLiveness=-1", err)
	}
}

func TestClientInFlightLimit(t *testing.T) {
	cfg := fastConfig()
	cfg.MaxClientInFlight = 2
	cfg.HeartbeatLiveness = 50
	b := startBroker(t, cfg)
	greedy, other := newPeer(t, b.ep), newPeer(t, b.ep)
	for i := 0; i < 3; i++ {
		greedy.request(mdp.V1, "slow", "g")
	}
	other.request(mdp.V1, "slow", "o")
	s := waitFor(t, b, "limit", func(s Stats) bool { return s.Dropped[DropClientInFlight] == 1 && s.Queued == 3 })
	st := b.Status()
	if st.Services[0].DroppedBy[DropClientInFlight] != 1 || st.Services[0].Dropped != 1 {
		t.Fatalf("per-service drops %+v", st.Services[0])
	}
	// Answers give the places back: after two replies the client may send
	// two more.
	w := newPeer(t, b.ep)
	w.ready(mdp.V1, "slow")
	for i := 0; i < 3; i++ {
		addr, _ := w.getRequest(wait)
		w.reply(mdp.V1, mdp.Final, addr, "ok")
	}
	greedy.getReply(wait, mdp.V1, mdp.Final)
	greedy.getReply(wait, mdp.V1, mdp.Final)
	other.getReply(wait, mdp.V1, mdp.Final)
	greedy.request(mdp.V1, "slow", "again")
	addr, body := w.getRequest(wait)
	if string(body[0]) != "again" {
		t.Fatalf("got %q", body)
	}
	w.reply(mdp.V1, mdp.Final, addr, "ok")
	greedy.getReply(wait, mdp.V1, mdp.Final)
	if got := b.Stats().Dropped[DropClientInFlight]; got != s.Dropped[DropClientInFlight] {
		t.Fatalf("dropped again: %d", got)
	}
	// Nothing outstanding: the per-client table is empty again.
	var n int
	b.inLoop(func() { n = len(b.inflight) })
	if n != 0 {
		t.Fatalf("in-flight table holds %d clients", n)
	}
}

func TestConnectionsGauge(t *testing.T) {
	b := startBroker(t, fastConfig())
	p1, p2 := newPeer(t, b.ep), newPeer(t, b.ep)
	p1.request(mdp.V1, "mmi.service", "x")
	p2.request(mdp.V1, "mmi.service", "x")
	p1.getReply(wait, mdp.V1, mdp.Final)
	p2.getReply(wait, mdp.V1, mdp.Final)
	waitFor(t, b, "two connections", func(s Stats) bool { return s.Connections == 2 })
	p2.close()
	waitFor(t, b, "one connection", func(s Stats) bool { return s.Connections == 1 })
}
