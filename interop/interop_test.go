// Package interop_test checks the broker against independent Majordomo
// peers: Python clients and workers written from 7/MDP, 18/MDP and 8/MMI in
// the style of the ZeroMQ Guide's Python examples (see py/). Each test runs
// an in-process broker on 127.0.0.1 with a 250 ms heartbeat and drives the
// Python processes, which print JSON lines on stdout.
//
// The tests need /usr/bin/python3 with the zmq module (python3-zmq); they
// fail, not skip, without it.
package interop_test

import (
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/broker"
)

func TestPythonHasZMQ(t *testing.T) {
	requirePython(t)
	t.Logf("%s: %s", python, pyCheck.out)
}

// (a) The Guide's classic pair: a 0.1 client on a REQ socket and a 0.1
// worker on a DEALER socket, 100 echo requests.
func TestV1EchoREQClientDealerWorker(t *testing.T) {
	b := startBroker(t)
	w := startWorker(t, "worker", b.ep, "--version", "1", "--service", "echo")
	b.waitStats(t, "worker registered", func(s broker.Stats) bool { return s.IdleWorkers == 1 })

	const n = 100
	evs := runClient(t, "client", b.ep, "--version", "1", "--socket", "req",
		"--service", "echo", "--count", strconv.Itoa(n), "--prefix", "a", "--expect-echo")
	for i, r := range replies(t, "client", evs, n) {
		want := []string{fmt.Sprintf("a-%d", i)}
		if !eq(r.Final, want) || len(r.Partials) != 0 || r.Service != "echo" {
			t.Fatalf("reply %d: service %q partials %v final %q, want final %q",
				i, r.Service, r.Partials, r.Final, want)
		}
	}

	// The worker leaves politely on SIGTERM: DISCONNECT, then exit.
	w.signal(syscall.SIGTERM)
	w.mustSucceed()
	exit := w.waitEvent("exit")
	if exit.Requests != n {
		t.Errorf("worker served %d requests, want %d", exit.Requests, n)
	}
	s := b.waitStats(t, "worker disconnected", func(s broker.Stats) bool { return s.Workers == 0 })
	if s.Requests != n || s.Replies != n || s.Dispatched != n || s.TotalDropped() != 0 ||
		s.RemovedBy(broker.RemovedDisconnect) != 1 {
		t.Errorf("stats: %s", fmtStats(s))
	}
}

// (b) 18/MDP end to end: a 0.2 worker sends three PARTIALs and a FINAL; the
// 0.2 client must see them in order and nothing after the FINAL.
func TestV2PartialsInOrder(t *testing.T) {
	b := startBroker(t)
	startWorker(t, "worker", b.ep, "--version", "2", "--service", "stream", "--partials", "3")
	b.waitStats(t, "worker registered", func(s broker.Stats) bool { return s.IdleWorkers == 1 })

	const n = 10
	evs := runClient(t, "client", b.ep, "--version", "2", "--service", "stream",
		"--count", strconv.Itoa(n), "--prefix", "b", "--expect-echo", "--linger-ms", "50")
	for i, r := range replies(t, "client", evs, n) {
		body := fmt.Sprintf("b-%d", i)
		if len(r.Partials) != 3 {
			t.Fatalf("request %d: %d partials, want 3: %s", i, len(r.Partials), r.raw)
		}
		for k, p := range r.Partials {
			if want := []string{fmt.Sprintf("part-%d", k+1), body}; !eq(p, want) {
				t.Fatalf("request %d partial %d = %q, want %q (order broken?)", i, k, p, want)
			}
		}
		if !eq(r.Final, []string{body}) {
			t.Fatalf("request %d final = %q", i, r.Final)
		}
	}
	s := b.Stats()
	if s.Partials != 3*n || s.Replies != n || s.TotalDropped() != 0 {
		t.Errorf("stats: %s", fmtStats(s))
	}
}

