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
	// this link, probes included (under MMIService). MDP replies name the
	// service but not the request, so one per service is the most that can
	// be told apart.
	inflight map[string]*call
	// probes wait for the MMIService slot, oldest first.
	probes []*call
	// tainted marks services whose last request was abandoned (cancelled
	// or failed) after it was sent: its reply may still arrive, and would
	// be taken for the reply to the next request. A late FINAL clears the
	// mark; a new request to a marked service first replaces the socket,
	// which voids every earlier request.
	tainted map[string]bool
	// mmiLate counts mmi.service requests abandoned after they were sent
	// whose answers may still come. That slot is shared with the questions,
	// which must not take such an answer for theirs; instead of tainting it
	// (a new socket for every such question), the next mmiLate answers are
	// discarded: the broker answers mmi requests itself, at once and in
	// order. Should one never come, the question behind it goes unanswered
	// and the link reconnects, which resets the count.
	mmiLate int
}

func newLink(o *owner, c *conn) *link {
	return &link{o: o, conn: c, inflight: make(map[string]*call), tainted: make(map[string]bool)}
}

// busy reports whether a new call to service must wait for the link's slot.
func (l *link) busy(service string) bool {
	if l.inflight[service] != nil {
		return true
	}
	return service == MMIService && len(l.probes) > 0
}

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

// ask sends an mmi.service question about target's service, or queues it
// behind the one on the wire. target waits, with no timer of its own, for
// the answer (answered) or the question's timeout (unanswered).
func (l *link) ask(target *call) {
	msg := mdp.Message{Version: l.o.c.cfg.version, Role: mdp.RoleClient, Command: mdp.Request,
		Service: []byte(MMIService), Body: [][]byte{[]byte(target.service)}}
	frames, err := mdp.Encode(&msg)
	if err != nil { // Cannot happen: the target's own request encoded.
		l.fail(target, fmt.Errorf("client: encode: %w", err))
		return
	}
	p := &call{service: MMIService, frames: frames, target: target, link: l}
	target.probe = p
	target.deadline = time.Time{}
	if l.inflight[MMIService] != nil {
		l.probes = append(l.probes, p)
		return
	}
	l.inflight[MMIService] = p
	l.transmit(p)
}

// free ends the call on the wire for service and hands the slot on: to the
// next waiting question if it is the MMIService slot, else to the owner's
// next waiting call.
func (l *link) free(service string) {
	delete(l.inflight, service)
	if service == MMIService {
		for len(l.probes) > 0 {
			p := l.probes[0]
			l.probes[0] = nil
			l.probes = l.probes[1:]
			if p.target.probe != p {
				continue // Its target ended meanwhile.
			}
			l.inflight[MMIService] = p
			l.transmit(p)
			return
		}
		l.probes = nil
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

// abandoned records that cl's reply may still come (see tainted, mmiLate).
func (l *link) abandoned(cl *call) {
	switch {
	case !cl.sent:
	case cl.service == MMIService:
		l.mmiLate++
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
	if t.probe == p {
		t.probe = nil
		if t.retries == 0 {
			// Out of retries: t fails; the others still went to a broker
			// that does not answer.
			delete(l.inflight, t.service)
			l.reconnect()
			t.box.put(event{err: l.unreachable(t, "no answer to mmi.service")})
			l.o.next(t.service)
			return
		}
		t.retries--
		l.logResend(t, "no answer to mmi.service")
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

// answered handles the broker's answer to question p (8/MMI: "200" a worker
// is registered, "404" none).
func (l *link) answered(p *call, rep [][]byte) {
	t := p.target
	l.free(MMIService)
	if t.probe != p {
		return // Its target ended meanwhile.
	}
	t.probe = nil
	code := mmiCode(rep)
	switch {
	case code == "404":
		l.fail(t, fmt.Errorf("%w for service %q%s", ErrNoWorkers, t.service, l.o.c.cfg.noWorkersHint()))
	case t.phase == phaseCheck:
		l.transmit(t) // 200, or a broker without MMI: send.
	case code == "200":
		// The broker lives and a worker is registered: the request is
		// queued or being worked on. A resend would only queue a second
		// copy, so keep waiting; ask again after another timeout.
		t.phase = phaseWait
		t.deadline = l.o.now.Add(l.o.c.cfg.timeout)
	default:
		// "501" (no MMI) or anything else: nothing learnt, so Lazy Pirate.
		l.resend(t, fmt.Sprintf("mmi.service answered %q", code))
	}
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
	l.mmiLate = 0
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
	if svc == MMIService && l.mmiLate > 0 && m.Command == mdp.Final {
		l.mmiLate--
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
