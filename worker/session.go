package worker

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/majordomo-go/majordomo/internal/peercfg"
	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
)

const (
	// retrySlice is how soon a send refused at the high-water mark is
	// tried again.
	retrySlice = time.Millisecond
	// maxBatch is how many socket messages are handled in a row.
	maxBatch = 64
	// linger lets a final DISCONNECT reach the broker after Close, without
	// holding shutdown long when the broker is gone.
	linger = 100 * time.Millisecond
)

// job is one request being served by a handler goroutine.
type job struct {
	req      *Request
	ctx      context.Context
	cancel   context.CancelCauseFunc
	partials chan partial // Unbuffered: Partial waits for the socket goroutine.
	final    chan outcome // Buffered: the handler goroutine never blocks.
	returned atomic.Bool  // The handler returned.
}

type partial struct {
	body [][]byte
	ack  chan error // Buffered.
}

// outcome is what a handler produced.
type outcome struct {
	body     [][]byte
	reply    bool  // Send body as the FINAL.
	err      error // Handler error (with or without a reply) or panic.
	panicked bool
	stack    []byte
}

// outMsg is a message refused by the socket at the high-water mark, waiting
// to be sent; ack, if set, is answered once it is.
type outMsg struct {
	frames [][]byte
	ack    chan error
	count  *atomic.Uint64 // Counter to bump once sent.
}

// endReason says why a connection ended.
type endReason int

const (
	endShutdown   endReason = iota // Run's context ended.
	endDead                        // Broker silent for liveness × heartbeat.
	endDisconnect                  // Broker sent DISCONNECT.
	endReregister                  // A request got no reply: start over.
	endSocket                      // The socket failed.
)

// session is one socket registered as one worker with one broker, owned by
// one goroutine. Sessions of different brokers share nothing but the
// worker's slots and counters, so a broker that dies or restarts affects
// only its own sessions.
type session struct {
	w        *Worker
	zctx     transport.Context
	endpoint string
	log      *slog.Logger
	base     context.Context // Run's context without its cancellation: the parent of job contexts.

	sock     transport.Socket
	cur      atomic.Pointer[sockRef] // sock, for wake from other goroutines.
	outq     []outMsg
	job      *job
	backlog  []*Request // REQUESTs received while busy or waiting for a slot.
	lastSent time.Time
	lastRecv time.Time
	healthy  bool // Heard a command other than DISCONNECT on this socket.
	backoff  time.Duration
	timer    *time.Timer

	// granted and queued are the session's place in the worker's slots;
	// slots.mu guards them.
	granted, queued bool
}

