package client

import (
	"fmt"
	"time"

	"github.com/majordomo-go/majordomo/mdp"
)

// link is one broker connection and the calls on the wire through it: the
// unit of retry. When a link's broker stops answering, the link replaces its
// socket and resends its own calls, and only those: a client with several
// brokers (issue 13) will hold one link per broker, each recovering on its
// own, while the owner's per-service queues decide which link gets the next
// call. A link belongs to the owner goroutine.
type link struct {
	o    *owner
	conn *conn
	// inflight holds the one call per service that is on the wire through
	// this link, questions included (under MMIWorkers or MMIService). MDP
	// replies name the service but not the request, so one per service is
	// the most that can be told apart.
	inflight map[string]*call
	// probes are the questions not yet sent, oldest first: they wait for
	// their slot, which the caller's own mmi requests share.
	probes []*call
	// plainMMI is set once the broker answered mmi.workers with anything
	// but a well-formed "200" or "404": from then on questions use the
	// standard mmi.service.
	plainMMI bool
	// tainted marks services whose last request was abandoned (cancelled
	// or failed) after it was sent: its reply may still arrive, and would
	// be taken for the reply to the next request. A late FINAL clears the
	// mark; a new request to a marked service first replaces the socket,
	// which voids every earlier request.
	tainted map[string]bool
	// late counts, for the two question slots (MMIWorkers, MMIService),
	// the caller's requests abandoned after they were sent whose answers
	// may still come. Questions share those slots and must not take such an
	// answer for theirs; instead of tainting the slot (a new socket for the
	// next question), the next late answers are discarded: the broker
	// answers mmi requests itself, at once and in order. Should one never
	// come, the question behind it goes unanswered and the link reconnects,
	// which resets the counts.
	late map[string]int
}

func newLink(o *owner, c *conn) *link {
	return &link{o: o, conn: c, inflight: make(map[string]*call), tainted: make(map[string]bool),
		late: make(map[string]int)}
}

// busy reports whether a new call to service must wait for the link's slot.
func (l *link) busy(service string) bool {
	if l.inflight[service] != nil {
		return true
	}
	return service == l.questionService() && len(l.probes) > 0
}

// questionService is the mmi service the link's questions use.
func (l *link) questionService() string {
	if l.plainMMI {
		return MMIService
	}
	return MMIWorkers
}

// questionSlot reports whether service's slot is shared with questions.
func questionSlot(service string) bool { return service == MMIService || service == MMIWorkers }

func (l *link) idle() bool { return len(l.inflight) == 0 && len(l.conn.outq) == 0 }

// isMMI reports whether the broker answers service itself (8/MMI
// "Namespace"). Asking mmi.service about such a request tells nothing: its
// silence already means the broker does not answer.
func isMMI(service string) bool { return len(service) >= 4 && service[:4] == "mmi." }

// launch puts cl on the wire as its service's call on this link: first the
// mmi.service question if WithServiceCheck asks for it, else the request.
func (l *link) launch(cl *call) {
	if l.tainted[cl.service] {
		l.o.c.log.Debug("late reply still possible; replacing socket", "service", cl.service)
		l.reconnect()
	}
	msg := mdp.Message{Version: l.o.c.cfg.version, Role: mdp.RoleClient, Command: mdp.Request,
		Service: []byte(cl.service), Body: cl.body}
	frames, err := mdp.Encode(&msg)
	if err != nil {
		cl.box.put(event{err: fmt.Errorf("client: encode: %w", err)})
		l.o.next(cl.service)
		return
	}
	cl.frames = frames
	cl.retries = l.o.c.cfg.retries
	cl.link = l
	l.inflight[cl.service] = cl
	if l.o.c.cfg.checkFirst && !isMMI(cl.service) {
		cl.phase = phaseCheck
		l.ask(cl)
		return
	}
	l.transmit(cl)
}

