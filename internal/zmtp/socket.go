package zmtp

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Socket is one ZMTP socket. Exactly one goroutine, its owner, may call its
// methods at a time, except Wake, Stats and Connections, which any
// goroutine may call. Connection goroutines (one reader per connection, a
// writer that runs only when the kernel would block) talk to the owner
// through the socket's inbox.
//
// Sends are written by the owner itself into each connection's outbound
// buffer and to the kernel at once. With Options.Batch, a send made inside a
// receive batch (after Recv returned a message while more of the batch
// waits) is written when the batch ends: when Recv returns the batch's last
// message or finds it empty, or on WaitReadable or Flush. A loop that answers
// many messages then makes one write per peer per batch.
type Socket struct {
	ctx  *Context
	typ  Type
	opts Options
	sec  Security // For the next Bind or Connect.
	log  *slog.Logger

	in     inbox
	notify chan struct{}
	wake   chan struct{}
	space  chan struct{} // A writer freed room (blocking sends wait on it).

	// Owner-only state.
	ready   []item
	ri      int
	inBatch bool
	routes  map[string]*pipe // ROUTER: routing id -> pipe.
	pipes   []*pipe          // Every pipe that may carry sends.
	rr      int
	dirty   []*conn
	lastUID string
	timer   *time.Timer // block's, reused.
	subs    [][]byte    // SUB: current subscriptions, resent on every attach.
	closed  bool

	// Shared with background goroutines.
	mu        sync.Mutex
	listeners []net.Listener
	dialers   []*dialer
	inprocs   []string
	live      map[*conn]struct{}
	wg        sync.WaitGroup
	done      chan struct{} // Closed by Close.
	nextID    atomic.Uint32

	stats counters
}

// counters are the socket's statistics, updated by any goroutine.
type counters struct {
	accepted, active, refusedConn, handshakeFailed, authRefused  atomic.Int64
	protocolErrors, tooLarge, dropped, disconnected, peerRefused atomic.Int64
	pongs, flushes                                               atomic.Int64
	// open counts accepted connections not yet ended, handshaking or not:
	// what MaxConnections caps.
	open atomic.Int64
}

// Stats are a socket's counters.
type Stats struct {
	// Accepted counts connections accepted on bound endpoints.
	Accepted int64
	// Active is the number of connections that completed their handshake
	// and are still open.
	Active int64
	// RefusedLimit counts connections closed at once because the socket
	// had MaxConnections already.
	RefusedLimit int64
	// HandshakeFailed counts connections closed during greeting or
	// handshake (garbage, timeout, wrong mechanism or socket type), and
	// AuthRefused those the Authenticator refused.
	HandshakeFailed, AuthRefused int64
	// PeerRefused counts handshakes the peer ended with ERROR: its
	// authentication refused us (the client's side of AuthRefused; libzmq
	// sends ERROR during a handshake for nothing else).
	PeerRefused int64
	// ProtocolErrors counts connections closed for a malformed frame or
	// command after the handshake; TooLarge those closed for a frame over
	// MaxMsgSize.
	ProtocolErrors, TooLarge int64
	// Dropped counts messages dropped at a peer's high-water mark.
	Dropped int64
	// Disconnected counts connections that ended after their handshake
	// (what libzmq's monitor reports as ZMQ_EVENT_DISCONNECTED).
	Disconnected int64
	// Pongs counts PONG commands received: answers to our heartbeats
	// (37/ZMTP), which keep a connection alive.
	Pongs int64
	// Flushes counts the writes of queued output to connections (by the
	// owner, or by a connection's writer for what the owner could not
	// write), each carrying everything queued for that connection since
	// the last one: sends divided by flushes is how well writes batch.
	Flushes int64
}

