package client

import (
	"fmt"
	"time"
)

// owner is the goroutine that owns a Client's connection. Callers reach it
// only through Client.ctrl; it answers through each call's mailbox. The
// owner keeps the calls waiting for their service's slot; the link keeps
// the ones on the wire and does the retrying.
type owner struct {
	c    *Client
	link *link // One broker for now; issue 13 makes it a list.
	// waiting holds calls queued behind the in-flight one, per service,
	// oldest first.
	waiting map[string][]*call
	now     time.Time
	polled  time.Time // When the connection monitor was last read.
}

func (o *owner) run() {
	defer close(o.c.done)
	defer o.shutdown()
	conn := o.link.conn
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
		// Connection losses first, so that the requests sent below are
		// counted against the connection they really go out on. At most
		// once a millisecond: reading the monitor costs two allocations,
		// and a loss less than that old is as likely to have happened
		// just after the send.
		if now := time.Now(); now.Sub(o.polled) >= time.Millisecond {
			o.polled = now
			conn.pollDrops()
		}
		if !o.drainCtrl() {
			return
		}
		o.now = time.Now()
		if err := conn.flush(); err != nil {
			o.socketFailed(err)
			continue
		}
		next := o.link.expire()
		if o.idle() {
			continue
		}
		// Sleep until a reply, the next deadline, or a Wake from a
		// caller that queued a message on ctrl.
		wait := next.Sub(o.now)
		if len(conn.outq) > 0 {
			wait = min(wait, retrySlice)
		}
		if len(o.c.ctrl) > 0 {
			wait = 0 // Queued before a Wake that may have hit an old socket.
		}
		wait = max(wait, 0)
		ready, err := conn.wait(wait)
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

func (o *owner) idle() bool { return o.link.idle() }

func (o *owner) handle(m ctrlMsg) {
	cl := m.call
	switch m.kind {
	case ctrlStart:
		if o.link.busy(cl.service) {
			o.waiting[cl.service] = append(o.waiting[cl.service], cl)
			return
		}
		o.link.launch(cl)
	case ctrlCancel:
		cl.cancelled = true
		if l := cl.link; l != nil && l.inflight[cl.service] == cl {
			l.cancel(cl)
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

// next launches the next waiting call of service, whose slot is free.
func (o *owner) next(service string) {
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
		o.link.launch(cl)
		return
	}
	delete(o.waiting, service)
}

// readAll handles the messages waiting on the socket.
func (o *owner) readAll() error {
	for range maxBatch {
		frames, err := o.link.conn.recv()
		if err != nil || frames == nil {
			return err
		}
		o.link.receive(frames)
	}
	return nil
}

// socketFailed replaces a socket that returned a hard error. If no socket
// can be made, every call fails rather than wait out its retries.
func (o *owner) socketFailed(err error) {
	o.c.log.Error("socket error; reconnecting", "error", err.Error())
	o.link.reconnect()
	if o.link.conn.sock != nil {
		return
	}
	err = fmt.Errorf("client: %w", err)
	o.link.failAll(err)
	for _, q := range o.waiting {
		for _, cl := range q {
			cl.box.put(event{err: err})
		}
	}
	clear(o.waiting)
	time.Sleep(failPause) // Do not spin on a persistent failure.
	if e := o.link.conn.open(); e != nil {
		o.c.log.Error("cannot reopen socket", "error", e.Error())
	}
}

// shutdown fails every call still known and closes the socket.
func (o *owner) shutdown() {
	o.link.failAll(ErrClosed)
	for _, q := range o.waiting {
		for _, cl := range q {
			cl.box.put(event{err: ErrClosed})
		}
	}
	o.link.conn.close()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
