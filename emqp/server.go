// Package emqp serves EventMQ's eMQP/1.0 (github.com/eventmq/eventmq) so
// that unmodified EventMQ job managers, clients, schedulers, emq-cli and
// subscribers can use Majordomo for Go in place of emq-router.
//
// A Server follows the broker's design: one goroutine, the one in Run,
// owns every socket (frontend, backend and admin ROUTERs, the publish
// ROUTER and PUB) and all state, and waits on the sockets together through
// a transport.Poller; other goroutines reach it only through channels. Its
// queues, slot credit, weighted queue selection, heartbeat bookkeeping,
// expiry, redelivery policy and latency histograms are the protocol-neutral
// ones of internal/dispatch, which the MDP broker shares.
package emqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/emqp/schedule"
	"github.com/majordomo-go/majordomo/emqp/wire"
	"github.com/majordomo-go/majordomo/internal/dispatch"
	"github.com/majordomo-go/majordomo/internal/loop"
	"github.com/majordomo-go/majordomo/internal/secure"
	"github.com/majordomo-go/majordomo/internal/transport"
)

// Errors returned by Server methods.
var (
	ErrClosed  = errors.New("emqp: closed")
	ErrRunning = errors.New("emqp: already running")
	// ErrAdminShutdown is returned by Run after emq-cli's DISCONNECT shut
	// the server down (unless Config.IgnoreAdminDisconnect).
	ErrAdminShutdown = errors.New("emqp: shut down by an administrative DISCONNECT")
)

// maxBatch is how many messages the loop takes from one socket before it
// looks at the others and its timers.
const maxBatch = 512

// Socket indexes in Server.socks and in Poller bit sets.
const (
	sockFront = iota
	sockBack
	sockAdmin
	sockPubIn
	numSocks
)

type (
	pool      = dispatch.Pool[*job, *worker]
	queue     = dispatch.Queue[*job, *worker]
	poolEntry = dispatch.Entry[*job]
)

// job is one client REQUEST. Its frames alias the received message, which
// is one allocation of its own.
type job struct {
	client      []byte // Frontend identity of the sender.
	msgid       []byte
	queueArg    []byte // The queue frame as the client sent it.
	headers     []byte // As sent, or with reply-requested added (see track).
	payload     []byte
	size        int64
	queue       string // The queue it was routed to.
	guarantee   bool
	track       bool // Completion is reported by a REPLY (reply-requested or guarantee).
	forward     bool // The client gets the job manager's REPLY.
	maxAttempts int
	attempts    int
	acked       bool // The client was sent its REPLY acknowledgement.
	sentAt      time.Time
	queuedAt    time.Time
}

// worker is a registered job manager.
type worker struct {
	id     []byte
	key    string
	w      *dispatch.Worker[*job, *worker]
	queues []wire.QueueSpec
	live   dispatch.Liveness
	since  time.Time
	// held are the tracked jobs (reply-requested or guarantee) it has not
	// answered, by msgid. A fire-and-forget job is done, as far as the
	// router can ever know, once sent: EventMQ's job manager reports
	// nothing for it but a READY, which cannot be told apart from the
	// READY of a worker process that just started.
	held      map[string]*job
	leaving   bool
	leftAt    time.Time
	processed uint64
}

func (w *worker) inFlight() int { return len(w.held) }

// scheduler is a registered EventMQ scheduler (on the frontend).
type scheduler struct {
	id        []byte
	key       string
	live      dispatch.Liveness
	since     time.Time
	scheduled uint64
}