// (c) Cross-version traffic.
func TestCrossVersion(t *testing.T) {
	// A 0.1 client gets exactly one reply, the FINAL; the PARTIALs are
	// dropped by the broker.
	t.Run("V1ReqClientV2Worker", func(t *testing.T) {
		b := startBroker(t)
		startWorker(t, "worker", b.ep, "--version", "2", "--service", "x2", "--partials", "3")
		b.waitStats(t, "worker registered", func(s broker.Stats) bool { return s.IdleWorkers == 1 })
		const n = 10
		evs := runClient(t, "client", b.ep, "--version", "1", "--socket", "req",
			"--service", "x2", "--count", strconv.Itoa(n), "--prefix", "c", "--expect-echo")
		for i, r := range replies(t, "client", evs, n) {
			if !eq(r.Final, []string{fmt.Sprintf("c-%d", i)}) {
				t.Fatalf("reply %d = %q, want the FINAL (the echoed body)", i, r.Final)
			}
		}
		s := b.Stats()
		if s.DroppedBy(broker.DropPartialToV1) != 3*n || s.Partials != 0 || s.Replies != n ||
			droppedExcept(s, broker.DropPartialToV1) != 0 {
			t.Errorf("stats: %s", fmtStats(s))
		}
	})

	// A REQ socket would silently discard a stray extra reply, so prove
	// "exactly one" on a 0.1 DEALER client, which sees every message.
	t.Run("V1DealerClientV2Worker", func(t *testing.T) {
		b := startBroker(t)
		startWorker(t, "worker", b.ep, "--version", "2", "--service", "x2", "--partials", "3")
		b.waitStats(t, "worker registered", func(s broker.Stats) bool { return s.IdleWorkers == 1 })
		const n = 5
		evs := runClient(t, "client", b.ep, "--version", "1", "--socket", "dealer",
			"--service", "x2", "--count", strconv.Itoa(n), "--prefix", "d", "--expect-echo",
			"--linger-ms", "150")
		for i, r := range replies(t, "client", evs, n) {
			if !eq(r.Final, []string{fmt.Sprintf("d-%d", i)}) {
				t.Fatalf("reply %d = %q", i, r.Final)
			}
		}
		if s := b.Stats(); s.DroppedBy(broker.DropPartialToV1) != 3*n || s.Replies != n {
			t.Errorf("stats: %s", fmtStats(s))
		}
	})

	// A 0.1 worker's REPLY reaches a 0.2 client as a FINAL, with no PARTIAL.
	t.Run("V2ClientV1Worker", func(t *testing.T) {
		b := startBroker(t)
		startWorker(t, "worker", b.ep, "--version", "1", "--service", "x1")
		b.waitStats(t, "worker registered", func(s broker.Stats) bool { return s.IdleWorkers == 1 })
		const n = 10
		evs := runClient(t, "client", b.ep, "--version", "2", "--service", "x1",
			"--count", strconv.Itoa(n), "--prefix", "e", "--expect-echo", "--linger-ms", "50")
		for i, r := range replies(t, "client", evs, n) {
			if len(r.Partials) != 0 || !eq(r.Final, []string{fmt.Sprintf("e-%d", i)}) {
				t.Fatalf("reply %d: partials %q final %q", i, r.Partials, r.Final)
			}
		}
		if s := b.Stats(); s.Replies != n || s.Partials != 0 || s.TotalDropped() != 0 {
			t.Errorf("stats: %s", fmtStats(s))
		}
	})
}

// (d) 8/MMI from a Guide-style 0.1 REQ client (and the same from a 0.2
// client). The client itself checks that each reply names the mmi.*
// service asked.
func TestMMI(t *testing.T) {
	b := startBroker(t)
	startWorker(t, "echo-worker", b.ep, "--version", "1", "--service", "echo")
	startWorker(t, "alpha-worker", b.ep, "--version", "2", "--service", "alpha")
	b.waitStats(t, "workers registered", func(s broker.Stats) bool { return s.IdleWorkers == 2 })

	queries := mmiQueries(t,
		[2]string{"mmi.service", "echo"},
		[2]string{"mmi.service", "alpha"},
		[2]string{"mmi.service", "nope"},
		[2]string{"mmi.services", ""},
		[2]string{"mmi.workers", "echo"},
		[2]string{"mmi.workers", "nope"},
		[2]string{"mmi.nope", "x"},
	)
	want := [][]string{
		{"200"},
		{"200"},
		{"404"},
		{"200", "alpha", "echo"},
		{"200", "1", "0", "0"},
		{"404"},
		{"501"},
	}
	for _, c := range []struct{ name, version, socket string }{
		{"V1REQ", "1", "req"},
		{"V2", "2", "dealer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			evs := runClient(t, "mmi-client", b.ep, "--version", c.version, "--socket", c.socket,
				"--requests", queries)
			for i, r := range replies(t, "mmi-client", evs, len(want)) {
				if !eq(r.Final, want[i]) || len(r.Partials) != 0 {
					t.Errorf("%s %q -> %q, want %q", r.Service, r.Request, r.Final, want[i])
				}
			}
		})
	}
	if s := b.Stats(); s.MMIRequests != 2*uint64(len(want)) || s.Dispatched != 0 || s.TotalDropped() != 0 {
		t.Errorf("stats: %s", fmtStats(s))
	}
}