// Stats returns the socket's counters. Any goroutine may call it.
func (s *Socket) Stats() Stats {
	c := &s.stats
	return Stats{
		Accepted: c.accepted.Load(), Active: c.active.Load(), RefusedLimit: c.refusedConn.Load(),
		HandshakeFailed: c.handshakeFailed.Load(), AuthRefused: c.authRefused.Load(), PeerRefused: c.peerRefused.Load(),
		ProtocolErrors: c.protocolErrors.Load(), TooLarge: c.tooLarge.Load(), Dropped: c.dropped.Load(),
		Disconnected: c.disconnected.Load(), Pongs: c.pongs.Load(), Flushes: c.flushes.Load(),
	}
}

// Connections is the number of connections past their handshake.
func (s *Socket) Connections() int { return int(s.stats.active.Load()) }

func newSocket(ctx *Context, t Type, o Options) (*Socket, error) {
	switch t {
	case Router, Dealer, Req, Pub, Sub:
	default:
		return nil, fmt.Errorf("zmtp: unknown socket type %d", t)
	}
	if len(o.Identity) > 255 {
		return nil, fmt.Errorf("zmtp: identity longer than 255 bytes")
	}
	if len(o.Identity) > 0 && o.Identity[0] == 0 {
		// libzmq reserves ids starting with a zero byte for generated ones.
		return nil, fmt.Errorf("zmtp: identity may not start with a zero byte")
	}
	o.defaults()
	s := &Socket{
		ctx: ctx, typ: t, opts: o, log: o.Logger,
		notify: make(chan struct{}, 1), wake: make(chan struct{}, 1), space: make(chan struct{}, 1),
		routes: map[string]*pipe{}, live: map[*conn]struct{}{}, done: make(chan struct{}),
	}
	s.in.init(o.RecvHWM, s.notify)
	var seed [4]byte
	rand.Read(seed[:])
	s.nextID.Store(binary.BigEndian.Uint32(seed[:]))
	if o.Security != nil {
		s.sec = *o.Security
	}
	for _, p := range o.Subscribe {
		s.subs = append(s.subs, append([]byte(nil), p...))
	}
	return s, nil
}

// Type returns the socket's type.
func (s *Socket) Type() Type { return s.typ }

// SetSecurity sets the mechanism for endpoints bound or connected after it;
// nil means NULL. One socket can thus serve CURVE on one endpoint and PLAIN
// on another.
func (s *Socket) SetSecurity(sec *Security) error {
	if s.closed {
		return ErrClosed
	}
	if sec == nil {
		s.sec = Security{}
		return nil
	}
	if err := sec.Validate(); err != nil {
		return err
	}
	s.sec = *sec
	return nil
}

// Wake makes a Wait or blocking Recv or Send in progress, or the next one,
// return at once. Any goroutine may call it.
func (s *Socket) Wake() { signal(s.wake) }

// generatedID returns libzmq's form of a generated routing id: a zero byte
// and a 32-bit counter.
func (s *Socket) generatedID() []byte {
	id := make([]byte, 5)
	binary.BigEndian.PutUint32(id[1:], s.nextID.Add(1))
	return id
}

// Recv returns the next message. For a ROUTER its first frame is the
// sender's routing id. At most maxFrames frames are returned (0: all); the
// number of frames left out is returned as dropped. With dontwait it
// returns ErrAgain when nothing is waiting; a blocking Recv returns
// ErrInterrupted when Wake is called.
func (s *Socket) Recv(maxFrames int, dontwait bool) (msg [][]byte, dropped int, err error) {
	if s.closed {
		return nil, 0, ErrClosed
	}
	if s.typ == Pub {
		return nil, 0, ErrNotSupported
	}
	for {
		for s.ri < len(s.ready) {
			it := s.ready[s.ri]
			s.ready[s.ri] = item{}
			s.ri++
			if it.kind != itemMsg {
				s.control(it)
				continue
			}
			if it.p.rejected {
				continue
			}
			// Sends made while more of this batch waits are written when
			// the batch ends; the batch's last message ends it now, so that
			// nothing waits on an owner that does not come back.
			s.inBatch = s.opts.Batch && s.moreReady()
			if !s.inBatch {
				s.flush()
			}
			return s.deliver(it, maxFrames)
		}
		if !s.pull() {
			if dontwait {
				return nil, 0, ErrAgain
			}
			if err := s.block(-1); err != nil {
				return nil, 0, err
			}
		}
	}
}