// Server is an eMQP/1.0 router. Create it with New, start it with Run, stop
// it with Close, Shutdown or by cancelling Run's context.
type Server struct {
	cfg       Config
	log       *slog.Logger
	zctx      transport.Context
	socks     [numSocks]transport.Socket
	pubOut    transport.Socket
	poller    *transport.Poller
	endpoints Endpoints
	listeners []auth.Listener
	sched     *schedule.Scheduler // The built-in scheduler, or nil.

	life  *loop.Life // Start, stop, and other goroutines' calls to the loop.
	final Stats

	// Everything below belongs to the Run goroutine.
	pool       *pool
	budget     dispatch.Budget
	hb         dispatch.Heartbeats
	house      dispatch.Ticker
	workers    map[string]*worker
	schedulers map[string]*scheduler
	schedOrder []*scheduler // Rotation order for SCHEDULE.
	schedNext  int
	processed  map[string]uint64 // Dispatches by queue name, since start.
	stats      Stats
	ids        *wire.IDGen
	now        time.Time
	startedAt  time.Time
	out        [][]byte // Scratch frame list for sends.
	idBuf      []byte   // Scratch for generated msgids.
	tsBuf      []byte   // Scratch for heartbeat timestamps.
	adminStop  bool     // An admin DISCONNECT asked the loop to stop.
	uid        string   // ZAP User-Id of the message being handled (Config.Authorizer).
	draining   bool
	warnings   map[string]int // Rate-limited warnings, flushed each tick.
}

// New validates cfg, creates the sockets and binds them. The server does
// not serve until Run is called.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		workers:    make(map[string]*worker),
		schedulers: make(map[string]*scheduler),
		processed:  make(map[string]uint64),
		ids:        wire.NewIDGen(),
		warnings:   make(map[string]int),
		hb:         dispatch.Heartbeats{Interval: cfg.HeartbeatInterval, Timeout: cfg.HeartbeatTimeout},
	}
	s.life = loop.New(func() { s.poller.Wake() })
	s.budget.Max = cfg.MaxQueuedBytes
	sel := dispatch.WeightedRoundRobin
	if cfg.StrictPriority {
		sel = dispatch.StrictPriority
	}
	s.pool = dispatch.NewPool[*job, *worker](dispatch.Config{Selection: sel, Limits: dispatch.Limits{
		MaxLen: cfg.MaxQueue, Budget: &s.budget, MaxQueues: cfg.MaxQueues,
		MaxQueuesPerWorker: wire.MaxInformQueues,
	}})
	if err := s.open(); err != nil {
		s.release()
		return nil, err
	}
	if cfg.Scheduler {
		if err := s.openScheduler(); err != nil {
			s.release()
			return nil, err
		}
	}
	return s, nil
}

// fronts are the names of the sockets, by index.
var fronts = [numSocks]string{sockFront: FrontFrontend, sockBack: FrontBackend, sockAdmin: FrontAdmin, sockPubIn: FrontPubIn}

// open creates and binds the sockets.
func (s *Server) open() error {
	var err error
	if s.zctx, err = s.context(transport.NewContext); err != nil {
		return err
	}
	sec := s.cfg.Security
	opts := transport.Options{
		RouterMandatory: true, // A reply to a vanished peer is counted, not lost silently.
		// Without security a reconnecting peer takes its identity back at
		// once, as EventMQ's router lets it. With security a routing id
		// stays with the connection that first used it: handover would
		// let a peer that authenticated as anyone take over a job
		// manager's identity and its jobs.
		RouterHandover: sec == nil,
		SendHWM:        100000,
		RecvHWM:        10000,
		MaxMsgSize:     s.cfg.MaxFrameSize,
		Linger:         time.Second,
		// The policy is applied per message, by the User-Id.
		UserID:     s.cfg.Authorizer != nil,
		BatchSends: true, // The loop always comes back to the Poller, which flushes.
	}
	binds := [numSocks]struct {
		ep  string
		out *string
	}{
		sockFront: {s.cfg.Frontend, &s.endpoints.Frontend},
		sockBack:  {s.cfg.Backend, &s.endpoints.Backend},
		sockAdmin: {s.cfg.Admin, &s.endpoints.Admin},
		sockPubIn: {s.cfg.PubIn, &s.endpoints.PubIn},
	}
	var polled []transport.Socket
	for i, b := range binds {
		if b.ep == "" {
			continue
		}
		sock, err := s.zctx.NewSocket(transport.Router, opts)
		if err != nil {
			return err
		}
		s.socks[i] = sock
		if *b.out, err = s.listen(sock, fronts[i], b.ep); err != nil {
			return err
		}
		polled = append(polled, sock)
	}
	if s.cfg.PubOut != "" {
		// The PUB socket lives in the same context and shares its
		// authenticator.
		if s.pubOut, err = transport.NewPub(s.zctx, transport.Options{SendHWM: 100000, Linger: time.Second, MaxMsgSize: s.cfg.MaxFrameSize}); err != nil {
			return err
		}
		if s.endpoints.PubOut, err = s.listen(s.pubOut, FrontPubOut, s.cfg.PubOut); err != nil {
			return err
		}
	}
	s.poller, err = transport.NewPoller(polled...)
	return err
}

