package broker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/mdp"
)

const wait = 2 * time.Second

func TestEchoBothVersions(t *testing.T) {
	b := startBroker(t, fastConfig())
	for _, v := range []mdp.Version{mdp.V1, mdp.V2} {
		t.Run(v.String(), func(t *testing.T) {
			w := newPeer(t, b.ep)
			svc := "echo" + v.String()
			w.ready(v, svc)
			// 7/MDP: "There is no response to a READY."
			w.expectNothing()
			c := newPeer(t, b.ep)
			c.request(v, svc, "hello", "world")
			addr, body := w.getRequest(wait)
			if len(body) != 2 || string(body[0]) != "hello" || string(body[1]) != "world" {
				t.Fatalf("worker got body %q", body)
			}
			w.reply(v, mdp.Final, addr, "r1", "r2")
			s, got := c.getReply(wait, v, mdp.Final)
			if s != svc || !eq(got, "r1", "r2") {
				t.Fatalf("client got %q %q", s, got)
			}
		})
	}
}

func TestReqSocketClient(t *testing.T) {
	// The Guide's 0.1 clients use REQ sockets, which add and strip the
	// empty frame themselves.
	b := startBroker(t, fastConfig())
	w := newPeer(t, b.ep)
	w.register(b, mdp.V1, "echo")
	c := newReqPeer(t, b.ep)
	c.sendStr(mdp.ClientV1, "echo", "ping")
	addr, _ := w.getRequest(wait)
	w.reply(mdp.V1, mdp.Final, addr, "pong")
	f := c.mustRecv(wait)
	if len(f) != 3 || string(f[0]) != mdp.ClientV1 || string(f[1]) != "echo" || string(f[2]) != "pong" {
		t.Fatalf("REQ client got %q", f)
	}
}

func TestStreamingAndCrossVersion(t *testing.T) {
	b := startBroker(t, fastConfig())
	w := newPeer(t, b.ep)
	w.register(b, mdp.V2, "stream")

	// A 0.2 client sees every PARTIAL, then the FINAL.
	c2 := newPeer(t, b.ep)
	c2.request(mdp.V2, "stream", "go")
	addr, _ := w.getRequest(wait)
	w.reply(mdp.V2, mdp.Partial, addr, "p1")
	w.reply(mdp.V2, mdp.Partial, addr, "p2")
	w.reply(mdp.V2, mdp.Final, addr, "done")
	for _, want := range []string{"p1", "p2"} {
		if _, got := c2.getReply(wait, mdp.V2, mdp.Partial); !eq(got, want) {
			t.Fatalf("partial: got %q want %q", got, want)
		}
	}
	if _, got := c2.getReply(wait, mdp.V2, mdp.Final); !eq(got, "done") {
		t.Fatalf("final: got %q", got)
	}

	// A 0.1 client gets exactly one reply: the FINAL; PARTIALs are dropped
	// and counted.
	before := b.Stats().Dropped[DropPartialToV1]
	c1 := newPeer(t, b.ep)
	c1.request(mdp.V1, "stream", "go")
	addr, _ = w.getRequest(wait)
	w.reply(mdp.V2, mdp.Partial, addr, "p1")
	w.reply(mdp.V2, mdp.Partial, addr, "p2")
	w.reply(mdp.V2, mdp.Final, addr, "done")
	if _, got := c1.getReply(wait, mdp.V1, mdp.Final); !eq(got, "done") {
		t.Fatalf("0.1 client: got %q", got)
	}
	c1.expectNothing()
	if d := b.Stats().Dropped[DropPartialToV1] - before; d != 2 {
		t.Fatalf("partials dropped for 0.1 client = %d, want 2", d)
	}

	// A 0.1 worker's REPLY reaches a 0.2 client as FINAL.
	w1 := newPeer(t, b.ep)
	w1.register(b, mdp.V1, "old")
	c2.request(mdp.V2, "old", "x")
	addr, _ = w1.getRequest(wait)
	w1.reply(mdp.V1, mdp.Final, addr, "y")
	if _, got := c2.getReply(wait, mdp.V2, mdp.Final); !eq(got, "y") {
		t.Fatalf("0.2 client of 0.1 worker: got %q", got)
	}
}

