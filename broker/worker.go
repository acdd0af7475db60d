package broker

import (
	"bytes"
	"errors"
	"strings"

	"github.com/majordomo-go/majordomo/internal/dispatch"
	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
)

// workerMessage handles a decoded MDP/Worker command.
func (b *Broker) workerMessage(sender []byte, m *mdp.Message) {
	w := b.workers[string(sender)]
	if w == nil {
		switch m.Command {
		case mdp.Ready:
			b.register(sender, m)
		case mdp.Disconnect:
			// 7/MDP: "The worker MAY send DISCONNECT at any time, including
			// before READY." Nothing to undo, and nothing may be sent back.
		default:
			// 7/MDP: "The broker MUST respond to any valid but unexpected
			// command by sending DISCONNECT and then no further commands."
			// HEARTBEAT, REPLY, PARTIAL or FINAL before READY lands here.
			b.drop(DropUnexpected, "command from unregistered worker", "command", m.Command.String())
			b.sendDisconnect(sender, m.Version, m.Delimited)
		}
		return
	}
	if m.Command == mdp.Disconnect {
		// 7/MDP: "When the broker receives DISCONNECT from a worker it MUST
		// send no further commands to that worker."
		b.removeWorker(w, RemovedDisconnect, false)
		return
	}
	if m.Version != w.version {
		// A worker that changes protocol mid-conversation is confused;
		// treat the switch as an unexpected command.
		b.drop(DropUnexpected, "worker changed protocol version", "worker", w.key)
		b.removeWorker(w, RemovedProtocol, true)
		return
	}
	// 7/MDP "Heartbeating": any command except DISCONNECT acts as a
	// heartbeat.
	w.live.Heard(b.now)
	switch m.Command {
	case mdp.Heartbeat:
	case mdp.Partial, mdp.Final:
		b.workerReply(w, m)
	default: // A second READY (7/MDP: "The worker MUST NOT send a further READY").
		b.drop(DropUnexpected, "unexpected worker command", "command", m.Command.String(), "worker", w.key)
		b.removeWorker(w, RemovedProtocol, true)
	}
}

// register handles READY from a new worker.
func (b *Broker) register(sender []byte, m *mdp.Message) {
	name := string(m.Service)
	if strings.HasPrefix(name, "mmi.") {
		// 8/MMI: the broker "MUST disconnect any workers that attempt to
		// register services in this namespace". The service name is what
		// counts, not the worker's identity (a bug in the Guide's broker).
		b.drop(DropMMIWorker, "worker tried to register an mmi service", "service", name)
		b.stats.Removed[RemovedMMIService]++
		b.sendDisconnect(sender, m.Version, m.Delimited)
		b.log.Warn("worker refused", "worker", printable(sender), "service", name, "reason", RemovedMMIService.String())
		return
	}
	if !b.mayRegister(name) { // Security.Authorizer (auth.go).
		b.refuseWorker(sender, m)
		return
	}
	svc := b.service(m.Service, true)
	if svc == nil {
		b.drop(DropTooManyServices, "service limit reached", "service", name)
		b.stats.Removed[RemovedTooManyServices]++
		b.sendDisconnect(sender, m.Version, m.Delimited)
		b.log.Warn("worker refused", "worker", printable(sender), "service", name, "reason", RemovedTooManyServices.String())
		return
	}
	w := &worker{
		id:        bytes.Clone(sender),
		key:       string(sender),
		service:   svc,
		version:   m.Version,
		delimited: m.Delimited,
		since:     b.now,
	}
	w.live.Heard(b.now)
	w.live.Sent(b.now)
	// The service exists, so joining it cannot hit MaxServices.
	dw, err := b.pool.Join(w, []dispatch.Sub{{Queue: svc.name()}})
	if err != nil {
		b.log.Error("worker not registered", "worker", printable(sender), "service", name, "error", err.Error())
		return
	}
	w.dw = dw
	b.workers[w.key] = w
	b.stats.Registered++
	b.log.Info("worker registered", "worker", printable(sender), "service", name, "protocol", m.Version.String())
	b.workerIdle(w)
}

// workerReply forwards a PARTIAL or FINAL (0.1 REPLY) to the client.
func (b *Broker) workerReply(w *worker, m *mdp.Message) {
	r := w.req
	if r == nil || !bytes.Equal(m.Client, r.client) {
		// A reply while idle, or for a client it was not given, is a valid
		// but unexpected command; forwarding it would let a worker inject
		// replies to any client.
		b.drop(DropUnexpected, "reply the worker does not owe", "worker", w.key)
		b.removeWorker(w, RemovedProtocol, true)
		return
	}
	if m.Command == mdp.Partial {
		if r.version == mdp.V1 {
			// A 0.1 client takes exactly one reply per request: it gets
			// the FINAL alone, and the PARTIALs before it are dropped.
			b.dropFor(w.service, DropPartialToV1, "partial for 0.1 client", "service", w.service.name())
			return
		}
		if b.replyToClient(r, mdp.Partial, w.service.nameB, m.Body) {
			b.stats.Partials++
			w.service.partials++
		}
		return
	}
	c := &w.service.q.Outcomes
	c.ServiceTime.Observe(b.now.Sub(r.sentAt))
	if b.replyToClient(r, mdp.Final, w.service.nameB, m.Body) {
		b.stats.Replies++
		c.Completed++
		w.served++
	}
	b.release(r)
	w.req = nil
	b.workerIdle(w)
}