// (e) 8/MMI: the broker "MUST disconnect any workers that attempt to
// register services in this namespace".
func TestMMIWorkerGetsDisconnect(t *testing.T) {
	for _, v := range []string{"1", "2"} {
		t.Run("V"+v, func(t *testing.T) {
			b := startBroker(t)
			w := startWorker(t, "mmi-worker", b.ep, "--version", v, "--service", "mmi.x",
				"--expect-disconnect-ms", "3000")
			w.mustSucceed() // Exits 0 only after a DISCONNECT.
			if ev := w.waitEvent("exit"); ev.DisconnectsRecv != 1 || ev.Reason != "disconnected" {
				t.Errorf("worker exit: %s", ev.raw)
			}
			s := b.Stats()
			if s.Workers != 0 || s.Registered != 0 || s.DroppedBy(broker.DropMMIWorker) != 1 ||
				s.RemovedBy(broker.RemovedMMIService) != 1 {
				t.Errorf("stats: %s", fmtStats(s))
			}
			evs := runClient(t, "mmi-client", b.ep, "--version", "1", "--requests",
				mmiQueries(t, [2]string{"mmi.service", "mmi.x"}, [2]string{"mmi.services", "-"}))
			r := replies(t, "mmi-client", evs, 2)
			if !eq(r[0].Final, []string{"404"}) || !eq(r[1].Final, []string{"200"}) {
				t.Errorf("after refusal: mmi.service mmi.x -> %q, mmi.services -> %q", r[0].Final, r[1].Final)
			}
		})
	}
}

// (f) A worker dies holding a request. The broker must notice (heartbeat
// send failing, or heartbeat expiry), forget the worker (mmi.service says
// 404), keep the request queued and hand it to the next worker; the client,
// which never retries, gets its reply.
func TestWorkerKilledWhileBusy(t *testing.T) {
	b := startBroker(t)
	_, s := workerDiesHolding(t, b, "1", func(p *pyProc) {
		p.kill()
		if err := p.wait(); err == nil {
			t.Fatalf("worker A survived SIGKILL")
		}
	}, "2")
	// A killed process closes its TCP connection: the broker learns of it
	// either from its next heartbeat (unroutable) or from expiry.
	if got := s.RemovedBy(broker.RemovedUnreachable) + s.RemovedBy(broker.RemovedExpired); got != 1 {
		t.Errorf("dead worker removals = %d, want 1: %s", got, fmtStats(s))
	}
}

// (f, second half) The same with a frozen worker (SIGSTOP): its connection
// stays open, so only heartbeat expiry can remove it. Once thawed, it
// starts over on a new socket and registers again, and is usable.
func TestWorkerFrozenWhileBusy(t *testing.T) {
	b := startBroker(t)
	a, s := workerDiesHolding(t, b, "2", func(p *pyProc) {
		p.signal(syscall.SIGSTOP) // Cleanup's SIGKILL ends it.
	}, "1")
	if s.RemovedBy(broker.RemovedExpired) != 1 {
		t.Errorf("frozen worker not removed by expiry: %s", fmtStats(s))
	}

	// Thawed, it finds either the broker's DISCONNECT or, if its own
	// liveness clock fires first, that the broker went silent; both mean
	// "start over on a new socket".
	a.signal(syscall.SIGCONT)
	a.waitEvents("ready", 2)
	t.Logf("worker A thawed: %d DISCONNECT, %d broker_lost", len(a.all("disconnect")), len(a.all("broker_lost")))
	s = b.waitStats(t, "thawed worker registered again", func(s broker.Stats) bool {
		return s.Workers == 1 && s.Registered == 3
	})
	evs := runClient(t, "mmi-client-3", b.ep, "--version", "1", "--requests",
		mmiQueries(t, [2]string{"mmi.service", "crash"}))
	if r := replies(t, "mmi-client-3", evs, 1); !eq(r[0].Final, []string{"200"}) {
		t.Errorf("mmi.service crash after worker A came back = %q, want 200", r[0].Final)
	}
	if got := a.all("request_while_busy"); len(got) != 0 {
		t.Errorf("worker A got requests after it came back: %+v", got)
	}
}