// transmit sends cl's request on the current socket and starts its timer.
func (l *link) transmit(cl *call) {
	cl.phase = phaseWait
	cl.sent = true
	cl.deadline = l.o.now.Add(l.o.c.cfg.timeout)
	cl.drops = l.conn.drops
	if err := l.conn.send(cl.frames); err != nil {
		// The socket is broken: the attempt times out and the link finds
		// out then.
		l.o.c.log.Warn("send failed", "service", cl.service, "error", err.Error())
	}
}

// ask queues a question about target's service: mmi.workers where the
// broker has it (this project's broker), since its counts also tell
// whether the request is still held, else the standard mmi.service. target
// waits, with no timer of its own, for the answer (answered) or the
// question's timeout (unanswered).
func (l *link) ask(target *call) {
	p := &call{target: target, link: l}
	target.probe = p
	target.deadline = time.Time{}
	l.probes = append(l.probes, p)
	l.pump()
}

// pump sends the oldest waiting question if its slot is free, and reports
// whether it did. Questions of ended targets are dropped.
func (l *link) pump() bool {
	for len(l.probes) > 0 {
		p := l.probes[0]
		if p.target.probe != p {
			l.probes[0] = nil
			l.probes = l.probes[1:]
			continue
		}
		svc := l.questionService()
		if l.inflight[svc] != nil {
			return false
		}
		l.probes[0] = nil
		l.probes = l.probes[1:]
		msg := mdp.Message{Version: l.o.c.cfg.version, Role: mdp.RoleClient, Command: mdp.Request,
			Service: []byte(svc), Body: [][]byte{[]byte(p.target.service)}}
		frames, err := mdp.Encode(&msg)
		if err != nil { // Cannot happen: the target's own request encoded.
			l.fail(p.target, fmt.Errorf("client: encode: %w", err))
			continue
		}
		p.service, p.frames = svc, frames
		l.inflight[svc] = p
		l.transmit(p)
		return true
	}
	l.probes = nil
	return false
}

// free ends the call on the wire for service and hands the slot on: to the
// next waiting question if questions use it, else to the owner's next
// waiting call.
func (l *link) free(service string) {
	delete(l.inflight, service)
	if questionSlot(service) && l.pump() && l.inflight[service] != nil {
		return
	}
	l.o.next(service)
}

// finish delivers cl's last event and frees its slot. A request that went
// out and was not answered taints its service (see tainted).
func (l *link) finish(cl *call, ev event) {
	cl.probe = nil
	cl.box.put(ev)
	if ev.err != nil {
		l.abandoned(cl)
	}
	l.free(cl.service)
}

// abandoned records that cl's reply may still come (see tainted, late).
func (l *link) abandoned(cl *call) {
	switch {
	case !cl.sent:
	case questionSlot(cl.service):
		l.late[cl.service]++
	default:
		l.tainted[cl.service] = true
	}
}

func (l *link) fail(cl *call, err error) { l.finish(cl, event{err: err}) }

// cancel ends cl, whose caller stopped waiting.
func (l *link) cancel(cl *call) {
	cl.probe = nil
	l.abandoned(cl)
	l.free(cl.service)
}

// expire handles the timers that have passed and returns the earliest one
// still pending.
func (l *link) expire() time.Time {
	now := l.o.now
	for {
		var due *call
		next := now.Add(time.Hour)
		for _, cl := range l.inflight {
			if cl.deadline.IsZero() {
				continue // Waiting for its question's answer.
			}
			if !cl.deadline.After(now) {
				due = cl
				break
			}
			if cl.deadline.Before(next) {
				next = cl.deadline
			}
		}
		if due == nil {
			return next
		}
		if due.target != nil {
			l.unanswered(due)
		} else {
			l.timedOut(due)
		}
	}
}

// timedOut handles an attempt with no reply within the timeout: ask the
// broker before resending (issue 15), so that a request is resent only when
// the broker is not answering.
func (l *link) timedOut(cl *call) {
	cfg := &l.o.c.cfg
	switch {
	case cl.progressed:
		l.fail(cl, fmt.Errorf("%w: service %q: stream silent for %v", ErrTimeout, cl.service, cfg.timeout))
	case isMMI(cl.service):
		l.resend(cl, "no answer to an mmi request")
	case l.conn.pollDrops() != cl.drops:
		// The connection it went out on ended: the broker that had it,
		// restarted or not, cannot send its reply to us.
		l.resend(cl, "connection to the broker lost")
	default:
		cl.phase = phaseProbe
		l.ask(cl)
	}
}