func TestDelimitedV2Peers(t *testing.T) {
	// 0.2 peers that put an empty frame before the header (as 0.1 does)
	// are answered in the same shape.
	b := startBroker(t, fastConfig())
	w := newPeer(t, b.ep)
	w.sendStr("", mdp.WorkerV2, "\x01", "svc")
	waitWorkers(t, b, 1)
	c := newPeer(t, b.ep)
	c.sendStr("", mdp.ClientV2, "\x01", "svc", "q")
	f := w.mustRecv(wait)
	if len(f) != 6 || len(f[0]) != 0 || string(f[1]) != mdp.WorkerV2 {
		t.Fatalf("worker got %q", f)
	}
	w.send([]byte{}, []byte(mdp.WorkerV2), []byte{4}, f[3], []byte{}, []byte("a"))
	r := c.mustRecv(wait)
	if len(r) != 5 || len(r[0]) != 0 || string(r[1]) != mdp.ClientV2 || r[2][0] != 3 || string(r[4]) != "a" {
		t.Fatalf("client got %q", r)
	}
}

func TestLeastRecentlyUsedDispatch(t *testing.T) {
	b := startBroker(t, fastConfig())
	w1, w2 := newPeer(t, b.ep), newPeer(t, b.ep)
	w1.register(b, mdp.V1, "lru")
	w2.register(b, mdp.V1, "lru")
	c := newPeer(t, b.ep)
	// w1 has been idle longest, so it is served first; after it replies it
	// goes to the back, behind w2.
	c.request(mdp.V1, "lru", "1")
	addr, _ := w1.getRequest(wait)
	w1.reply(mdp.V1, mdp.Final, addr, "1")
	c.getReply(wait, mdp.V1, mdp.Final)
	c.request(mdp.V1, "lru", "2")
	addr, _ = w2.getRequest(wait)
	w2.reply(mdp.V1, mdp.Final, addr, "2")
	c.getReply(wait, mdp.V1, mdp.Final)
	c.request(mdp.V1, "lru", "3")
	addr, _ = w1.getRequest(wait)
	w1.reply(mdp.V1, mdp.Final, addr, "3")
	c.getReply(wait, mdp.V1, mdp.Final)
	w2.expectNothing()
}

func TestFairAcrossClients(t *testing.T) {
	b := startBroker(t, fastConfig())
	greedy, modest := newPeer(t, b.ep), newPeer(t, b.ep)
	const flood = 2000
	for i := 0; i < flood; i++ {
		greedy.request(mdp.V2, "fair", fmt.Sprint("g", i))
	}
	waitFor(t, b, "flood queued", func(s Stats) bool { return s.Queued == flood })
	modest.request(mdp.V2, "fair", "m")
	waitFor(t, b, "modest queued", func(s Stats) bool { return s.Queued == flood+1 })
	w := newPeer(t, b.ep)
	w.ready(mdp.V2, "fair")
	// Round-robin over clients: the modest client's request is at most the
	// second one served, not the 2001st.
	for i := 0; i < 2; i++ {
		addr, body := w.getRequest(wait)
		if string(body[0]) == "m" {
			w.reply(mdp.V2, mdp.Final, addr, "ok")
			modest.getReply(wait, mdp.V2, mdp.Final)
			return
		}
		w.reply(mdp.V2, mdp.Final, addr, "ok")
	}
	t.Fatal("modest client's request was not among the first two served")
}

func TestQueuedUntilWorkerArrives(t *testing.T) {
	b := startBroker(t, fastConfig())
	c := newPeer(t, b.ep)
	c.request(mdp.V1, "late", "a")
	c.request(mdp.V1, "late", "b")
	waitFor(t, b, "queued", func(s Stats) bool { return s.Queued == 2 })
	w := newPeer(t, b.ep)
	w.ready(mdp.V1, "late")
	for _, want := range []string{"a", "b"} {
		addr, body := w.getRequest(wait)
		if string(body[0]) != want {
			t.Fatalf("got %q want %q", body[0], want)
		}
		w.reply(mdp.V1, mdp.Final, addr, want)
		if _, got := c.getReply(wait, mdp.V1, mdp.Final); !eq(got, want) {
			t.Fatalf("reply %q want %q", got, want)
		}
	}
}