func newSession(w *Worker, zctx transport.Context, endpoint string, i int) *session {
	log := w.log
	if len(w.endpoints) > 1 {
		log = log.With("endpoint", endpoint)
	}
	if w.cfg.concurrency > 1 {
		log = log.With("socket", i)
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &session{w: w, zctx: zctx, endpoint: endpoint, log: log, timer: t}
}

type sockRef struct{ s transport.Socket }

// wake interrupts a wait on the current socket (transport.Socket.Wake); any
// goroutine may call it.
func (s *session) wake() {
	if r := s.cur.Load(); r != nil {
		r.s.Wake()
	}
}

// run connects, serves and reconnects until ctx ends.
func (s *session) run(ctx context.Context) {
	s.base = context.WithoutCancel(ctx)
	// A cancelled Run wakes the socket wait at once. serve checks ctx after
	// publishing a new socket, so a wake that finds none is not lost.
	defer context.AfterFunc(ctx, s.wake)()
	var delay time.Duration
	first := true
	for sleep(ctx, delay) {
		wasHealthy := s.healthy || first
		first = false
		if err := s.connect(); err != nil {
			s.log.Error("cannot open socket", "error", err.Error())
			delay = s.nextBackoff()
			continue
		}
		if wasHealthy {
			s.log.Info("connected; READY sent", "protocol", s.w.cfg.version.String())
		} else {
			s.log.Debug("connected; READY sent", "protocol", s.w.cfg.version.String())
		}
		why := s.serve(ctx)
		if why == endShutdown {
			s.shutdown()
			return
		}
		s.drop(ctx, why)
		if s.healthy || why == endReregister {
			s.backoff, delay = 0, 0
		} else {
			delay = s.nextBackoff()
		}
	}
}

// connect opens a new socket and registers (7/MDP "Opening and Closing a
// Connection": "creating a new socket, connecting it, and then sending a
// READY command").
func (s *session) connect() error {
	sock, err := peercfg.Dial(s.zctx, s.endpoint, transport.Options{Linger: linger, Security: s.w.cfg.Security})
	if err != nil {
		return err
	}
	s.sock = sock
	s.cur.Store(&sockRef{sock})
	s.healthy = false
	s.lastRecv = time.Now()
	s.w.stats.connects.Add(1)
	s.send(s.msg(mdp.Ready, nil, nil), nil, nil)
	return nil
}

func (s *session) msg(cmd mdp.Command, client []byte, body [][]byte) *mdp.Message {
	m := &mdp.Message{Version: s.w.cfg.version, Role: mdp.RoleWorker, Command: cmd, Client: client, Body: body}
	if cmd == mdp.Ready {
		m.Service = []byte(s.w.service)
	}
	if (cmd == mdp.Partial || cmd == mdp.Final) && len(body) == 0 {
		// A reply needs at least one body frame ("6 or more frames" in
		// 7/MDP, "5 or more" in 18/MDP).
		m.Body = [][]byte{{}}
	}
	return m
}

// serve runs one connection until it ends and says why.
func (s *session) serve(ctx context.Context) endReason {
	hb := s.w.cfg.heartbeat
	dead := hb * time.Duration(s.w.cfg.liveness)
	for {
		if ctx.Err() != nil {
			return endShutdown
		}
		if s.job == nil && len(s.backlog) > 0 && s.w.slots.acquire(s) {
			s.startNext()
		}
		if err := s.flush(); err != nil {
			s.log.Error("send failed", "error", err.Error())
			return endSocket
		}
		now := time.Now()
		// 7/MDP "Heartbeating": a peer "MUST consider the other peer
		// 'disconnected' if no heartbeat arrives within some multiple of
		// that interval".
		if (s.job != nil || len(s.backlog) > 0) && !s.w.cfg.busyLiveness {
			s.lastRecv = now // See WithBusyLiveness.
		}
		if now.Sub(s.lastRecv) >= dead {
			s.w.stats.expired.Add(1)
			return endDead
		}
		// Heartbeat only when nothing else went out for an interval:
		// "Peers SHOULD NOT send HEARTBEAT commands while also sending
		// other commands."
		if now.Sub(s.lastSent) >= hb && len(s.outq) == 0 {
			s.send(s.msg(mdp.Heartbeat, nil, nil), nil, nil)
		}
		// Sleep until a message, the next heartbeat or expiry, a wake
		// from a cancelled Run or from a slot handed over, or (below)
		// the handler's next result.
		wait := min(s.lastSent.Add(hb).Sub(now), s.lastRecv.Add(dead).Sub(now))
		if len(s.outq) > 0 {
			wait = min(wait, retrySlice)
		}
		wait = max(wait, 0)
		readable := false
		if s.job == nil {
			ok, err := s.sock.WaitReadable(wait)
			if err != nil && !errors.Is(err, transport.ErrInterrupted) {
				s.log.Error("poll failed", "error", err.Error())
				return endSocket
			}
			readable = ok
		} else {
			// A handler is running: its replies are what is urgent, so
			// wait on its channels and only look at the socket.
			s.timer.Reset(wait)
			select {
			case p := <-s.job.partials:
				s.sendPartial(p)
			case out := <-s.job.final:
				if s.complete(out) {
					return endReregister
				}
			case <-s.timer.C:
			case <-ctx.Done():
			}
			s.timer.Stop()
			readable = true
		}
		if readable {
			if why, end := s.readAll(); end {
				return why
			}
		}
	}
}

// readAll handles the messages waiting on the socket.
func (s *session) readAll() (endReason, bool) {
	for range maxBatch {
		frames, _, err := s.sock.Recv(0, true)
		if err != nil {
			if errors.Is(err, transport.ErrAgain) || errors.Is(err, transport.ErrInterrupted) {
				return 0, false
			}
			s.log.Error("receive failed", "error", err.Error())
			return endSocket, true
		}
		m, err := mdp.DecodeFromBroker(frames)
		if err == nil && (m.Role != mdp.RoleWorker || m.Version != s.w.cfg.version) {
			err = fmt.Errorf("unexpected %s %s message", m.Version, m.Role)
		}
		if err != nil {
			s.log.Debug("ignoring malformed message from broker", "error", err.Error())
			continue
		}
		if m.Command == mdp.Disconnect {
			// 7/MDP: "When the worker receives DISCONNECT it must send
			// no further commands to the broker; it MUST close its
			// socket, and reconnect to the broker on a new socket."
			s.w.stats.disconnects.Add(1)
			return endDisconnect, true
		}
		// "Any received command except DISCONNECT acts as a heartbeat."
		s.lastRecv = time.Now()
		s.healthy = true
		if m.Command == mdp.Request {
			s.w.stats.requests.Add(1)
			req := &Request{Service: s.w.service, Body: m.Body, Version: m.Version, Client: m.Client}
			switch {
			case s.job != nil || len(s.backlog) > 0:
				// A broker should not do this (a worker holds one
				// request at a time); serve it next rather than lose it.
				s.log.Warn("broker sent a request while one is being served; queued",
					"client", hex.EncodeToString(m.Client))
				s.backlog = append(s.backlog, req)
			case s.w.slots.acquire(s):
				s.start(req)
			default:
				// Every slot is taken by sessions of other brokers: the
				// request waits here, this worker busy as far as its
				// broker knows, until release hands this session a slot.
				s.log.Debug("concurrency limit reached; request waits for a slot",
					"client", hex.EncodeToString(m.Client))
				s.backlog = append(s.backlog, req)
			}
		}
	}
	return 0, false
}

// startNext starts the oldest backlogged request; the session holds a slot.
func (s *session) startNext() {
	req := s.backlog[0]
	s.backlog[0] = nil
	s.backlog = s.backlog[1:]
	s.start(req)
}

// endJob forgets the current job and returns its slot.
func (s *session) endJob() {
	s.job = nil
	s.w.slots.release()
}

// start runs the handler for req on a new goroutine; the session holds a
// slot for it.
func (s *session) start(req *Request) {
	ctx, cancel := context.WithCancelCause(s.base)
	j := &job{req: req, ctx: ctx, cancel: cancel,
		partials: make(chan partial), final: make(chan outcome, 1)}
	req.job = j
	s.job = j
	go s.invoke(j)
}

// invoke calls the handler, recovering a panic.
func (s *session) invoke(j *job) {
	var out outcome
	defer func() {
		if p := recover(); p != nil {
			out = outcome{panicked: true, err: fmt.Errorf("panic: %v", p), stack: debug.Stack()}
		}
		j.returned.Store(true)
		j.final <- out
	}()
	body, err := s.w.handler.ServeMDP(j.ctx, j.req)
	var re *ReplyError
	switch {
	case err == nil:
		out = outcome{body: body, reply: true}
	case errors.As(err, &re):
		out = outcome{body: re.Body, reply: true, err: err}
	default:
		out = outcome{err: err}
	}
}

// complete ends the current job with its outcome: sends the reply, or logs
// and counts the failure. It reports whether the worker must re-register
// because the request got no reply.
func (s *session) complete(out outcome) bool {
	j := s.job
	s.endJob()
	j.cancel(ErrRequestDone)
	client := func() string { return hex.EncodeToString(j.req.Client) } // For logs only.
	switch {
	case out.panicked:
		s.w.stats.panics.Add(1)
		s.log.Error("handler panicked; request gets no reply", "client", client(),
			"error", out.err.Error(), "stack", string(out.stack))
		return true
	case out.err != nil && !out.reply:
		s.w.stats.errors.Add(1)
		s.log.Warn("handler failed; request gets no reply", "client", client(), "error", out.err.Error())
		return true
	case out.err != nil:
		s.w.stats.errors.Add(1)
		s.log.Warn("handler failed; sending its error reply", "client", client(), "error", out.err.Error())
	}
	s.send(s.msg(mdp.Final, j.req.Client, out.body), nil, &s.w.stats.replies)
	if len(s.backlog) > 0 && s.w.slots.acquire(s) {
		s.startNext()
	}
	return false
}

func (s *session) sendPartial(p partial) {
	s.send(s.msg(mdp.Partial, s.job.req.Client, p.body), p.ack, &s.w.stats.partials)
}

// send writes a message without blocking; a message refused at the
// high-water mark is queued and retried by flush.
func (s *session) send(m *mdp.Message, ack chan error, count *atomic.Uint64) {
	frames, err := mdp.Encode(m)
	if err != nil {
		s.log.Error("cannot encode", "command", m.Command.String(), "error", err.Error())
		if ack != nil {
			ack <- err
		}
		return
	}
	s.lastSent = time.Now()
	if len(s.outq) == 0 {
		err = s.sock.Send(frames, true)
		if err == nil {
			if ack != nil {
				ack <- nil
			}
			if count != nil {
				count.Add(1)
			}
			return
		}
		if !errors.Is(err, transport.ErrAgain) && !errors.Is(err, transport.ErrInterrupted) {
			s.log.Error("send failed", "command", m.Command.String(), "error", err.Error())
			if ack != nil {
				ack <- ErrConnectionLost
			}
			return
		}
	}
	s.outq = append(s.outq, outMsg{frames: frames, ack: ack, count: count})
}

// flush sends queued messages until the socket refuses one.
func (s *session) flush() error {
	for len(s.outq) > 0 {
		o := s.outq[0]
		err := s.sock.Send(o.frames, true)
		if errors.Is(err, transport.ErrAgain) || errors.Is(err, transport.ErrInterrupted) {
			return nil
		}
		if err != nil {
			return err
		}
		if o.ack != nil {
			o.ack <- nil
		}
		if o.count != nil {
			o.count.Add(1)
		}
		s.outq[0] = outMsg{}
		s.outq = s.outq[1:]
	}
	return nil
}

// drop ends the current connection after a failure: the socket is closed
// and any running handler is cancelled and waited for, its reply discarded.
func (s *session) drop(ctx context.Context, why endReason) {
	dead := s.w.cfg.heartbeat * time.Duration(s.w.cfg.liveness)
	switch why {
	case endDead:
		s.log.Warn("broker silent; reconnecting on a new socket", "silence", dead)
	case endDisconnect:
		s.log.Info("broker sent DISCONNECT; reconnecting on a new socket")
	case endReregister:
		// 7/MDP: "The worker MAY send DISCONNECT at any time". The broker
		// forgets this worker and may give its request to another one.
		s.send(s.msg(mdp.Disconnect, nil, nil), nil, nil)
		s.log.Info("re-registering on a new socket after a request without reply")
	case endSocket:
		s.log.Warn("socket failed; reconnecting")
	}
	s.closeSocket(ErrConnectionLost)
	if j := s.job; j != nil {
		j.cancel(ErrConnectionLost)
		out, ok := s.await(j, ctx.Done(), -1)
		if !ok && ctx.Err() != nil {
			out, ok = s.await(j, nil, s.w.cfg.shutdownTimeout)
		}
		s.endJob()
		s.lostJob(j, out, ok)
	}
	s.dropBacklog()
}

// shutdown ends the connection because Run's context ended: a running
// handler may still reply within the shutdown timeout, then the worker says
// DISCONNECT.
func (s *session) shutdown() {
	s.dropBacklog() // Before complete(), which would start the next one.
	if j := s.job; j != nil {
		j.cancel(ErrShutdown)
		out, ok := s.await(j, nil, s.w.cfg.shutdownTimeout)
		if ok {
			s.job = j // complete() takes it off again.
			s.complete(out)
		} else {
			s.endJob()
			s.lostJob(j, out, ok)
		}
	}
	s.flush()
	// 7/MDP: "The worker is responsible for opening and closing a logical
	// connection"; DISCONNECT tells the broker at once instead of letting
	// it wait for the heartbeat to expire.
	s.send(s.msg(mdp.Disconnect, nil, nil), nil, nil)
	s.flush()
	s.closeSocket(ErrShutdown)
}

// await waits for j's handler to return, refusing its PARTIALs, until stop
// is closed or limit passes (limit < 0: no limit). ok is false if it did
// not return.
func (s *session) await(j *job, stop <-chan struct{}, limit time.Duration) (outcome, bool) {
	var expire <-chan time.Time
	if limit >= 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		expire = t.C
	}
	for {
		select {
		case p := <-j.partials:
			p.ack <- context.Cause(j.ctx)
		case out := <-j.final:
			return out, true
		case <-stop:
			return outcome{}, false
		case <-expire:
			return outcome{}, false
		}
	}
}