// context makes a transport context with newCtx and, with security on,
// starts its ZAP handler before any of its sockets binds (27/ZAP).
func (s *Server) context(newCtx func() (transport.Context, error)) (transport.Context, error) {
	zctx, err := newCtx()
	if err != nil || s.cfg.Security == nil {
		return zctx, err
	}
	secured, err := secure.Context(zctx, s.cfg.Security.Authenticator)
	if err != nil {
		zctx.Term()
		return nil, fmt.Errorf("emqp: %w", err)
	}
	return secured, nil
}

// listen binds one front, with the configured security if any, and
// records it in s.listeners.
func (s *Server) listen(sock transport.Socket, front, ep string) (string, error) {
	var l auth.Listener
	var err error
	if s.cfg.Security != nil {
		l, err = secure.Listen(s.cfg.Security, sock, front, ep)
	} else {
		l = auth.Listener{Front: front, Mechanism: auth.MechanismNull}
		l.Endpoint, err = sock.Bind(ep)
	}
	if err != nil {
		return "", fmt.Errorf("emqp: %s: %w", front, err)
	}
	s.listeners = append(s.listeners, l)
	return l.Endpoint, nil
}

// Listeners describes every endpoint the server listens on: front,
// endpoint as bound, mechanism.
func (s *Server) Listeners() []auth.Listener {
	return append([]auth.Listener(nil), s.listeners...)
}

// ConnStats returns the connection counters of every front's socket, in
// the order of the fronts. Any goroutine may call it.
func (s *Server) ConnStats() []auth.ConnStats {
	var cs []auth.ConnStats
	for i, sock := range s.socks {
		if sock != nil {
			cs = append(cs, secure.ConnStats(fronts[i], sock))
		}
	}
	if s.pubOut != nil {
		cs = append(cs, secure.ConnStats(FrontPubOut, s.pubOut))
	}
	return cs
}

// release closes whatever open created.
func (s *Server) release() {
	if s.sched != nil {
		if err := s.sched.Close(); err != nil {
			s.log.Error("emqp: schedule store", "error", err.Error())
		}
		s.sched = nil
	}
	if s.poller != nil {
		s.poller.Close()
	}
	for _, sock := range s.socks {
		if sock != nil {
			sock.Close()
		}
	}
	if s.pubOut != nil {
		s.pubOut.Close()
	}
	if s.zctx != nil {
		s.zctx.Term()
	}
}

// Endpoints returns the bound endpoints.
func (s *Server) Endpoints() Endpoints { return s.endpoints }

// Run serves until ctx is cancelled, Close is called, or emq-cli sends
// DISCONNECT. On the way out it sends KBYE to every job manager and
// scheduler and closes the sockets. It returns nil, or ErrAdminShutdown.
func (s *Server) Run(ctx context.Context) error {
	if err := s.life.Begin(); err != nil {
		if errors.Is(err, loop.ErrRunning) {
			return ErrRunning
		}
		return ErrClosed
	}
	defer s.life.End()
	s.log.Info("emqp router started", "frontend", s.endpoints.Frontend, "backend", s.endpoints.Backend,
		"admin", s.endpoints.Admin, "pub_in", s.endpoints.PubIn, "pub_out", s.endpoints.PubOut,
		"heartbeat", s.cfg.HeartbeatInterval, "heartbeat_timeout", s.cfg.HeartbeatTimeout)
	stopWake := context.AfterFunc(ctx, s.poller.Wake)
	defer stopWake()
	err := s.loop(ctx)
	s.shutdown()
	return err
}

