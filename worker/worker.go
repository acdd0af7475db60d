// Package worker is the Majordomo worker library: it serves one named
// service behind a 7/MDP (MDP/0.1) or 18/MDP (MDP/0.2) broker.
//
//	h := worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
//		return req.Body, nil // echo
//	})
//	w, err := worker.New("tcp://127.0.0.1:5555", "echo", h)
//	...
//	err = w.Run(ctx) // until ctx is cancelled
//
// # What the library does for you
//
// Each unit of concurrency (WithConcurrency) is one DEALER socket registered
// with the broker as one worker, owned by one goroutine. Handlers run on
// goroutines of their own, so the socket goroutine keeps heartbeating the
// broker while a handler works, however long it takes (7/MDP "Heartbeating":
// both peers "MUST send heartbeats at regular and agreed-upon intervals").
// When the broker is silent for liveness × heartbeat, or sends DISCONNECT,
// the worker closes its socket and registers again on a new one, as 7/MDP
// requires ("it MUST close its socket, and reconnect to the broker on a new
// socket"), with exponential backoff while attempts keep failing. On
// shutdown it sends DISCONNECT.
//
// # Replies, errors and panics
//
// A handler's reply is sent as the FINAL (the 0.1 REPLY). Under 18/MDP it
// may first send PARTIALs with Request.Partial.
//
// A handler that returns an error sends no reply, unless the error is a
// *ReplyError (see ErrorReply), whose body is sent as the reply. A panic is
// recovered and likewise sends no reply. Both are logged (given WithLogger)
// with the service and client and counted in Stats. Since MDP has no way to
// decline a request but to leave, the worker then re-registers on a new
// socket: otherwise the
// broker would keep it marked busy for ever. The broker may hand the request
// to another worker (MDP assumes workers are idempotent); the client sees a
// timeout if none answers.
//
// A connection lost while a handler runs cancels the handler's context with
// cause ErrConnectionLost, and its reply is discarded (the broker that gave
// the request no longer knows this worker). The socket waits for the
// handler to return before registering again, so that the concurrency limit
// holds: handlers should honour their context.
//
// # Several brokers
//
// WithBrokers makes one worker serve its service through several brokers
// (the ZeroMQ Guide's chapter 4 topologies without a single broker to lose):
// it registers with each broker separately, WithConcurrency sockets per
// broker, each with its own heartbeats, reconnects and backoff, so a broker
// that dies or restarts affects only its own sockets. The handler
// concurrency is the worker's, not the broker's: with concurrency N no more
// than N handlers run at once in total. A request that a broker hands over
// while N handlers already run (on behalf of other brokers) waits inside the
// worker for the first free slot, first come first served; its broker sees
// the worker busy meanwhile, and heartbeats go on both ways.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/majordomo-go/majordomo/internal/inproc"
	"github.com/majordomo-go/majordomo/mdp"
)

// Errors of the worker package.
var (
	// ErrInvalidOption: an Option or a New argument has a bad value.
	ErrInvalidOption = errors.New("worker: invalid option")
	// ErrRunning: Run was called while already running.
	ErrRunning = errors.New("worker: already running")
	// ErrConnectionLost is the cause of a handler context cancelled because
	// the broker vanished or disconnected the worker; Partial returns it.
	ErrConnectionLost = errors.New("worker: connection to broker lost")
	// ErrShutdown is the cause of a handler context cancelled because Run's
	// context ended.
	ErrShutdown = errors.New("worker: shutting down")
	// ErrPartialUnsupported: Partial was called under 7/MDP, which has no
	// PARTIAL command.
	ErrPartialUnsupported = errors.New("worker: PARTIAL needs MDP/0.2")
	// ErrRequestDone: Partial was called after the handler returned.
	ErrRequestDone = errors.New("worker: request already answered")
)

