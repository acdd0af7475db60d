// Package broker is the Majordomo broker: 7/MDP and 18/MDP clients and
// workers on one ROUTER socket, with the 8/MMI management services.
//
// A Broker's socket and all its state belong to the single goroutine that
// runs Run. Other goroutines reach it only through channels (Stats, Close),
// so no lock guards broker state.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/internal/dispatch"
	"github.com/majordomo-go/majordomo/internal/inproc"
	"github.com/majordomo-go/majordomo/internal/loop"
	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
)

// Errors returned by Broker methods.
var (
	// ErrClosed: the broker was closed.
	ErrClosed = errors.New("broker: closed")
	// ErrRunning: Run was called twice.
	ErrRunning = errors.New("broker: already running")
)

// maxBatch is how many messages the loop handles between two checks of its
// timers and channels.
const maxBatch = 512

// Broker is a Majordomo broker. Create it with New, start it with Run, stop it
// with Close or by cancelling Run's context.
type Broker struct {
	cfg       Config
	log       *slog.Logger
	zctx      transport.Context
	sock      transport.Socket
	endpoints []string        // Config.Endpoints and PLAIN ones, as bound.
	listeners []auth.Listener // Every endpoint bound, internal ones included.
	shared    *inproc.Shared  // The transport context, shared with in-process peers.
	inproc    []string        // inproc:// endpoints registered with package inproc.

	// life starts and stops the loop and carries other goroutines' calls
	// (Stats, Status) to it.
	life *loop.Life
	// tickReset gives the ticker a new period when Reload changes the
	// heartbeat interval.
	tickReset chan time.Duration
	final     Stats // Written by Run before the loop is marked finished.

	// Everything below belongs to the Run goroutine.
	workers map[string]*worker
	// pool holds the services (its queues) and their workers; paused while
	// the broker drains (Shutdown): no new dispatches.
	pool       *pool
	budget     *dispatch.Budget // MaxQueuedBytes over all services.
	inflight   map[string]int   // Outstanding requests per client identity.
	stats      Stats
	out        [][]byte // Scratch frame list for sends.
	now        time.Time
	startedAt  time.Time
	beat       dispatch.Ticker // Heartbeats, every HeartbeatInterval.
	house      dispatch.Ticker // Timers, every houseInterval.
	expiredLog map[string]int
	sec        *security // Set by New when Config.Security is on (auth.go).
}

// New validates cfg, creates the ROUTER socket and binds every endpoint. The
// broker does not serve until Run is called.
func New(cfg Config) (*Broker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	raw, err := transport.NewContext()
	if err != nil {
		return nil, err
	}
	// Shared so that in-process clients and workers (Config.Internal, or
	// any inproc:// endpoint) make their sockets in it.
	shared, zctx := inproc.Share(raw)
	opts := transport.Options{
		// Sends to a vanished client must fail, not vanish silently, so
		// that the loss is counted (DropReplyUnroutable).
		RouterMandatory: true,
		// A worker or client that reconnects with a fixed identity takes
		// over its old pipe instead of being ignored.
		RouterHandover: true,
		SendHWM:        100000,
		RecvHWM:        10000,
		MaxMsgSize:     cfg.MaxFrameSize,
		Linger:         time.Second,
		// The loop answers a batch of messages, then comes back to the
		// socket: one write per peer per batch.
		BatchSends: true,
	}
	// Security (auth.go): the ZAP handler starts before anything binds.
	sec, zctx, opts, err := startSecurity(cfg, zctx, opts)
	if err != nil {
		zctx.Term()
		return nil, err
	}
	sock, err := zctx.NewSocket(transport.Router, opts)
	if err != nil {
		zctx.Term()
		return nil, err
	}
	b := &Broker{
		cfg:        cfg,
		log:        cfg.Logger,
		zctx:       zctx,
		sock:       sock,
		life:       loop.New(sock.Wake),
		tickReset:  make(chan time.Duration, 1),
		workers:    make(map[string]*worker),
		budget:     &dispatch.Budget{Max: cfg.MaxQueuedBytes},
		inflight:   make(map[string]int),
		expiredLog: make(map[string]int),
		sec:        sec,
		shared:     shared,
	}
	b.pool = dispatch.NewPool[*request, *worker](dispatch.Config{Limits: cfg.limits(b.budget)})
	if err := b.bind(); err != nil {
		b.unshare()
		sock.Close()
		zctx.Term()
		return nil, fmt.Errorf("broker: %w", err)
	}
	return b, nil
}

// Endpoints returns the endpoints the broker is bound to, with wildcard ports
// resolved.
func (b *Broker) Endpoints() []string {
	return append([]string(nil), b.endpoints...)
}

