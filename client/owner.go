package client

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/majordomo-go/majordomo/internal/transport"
)

// lossCheck bounds the owner's sleep while calls are on the wire to several
// brokers, so that a connection the transport reports lost moves its calls
// to another broker within this time instead of at their timeout.
const lossCheck = 20 * time.Millisecond

// owner is a goroutine that owns one socket to each of a Client's brokers.
// A Client has one owner, and more when calls to one service overlap (see
// WithSockets and Client.acquire). Callers reach an owner only through its
// ctrl channel; it answers through each call's mailbox. The owner keeps the
// calls waiting for a service's slot and chooses the broker (link) of each
// call; a link keeps the calls on the wire through it and does the
// retrying.
type owner struct {
	c     *Client
	idx   int     // Position in Client.owners.
	links []*link // One per broker, in the order given.
	rr    int     // Where pick starts looking: spreads calls round-robin.
	// waiting holds calls queued until a link's slot for their service is
	// free, per service, oldest first (calls moved off a failed broker go
	// first).
	waiting map[string][]*call
	now     time.Time
	polled  time.Time // When the connection counters were last read.

	// With several brokers the owner waits on all their sockets at once.
	poller *transport.Poller
	socks  []transport.Socket // The sockets poller was made for.

	ctrl chan ctrlMsg
	conn *conn                            // The only link's (one broker): others call only its wake.
	woke atomic.Pointer[transport.Poller] // Several brokers: poller, published for wake.
	done chan struct{}                    // Closed when run has returned.
}

// wake interrupts the owner goroutine's wait, so that it looks at ctrl.
// Any goroutine may call it.
func (o *owner) wake() {
	if o.conn != nil {
		o.conn.wake()
	} else if p := o.woke.Load(); p != nil {
		p.Wake()
	}
}

func (o *owner) multi() bool { return len(o.links) > 1 }

func (o *owner) run() {
	defer close(o.done)
	defer o.shutdown()
	for {
		if o.idle() {
			// Nothing on the wire: sleep on the channel alone.
			select {
			case m := <-o.ctrl:
				// Losses that happened while idle are counted before
				// the first send, not against it.
				o.now = time.Now()
				if o.multi() && o.now.Sub(o.polled) >= time.Millisecond {
					o.polled = o.now
					o.pollLinks()
				}
				o.handle(m)
			case <-o.c.closing:
				return
			}
		}
		// Connection losses first, so that the requests sent below are
		// counted against the connection they really go out on. At most
		// once a millisecond: reading the counters is not free, and a
		// loss less than that old is as likely to have happened just
		// after the send.
		if now := time.Now(); now.Sub(o.polled) >= time.Millisecond {
			o.polled = now
			o.now = now
			o.pollLinks()
		}
		if !o.drainCtrl() {
			return
		}
		o.now = time.Now()
		failed := false
		for _, l := range o.links {
			if err := l.conn.flush(); err != nil {
				o.socketFailed(l, err)
				failed = true
			}
		}
		if failed {
			continue
		}
		// Expire every link first: a link that gives up on its broker
		// moves its calls to others, with new deadlines.
		for _, l := range o.links {
			l.expire()
		}
		if o.idle() {
			continue
		}
		next := o.now.Add(time.Hour)
		queued := false
		for _, l := range o.links {
			if t := l.expire(); t.Before(next) {
				next = t
			}
			queued = queued || len(l.conn.outq) > 0
		}
		// Sleep until a reply, the next deadline, or a Wake from a
		// caller that queued a message on ctrl.
		wait := next.Sub(o.now)
		if queued {
			wait = min(wait, retrySlice)
		}
		if o.multi() {
			wait = min(wait, lossCheck)
			o.preparePoller()
		}
		if len(o.ctrl) > 0 {
			wait = 0 // Queued before a Wake that may have hit an old socket.
		}
		wait = max(wait, 0)
		o.waitAndRead(wait)
	}
}

// waitAndRead waits up to d for messages and handles those that came.
func (o *owner) waitAndRead(d time.Duration) {
	if !o.multi() {
		l := o.links[0]
		ready, err := l.conn.wait(d)
		if err != nil {
			o.socketFailed(l, err)
			return
		}
		if ready {
			o.now = time.Now()
			if err := o.readAll(l); err != nil {
				o.socketFailed(l, err)
			}
		}
		return
	}
	set, err := o.poller.Wait(d)
	if err == transport.ErrWoken {
		return
	}
	o.now = time.Now()
	if err != nil {
		// The poller does not say which socket failed: ask each.
		for _, l := range o.links {
			if _, err := l.conn.wait(0); err != nil {
				o.socketFailed(l, err)
			}
		}
		return
	}
	for i, l := range o.links {
		if set&(1<<i) != 0 {
			if err := o.readAll(l); err != nil {
				o.socketFailed(l, err)
			}
		}
	}
}

// preparePoller makes the poller match the links' current sockets and
// publishes it for wake. A caller whose wake hits the old poller
// queued its message before the new one was published, and run looks at
// the channel after this.
func (o *owner) preparePoller() {
	same := o.poller != nil
	for i, l := range o.links {
		if l.conn.sock == nil {
			return // socketFailed keeps trying; poll what is left next time.
		}
		if same && o.socks[i] != l.conn.sock {
			same = false
		}
	}
	if same {
		return
	}
	socks := make([]transport.Socket, len(o.links))
	for i, l := range o.links {
		socks[i] = l.conn.sock
	}
	p, err := transport.NewPoller(socks...)
	if err != nil {
		o.c.log.Error("cannot poll the brokers' sockets", "error", err.Error())
		return
	}
	o.poller, o.socks = p, socks
	o.woke.Store(p)
}