// Handler serves requests. ServeMDP returns the reply body, or an error (see
// the package documentation for what an error does). ctx is cancelled when
// the worker shuts down (cause ErrShutdown) or loses its broker (cause
// ErrConnectionLost).
type Handler interface {
	ServeMDP(ctx context.Context, req *Request) ([][]byte, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request) ([][]byte, error)

// ServeMDP calls f.
func (f HandlerFunc) ServeMDP(ctx context.Context, req *Request) ([][]byte, error) {
	return f(ctx, req)
}

// Request is one request handed to a Handler.
type Request struct {
	// Service is the service the worker serves.
	Service string
	// Body is the request body: at least one frame.
	Body [][]byte
	// Version is the protocol of the connection.
	Version mdp.Version
	// Client is the broker's opaque address of the client, for logs only.
	Client []byte

	job *job
}

// Partial sends body as a PARTIAL reply (18/MDP "Request and Reply
// Processing": "zero or more PARTIAL commands ... followed by exactly one
// FINAL"). It returns once the message is handed to the socket. It fails
// with ErrPartialUnsupported under 7/MDP, ErrRequestDone after the handler
// returned, and with the context's cause once it is cancelled.
func (r *Request) Partial(body ...[]byte) error {
	if r.Version != mdp.V2 {
		return ErrPartialUnsupported
	}
	j := r.job
	if j.returned.Load() {
		return ErrRequestDone
	}
	if j.ctx.Err() != nil {
		return context.Cause(j.ctx)
	}
	ack := make(chan error, 1)
	select {
	case j.partials <- partial{body: body, ack: ack}:
		return <-ack
	case <-j.ctx.Done():
		return context.Cause(j.ctx)
	}
}

// ReplyError is an error that still produces a reply: the worker sends Body
// as the FINAL, then logs and counts Err. Handlers return it (via
// ErrorReply) when the client should hear about a failure in a format the
// application defines, instead of timing out.
type ReplyError struct {
	Err  error    // What went wrong, for the log.
	Body [][]byte // The reply the client gets, in the application's format.
}

// Error returns the wrapped error's message.
func (e *ReplyError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *ReplyError) Unwrap() error { return e.Err }

// ErrorReply returns a *ReplyError: err is logged and counted, body is sent
// to the client as the reply.
func ErrorReply(err error, body ...[]byte) error {
	return &ReplyError{Err: err, Body: body}
}

// Stats counts what a Worker did since it was created.
type Stats struct {
	Requests    uint64 // REQUESTs received.
	Replies     uint64 // FINALs (0.1 REPLYs) sent, error replies included.
	Partials    uint64 // PARTIALs sent.
	Errors      uint64 // Handlers that returned an error.
	Panics      uint64 // Handlers that panicked.
	Lost        uint64 // Replies discarded because the connection was lost.
	Connects    uint64 // Sockets opened and registered (READY sent).
	Disconnects uint64 // DISCONNECTs received from the broker.
	Expired     uint64 // Times the broker was declared dead by heartbeat.
}

type counters struct {
	requests, replies, partials, errors, panics, lost atomic.Uint64
	connects, disconnects, expired                    atomic.Uint64
}

// Worker serves one service with a Handler. Create it with New and start it
// with Run.
type Worker struct {
	endpoints []string // The broker given to New first, then WithBrokers'.
	slots     *slots   // Handler concurrency, shared by every session.
	service   string
	handler   Handler
	cfg       config
	log       *slog.Logger
	stats     counters

	mu      sync.Mutex
	running bool
}

// New creates a worker that will register service with the broker at
// endpoint, and with every broker WithBrokers adds. It does not connect
// until Run. An inproc:// endpoint must be one a broker in this process is
// bound to (broker.Config.Internal) by the time Run is called.
func New(endpoint, service string, h Handler, opts ...Option) (*Worker, error) {
	switch {
	case service == "":
		return nil, fmt.Errorf("%w: empty service name", ErrInvalidOption)
	case strings.HasPrefix(service, "mmi."):
		// 8/MMI "Namespace": the broker "MUST disconnect any workers that
		// attempt to register services in this namespace".
		return nil, fmt.Errorf("%w: service %q: the mmi. namespace is reserved to the broker", ErrInvalidOption, service)
	case h == nil:
		return nil, fmt.Errorf("%w: nil handler", ErrInvalidOption)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	endpoints, err := cfg.Endpoints(endpoint, 0)
	if err != nil {
		return nil, invalid(err)
	}
	log := cfg.Log.With("service", service)
	if len(endpoints) == 1 {
		log = log.With("endpoint", endpoint)
	}
	return &Worker{
		endpoints: endpoints,
		slots:     newSlots(cfg.concurrency),
		service:   service,
		handler:   h,
		cfg:       cfg,
		log:       log,
	}, nil
}

// Run connects, registers and serves until ctx is cancelled, then lets
// running handlers finish (up to the shutdown timeout), sends DISCONNECT
// and returns nil. It keeps reconnecting whatever the broker does; it
// returns an error only if ZeroMQ itself cannot be set up, or ErrRunning.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.running {
		w.mu.Unlock()
		return ErrRunning
	}
	w.running = true
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.running = false
		w.mu.Unlock()
	}()

	ctxs, err := inproc.Contexts(w.endpoints)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	attrs := []any{"protocol", w.cfg.version.String(),
		"concurrency", w.cfg.concurrency, "heartbeat", w.cfg.heartbeat, "liveness", w.cfg.liveness}
	if len(w.endpoints) > 1 {
		attrs = append(attrs, "brokers", w.endpoints)
	}
	w.log.Info("worker starting", attrs...)
	var wg sync.WaitGroup
	for b, ep := range w.endpoints {
		for i := range w.cfg.concurrency {
			s := newSession(w, ctxs[b], ep, i)
			wg.Go(func() { s.run(ctx) })
		}
	}
	wg.Wait()
	// Every socket is closed; Term waits only for their linger.
	var errs []error
	for _, zc := range inproc.Unique(ctxs) {
		errs = append(errs, zc.Term())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	w.log.Info("worker stopped")
	return nil
}

// Brokers returns the endpoints of the brokers the worker serves: the one
// given to New, then those of WithBrokers.
func (w *Worker) Brokers() []string { return slices.Clone(w.endpoints) }

// Stats returns the worker's counters.
func (w *Worker) Stats() Stats {
	c := &w.stats
	return Stats{
		Requests:    c.requests.Load(),
		Replies:     c.replies.Load(),
		Partials:    c.partials.Load(),
		Errors:      c.errors.Load(),
		Panics:      c.panics.Load(),
		Lost:        c.lost.Load(),
		Connects:    c.connects.Load(),
		Disconnects: c.disconnects.Load(),
		Expired:     c.expired.Load(),
	}
}