func TestQueuedRequestsExpire(t *testing.T) {
	cfg := fastConfig()
	cfg.RequestTimeout = 150 * time.Millisecond
	b := startBroker(t, cfg)
	c := newPeer(t, b.ep)
	c.request(mdp.V1, "nobody", "a")
	c.request(mdp.V1, "nobody", "b")
	s := waitFor(t, b, "expiry", func(s Stats) bool { return s.Dropped[DropExpired] == 2 })
	if s.Queued != 0 || s.QueuedBytes != 0 {
		t.Fatalf("after expiry queued=%d bytes=%d", s.Queued, s.QueuedBytes)
	}
	// An expired request is not delivered to a worker that comes later.
	w := newPeer(t, b.ep)
	w.ready(mdp.V1, "nobody")
	w.expectNothing()
}

func TestHeartbeatsIdleAndBusy(t *testing.T) {
	b := startBroker(t, fastConfig())
	w := newPeer(t, b.ep)
	w.register(b, mdp.V1, "hb")
	countBeats := func(d time.Duration) int {
		n := 0
		deadline := time.Now().Add(d)
		for time.Now().Before(deadline) {
			f := w.recv(time.Until(deadline))
			if f == nil {
				break
			}
			m, err := mdp.DecodeFromBroker(f)
			if err != nil || m.Command != mdp.Heartbeat {
				t.Fatalf("unexpected %q", f)
			}
			n++
			// Answer, as a live worker does, so that we are not purged.
			w.sendMsg(&mdp.Message{Version: mdp.V1, Role: mdp.RoleWorker, Command: mdp.Heartbeat})
		}
		return n
	}
	if n := countBeats(450 * time.Millisecond); n < 2 {
		t.Fatalf("idle worker got %d heartbeats in 450ms at 100ms interval", n)
	}
	c := newPeer(t, b.ep)
	c.request(mdp.V1, "hb", "x")
	w.getRequest(wait)
	if n := countBeats(450 * time.Millisecond); n < 2 {
		t.Fatalf("busy worker got %d heartbeats in 450ms at 100ms interval", n)
	}
}

func TestSilentBusyWorkerPurgedAndRequestRedelivered(t *testing.T) {
	b := startBroker(t, fastConfig())
	dead := newPeer(t, b.ep)
	dead.register(b, mdp.V1, "work")
	c := newPeer(t, b.ep)
	c.request(mdp.V1, "work", "job")
	dead.getRequest(wait)
	// dead never speaks again. After liveness × interval it is removed even
	// though it is busy, and mmi.service stops saying 200.
	s := waitFor(t, b, "purge", func(s Stats) bool { return s.Removed[RemovedExpired] == 1 })
	if s.Workers != 0 || s.Queued != 1 {
		t.Fatalf("after purge workers=%d queued=%d", s.Workers, s.Queued)
	}
	c.request(mdp.V1, "mmi.service", "work")
	if _, got := c.getReply(wait, mdp.V1, mdp.Final); !eq(got, "404") {
		t.Fatalf("mmi.service after purge: %q", got)
	}
	dead.expectDisconnect(wait)
	// The request it held goes to the next worker.
	live := newPeer(t, b.ep)
	live.ready(mdp.V1, "work")
	addr, body := live.getRequest(wait)
	if string(body[0]) != "job" {
		t.Fatalf("redelivered %q", body)
	}
	live.reply(mdp.V1, mdp.Final, addr, "done")
	if _, got := c.getReply(wait, mdp.V1, mdp.Final); !eq(got, "done") {
		t.Fatalf("client got %q", got)
	}
	if r := b.Stats().Redelivered; r != 1 {
		t.Fatalf("redelivered = %d", r)
	}
}

func TestWorkerDisconnectRedeliversAndAttemptsAreBounded(t *testing.T) {
	cfg := fastConfig()
	cfg.MaxAttempts = 2
	b := startBroker(t, cfg)
	c := newPeer(t, b.ep)
	c.request(mdp.V2, "flaky", "job")
	for i := 0; i < 2; i++ {
		w := newPeer(t, b.ep)
		w.ready(mdp.V2, "flaky")
		w.getRequest(wait)
		// 7/MDP: after DISCONNECT the broker "MUST send no further
		// commands to that worker".
		w.sendMsg(&mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Disconnect})
		waitFor(t, b, "removal", func(s Stats) bool { return s.Removed[RemovedDisconnect] == uint64(i+1) })
		if f := w.barrier(false); f != nil {
			t.Fatalf("message after DISCONNECT: %q", f)
		}
	}
	s := waitFor(t, b, "drop", func(s Stats) bool { return s.Dropped[DropAttemptsExhausted] == 1 })
	if s.Queued != 0 || s.Redelivered != 1 {
		t.Fatalf("queued=%d redelivered=%d", s.Queued, s.Redelivered)
	}
}