// lostJob accounts for a request whose reply cannot be delivered.
func (s *session) lostJob(j *job, out outcome, returned bool) {
	client := hex.EncodeToString(j.req.Client)
	switch {
	case !returned:
		s.w.stats.lost.Add(1)
		s.log.Error("handler did not return after cancellation; abandoning it", "client", client)
	case out.panicked:
		s.w.stats.panics.Add(1)
		s.log.Error("handler panicked", "client", client, "error", out.err.Error(), "stack", string(out.stack))
	default:
		s.w.stats.lost.Add(1)
		if out.err != nil && !out.reply {
			s.w.stats.errors.Add(1)
		}
		s.log.Warn("connection lost while serving; reply discarded", "client", client)
	}
}

// dropBacklog forgets queued requests, and the session's place in the queue
// for a slot: the broker owns them again once this connection is gone.
func (s *session) dropBacklog() {
	s.w.slots.cancel(s)
	if n := len(s.backlog); n > 0 {
		s.w.stats.lost.Add(uint64(n))
		s.log.Warn("queued requests dropped with the connection", "count", n)
	}
	clear(s.backlog)
	s.backlog = s.backlog[:0]
}

func (s *session) closeSocket(cause error) {
	for _, o := range s.outq {
		if o.ack != nil {
			o.ack <- cause
		}
	}
	clear(s.outq)
	s.outq = s.outq[:0]
	if s.sock != nil {
		s.cur.Store(nil)
		s.sock.Close()
		s.sock = nil
	}
}

// nextBackoff returns the next delay before reconnecting: doubling from
// the minimum to the maximum, with ±10% jitter so that many workers
// restarted together do not reconnect in lockstep.
func (s *session) nextBackoff() time.Duration {
	lo, hi := s.w.cfg.reconnectMin, s.w.cfg.reconnectMax
	if s.backoff == 0 {
		s.backoff = lo
	} else {
		s.backoff = min(s.backoff*2, hi)
	}
	spread := int64(s.backoff) / 5
	return s.backoff - time.Duration(spread/2) + time.Duration(rand.Int64N(spread+1))
}

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