// unanswered handles a question with no answer within the timeout: the
// broker is not answering, so the link's calls are resent on a new socket.
func (l *link) unanswered(p *call) {
	t := p.target
	why := "no answer to " + p.service
	if t.probe == p {
		t.probe = nil
		if t.retries == 0 {
			// Out of retries: t fails; the others still went to a broker
			// that does not answer.
			delete(l.inflight, t.service)
			l.reconnect()
			t.box.put(event{err: l.unreachable(t, why)})
			l.o.next(t.service)
			return
		}
		t.retries--
		l.logResend(t, why)
	}
	// A question whose target ended meanwhile: the others on this link
	// still went to a broker that does not answer.
	l.reconnect()
}

// resend uses one of cl's retries to resend it, with every other call of
// the link, on a new socket (7/MDP "MDP/Client": "close the request socket
// and open a new socket, and resend the request on that new socket"), or
// fails it when none are left.
func (l *link) resend(cl *call, why string) {
	if cl.retries > 0 {
		cl.retries--
		l.logResend(cl, why)
		l.reconnect()
		return
	}
	l.fail(cl, l.unreachable(cl, why))
}

func (l *link) logResend(cl *call, why string) {
	l.o.c.log.Warn("broker not answering; resending on a new socket", "service", cl.service,
		"reason", why, "timeout", l.o.c.cfg.timeout, "retries_left", cl.retries)
}

// unreachable is the error of a call whose retries are spent.
func (l *link) unreachable(cl *call, why string) error {
	cfg := &l.o.c.cfg
	return fmt.Errorf("%w: service %q: broker not answering (%s) after %d attempts of %v%s",
		ErrTimeout, cl.service, why, cfg.retries+1, cfg.timeout, cfg.timeoutHint())
}

// answered handles the broker's answer to question p.
func (l *link) answered(p *call, rep [][]byte) {
	t := p.target
	l.free(p.service)
	if t.probe != p {
		return // Its target ended meanwhile.
	}
	t.probe = nil
	code := mmiCode(rep)
	if p.service == MMIWorkers && code != "404" {
		n, err := parseWorkers(rep)
		if err != nil {
			// Not this project's broker: ask the standard way.
			l.o.c.log.Debug("mmi.workers not usable; asking mmi.service from now on", "error", err.Error())
			l.plainMMI = true
			l.ask(t)
			return
		}
		switch {
		case n.Idle+n.Busy == 0:
			l.noWorkers(t)
		case t.phase == phaseCheck:
			l.transmit(t)
		case n.Busy+n.Queued == 0:
			// Not queued and no worker holds it, and its reply would have
			// come before this answer, on the same connection: the
			// broker dropped it (queue full, expired, a worker failed).
			l.lost(t)
		default:
			l.keepWaiting(t)
		}
		return
	}
	// 8/MMI mmi.service: "200" a worker is registered, "404" none; or
	// mmi.workers "404": neither workers nor queued requests.
	switch {
	case code == "404":
		l.noWorkers(t)
	case t.phase == phaseCheck:
		l.transmit(t) // 200, or a broker without MMI: send.
	case code == "200":
		l.keepWaiting(t)
	default:
		// "501" (no MMI) or anything else: nothing learnt, so Lazy Pirate.
		l.resend(t, fmt.Sprintf("%s answered %q", p.service, code))
	}
}

func (l *link) noWorkers(t *call) {
	l.fail(t, fmt.Errorf("%w for service %q%s", ErrNoWorkers, t.service, l.o.c.cfg.noWorkersHint()))
}