func TestRedeliveryDisabled(t *testing.T) {
	cfg := fastConfig()
	cfg.DisableRedelivery = true
	b := startBroker(t, cfg)
	w := newPeer(t, b.ep)
	w.ready(mdp.V1, "once")
	c := newPeer(t, b.ep)
	c.request(mdp.V1, "once", "job")
	w.getRequest(wait)
	w.sendMsg(&mdp.Message{Version: mdp.V1, Role: mdp.RoleWorker, Command: mdp.Disconnect})
	s := waitFor(t, b, "lost", func(s Stats) bool { return s.Dropped[DropWorkerLost] == 1 })
	if s.Queued != 0 {
		t.Fatalf("queued=%d", s.Queued)
	}
}

func TestQueueBounds(t *testing.T) {
	cfg := fastConfig()
	cfg.MaxQueue = 3
	cfg.MaxQueuedBytes = 10
	b := startBroker(t, cfg)
	c := newPeer(t, b.ep)
	for i := 0; i < 5; i++ {
		c.request(mdp.V1, "q", "a")
	}
	waitFor(t, b, "queue full", func(s Stats) bool { return s.Queued == 3 && s.Dropped[DropQueueFull] == 2 })
	c.request(mdp.V1, "other", "12345678")
	waitFor(t, b, "bytes", func(s Stats) bool { return s.Dropped[DropQueueBytes] == 1 && s.QueuedBytes == 3 })
}

func TestServicesForgottenAndBounded(t *testing.T) {
	cfg := fastConfig()
	cfg.ServiceTTL = 100 * time.Millisecond
	cfg.RequestTimeout = 50 * time.Millisecond
	cfg.MaxServices = 5
	b := startBroker(t, cfg)
	c := newPeer(t, b.ep)
	for i := 0; i < 8; i++ {
		c.request(mdp.V1, fmt.Sprint("random-", i), "x")
	}
	waitFor(t, b, "service cap", func(s Stats) bool { return s.Services == 5 && s.Dropped[DropTooManyServices] == 3 })
	waitFor(t, b, "services forgotten", func(s Stats) bool { return s.Services == 0 })
}

func TestMMI(t *testing.T) {
	b := startBroker(t, fastConfig())
	w1, w2 := newPeer(t, b.ep), newPeer(t, b.ep)
	w1.register(b, mdp.V1, "beta")
	w2.register(b, mdp.V2, "alpha")
	q := newPeer(t, b.ep)
	q.request(mdp.V1, "later", "x") // queued, no worker
	waitFor(t, b, "queued", func(s Stats) bool { return s.Queued == 1 })
	for _, v := range []mdp.Version{mdp.V1, mdp.V2} {
		c := newPeer(t, b.ep)
		ask := func(svc string, body string, want ...string) {
			t.Helper()
			c.request(v, svc, body)
			s, got := c.getReply(wait, v, mdp.Final)
			if s != svc || !eq(got, want...) {
				t.Fatalf("%v %s %q: got %s %q, want %q", v, svc, body, s, got, want)
			}
		}
		ask("mmi.service", "alpha", "200")
		ask("mmi.service", "beta", "200")
		ask("mmi.service", "later", "404") // queued requests but no worker
		ask("mmi.service", "nope", "404")
		ask("mmi.service", "", "404")
		ask("mmi.services", "", "200", "alpha", "beta")
		ask("mmi.workers", "alpha", "200", "1", "0", "0")
		ask("mmi.workers", "later", "200", "0", "0", "1")
		ask("mmi.workers", "nope", "404")
		ask("mmi.nothing", "", "501")
		ask("mmi.", "", "501")
	}
	// A busy worker still counts as registered.
	c := newPeer(t, b.ep)
	c.request(mdp.V1, "beta", "work")
	w1.getRequest(wait)
	c2 := newPeer(t, b.ep)
	c2.request(mdp.V1, "mmi.service", "beta")
	if _, got := c2.getReply(wait, mdp.V1, mdp.Final); !eq(got, "200") {
		t.Fatalf("busy: %q", got)
	}
	c2.request(mdp.V1, "mmi.workers", "beta")
	if _, got := c2.getReply(wait, mdp.V1, mdp.Final); !eq(got, "200", "0", "1", "0") {
		t.Fatalf("busy workers: %q", got)
	}
}

