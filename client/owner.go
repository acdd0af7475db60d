package client

import (
	"fmt"
	"time"

	"github.com/majordomo-go/majordomo/mdp"
)

// owner is the goroutine that owns a Client's socket. Callers reach it only
// through Client.ctrl; it answers through each call's mailbox.
type owner struct {
	c    *Client
	conn *conn
	// inflight holds the one call per service that is on the wire. MDP
	// replies name the service but not the request, so one per service is
	// the most that can be told apart.
	inflight map[string]*call
	// waiting holds calls queued behind the in-flight one, per service,
	// oldest first.
	waiting map[string][]*call
	// tainted marks services whose last request was abandoned (cancelled
	// or timed out) after it was sent: its reply may still arrive, and
	// would be taken for the reply to the next request. A late FINAL
	// clears the mark; a new request to a marked service first replaces
	// the socket, which voids every earlier request.
	tainted map[string]bool
	now     time.Time
}

func (o *owner) run() {
	defer close(o.c.done)
	defer o.shutdown()
	for {
		if o.idle() {
			// Nothing on the wire: sleep on the channel alone.
			select {
			case m := <-o.c.ctrl:
				o.now = time.Now()
				o.handle(m)
			case <-o.c.closing:
				return
			}
		}
		if !o.drainCtrl() {
			return
		}
		o.now = time.Now()
		if err := o.conn.flush(); err != nil {
			o.socketFailed(err)
			continue
		}
		next := o.expire()
		if o.idle() {
			continue
		}
		// Sleep until a reply, the next deadline, or a Wake from a
		// caller that queued a message on ctrl.
		wait := next.Sub(o.now)
		if len(o.conn.outq) > 0 {
			wait = min(wait, retrySlice)
		}
		if len(o.c.ctrl) > 0 {
			wait = 0 // Queued before a Wake that may have hit an old socket.
		}
		wait = max(wait, 0)
		ready, err := o.conn.wait(wait)
		if err != nil {
			o.socketFailed(err)
			continue
		}
		if ready {
			o.now = time.Now()
			if err := o.readAll(); err != nil {
				o.socketFailed(err)
			}
		}
	}
}

// drainCtrl handles waiting channel messages without blocking; it reports
// false when the client is closing.
func (o *owner) drainCtrl() bool {
	for range maxBatch {
		select {
		case m := <-o.c.ctrl:
			o.now = time.Now()
			o.handle(m)
		case <-o.c.closing:
			return false
		default:
			return true
		}
	}
	return true
}

func (o *owner) idle() bool {
	return len(o.inflight) == 0 && len(o.conn.outq) == 0
}

func (o *owner) handle(m ctrlMsg) {
	cl := m.call
	switch m.kind {
	case ctrlStart:
		if o.inflight[cl.service] != nil {
			o.waiting[cl.service] = append(o.waiting[cl.service], cl)
			return
		}
		o.launch(cl)
	case ctrlCancel:
		cl.cancelled = true
		if o.inflight[cl.service] == cl {
			// Sent, so its reply may still come: see tainted.
			o.tainted[cl.service] = true
			o.next(cl.service)
			return
		}
		q := o.waiting[cl.service]
		for i, w := range q {
			if w == cl {
				o.waiting[cl.service] = append(q[:i:i], q[i+1:]...)
				break
			}
		}
		if len(o.waiting[cl.service]) == 0 {
			delete(o.waiting, cl.service)
		}
	}
}

// launch puts cl on the wire as its service's in-flight call.
func (o *owner) launch(cl *call) {
	if o.tainted[cl.service] {
		o.c.log.Debug("late reply still possible; replacing socket", "service", cl.service)
		o.reconnect()
	}
	msg := mdp.Message{Version: o.c.cfg.version, Role: mdp.RoleClient, Command: mdp.Request,
		Service: []byte(cl.service), Body: cl.body}
	frames, err := mdp.Encode(&msg)
	if err != nil {
		cl.box.put(event{err: fmt.Errorf("client: encode: %w", err)})
		return
	}
	cl.frames = frames
	cl.retries = o.c.cfg.retries
	o.inflight[cl.service] = cl
	o.transmit(cl)
}

// transmit sends cl's request on the current socket and starts its timer.
func (o *owner) transmit(cl *call) {
	cl.deadline = o.now.Add(o.c.cfg.timeout)
	if err := o.conn.send(cl.frames); err != nil {
		// The socket is broken: the next loop replaces it via expiry.
		o.c.log.Warn("send failed", "service", cl.service, "error", err.Error())
	}
}