// Run serves until ctx is cancelled or Close is called. On the way out it
// sends DISCONNECT to every worker and closes its socket. It returns nil on
// such a shutdown.
func (b *Broker) Run(ctx context.Context) error {
	if err := b.life.Begin(); err != nil {
		if errors.Is(err, loop.ErrRunning) {
			return ErrRunning
		}
		return ErrClosed
	}
	defer b.life.End()

	b.log.Info("broker started", "endpoints", b.endpoints,
		"heartbeat", b.cfg.HeartbeatInterval, "liveness", b.cfg.HeartbeatLiveness)
	// A cancelled context must interrupt the loop's wait, like Close does.
	stopWake := context.AfterFunc(ctx, b.sock.Wake)
	defer stopWake()
	tickDone := make(chan struct{})
	var ticking sync.WaitGroup
	ticking.Add(1)
	period := b.houseInterval() // Read here: b.cfg belongs to the loop from now on.
	go func() {
		defer ticking.Done()
		b.tick(period, tickDone)
	}()
	err := b.loop(ctx)
	close(tickDone)
	ticking.Wait()
	b.shutdown()
	return err
}

// tick wakes the loop every period so that it runs its timers. The loop
// itself then waits with no deadline: arming a runtime timer on every wait
// would cost a timer update, and often a netpoller wake-up, per message
// batch, which on a busy broker is most of its Go-side overhead.
func (b *Broker) tick(period time.Duration, done <-chan struct{}) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.sock.Wake()
		case p := <-b.tickReset:
			t.Reset(p)
		case <-done:
			return
		}
	}
}

// Close stops a running broker and waits for Run to return, or releases the
// socket of a broker that never ran. It is safe to call more than once.
func (b *Broker) Close() error {
	b.life.Stop(func() {
		b.unshare()
		b.sock.Close()
		b.zctx.Term()
	})
	return nil
}

// Shutdown stops the broker gracefully: it stops handing requests to
// workers (new requests are still accepted and queued), waits until no worker
// holds a request or ctx is done, then stops the loop as Close does (every
// worker gets DISCONNECT; requests still queued are dropped, counted as
// DropShutdown and logged). It returns ctx.Err() if the grace period ran out
// with requests in flight, nil otherwise.
func (b *Broker) Shutdown(ctx context.Context) error {
	pause := func() {
		if !b.pool.Paused() {
			b.log.Info("draining: no new dispatches; waiting for in-flight requests")
		}
		b.pool.SetPaused(true)
	}
	busy := func() int { return b.snapshot().BusyWorkers }
	return loop.Drain(ctx, b.life, pause, busy, func() { b.Close() })
}

// Stats returns a snapshot of the broker's state and counters. After Run has
// returned it returns the final snapshot.
func (b *Broker) Stats() Stats {
	var s Stats
	if !b.inLoop(func() { s = b.snapshot() }) {
		return b.finalStats()
	}
	return s
}

// finalStats is what Stats and Status report when the loop is not running.
func (b *Broker) finalStats() Stats {
	if b.life.Finished() {
		return b.final
	}
	return Stats{}
}

// inLoop runs fn on the event loop goroutine, which owns all broker state,
// and waits for it; false if the loop is not running.
func (b *Broker) inLoop(fn func()) bool { return b.life.Call(fn) }

func (b *Broker) loop(ctx context.Context) error {
	b.now = time.Now()
	b.startedAt = b.now
	b.beat = dispatch.Ticker{Period: b.cfg.HeartbeatInterval}
	b.beat.Start(b.now)
	b.house = dispatch.Ticker{Period: b.houseInterval()}
	b.house.Start(b.now)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-b.life.Stopping():
			return nil
		case fn := <-b.life.Calls():
			fn()
		default:
		}
		// Stats, Close, context cancellation and the ticker wake this wait
		// through the socket's Wake, so it needs no deadline of its own.
		var ready bool
		var err error
		if b.house.Until(b.now) > 0 {
			ready, err = b.sock.WaitReadable(-1)
		}
		if err != nil {
			if errors.Is(err, transport.ErrInterrupted) {
				continue // A signal: look at ctx and go round again.
			}
			return fmt.Errorf("broker: poll: %w", err)
		}
		b.now = time.Now()
		if ready {
			if err := b.drain(); err != nil {
				return err
			}
		}
		if b.house.Due(b.now) {
			b.housekeep()
		}
	}
}

// drain handles up to maxBatch waiting messages without blocking, then
// writes what they sent (one write per peer).
func (b *Broker) drain() error {
	defer b.sock.Flush()
	for i := 0; i < maxBatch; i++ {
		frames, dropped, err := b.sock.Recv(b.cfg.MaxFrames+1, true)
		if err != nil {
			switch {
			case errors.Is(err, transport.ErrAgain), errors.Is(err, transport.ErrInterrupted):
				return nil
			}
			return fmt.Errorf("broker: recv: %w", err)
		}
		b.now = time.Now()
		if dropped > 0 {
			b.drop(DropTooManyFrames, "message too long", "frames", len(frames)+dropped)
			b.invalidPeer(frames[0])
			continue
		}
		b.handle(frames)
	}
	return nil
}

// handle dispatches one message: frames[0] is the sender's identity.
func (b *Broker) handle(frames [][]byte) {
	if len(frames) < 2 {
		b.drop(DropEmpty, "empty message")
		return
	}
	sender := frames[0]
	m, err := mdp.DecodeToBroker(frames[1:])
	if err == nil && len(m.Service) > b.cfg.MaxServiceName {
		err = fmt.Errorf("%w: service name of %d bytes (at most %d)", mdp.ErrService, len(m.Service), b.cfg.MaxServiceName)
	}
	if err != nil {
		b.invalid(sender, err)
		return
	}
	if m.Role == mdp.RoleClient {
		b.clientRequest(sender, &m)
		return
	}
	b.workerMessage(sender, &m)
}

