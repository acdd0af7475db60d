package client

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/majordomo-go/majordomo/mdp"
)

// maxDownShift caps the doubling of a link's pause after repeated failures:
// a broker that keeps failing is tried again at least every 16 timeouts.
const maxDownShift = 4

// link is one broker connection and the calls on the wire through it: the
// unit of retry. With one broker, when the broker stops answering the link
// replaces its socket and resends its own calls (Lazy Pirate). With several
// (WithBrokers), the link is marked down and its calls move to the other
// brokers (evacuate), each move using one of the call's retries, so the
// retry budget is the same; the owner's per-service queues decide which link
// gets the next call. A link belongs to the owner goroutine.
type link struct {
	o        *owner
	conn     *conn
	idx      int    // Position in owner.links.
	bit      uint64 // 1 << idx, for call.avoid.
	endpoint string
	log      *slog.Logger

	// down marks a broker that failed: calls go to other brokers until it
	// is connected again and downUntil has passed. fails counts failures
	// since its last answer, doubling the pause.
	down      bool
	downUntil time.Time
	fails     int
	seenDrops uint64 // conn.drops when the owner last looked.

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

func newLink(o *owner, c *conn, idx int, log *slog.Logger) *link {
	return &link{o: o, conn: c, idx: idx, bit: 1 << idx, endpoint: c.endpoint, log: log,
		inflight: make(map[string]*call), tainted: make(map[string]bool), late: make(map[string]int)}
}

// connected reports whether the link's socket has a live connection.
func (l *link) connected() bool { return l.conn.sock != nil && l.conn.sock.Connections() > 0 }

// rank orders links for cl (see owner.pick): lower is better, negative is
// unusable.
func (l *link) rank(cl *call) int {
	r := 0
	switch {
	case l.conn.sock == nil:
		return -1
	case l.down:
		r = 2
	case !l.connected():
		r = 1
	}
	if cl.avoid&l.bit != 0 {
		r += 3
	}
	return r
}

// hasSent reports whether a call was sent through the current socket.
func (l *link) hasSent() bool {
	for _, cl := range l.inflight {
		if cl.sent {
			return true
		}
	}
	return false
}

// markDown takes the link out of use for pause, and until it is connected.
func (l *link) markDown(pause time.Duration) {
	if !l.down {
		l.log.Warn("broker marked down; requests go to the other brokers", "pause", pause)
	}
	l.down = true
	l.downUntil = l.o.now.Add(pause)
}

// failPause is how long a broker that did not answer stays out of use:
// the timeout, doubled for each failure since its last answer.
func (l *link) failPause() time.Duration {
	l.fails++
	return l.o.c.cfg.timeout << min(l.fails-1, maxDownShift)
}

// evacuate gives up on the link's broker (several brokers only): the link
// is marked down for pause, gets a new socket (so no late reply of what it
// sent can be taken for a later one) and its calls move to other brokers.
// A call that was sent uses one retry for the move, or fails with
// ErrTimeout when none is left; a stream that already delivered PARTIALs
// fails with ErrInterrupted, since a resend would repeat them.
func (l *link) evacuate(why string, pause time.Duration) {
	l.markDown(pause)
	var calls []*call
	for svc, cl := range l.inflight {
		if cl.target == nil {
			calls = append(calls, cl)
		}
		delete(l.inflight, svc)
	}
	clear(l.probes)
	l.probes = l.probes[:0]
	clear(l.tainted)
	clear(l.late)
	if err := l.conn.open(); err != nil {
		l.log.Error("cannot reopen socket", "error", err.Error())
	}
	l.seenDrops = l.conn.pollDrops()
	services := make([]string, 0, len(calls))
	for _, cl := range calls {
		cl.probe = nil
		cl.link = nil
		services = append(services, cl.service)
		switch {
		case cl.progressed:
			cl.box.put(event{err: fmt.Errorf("%w: service %q: broker %s lost", ErrInterrupted, cl.service, l.endpoint)})
		case cl.sent && cl.retries == 0:
			cl.box.put(event{err: l.unreachable(cl, why)})
		default:
			if cl.sent {
				cl.retries--
				l.log.Warn("broker not answering; moving the request to another broker", "service", cl.service,
					"reason", why, "retries_left", cl.retries)
			}
			cl.avoid |= l.bit
			cl.sent = false
			l.o.requeue(cl)
		}
	}
	for _, svc := range services {
		l.o.next(svc)
	}
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
		l.log.Debug("late reply still possible; replacing socket", "service", cl.service)
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
	cl.link = l
	cl.sent = false
	cl.probe = nil
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
		l.log.Warn("send failed", "service", cl.service, "error", err.Error())
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
		l.resendOrMove(cl, "no answer to an mmi request")
	case l.conn.pollDrops() != cl.drops:
		// The connection it went out on ended: the broker that had it,
		// restarted or not, cannot send its reply to us.
		if l.o.multi() {
			l.evacuate("connection to the broker lost", 0)
			return
		}
		l.resend(cl, "connection to the broker lost")
	case l.o.multi() && !l.connected():
		// Never connected, or not again: asking would only wait another
		// timeout for an answer that cannot come.
		l.evacuate("no connection to the broker", l.failPause())
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
	if l.o.multi() {
		if t.probe == p {
			t.probe = nil
		}
		l.evacuate(why, l.failPause())
		return
	}
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

// resendOrMove is resend with one broker; with several, the link's calls
// move to another broker.
func (l *link) resendOrMove(cl *call, why string) {
	if l.o.multi() {
		l.evacuate(why, l.failPause())
		return
	}
	l.resend(cl, why)
}

func (l *link) logResend(cl *call, why string) {
	l.log.Warn("broker not answering; resending on a new socket", "service", cl.service,
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
			l.log.Debug("mmi.workers not usable; asking mmi.service from now on", "error", err.Error())
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

// noWorkers handles a broker's "no worker for the service". With several
// brokers the call moves to one it has not tried that is up, using no
// retry; the request sent, if any, stays queued at this broker (at most
// that one copy; see Client). Only when no such broker is left does the
// call fail with ErrNoWorkers.
func (l *link) noWorkers(t *call) {
	if t.pin == nil && l.o.untried(t, l) {
		l.log.Debug("no workers at this broker; trying another", "service", t.service)
		t.avoid |= l.bit
		t.probe = nil
		l.abandoned(t)
		delete(l.inflight, t.service)
		l.o.requeue(t)
		l.free(t.service)
		return
	}
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
	l.log.Warn("request dropped by the broker; resending", "service", t.service, "retries_left", t.retries)
	l.transmit(t)
}

// reconnect replaces the socket and resends every call of the link, whose
// replies would now go to the closed socket; questions are asked anew. A
// stream that already delivered PARTIALs cannot be resent without repeating
// them, so it fails with ErrInterrupted.
func (l *link) reconnect() {
	if err := l.conn.open(); err != nil {
		l.log.Error("cannot reopen socket", "error", err.Error())
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
		l.log.Debug("ignoring malformed message from broker", "error", errString(err))
		return
	}
	l.fails = 0 // The broker answers.
	svc := string(m.Service)
	if l.late[svc] > 0 && m.Command == mdp.Final {
		l.late[svc]--
		l.log.Debug("discarding late reply", "service", svc)
		return
	}
	cl := l.inflight[svc]
	if cl == nil {
		if m.Command == mdp.Final && l.tainted[svc] {
			delete(l.tainted, svc)
		}
		l.log.Debug("discarding late reply", "service", svc)
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