// next ends the in-flight call of service and launches the next waiting one.
func (o *owner) next(service string) {
	delete(o.inflight, service)
	q := o.waiting[service]
	for len(q) > 0 {
		cl := q[0]
		q[0] = nil
		q = q[1:]
		if cl.cancelled {
			continue
		}
		if len(q) == 0 {
			delete(o.waiting, service)
		} else {
			o.waiting[service] = q
		}
		o.launch(cl)
		return
	}
	delete(o.waiting, service)
}

// reconnect replaces the socket (7/MDP "MDP/Client": "close the request
// socket and open a new socket, and resend the request on that new
// socket") and resends every in-flight request, whose replies would now go
// to the closed socket. A stream that already delivered PARTIALs cannot be
// resent without repeating them, so it fails with ErrInterrupted.
func (o *owner) reconnect() {
	if err := o.conn.open(); err != nil {
		o.c.log.Error("cannot reopen socket", "error", err.Error())
	}
	clear(o.tainted)
	var broken []string
	for svc, cl := range o.inflight {
		if cl.progressed {
			broken = append(broken, svc)
			continue
		}
		if o.conn.sock != nil {
			o.transmit(cl)
		} else {
			cl.deadline = o.now.Add(o.c.cfg.timeout)
		}
	}
	for _, svc := range broken {
		cl := o.inflight[svc]
		cl.box.put(event{err: fmt.Errorf("%w: service %q: connection replaced", ErrInterrupted, svc)})
		o.next(svc)
	}
}

// expire handles attempts whose timeout has passed and returns the earliest
// deadline still pending.
func (o *owner) expire() time.Time {
	for {
		var due *call
		next := o.now.Add(time.Hour)
		for _, cl := range o.inflight {
			if !cl.deadline.After(o.now) {
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
		switch {
		case due.progressed:
			due.box.put(event{err: fmt.Errorf("%w: service %q: stream silent for %v",
				ErrTimeout, due.service, o.c.cfg.timeout)})
			o.tainted[due.service] = true
			o.next(due.service)
		case due.retries > 0:
			due.retries--
			o.c.log.Warn("no reply, retrying on a new socket", "service", due.service,
				"timeout", o.c.cfg.timeout, "retries_left", due.retries)
			o.reconnect()
		default:
			due.box.put(event{err: fmt.Errorf("%w: service %q: no reply after %d attempts of %v%s",
				ErrTimeout, due.service, o.c.cfg.retries+1, o.c.cfg.timeout, o.c.cfg.timeoutHint())})
			o.tainted[due.service] = true
			o.next(due.service)
		}
	}
}

// readAll handles the messages waiting on the socket.
func (o *owner) readAll() error {
	for range maxBatch {
		frames, err := o.conn.recv()
		if err != nil || frames == nil {
			return err
		}
		o.receive(frames)
	}
	return nil
}

func (o *owner) receive(frames [][]byte) {
	m, err := mdp.DecodeFromBroker(frames)
	if err != nil || m.Role != mdp.RoleClient || m.Version != o.c.cfg.version {
		o.c.log.Debug("ignoring malformed message from broker", "error", errString(err))
		return
	}
	svc := string(m.Service)
	cl := o.inflight[svc]
	if cl == nil {
		if m.Command == mdp.Final && o.tainted[svc] {
			delete(o.tainted, svc)
		}
		o.c.log.Debug("discarding late reply", "service", svc)
		return
	}
	// Any message shows the request is being served: the timeout now
	// measures the gap to the next one.
	cl.deadline = o.now.Add(o.c.cfg.timeout)
	if m.Command == mdp.Partial {
		cl.progressed = true
		if cl.stream {
			cl.box.put(event{body: m.Body})
		}
		return
	}
	cl.box.put(event{body: m.Body, final: true})
	o.next(svc)
}

// socketFailed replaces a socket that returned a hard error. If no socket
// can be made, every call fails rather than wait out its retries.
func (o *owner) socketFailed(err error) {
	o.c.log.Error("socket error; reconnecting", "error", err.Error())
	o.reconnect()
	if o.conn.sock != nil {
		return
	}
	err = fmt.Errorf("client: %w", err)
	for _, cl := range o.inflight {
		cl.box.put(event{err: err})
	}
	for _, q := range o.waiting {
		for _, cl := range q {
			cl.box.put(event{err: err})
		}
	}
	clear(o.inflight)
	clear(o.waiting)
	time.Sleep(failPause) // Do not spin on a persistent failure.
	if e := o.conn.open(); e != nil {
		o.c.log.Error("cannot reopen socket", "error", e.Error())
	}
}

// shutdown fails every call still known and closes the socket.
func (o *owner) shutdown() {
	for _, cl := range o.inflight {
		cl.box.put(event{err: ErrClosed})
	}
	for _, q := range o.waiting {
		for _, cl := range q {
			cl.box.put(event{err: ErrClosed})
		}
	}
	o.conn.close()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