// workerIdle gives w its slot back (it is least recently used again) and
// hands it the next request queued for its service, if any. A worker with
// a free slot never has requests waiting in its queue, except while the
// broker drains: the pool keeps that invariant.
func (b *Broker) workerIdle(w *worker) {
	b.pool.Credit(w.dw, 1)
	if e, _, ok := b.pool.Next(w.dw, b.now); ok {
		b.deliver(w, e.Value)
	}
}

// dispatch hands queued requests to idle workers, least recently used
// first. While the broker drains (Shutdown) the pool is paused: requests
// wait, in-flight ones finish.
func (b *Broker) dispatch(svc *service) {
	for {
		dw, e, ok := b.pool.Dispatch(svc.q, b.now)
		if !ok {
			return
		}
		b.deliver(dw.Peer, e.Value)
	}
}

// deliver sends r to w, whose slot the pool has just taken for it.
func (b *Broker) deliver(w *worker, r *request) {
	r.attempts++
	if r.attempts > 1 {
		b.stats.Redelivered++
		w.service.redelivered++
	}
	r.sentAt = b.now
	w.req = r
	msg := mdp.Message{Version: w.version, Role: mdp.RoleWorker, Command: mdp.Request,
		Client: r.client, Body: r.body, Delimited: w.delimited}
	if err := b.sendTo(w.id, &msg); err != nil {
		// The worker is gone or not reading: it loses the request, which
		// goes back to the queue (removeWorker redelivers it).
		b.removeWorker(w, RemovedUnreachable, false)
		return
	}
	w.live.Sent(b.now)
	b.stats.Dispatched++
}

// removeWorker forgets w, optionally telling it with DISCONNECT, and puts the
// request it held back in the queue.
func (b *Broker) removeWorker(w *worker, why RemoveReason, disconnect bool) {
	if b.workers[w.key] != w {
		return
	}
	if disconnect {
		b.sendDisconnect(w.id, w.version, w.delimited)
	}
	delete(b.workers, w.key)
	b.pool.Leave(w.dw)
	if r := w.req; r != nil {
		w.req = nil
		b.requeue(r)
	}
	b.stats.Removed[why]++
	b.log.Info("worker removed", "worker", printable(w.id), "service", w.service.name(), "reason", why.String())
}

// requeue puts back a request whose worker died, at the head of its
// client's lane so that it does not lose its place, or drops it when the
// attempts are spent or redelivery is off.
func (b *Broker) requeue(r *request) {
	svc := r.service
	policy := dispatch.Redelivery{MaxAttempts: b.cfg.MaxAttempts, Disabled: b.cfg.DisableRedelivery}
	switch policy.Decide(r.attempts) {
	case dispatch.DropDisabled:
		b.dropRequest(r, DropWorkerLost, "request lost with its worker", "service", svc.name())
		b.log.Warn("request lost with its worker", "service", svc.name(), "client", printable(r.client))
		return
	case dispatch.DropExhausted:
		b.dropRequest(r, DropAttemptsExhausted, "request attempts exhausted", "service", svc.name())
		b.log.Warn("request dropped after repeated worker failures", "service", svc.name(),
			"client", printable(r.client), "attempts", r.attempts)
		return
	}
	b.pool.Requeue(svc.q, string(r.client), r, r.size, b.now)
	b.dispatch(svc)
}

// sendTo sends an encoded message to the peer id.
func (b *Broker) sendTo(id []byte, m *mdp.Message) error {
	b.out = append(b.out[:0], id)
	var err error
	if b.out, err = mdp.Append(b.out, m); err != nil {
		return err
	}
	err = b.send()
	clear(b.out) // Drop references to bodies the GC may now reclaim.
	return err
}

func (b *Broker) sendDisconnect(id []byte, v mdp.Version, delimited bool) {
	msg := mdp.Message{Version: v, Role: mdp.RoleWorker, Command: mdp.Disconnect, Delimited: delimited}
	if err := b.sendTo(id, &msg); err != nil && !errors.Is(err, transport.ErrUnroutable) {
		b.log.Debug("disconnect not sent", "peer", printable(id), "error", err.Error())
	}
}

// heartbeat sends HEARTBEAT to every worker, idle or busy, that has not
// been sent anything for an interval. 7/MDP: "Both broker and worker MUST
// send heartbeats at regular and agreed-upon intervals."
func (b *Broker) heartbeat() {
	hb := b.cfg.heartbeats()
	for _, w := range b.workers {
		if !hb.Due(&w.live, b.now) {
			continue
		}
		msg := mdp.Message{Version: w.version, Role: mdp.RoleWorker, Command: mdp.Heartbeat, Delimited: w.delimited}
		err := b.sendTo(w.id, &msg)
		switch {
		case err == nil:
			w.live.Beat(b.now)
			b.stats.Heartbeats++
		case errors.Is(err, transport.ErrUnroutable):
			b.removeWorker(w, RemovedUnreachable, false)
		}
	}
}

// purge removes every worker, busy ones included, that has been silent for
// liveness × interval. The Guide's broker only purges idle workers, so a
// dead busy worker keeps its request and keeps mmi.service saying 200.
func (b *Broker) purge() {
	hb := b.cfg.heartbeats()
	for _, w := range b.workers {
		if hb.Dead(&w.live, b.now) {
			b.removeWorker(w, RemovedExpired, true)
		}
	}
}