// Close stops a running server and waits for Run to return, or releases
// the sockets of a server that never ran. It is safe to call more than once.
func (s *Server) Close() error {
	s.life.Stop(s.release)
	return nil
}

// Shutdown stops the server gracefully: no request is handed out any
// more (new ones are still accepted and queued), it waits until no job
// manager holds a request or ctx is done, then stops as Close does. It
// returns ctx.Err() if requests were still in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	pause := func() {
		if !s.draining {
			s.log.Info("emqp draining: no new dispatches; waiting for in-flight requests")
		}
		s.draining = true
		s.pool.SetPaused(true)
	}
	inFlight := func() int { return s.snapshot().InFlight }
	return loop.Drain(ctx, s.life, pause, inFlight, func() { s.Close() })
}

// Stats returns a snapshot of the counters; after Run has returned, the
// final one.
func (s *Server) Stats() Stats {
	var st Stats
	if !s.inLoop(func() { st = s.snapshot() }) {
		return s.finalStats()
	}
	return st
}

// Status returns a detailed snapshot, built on the loop and copied out.
func (s *Server) Status() Status {
	var st Status
	if !s.inLoop(func() { st = s.status() }) {
		st.Stats = s.finalStats()
		st.Endpoints = s.endpoints
	}
	// Fixed at New, or atomic counters: read off the loop.
	st.Listeners = s.Listeners()
	st.Conns = s.ConnStats()
	if s.cfg.Security != nil {
		st.Auth = s.cfg.Security.Authenticator.Stats()
	}
	return st
}

func (s *Server) finalStats() Stats {
	if s.life.Finished() {
		return s.final
	}
	return Stats{}
}

// inLoop runs fn on the loop goroutine and waits for it; false if the loop
// is not running.
func (s *Server) inLoop(fn func()) bool { return s.life.Call(fn) }

func (s *Server) loop(ctx context.Context) error {
	s.now = time.Now()
	s.startedAt = s.now
	s.house.Period = s.hb.Tick()
	s.house.Start(s.now)
	for {
		for more := true; more; {
			select {
			case <-ctx.Done():
				return nil
			case <-s.life.Stopping():
				return nil
			case fn := <-s.life.Calls():
				fn()
			default:
				more = false
			}
		}
		if s.adminStop {
			return ErrAdminShutdown
		}
		ready, err := s.poller.Wait(s.waitTime())
		switch {
		case errors.Is(err, transport.ErrWoken):
			continue
		case err != nil:
			return fmt.Errorf("emqp: poll: %w", err)
		}
		s.now = time.Now()
		bit := 0
		for i, sock := range s.socks {
			if sock == nil {
				continue
			}
			if ready&(1<<bit) != 0 {
				if err := s.drain(i, sock); err != nil {
					return err
				}
			}
			bit++
		}
		if s.house.Due(s.now) {
			s.housekeep()
		}
		s.runSchedules()
	}
}

// waitTime is how long the loop may sleep: until housekeeping, or the
// built-in scheduler's next run if sooner.
func (s *Server) waitTime() time.Duration {
	now := time.Now()
	d := s.house.Until(now)
	if s.sched != nil {
		if next, ok := s.sched.NextDue(); ok {
			d = min(d, max(next.Sub(now), 0))
		}
	}
	return d
}