// moreReady reports whether the local batch holds another message.
func (s *Socket) moreReady() bool {
	for i := s.ri; i < len(s.ready); i++ {
		if s.ready[i].kind == itemMsg {
			return true
		}
	}
	return false
}

// deliver shapes a received message for the caller.
func (s *Socket) deliver(it item, maxFrames int) ([][]byte, int, error) {
	msg, dropped := it.msg, it.dropped
	s.lastUID = it.uid
	if s.typ == Req {
		// REQ: strip the empty delimiter a REP or ROUTER peer puts first.
		if len(msg) > 0 && len(msg[0]) == 0 {
			msg = msg[1:]
		}
	}
	if maxFrames > 0 && len(msg) > maxFrames {
		dropped += len(msg) - maxFrames
		msg = msg[:maxFrames]
	}
	return msg, dropped, nil
}

// pull ends the current batch: it flushes what the batch sent, then takes
// whatever the readers queued. It reports whether anything was taken.
func (s *Socket) pull() bool {
	s.ready = s.ready[:0]
	s.ri = 0
	s.flush()
	s.ready = s.in.take(s.ready)
	return len(s.ready) > 0
}

// sync processes queued control items (connections attached or gone,
// subscriptions) without consuming messages, so that a socket that only
// sends learns about its peers.
func (s *Socket) sync() {
	if s.in.ctl.Load() == 0 {
		return
	}
	// Keep unconsumed messages in order, appending what is new.
	if s.ri > 0 {
		s.ready = append(s.ready[:0], s.ready[s.ri:]...)
		s.ri = 0
	}
	start := len(s.ready)
	s.ready = s.in.take(s.ready)
	j := start
	for i := start; i < len(s.ready); i++ {
		it := s.ready[i]
		if it.kind != itemMsg {
			s.control(it)
			continue
		}
		s.ready[j] = it
		j++
	}
	clear(s.ready[j:])
	s.ready = s.ready[:j]
}

// WaitReadable waits up to timeout (negative: for ever) for a message and
// reports whether one is waiting. It flushes pending sends first. It
// returns (false, nil) early when Wake is called.
func (s *Socket) WaitReadable(timeout time.Duration) (bool, error) {
	if s.closed {
		return false, ErrClosed
	}
	s.flush()
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		for s.ri < len(s.ready) && s.ready[s.ri].kind != itemMsg {
			it := s.ready[s.ri]
			s.ready[s.ri] = item{}
			s.ri++
			s.control(it)
		}
		if s.ri < len(s.ready) {
			return true, nil
		}
		if s.pull() {
			continue
		}
		if timeout == 0 {
			return false, nil
		}
		var left time.Duration = -1
		if timeout > 0 {
			if left = time.Until(deadline); left <= 0 {
				return false, nil
			}
		}
		switch err := s.block(left); err {
		case nil:
			if s.opts.Batch {
				// A reader woke us. Readers that the same network poll
				// made runnable are queued behind us: let them hand their
				// messages over first, so that they form one batch (one
				// write per peer) instead of one batch each. With one P
				// (GOMAXPROCS 1) the woken owner otherwise always runs
				// before them; with nothing else runnable this is cheap.
				runtime.Gosched()
			}
		case ErrInterrupted:
			return false, nil
		case errTimeout:
			return false, nil
		default:
			return false, err
		}
	}
}