// keepWaiting: the broker lives and a worker is registered, so the request
// is queued or being worked on. A resend would only queue a second copy:
// wait, and ask again after another timeout.
func (l *link) keepWaiting(t *call) {
	t.phase = phaseWait
	t.deadline = l.o.now.Add(l.o.c.cfg.timeout)
}

// lost resends a request the broker no longer holds, on the same socket:
// the connection is fine and no other call is affected.
func (l *link) lost(t *call) {
	if t.retries == 0 {
		l.fail(t, fmt.Errorf("%w: service %q: the broker no longer holds the request (dropped or expired) after %d attempts",
			ErrTimeout, t.service, l.o.c.cfg.retries+1))
		return
	}
	t.retries--
	l.o.c.log.Warn("request dropped by the broker; resending", "service", t.service, "retries_left", t.retries)
	l.transmit(t)
}

// reconnect replaces the socket and resends every call of the link, whose
// replies would now go to the closed socket; questions are asked anew. A
// stream that already delivered PARTIALs cannot be resent without repeating
// them, so it fails with ErrInterrupted.
func (l *link) reconnect() {
	if err := l.conn.open(); err != nil {
		l.o.c.log.Error("cannot reopen socket", "error", err.Error())
	}
	clear(l.tainted)
	clear(l.late)
	clear(l.probes)
	l.probes = l.probes[:0]
	calls := make([]*call, 0, len(l.inflight))
	for svc, cl := range l.inflight {
		if cl.target != nil {
			delete(l.inflight, svc) // A question: void with its socket.
			continue
		}
		calls = append(calls, cl)
	}
	var broken, ask []*call
	for _, cl := range calls {
		cl.probe = nil
		switch {
		case cl.progressed:
			broken = append(broken, cl)
		case cl.phase == phaseCheck:
			ask = append(ask, cl)
		case l.conn.sock != nil:
			l.transmit(cl)
		default:
			cl.phase = phaseWait
			cl.deadline = l.o.now.Add(l.o.c.cfg.timeout)
		}
	}
	for _, cl := range ask {
		l.ask(cl)
	}

	for _, cl := range broken {
		l.fail(cl, fmt.Errorf("%w: service %q: connection replaced", ErrInterrupted, cl.service))
	}
}

// receive handles one message from the broker.
func (l *link) receive(frames [][]byte) {
	m, err := mdp.DecodeFromBroker(frames)
	if err != nil || m.Role != mdp.RoleClient || m.Version != l.o.c.cfg.version {
		l.o.c.log.Debug("ignoring malformed message from broker", "error", errString(err))
		return
	}
	svc := string(m.Service)
	if l.late[svc] > 0 && m.Command == mdp.Final {
		l.late[svc]--
		l.o.c.log.Debug("discarding late reply", "service", svc)
		return
	}
	cl := l.inflight[svc]
	if cl == nil {
		if m.Command == mdp.Final && l.tainted[svc] {
			delete(l.tainted, svc)
		}
		l.o.c.log.Debug("discarding late reply", "service", svc)
		return
	}
	if cl.target != nil {
		if m.Command == mdp.Final {
			l.answered(cl, m.Body)
		}
		return
	}
	if cl.phase == phaseCheck {
		// A FINAL for a request not sent yet: the late reply of an
		// abandoned one that taint did not catch. Not ours.
		return
	}
	// Any message shows the request is being served: the timeout now
	// measures the gap to the next one. A question already asked about it
	// stays on the wire and its answer is ignored.
	cl.phase = phaseWait
	cl.probe = nil
	cl.deadline = l.o.now.Add(l.o.c.cfg.timeout)
	if m.Command == mdp.Partial {
		cl.progressed = true
		if cl.stream {
			cl.box.put(event{body: m.Body})
		}
		return
	}
	cl.box.put(event{body: m.Body, final: true})
	l.free(svc)
}

// failAll fails every call of the link with err.
func (l *link) failAll(err error) {
	for svc, cl := range l.inflight {
		if cl.target == nil {
			cl.box.put(event{err: err})
		}
		delete(l.inflight, svc)
	}
	clear(l.probes)
	l.probes = l.probes[:0]
}