// invalid drops a malformed message. 7/MDP: "The broker SHOULD respond to
// invalid messages by dropping them and treating that peer as invalid": a
// registered worker that sends one is removed with DISCONNECT, so that a
// confused but honest worker starts over on a new socket.
func (b *Broker) invalid(sender []byte, err error) {
	reason := dropReasonFor(err)
	b.drop(reason, "malformed message", "error", err.Error())
	b.invalidPeer(sender)
}

// invalidPeer removes the sender of a malformed message with DISCONNECT if it
// is a registered worker; the request it held is redelivered.
func (b *Broker) invalidPeer(sender []byte) {
	if w := b.workers[string(sender)]; w != nil {
		b.removeWorker(w, RemovedInvalid, true)
	}
}

func dropReasonFor(err error) DropReason {
	switch {
	case errors.Is(err, mdp.ErrEmpty):
		return DropEmpty
	case errors.Is(err, mdp.ErrDelimiter):
		return DropDelimiter
	case errors.Is(err, mdp.ErrHeader):
		return DropHeader
	case errors.Is(err, mdp.ErrCommand):
		return DropCommand
	case errors.Is(err, mdp.ErrShort):
		return DropShort
	case errors.Is(err, mdp.ErrExtraFrames):
		return DropExtraFrames
	case errors.Is(err, mdp.ErrService):
		return DropService
	case errors.Is(err, mdp.ErrEnvelope):
		return DropEnvelope
	}
	return DropHeader
}

// drop counts a dropped message and logs it at debug level: drops can come
// in floods, and the counters are the durable record.
func (b *Broker) drop(r DropReason, msg string, args ...any) {
	b.stats.Dropped[r]++
	if b.log.Enabled(context.Background(), slog.LevelDebug) {
		b.log.Debug(msg, append([]any{"reason", r.String()}, args...)...)
	}
}

// dropFor counts a request for svc dropped before it was accepted.
func (b *Broker) dropFor(svc *service, r DropReason, msg string, args ...any) {
	svc.count(r)
	b.drop(r, msg, args...)
}

// dropRequest drops an accepted request, counting it broker-wide and for its
// service, and releases its place in its client's in-flight count.
func (b *Broker) dropRequest(req *request, r DropReason, msg string, args ...any) {
	b.dropFor(req.service, r, msg, args...)
	b.release(req)
}

// accept takes a place for req in its client's in-flight count, or reports
// false when the client is at Config.MaxClientInFlight.
func (b *Broker) accept(req *request) bool {
	key := string(req.client)
	n := b.inflight[key]
	if n >= b.cfg.MaxClientInFlight {
		return false
	}
	b.inflight[key] = n + 1
	return true
}

// release gives back req's place: every accepted request passes here exactly
// once, when it is answered or dropped.
func (b *Broker) release(req *request) {
	key := string(req.client)
	if n := b.inflight[key]; n > 1 {
		b.inflight[key] = n - 1
	} else {
		delete(b.inflight, key)
	}
}

// houseInterval is how often timers are checked: often enough that expiry
// and purging are accurate to a fraction of the heartbeat interval.
func (b *Broker) houseInterval() time.Duration { return b.cfg.heartbeats().Tick() }

// send writes b.out to the socket without blocking.
func (b *Broker) send() error {
	return b.sock.Send(b.out, true)
}

func (b *Broker) snapshot() Stats {
	s := b.stats
	s.Workers = len(b.workers)
	s.Connections = b.sock.Connections()
	s.Services = b.pool.Len()
	s.Queued, s.QueuedBytes, s.IdleWorkers = b.pool.Totals()
	// Every worker serves one service and is idle (a free slot) or busy.
	s.BusyWorkers = s.Workers - s.IdleWorkers
	return s
}

// shutdown disconnects every worker and releases the socket.
func (b *Broker) shutdown() {
	b.pool.SetPaused(true)
	for _, w := range b.workers {
		b.removeWorker(w, RemovedShutdown, true)
	}
	// Requests still queued die with the broker: count and log them, since
	// their clients will only ever see a timeout.
	lost := 0
	b.pool.Range(func(q *queue) bool {
		lost += b.pool.Drain(q, func(e entry) {
			e.Value.service.count(DropShutdown)
			b.stats.Dropped[DropShutdown]++
			b.release(e.Value)
		})
		return true
	})
	if lost > 0 {
		b.log.Warn("queued requests dropped at shutdown", "count", lost)
	}
	b.final = b.snapshot()
	b.unshare()
	b.sock.Close()
	// With in-process peers still holding sockets in the shared context,
	// this only lets go of it; the last of them terminates it.
	b.zctx.Term()
	b.log.Info("broker stopped", "requests", b.final.Requests, "replies", b.final.Replies,
		"dropped", b.final.TotalDropped())
}