// block waits for the inbox's notification, Wake, or the timeout
// (negative: none).
func (s *Socket) block(timeout time.Duration) error {
	var expired <-chan time.Time
	if timeout >= 0 {
		// One timer per socket, re-armed per wait: a library that always
		// waits with a deadline (a worker's heartbeat) arms no new one.
		if s.timer == nil {
			s.timer = time.NewTimer(timeout)
		} else {
			s.timer.Reset(timeout)
		}
		defer s.timer.Stop()
		expired = s.timer.C
	}
	select {
	case <-s.notify:
		return nil
	case <-s.wake:
		return ErrInterrupted
	case <-s.done:
		return ErrClosed
	case <-expired:
		return errTimeout
	}
}

var errTimeout = fmt.Errorf("zmtp: timeout")

// UserID returns the authenticated user id of the connection that sent the
// message the last Recv returned ("" without authentication).
func (s *Socket) UserID() string { return s.lastUID }

// Flush writes every queued send to the kernel now (as far as it takes
// without blocking; a slow peer's remainder is written by its writer).
func (s *Socket) Flush() { s.flush() }

// Hold defers the writes of the sends that follow until Flush, Recv,
// WaitReadable or Close, so that an owner sending a burst of messages
// costs one write per connection instead of one per message. An owner that
// holds must come back to one of those calls.
func (s *Socket) Hold() { s.inBatch = true }

func (s *Socket) flush() {
	s.inBatch = false
	if len(s.dirty) == 0 {
		return
	}
	for i, c := range s.dirty {
		c.dirty = false
		c.flush()
		s.dirty[i] = nil
	}
	s.dirty = s.dirty[:0]
}

// markDirty records that c has output for the end of the batch, or writes
// it at once outside a batch.
func (s *Socket) markDirty(c *conn) {
	if !s.inBatch {
		c.flush()
		return
	}
	if !c.dirty {
		c.dirty = true
		s.dirty = append(s.dirty, c)
	}
}

// Send sends one multipart message. For a ROUTER, frames[0] names the peer.
// With dontwait it returns ErrAgain instead of blocking when the peer (or,
// for DEALER, every peer) is at its high-water mark.
func (s *Socket) Send(frames [][]byte, dontwait bool) error {
	if s.closed {
		return ErrClosed
	}
	s.sync()
	for {
		err := s.trySend(frames)
		if err != ErrAgain || dontwait {
			return err
		}
		if err := s.waitSpace(); err != nil {
			return err
		}
		s.sync()
	}
}

// waitSpace waits until a writer frees room, Wake, or close. Inproc peers
// free room without a signal, so the wait is bounded.
func (s *Socket) waitSpace() error {
	t := time.NewTimer(5 * time.Millisecond)
	defer t.Stop()
	s.flush()
	select {
	case <-s.space:
	case <-t.C:
	case <-s.wake:
		return ErrInterrupted
	case <-s.done:
		return ErrClosed
	}
	return nil
}

func (s *Socket) trySend(frames [][]byte) error {
	switch s.typ {
	case Router:
		if len(frames) < 2 {
			return fmt.Errorf("zmtp: ROUTER send needs a routing id and a body")
		}
		p := s.routes[string(frames[0])]
		if p == nil {
			if s.opts.RouterMandatory {
				return ErrUnroutable
			}
			return nil
		}
		switch s.sendTo(p, frames[1:]) {
		case sendFull:
			if s.opts.RouterMandatory {
				return ErrAgain
			}
			s.stats.dropped.Add(1)
		case sendGone:
			// The connection is closing and the owner has not seen its
			// detach yet: libzmq's ROUTER reports a pipe that is no longer
			// active as EHOSTUNREACH, not EAGAIN (the peer is gone, not slow).
			if s.opts.RouterMandatory {
				return ErrUnroutable
			}
		}
		return nil
	case Dealer, Req:
		if len(frames) == 0 {
			return fmt.Errorf("zmtp: empty message")
		}
		if s.typ == Req {
			frames = append([][]byte{{}}, frames...)
		}
		for i := 0; i < len(s.pipes); i++ {
			p := s.pipes[s.rr%len(s.pipes)]
			s.rr++
			if s.sendTo(p, frames) == sent {
				return nil
			}
		}
		return ErrAgain
	case Pub:
		if len(frames) == 0 {
			return fmt.Errorf("zmtp: empty message")
		}
		for _, p := range s.pipes {
			if p.link != nil && p.subs.match(frames[0]) && p.link.send(s, frames) == sendFull {
				s.stats.dropped.Add(1)
			}
		}
		return nil
	}
	return ErrNotSupported
}