// drain handles up to maxBatch messages waiting on one socket.
func (s *Server) drain(which int, sock transport.Socket) error {
	for i := 0; i < maxBatch && !s.adminStop; i++ {
		frames, dropped, err := sock.Recv(wire.MaxFrames+1, true)
		if err != nil {
			if errors.Is(err, transport.ErrAgain) || errors.Is(err, transport.ErrInterrupted) {
				return nil
			}
			return fmt.Errorf("emqp: recv: %w", err)
		}
		s.now = time.Now()
		if dropped > 0 || len(frames) > wire.MaxFrames+1 {
			s.drop(DropTooManyFrames, "message too long", "frames", len(frames)+dropped)
			continue
		}
		if len(frames) < 2 {
			s.drop(DropEmpty, "empty message")
			continue
		}
		id := frames[0]
		m, err := wire.Decode(frames[1:])
		if err != nil {
			s.malformed(which, id, err)
			continue
		}
		if s.cfg.Authorizer != nil {
			s.uid = sock.UserID()
		}
		switch which {
		case sockFront:
			s.frontend(id, frames, &m)
		case sockBack:
			s.backend(id, &m)
		case sockAdmin:
			s.admin(id, &m)
		case sockPubIn:
			s.publishIn(&m)
		}
	}
	return nil
}

// malformed counts an undecodable message. A registered job manager or
// scheduler that sends one is still alive: its liveness is refreshed, as
// EventMQ's router counts any traffic, but nothing else happens.
func (s *Server) malformed(which int, id []byte, err error) {
	var de *wire.DecodeError
	reason := DropCommand
	if errors.As(err, &de) {
		switch de.Err {
		case wire.ErrEmpty:
			reason = DropEmpty
		case wire.ErrDelimiter:
			reason = DropDelimiter
		case wire.ErrProtocol:
			reason = DropProtocol
		case wire.ErrCommand:
			reason = DropCommand
		case wire.ErrMsgID:
			reason = DropMsgID
		case wire.ErrShort:
			reason = DropShort
		case wire.ErrExtraFrames:
			reason = DropExtraFrames
		}
	}
	s.drop(reason, "malformed message", "error", err.Error(), "peer", printable(id))
	switch which {
	case sockBack:
		if w := s.workers[string(id)]; w != nil {
			w.live.Heard(s.now)
		}
	case sockFront:
		if sc := s.schedulers[string(id)]; sc != nil {
			sc.live.Heard(s.now)
		}
	}
}

// drop counts a drop and logs it at debug level.
func (s *Server) drop(r DropReason, msg string, args ...any) {
	s.stats.Dropped[r]++
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug(msg, append([]any{"reason", r.String()}, args...)...)
	}
}

// warn counts a warning to be logged once per key per housekeeping tick,
// so that floods cannot flood the log.
func (s *Server) warn(key string) { s.warnings[key]++ }

// send sends frames on sock without blocking.
func (s *Server) send(sock transport.Socket, frames [][]byte) error {
	err := sock.Send(frames, true)
	clear(frames) // Drop references to bodies.
	return err
}

// sendCmd sends a router-originated command with a fresh msgid to peer id.
func (s *Server) sendCmd(sock transport.Socket, id []byte, c wire.Command, args ...[]byte) error {
	s.idBuf = s.ids.Append(s.idBuf[:0])
	m := wire.Message{Command: c, MsgID: s.idBuf, Args: args}
	out, err := wire.Append(append(s.out[:0], id), &m)
	if err != nil {
		return err
	}
	s.out = out
	return s.send(sock, s.out)
}

// heartbeat sends HEARTBEAT with the current unix time.
func (s *Server) heartbeat(sock transport.Socket, id []byte, l *dispatch.Liveness) error {
	s.tsBuf = wire.Timestamp(s.tsBuf[:0], s.now.UnixNano())
	err := s.sendCmd(sock, id, wire.Heartbeat, s.tsBuf)
	if err == nil {
		l.Beat(s.now)
		s.stats.Heartbeats++
	}
	return err
}

