package broker

// Valid messages at the wrong moment: 7/MDP and 18/MDP commands a peer may
// not send in its state get DISCONNECT and nothing more (8/MMI: workers
// may not register mmi.* services).

import (
	"fmt"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/mdp"
)

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