// sendResult is what queueing one message to a peer came to.
type sendResult uint8

const (
	sent     sendResult = iota
	sendFull            // The peer is at its high-water mark.
	sendGone            // The peer's connection is closing or closed.
)

// sendTo queues msg to p: on its connection, or while it has none (a
// connecting pipe), in the pipe itself.
func (s *Socket) sendTo(p *pipe, msg [][]byte) sendResult {
	if p.link != nil {
		return p.link.send(s, msg)
	}
	if !p.connecting {
		return sendGone
	}
	p.mu.Lock()
	if live := p.live; live != nil {
		// Connected, but the owner has not seen the attach yet.
		p.mu.Unlock()
		return live.send(s, msg)
	}
	defer p.mu.Unlock()
	if s.opts.Immediate || len(p.pending) >= s.opts.SendHWM {
		return sendFull
	}
	p.pending = append(p.pending, copyMsg(msg))
	return sent
}

// attachLive is called by a connection of a connecting pipe once its
// handshake is done: it takes the messages that waited for it and sends
// them at once, as libzmq's I/O thread would, without waiting for the owner
// to notice the connection.
func (p *pipe) attachLive(l link, sendPending func([][][]byte)) {
	p.mu.Lock()
	p.live = l
	pending := p.pending
	p.pending = nil
	if len(pending) > 0 {
		sendPending(pending)
	}
	p.mu.Unlock()
}

func (p *pipe) detachLive(l link) {
	p.mu.Lock()
	if p.live == l {
		p.live = nil
	}
	p.mu.Unlock()
}

func copyMsg(msg [][]byte) [][]byte {
	n := 0
	for _, f := range msg {
		n += len(f)
	}
	buf := make([]byte, 0, n)
	out := make([][]byte, len(msg))
	for i, f := range msg {
		start := len(buf)
		buf = append(buf, f...)
		out[i] = buf[start:len(buf):len(buf)]
	}
	return out
}

// control applies a control item on the owner goroutine.
func (s *Socket) control(it item) {
	p := it.p
	switch it.kind {
	case itemAttach:
		if p.rejected {
			it.l.close()
			return
		}
		if s.typ == Router {
			if p.link == nil || string(p.id) != string(it.topic) {
				if s.routes[string(p.id)] == p {
					delete(s.routes, string(p.id))
				}
				p.id = it.topic
			}
			if old := s.routes[string(p.id)]; old != nil && old != p {
				if !s.opts.RouterHandover {
					// libzmq refuses a second peer with an identity in use.
					p.rejected = true
					it.l.close()
					return
				}
				old.rejected = true
				if old.link != nil {
					old.link.close()
				}
				s.removePipe(old)
			}
			s.routes[string(p.id)] = p
		}
		p.link = it.l
		if !p.listed {
			p.listed = true
			s.pipes = append(s.pipes, p)
		}
		if s.typ == Sub {
			for _, t := range s.subs {
				it.l.subscribe(s, t, true)
			}
		}
	case itemDetach:
		if p.link != it.l {
			return
		}
		p.link = nil
		p.subs = subscriptions{}
		if !p.connecting {
			s.removePipe(p)
		}
	case itemSub:
		p.subs.add(it.topic)
	case itemCancel:
		p.subs.remove(it.topic)
	}
}