// workerDiesHolding runs scenario (f): worker A (version va) takes the
// request and is then stopped by stop; worker B (version vb) must get it.
// It returns worker A and the broker's stats right after A was removed.
func workerDiesHolding(t *testing.T, b *testBroker, va string, stop func(*pyProc), vb string) (*pyProc, broker.Stats) {
	t.Helper()
	a := startWorker(t, "worker-A", b.ep, "--version", va, "--service", "crash", "--mode", "hold")
	b.waitStats(t, "worker A registered", func(s broker.Stats) bool { return s.IdleWorkers == 1 })

	// One try, long timeout: recovery is the broker's job, not a retry's.
	client := startClient(t, "client", b.ep, "--version", "1", "--socket", "req",
		"--service", "crash", "--count", "1", "--prefix", "precious",
		"--timeout-ms", "12000", "--retries", "1")
	if got := a.waitEvent("holding"); got.I != 0 {
		t.Fatalf("worker A: %s", got.raw)
	}
	if got := a.all("request"); len(got) != 1 || !eq(got[0].Body, []string{"precious-0"}) {
		t.Fatalf("worker A requests: %+v", got)
	}

	start := time.Now()
	stop(a)
	s := b.waitStats(t, "dead worker removed", func(s broker.Stats) bool { return s.Workers == 0 })
	removed := s
	took := time.Since(start)
	t.Logf("worker A removed %v after it was stopped: %s", took.Round(time.Millisecond), fmtStats(s))
	if s.Queued != 1 {
		t.Errorf("the request held by A is not back in the queue: %s", fmtStats(s))
	}
	if expiry := heartbeat * liveness; s.RemovedBy(broker.RemovedExpired) == 1 &&
		(took < expiry-2*heartbeat || took > expiry+3*heartbeat) {
		// Expiry counts from A's last message (normally at most one
		// interval before it stopped; one more of slack for a late Python
		// heartbeat), and is checked every interval/4.
		t.Errorf("expiry after %v, want about %v", took, expiry)
	}

	evs := runClient(t, "mmi-client", b.ep, "--version", "1", "--requests",
		mmiQueries(t, [2]string{"mmi.service", "crash"}, [2]string{"mmi.workers", "crash"}))
	r := replies(t, "mmi-client", evs, 2)
	if !eq(r[0].Final, []string{"404"}) {
		t.Errorf("mmi.service crash after the worker died = %q, want 404", r[0].Final)
	}
	if !eq(r[1].Final, []string{"200", "0", "0", "1"}) {
		t.Errorf("mmi.workers crash = %q, want 200 0 0 1 (one request queued)", r[1].Final)
	}

	bw := startWorker(t, "worker-B", b.ep, "--version", vb, "--service", "crash", "--tag", "B")
	evs = client.mustSucceed()
	if rep := replies(t, "client", evs, 1)[0]; !eq(rep.Final, []string{"precious-0", "B"}) {
		t.Fatalf("client got %q, want the request redelivered to worker B", rep.Final)
	}
	if got := bw.waitEvents("request", 1); !eq(got[0].Body, []string{"precious-0"}) {
		t.Fatalf("worker B got %q", got[0].Body)
	}
	s = b.Stats()
	if s.Redelivered != 1 || s.Dispatched != 2 || droppedExcept(s, broker.DropPartialToV1) != 0 {
		t.Errorf("stats: %s", fmtStats(s))
	}

	// B dies idle: it too must go, and mmi.service must say 404 again.
	bw.kill()
	b.waitStats(t, "worker B removed", func(s broker.Stats) bool { return s.Workers == 0 })
	evs = runClient(t, "mmi-client-2", b.ep, "--version", "1", "--requests",
		mmiQueries(t, [2]string{"mmi.service", "crash"}))
	if r := replies(t, "mmi-client-2", evs, 1); !eq(r[0].Final, []string{"404"}) {
		t.Errorf("mmi.service crash after worker B died = %q, want 404", r[0].Final)
	}
	return a, removed
}