// pollLinks reads each link's connection counters. With several brokers, a
// lost connection moves the link's calls to another broker at once (their
// replies cannot come back through it), and a link marked down comes back
// into use once it is connected again and its pause is over.
func (o *owner) pollLinks() {
	kick := false
	for _, l := range o.links {
		d := l.conn.pollDrops()
		if !o.multi() {
			continue
		}
		if d != l.seenDrops {
			l.seenDrops = d
			if l.hasSent() {
				l.evacuate("connection to the broker lost", 0)
			} else {
				l.markDown(0)
			}
		}
		if l.down && !o.now.Before(l.downUntil) && l.connected() {
			l.down = false
			l.log.Info("broker connected again; back in use")
			kick = true
		}
	}
	if kick {
		for svc := range o.waiting {
			o.next(svc)
		}
	}
}

// drainCtrl handles waiting channel messages without blocking; it reports
// false when the client is closing.
func (o *owner) drainCtrl() bool {
	for range maxBatch {
		select {
		case m := <-o.ctrl:
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
	for _, l := range o.links {
		if !l.idle() {
			return false
		}
	}
	return true
}

func (o *owner) handle(m ctrlMsg) {
	cl := m.call
	switch m.kind {
	case ctrlStart:
		if len(o.waiting[cl.service]) > 0 {
			o.waiting[cl.service] = append(o.waiting[cl.service], cl)
			return
		}
		if l := o.pick(cl); l != nil {
			l.launch(cl)
			return
		}
		o.waiting[cl.service] = append(o.waiting[cl.service], cl)
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

// pick chooses the link for cl, or returns nil if cl must wait for a slot.
// With several brokers it prefers, in order: links up and connected, links
// up but not (yet) connected, links marked down; each of those ranks after
// all others for links cl must avoid (they failed it or said "no
// workers"). Among the free links of the best rank it goes round-robin. A
// call waits rather than take a worse rank than a busy link's.
func (o *owner) pick(cl *call) *link {
	if cl.pin != nil {
		if cl.pin.busy(cl.service) {
			return nil
		}
		return cl.pin
	}
	if !o.multi() {
		if l := o.links[0]; !l.busy(cl.service) {
			return l
		}
		return nil
	}
	n := len(o.links)
	best := -1
	var choice *link
	for i := range n {
		l := o.links[(o.rr+i)%n]
		r := l.rank(cl)
		if r < 0 {
			continue
		}
		if best < 0 || r < best {
			best, choice = r, nil
		}
		if r == best && choice == nil && !l.busy(cl.service) {
			choice = l
		}
	}
	if choice != nil {
		o.rr = choice.idx + 1
	}
	return choice
}

// requeue puts cl, moved off a failed link, first in its service's queue.
func (o *owner) requeue(cl *call) {
	cl.link = nil
	o.waiting[cl.service] = append([]*call{cl}, o.waiting[cl.service]...)
}

// next launches the waiting calls of service that a link can take now.
func (o *owner) next(service string) {
	q := o.waiting[service]
	for len(q) > 0 {
		cl := q[0]
		if cl.cancelled {
			q[0] = nil
			q = q[1:]
			continue
		}
		l := o.pick(cl)
		if l == nil {
			break
		}
		q[0] = nil
		q = q[1:]
		// launch may come back here (a failed encode): store first.
		o.setWaiting(service, q)
		l.launch(cl)
		q = o.waiting[service]
	}
	o.setWaiting(service, q)
}

func (o *owner) setWaiting(service string, q []*call) {
	if len(q) == 0 {
		delete(o.waiting, service)
	} else {
		o.waiting[service] = q
	}
}

// readAll handles the messages waiting on l's socket.
func (o *owner) readAll(l *link) error {
	for range maxBatch {
		frames, err := l.conn.recv()
		if err != nil || frames == nil {
			return err
		}
		l.receive(frames)
	}
	return nil
}

// socketFailed replaces a socket that returned a hard error. If no socket
// can be made, the link's calls fail (or, with several brokers, move to
// another) rather than wait out their retries.
func (o *owner) socketFailed(l *link, err error) {
	l.log.Error("socket error; reconnecting", "error", err.Error())
	if o.multi() {
		l.evacuate("socket error", o.c.cfg.timeout)
		if l.conn.sock == nil {
			time.Sleep(failPause) // Do not spin on a persistent failure.
		}
		return
	}
	l.reconnect()
	if l.conn.sock != nil {
		return
	}
	err = fmt.Errorf("client: %w", err)
	l.failAll(err)
	for _, q := range o.waiting {
		for _, cl := range q {
			cl.box.put(event{err: err})
		}
	}
	clear(o.waiting)
	time.Sleep(failPause) // Do not spin on a persistent failure.
	if e := l.conn.open(); e != nil {
		l.log.Error("cannot reopen socket", "error", e.Error())
	}
}

// shutdown fails every call still known and closes the sockets.
func (o *owner) shutdown() {
	for _, l := range o.links {
		l.failAll(ErrClosed)
	}
	for _, q := range o.waiting {
		for _, cl := range q {
			cl.box.put(event{err: ErrClosed})
		}
	}
	o.woke.Store(nil)
	for _, l := range o.links {
		l.conn.close()
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// untried reports whether a broker other than l is up and has not yet
// failed cl or told it "no workers".
func (o *owner) untried(cl *call, l *link) bool {
	for _, m := range o.links {
		if m != l && m.conn.sock != nil && !m.down && cl.avoid&m.bit == 0 {
			return true
		}
	}
	return false
}