func (s *Socket) removePipe(p *pipe) {
	if s.typ == Router && s.routes[string(p.id)] == p {
		delete(s.routes, string(p.id))
	}
	if !p.listed {
		return
	}
	p.listed = false
	for i, q := range s.pipes {
		if q == p {
			s.pipes = append(s.pipes[:i], s.pipes[i+1:]...)
			break
		}
	}
}

// Subscribe adds a SUB subscription (an empty prefix matches everything)
// and sends it to every connected publisher.
func (s *Socket) Subscribe(prefix []byte) error {
	return s.subChange(prefix, true)
}

// Unsubscribe cancels one earlier Subscribe of the same prefix.
func (s *Socket) Unsubscribe(prefix []byte) error {
	return s.subChange(prefix, false)
}

func (s *Socket) subChange(prefix []byte, on bool) error {
	if s.typ != Sub {
		return ErrNotSupported
	}
	if s.closed {
		return ErrClosed
	}
	s.sync()
	if on {
		s.subs = append(s.subs, append([]byte(nil), prefix...))
	} else {
		for i, t := range s.subs {
			if string(t) == string(prefix) {
				s.subs = append(s.subs[:i], s.subs[i+1:]...)
				break
			}
		}
	}
	for _, p := range s.pipes {
		if p.link != nil {
			p.link.subscribe(s, prefix, on)
		}
	}
	s.flush()
	return nil
}

// Close closes the socket: listeners and dialers stop, queued output is
// flushed for up to Linger in the background, and every connection then
// closes. It is safe to call more than once.
func (s *Socket) Close() error {
	if s.closed {
		return nil
	}
	s.flush()
	s.closed = true
	close(s.done)
	s.in.close()
	s.mu.Lock()
	for _, l := range s.listeners {
		l.Close()
	}
	for _, d := range s.dialers {
		d.stop()
	}
	s.mu.Unlock()
	s.ctx.unbind(s)
	for _, p := range s.pipes {
		if p.link != nil {
			p.link.linger(s.opts.Linger)
		}
	}
	s.mu.Lock()
	for c := range s.live {
		c.linger(s.opts.Linger)
	}
	s.mu.Unlock()
	s.ctx.forget(s)
	return nil
}

// track registers a live connection so that Close can end it.
func (s *Socket) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return false
	default:
	}
	s.live[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Socket) untrack(c *conn) {
	s.mu.Lock()
	delete(s.live, c)
	s.mu.Unlock()
	s.wg.Done()
}

// pipe is one peer as the owner sees it: for a bound endpoint one
// connection, for a connected endpoint the endpoint itself across
// reconnects (so messages sent before the first connection wait in it).
type pipe struct {
	id         []byte // Routing id (ROUTER).
	link       link   // Owner's view of the attached connection.
	connecting bool   // Belongs to a Connect: survives disconnection.
	listed     bool
	rejected   bool
	subs       subscriptions // PUB: what the peer subscribed to.

	// A connecting pipe's messages sent while it has no connection, and the
	// connection its engine side attached (shared with that connection's
	// goroutine, hence the lock; the owner's link field lags behind it).
	mu      sync.Mutex
	pending [][][]byte
	live    link
}

// link is a pipe's attached connection: TCP/IPC or inproc.
type link interface {
	// send queues one message, unless the peer is at its high-water mark
	// or its connection is gone.
	send(s *Socket, msg [][]byte) sendResult
	// subscribe sends a SUBSCRIBE or CANCEL (SUB sockets).
	subscribe(s *Socket, topic []byte, on bool)
	// close ends the connection at once.
	close()
	// linger flushes for up to d, then closes.
	linger(d time.Duration)
}

// SetNotify makes the socket signal ch (capacity 1) instead of its own
// channel when messages arrive, so that one goroutine can wait on several
// sockets with one select. Wait and Recv then no longer block on their
// own; use ch.
func (s *Socket) SetNotify(ch chan struct{}) {
	s.notify = ch
	s.in.setNotify(ch)
}