// Heartbeating both ways: idle workers of both versions stay registered for
// many liveness periods and see the broker's heartbeats.
func TestWorkersHeartbeat(t *testing.T) {
	b := startBroker(t)
	w1 := startWorker(t, "worker-v1", b.ep, "--version", "1", "--service", "hb")
	w2 := startWorker(t, "worker-v2", b.ep, "--version", "2", "--service", "hb")
	b.waitStats(t, "workers registered", func(s broker.Stats) bool { return s.IdleWorkers == 2 })
	// 8 intervals = 2.7 liveness periods; each worker must see the broker's
	// heartbeats and the broker the workers'.
	w1.waitEvents("heartbeat", 8)
	w2.waitEvents("heartbeat", 8)
	s := b.Stats()
	if s.Workers != 2 || s.RemovedBy(broker.RemovedExpired) != 0 {
		t.Fatalf("idle heartbeating workers were dropped: %s", fmtStats(s))
	}
	evs := runClient(t, "mmi-client", b.ep, "--version", "1", "--requests",
		mmiQueries(t, [2]string{"mmi.workers", "hb"}))
	if r := replies(t, "mmi-client", evs, 1); !eq(r[0].Final, []string{"200", "2", "0", "0"}) {
		t.Errorf("mmi.workers hb = %q", r[0].Final)
	}
	for _, w := range []*pyProc{w1, w2} {
		w.signal(syscall.SIGTERM)
		w.mustSucceed()
		if ev := w.waitEvent("exit"); ev.HeartbeatsSent < 5 {
			t.Errorf("%s sent only %d heartbeats: %s", w.name, ev.HeartbeatsSent, ev.raw)
		}
	}
}

// (g) Several clients of both versions in parallel against several workers
// of both versions: every request answered, with its own body.
func TestParallelClientsAndWorkers(t *testing.T) {
	b := startBroker(t)
	type peer struct{ version, socket string }
	workers := []string{"1", "1", "2", "2"}
	clients := []peer{{"1", "req"}, {"1", "req"}, {"1", "req"}, {"1", "dealer"}, {"2", "dealer"}, {"2", "dealer"}}
	const perClient = 40

	var wp []*pyProc
	for i, v := range workers {
		args := []string{"--version", v, "--service", "par"}
		if v == "2" {
			args = append(args, "--partials", "1")
		}
		wp = append(wp, startWorker(t, fmt.Sprintf("worker-%d-v%s", i, v), b.ep, args...))
	}
	b.waitStats(t, "workers registered", func(s broker.Stats) bool { return s.IdleWorkers == len(workers) })

	var cp []*pyProc
	for i, c := range clients {
		cp = append(cp, startClient(t, fmt.Sprintf("client-%d-v%s-%s", i, c.version, c.socket), b.ep,
			"--version", c.version, "--socket", c.socket, "--service", "par",
			"--count", strconv.Itoa(perClient), "--prefix", fmt.Sprintf("g%d", i), "--expect-echo"))
	}
	for i, p := range cp {
		for k, r := range replies(t, p.name, p.mustSucceed(), perClient) {
			body := fmt.Sprintf("g%d-%d", i, k)
			if !eq(r.Final, []string{body}) {
				t.Fatalf("%s reply %d = %q, want %q", p.name, k, r.Final, body)
			}
			// A 0.2 client gets a PARTIAL when a 0.2 worker served it; a
			// 0.1 client never does.
			if len(r.Partials) > 1 || (len(r.Partials) == 1 &&
				(clients[i].version == "1" || !eq(r.Partials[0], []string{"part-1", body}))) {
				t.Fatalf("%s reply %d partials %q", p.name, k, r.Partials)
			}
		}
	}

	served, servedV2 := 0, 0
	for i, w := range wp {
		w.signal(syscall.SIGTERM)
		w.mustSucceed()
		n := w.waitEvent("exit").Requests
		if n == 0 {
			t.Errorf("%s served nothing: no load balancing?", w.name)
		}
		served += n
		if workers[i] == "2" {
			servedV2 += n
		}
		t.Logf("%s served %d", w.name, n)
	}
	total := len(clients) * perClient
	if served != total {
		t.Errorf("workers served %d requests, want %d", served, total)
	}
	s := b.waitStats(t, "workers disconnected", func(s broker.Stats) bool { return s.Workers == 0 })
	// Every PARTIAL from a 0.2 worker was either delivered (0.2 client) or
	// dropped (0.1 client).
	if s.Requests != uint64(total) || s.Replies != uint64(total) || s.Dispatched != uint64(total) ||
		s.Partials+s.DroppedBy(broker.DropPartialToV1) != uint64(servedV2) ||
		droppedExcept(s, broker.DropPartialToV1) != 0 || s.RemovedBy(broker.RemovedDisconnect) != uint64(len(workers)) {
		t.Errorf("stats: %s (v2 workers served %d)", fmtStats(s), servedV2)
	}
}