func TestReplyToVanishedClientIsCounted(t *testing.T) {
	b := startBroker(t, fastConfig())
	w := newPeer(t, b.ep)
	w.ready(mdp.V1, "slow")
	c := newPeer(t, b.ep)
	c.request(mdp.V1, "slow", "x")
	addr, _ := w.getRequest(wait)
	c.close()
	waitFor(t, b, "the client's disconnect", func(s Stats) bool { return s.Connections == 1 })
	w.reply(mdp.V1, mdp.Final, addr, "y")
	waitFor(t, b, "unroutable", func(s Stats) bool { return s.Dropped[DropReplyUnroutable] == 1 })
	// The worker is idle again and serves the next request.
	c2 := newPeer(t, b.ep)
	c2.request(mdp.V1, "slow", "z")
	addr, _ = w.getRequest(wait)
	w.reply(mdp.V1, mdp.Final, addr, "ok")
	c2.getReply(wait, mdp.V1, mdp.Final)
}

func TestShutdownDisconnectsWorkers(t *testing.T) {
	cfg := fastConfig()
	cfg.Endpoints = []string{"tcp://127.0.0.1:*"}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.Run(ctx) }()
	ep := b.Endpoints()[0]
	ws := []*peer{newPeer(t, ep), newPeer(t, ep)}
	ws[0].ready(mdp.V1, "a")
	ws[1].ready(mdp.V2, "b")
	waitWorkers(t, &testBroker{Broker: b}, 2)
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	for _, w := range ws {
		w.expectDisconnect(wait)
	}
	if s := b.Stats(); s.Removed[RemovedShutdown] != 2 {
		t.Fatalf("removed on shutdown: %d", s.Removed[RemovedShutdown])
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: %v", err)
	}
}

func TestCloseWithoutRun(t *testing.T) {
	b, err := New(fastConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"Endpoints", func(c *Config) { c.Endpoints = []string{"udp://x"} }},
		{"HeartbeatInterval", func(c *Config) { c.HeartbeatInterval = time.Millisecond }},
		{"HeartbeatLiveness", func(c *Config) { c.HeartbeatLiveness = -1 }},
		{"MaxQueue", func(c *Config) { c.MaxQueue = -1 }},
		{"MaxFrames", func(c *Config) { c.MaxFrames = 2 }},
		{"MaxAttempts", func(c *Config) { c.MaxAttempts = -2 }},
	} {
		cfg := fastConfig()
		tc.mod(&cfg)
		_, err := New(cfg)
		var ce *ConfigError
		if !errors.Is(err, ErrConfig) || !errors.As(err, &ce) || ce.Field != tc.name {
			t.Errorf("%s: got %v, want a ConfigError naming the field", tc.name, err)
		}
	}
	cfg := fastConfig()
	cfg.Endpoints = []string{"tcp://256.0.0.1:1"}
	if _, err := New(cfg); err == nil {
		t.Error("bind to a bad address succeeded")
	}
}

func TestWorkerEvictsClientOnlyServiceAtLimit(t *testing.T) {
	cfg := fastConfig()
	cfg.MaxServices = 3
	b := startBroker(t, cfg)
	c := newPeer(t, b.ep)
	for i := 0; i < 3; i++ {
		c.request(mdp.V1, fmt.Sprint("made-up-", i), "x")
	}
	waitFor(t, b, "cap", func(s Stats) bool { return s.Services == 3 && s.Queued == 3 })
	// A real worker still gets in: a service without workers makes room.
	w := newPeer(t, b.ep)
	w.ready(mdp.V1, "real")
	s := waitFor(t, b, "worker", func(s Stats) bool { return s.Workers == 1 })
	if s.Services != 3 || s.Queued != 2 || s.Dropped[DropTooManyServices] != 1 {
		t.Fatalf("services=%d queued=%d dropped=%d", s.Services, s.Queued, s.Dropped[DropTooManyServices])
	}
	// With every service served by a worker, a new READY is refused.
	cfg2 := fastConfig()
	cfg2.MaxServices = 1
	b2 := startBroker(t, cfg2)
	w1, w2 := newPeer(t, b2.ep), newPeer(t, b2.ep)
	w1.register(b2, mdp.V1, "one")
	w2.ready(mdp.V1, "two")
	w2.expectDisconnect(wait)
}