// housekeep runs the timers: heartbeats, dead peers, expiry, forgotten
// queues, rate-limited warnings.
func (s *Server) housekeep() {
	for _, w := range s.workers {
		switch {
		case w.leaving:
			if s.now.Sub(w.leftAt) >= s.cfg.LeaveGrace {
				s.removeWorker(w, RemovedLeaveTimeout)
			}
		case s.hb.Dead(&w.live, s.now):
			s.removeWorker(w, RemovedExpired)
		case s.hb.Due(&w.live, s.now):
			if err := s.heartbeat(s.socks[sockBack], w.id, &w.live); errors.Is(err, transport.ErrUnroutable) {
				s.removeWorker(w, RemovedUnreachable)
			}
		}
	}
	for _, sc := range s.schedulers {
		switch {
		case s.hb.Dead(&sc.live, s.now):
			s.removeScheduler(sc, RemovedExpired)
		case s.hb.Due(&sc.live, s.now):
			if err := s.heartbeat(s.socks[sockFront], sc.id, &sc.live); errors.Is(err, transport.ErrUnroutable) {
				s.removeScheduler(sc, RemovedUnreachable)
			}
		}
	}
	if s.cfg.QueueTimeout > 0 {
		s.pool.Expire(s.now.Add(-s.cfg.QueueTimeout), func(q *queue, e poolEntry) {
			s.stats.Dropped[DropExpired]++
			s.warn("requests expired waiting for a job manager: queue " + q.Name())
		})
	}
	s.pool.Sweep(s.now, s.cfg.QueueTTL, nil)
	for msg, n := range s.warnings {
		s.log.Warn(msg, "count", n)
		delete(s.warnings, msg)
	}
}

// snapshot builds Stats on the loop.
func (s *Server) snapshot() Stats {
	st := s.stats
	st.Workers = len(s.workers)
	st.Schedulers = len(s.schedulers)
	if s.sched != nil {
		st.Schedules = s.sched.Len()
		st.ScheduledRuns = s.sched.Runs()
	}
	st.Queues = s.pool.Len()
	st.Waiting, st.WaitingBytes, _ = s.pool.Totals()
	for _, w := range s.workers {
		if w.leaving {
			st.LeavingWorkers++
		}
		st.FreeSlots += w.w.Slots()
		st.InFlight += w.inFlight()
	}
	return st
}

// shutdown says KBYE to every peer, counts what is still queued, and
// releases the sockets.
func (s *Server) shutdown() {
	s.pool.SetPaused(true) // Requests coming back from job managers stay queued.
	for _, w := range s.workers {
		if !w.leaving {
			s.sendCmd(s.socks[sockBack], w.id, wire.Kbye)
		}
		s.removeWorker(w, RemovedShutdown)
	}
	for _, sc := range s.schedulers {
		s.sendCmd(s.socks[sockFront], sc.id, wire.Kbye)
		s.removeScheduler(sc, RemovedShutdown)
	}
	lost := 0
	s.pool.Range(func(q *queue) bool {
		lost += s.pool.Drain(q, func(poolEntry) { s.stats.Dropped[DropShutdown]++ })
		return true
	})
	if lost > 0 {
		s.log.Warn("emqp: queued requests dropped at shutdown", "count", lost)
	}
	s.final = s.snapshot()
	s.release()
	s.log.Info("emqp router stopped", "requests", s.final.Requests, "dispatched", s.final.Dispatched,
		"dropped", s.final.TotalDropped())
}

// printable renders a peer identity for logs and JSON: EventMQ's are UUID
// strings, libzmq's generated ones 5 binary bytes.
func printable(id []byte) string {
	for _, c := range id {
		if c < 0x20 || c > 0x7e {
			const hex = "0123456789abcdef"
			b := make([]byte, 0, 2+2*len(id))
			b = append(b, "0x"...)
			for _, c := range id {
				b = append(b, hex[c>>4], hex[c&15])
			}
			return string(b)
		}
	}
	return string(id)
}
