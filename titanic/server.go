package titanic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/internal/ratelog"
	"github.com/majordomo-go/majordomo/internal/secure"
	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/worker"
)

// Service names (9/TSP "Services": a server "MUST implement these services").
const (
	ServiceRequest = "titanic.request"
	ServiceReply   = "titanic.reply"
	ServiceClose   = "titanic.close"
)

// Status frames (9/TSP "Status Frames"). Titanic sends the bare three
// digits: the text a server may add "MUST NOT" be treated as significant by
// clients, and the Guide's clients compare the whole frame, so bare codes
// are what every client understands. The reason for a 400 or 500 is logged
// instead.
const (
	Status200 = "200" // OK.
	Status300 = "300" // PENDING: retry later.
	Status400 = "400" // UNKNOWN: invalid or unknown UUID (or an invalid request); do not retry.
	Status500 = "500" // ERROR: internal error, e.g. storage; retry later.
)

// The status frames as sent: made once, since every reply carries one and
// the transport only reads the frames it is given.
var (
	status200 = []byte(Status200)
	status300 = []byte(Status300)
	status400 = []byte(Status400)
	status500 = []byte(Status500)
)

// DBFile is the name of the default store's file inside Config.Dir.
const DBFile = "titanic.db"

// Defaults for Config.
const (
	DefaultReplyTTL              = 7 * 24 * time.Hour
	DefaultSweepInterval         = time.Minute
	DefaultMaxInFlight           = 128
	DefaultMaxInFlightPerService = 64
	DefaultAttemptTimeout        = 30 * time.Second
	DefaultRetryMin              = 500 * time.Millisecond
	DefaultRetryMax              = time.Minute
	DefaultRequestWorkers        = 128
	DefaultQueryWorkers          = 16
	DefaultMaxBatch              = 4096
	DefaultMaxBatchBytes         = 32 << 20
	DefaultMaxServiceName        = 255
	DefaultShutdownGrace         = 5 * time.Second
	DefaultProbeTimeout          = time.Second
	DefaultProbeMax              = 5 * time.Second
)

// ErrConfig is wrapped by every configuration error of New.
var ErrConfig = errors.New("titanic: invalid configuration")

// Config configures a Server. Zero values mean the defaults above.
type Config struct {
	// Broker is the 7/MDP broker endpoint to connect to, e.g.
	// "tcp://127.0.0.1:5555". Required. Any 7/MDP broker will do. An
	// inproc:// endpoint must be one a broker in this process is bound to
	// (broker.Config.Internal): that is how mdbroker runs Titanic.
	Broker string
	// CurveServerKey and CurveCert make every connection to the broker
	// speak CURVE (25/ZMTP-CURVE): the broker's public key, and Titanic's
	// own secret certificate, admitted by the broker's allow-list. Give
	// both or neither. An inproc:// broker endpoint needs neither.
	CurveServerKey auth.Key
	CurveCert      *auth.Cert
	// Dir is the directory of the default store (file DBFile, created if
	// missing). Required unless Postgres or Store is set.
	Dir string
	// Postgres, if set, is the URL of a PostgreSQL database to keep the
	// requests and replies in (see OpenPostgres) instead of Dir: several
	// Titanic servers, each connected to its own broker, may share it.
	Postgres string
	// LeaseTTL is how long a shared store's lease on a request lasts
	// without renewal (default DefaultLeaseTTL): when a server dies, the
	// others take its requests over within about this long.
	LeaseTTL time.Duration
	// Store replaces the default bbolt store. New takes ownership: Run (or
	// Close) closes it.
	Store Store
	// MaxStoreBytes bounds the default store's file (0: no bound); at the
	// bound, titanic.request answers 500 until closes and expiry free
	// space.
	MaxStoreBytes int64
	// VerifyStore checks the whole default store file at open.
	VerifyStore bool

	// ReplyTTL is how long a stored reply is kept when nobody closes it,
	// counted from when it was stored (default 7 days; negative: for
	// ever). Expired replies are deleted with their requests and counted
	// (Stats.ExpiredReplies); titanic.reply then answers 400.
	ReplyTTL time.Duration
	// RequestTTL, if positive, is how long a request may wait for a reply
	// before it is deleted and counted (Stats.ExpiredRequests). Zero: it
	// waits for ever.
	RequestTTL time.Duration
	// SweepInterval is how often expiry runs.
	SweepInterval time.Duration

	// MaxInFlight is how many requests the dispatcher has at workers at
	// once (one broker connection each).
	MaxInFlight int
	// MaxInFlightPerService bounds the requests in flight to one service,
	// so that one slow service cannot hold every lane.
	MaxInFlightPerService int
	// AttemptTimeout is how long one attempt waits for the worker's reply
	// before it is retried. Workers must be idempotent (as MDP assumes): a
	// worker slower than this is sent the request again.
	AttemptTimeout time.Duration
	// RetryMin and RetryMax bound the exponential backoff between attempts.
	RetryMin, RetryMax time.Duration
	// ProbeTimeout bounds one mmi.service question; ProbeMax is the longest
	// pause between questions about a service without workers.
	ProbeTimeout, ProbeMax time.Duration

	// RequestWorkers is how many titanic.request requests are served at
	// once; they are what fills a group commit, so it bounds the batch size.
	RequestWorkers int
	// QueryWorkers is the concurrency of titanic.reply and of titanic.close.
	QueryWorkers int
	// MaxBatch and MaxBatchBytes bound one group commit.
	MaxBatch, MaxBatchBytes int
	// MaxServiceName bounds the target service name of titanic.request.
	MaxServiceName int
	// SpareProc keeps the process running while a commit waits for the
	// disk. A commit's fdatasync blocks its thread, and Go gives the
	// blocked thread's processor to another thread only when its sysmon
	// notices, which takes up to 10 ms and in practice rarely happens
	// before a 1 ms sync ends. With GOMAXPROCS 1 (mdbroker's default),
	// every other goroutine of the process, the broker's included, would
	// stop for every commit. With SpareProc, when GOMAXPROCS is 1 and the
	// process may run on more than one CPU, it is raised to 2 for the
	// commit and set back to 1 after (two brief stop-the-worlds per
	// commit); otherwise nothing changes. Only for
	// stores that wait on files (the default bbolt store), in a process
	// where nothing else changes GOMAXPROCS while Titanic runs. mdbroker
	// sets it for titanic-dir.
	SpareProc bool

	// Heartbeat and Liveness are the worker heartbeat settings; they must
	// match the broker's (defaults: the worker package's, 2.5s and 3).
	Heartbeat time.Duration
	Liveness  int
	// ShutdownGrace is how long Run waits at shutdown for attempts in
	// flight to be answered and stored.
	ShutdownGrace time.Duration

	// Logger receives the logs (default slog.Default()).
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defD(&c.ReplyTTL, DefaultReplyTTL)
	defD(&c.SweepInterval, DefaultSweepInterval)
	def(&c.MaxInFlight, DefaultMaxInFlight)
	def(&c.MaxInFlightPerService, min(DefaultMaxInFlightPerService, c.MaxInFlight))
	defD(&c.AttemptTimeout, DefaultAttemptTimeout)
	defD(&c.RetryMin, DefaultRetryMin)
	defD(&c.RetryMax, max(DefaultRetryMax, c.RetryMin))
	defD(&c.ProbeTimeout, DefaultProbeTimeout)
	defD(&c.ProbeMax, DefaultProbeMax)
	def(&c.RequestWorkers, DefaultRequestWorkers)
	def(&c.QueryWorkers, DefaultQueryWorkers)
	def(&c.MaxBatch, DefaultMaxBatch)
	def(&c.MaxBatchBytes, DefaultMaxBatchBytes)
	def(&c.MaxServiceName, DefaultMaxServiceName)
	defD(&c.Heartbeat, worker.DefaultHeartbeat)
	def(&c.Liveness, worker.DefaultLiveness)
	defD(&c.ShutdownGrace, DefaultShutdownGrace)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// validate names the first bad setting as its mdtitanic flag.
func (c *Config) validate() error {
	bad := func(name string, v any, why string) error {
		return fmt.Errorf("%w: %s=%v: %s", ErrConfig, name, v, why)
	}
	switch {
	case c.Broker == "":
		return bad("broker", `""`, "required")
	case transport.CheckEndpoint(c.Broker, false) != nil:
		return fmt.Errorf("%w: broker: %w", ErrConfig, transport.CheckEndpoint(c.Broker, false))
	case c.CurveCert != nil && c.CurveServerKey.IsZero():
		return bad("curve-server-key", `""`, "required with curve-cert")
	case c.CurveCert == nil && !c.CurveServerKey.IsZero():
		return bad("curve-cert", `""`, "required with curve-server-key")
	case c.Store == nil && c.Dir == "" && c.Postgres == "":
		return bad("dir", `""`, "required (or a PostgreSQL store)")
	case c.Dir != "" && c.Postgres != "":
		return bad("store", RedactURL(c.Postgres), "cannot be combined with dir: choose one store")
	case c.LeaseTTL < 0 || c.LeaseTTL > 0 && c.LeaseTTL < 10*time.Millisecond:
		return bad("lease-ttl", c.LeaseTTL, "must be at least 10ms")
	case c.MaxStoreBytes < 0:
		return bad("max-store-bytes", c.MaxStoreBytes, "must not be negative")
	case c.RequestTTL < 0:
		return bad("request-ttl", c.RequestTTL, "must not be negative")
	case c.SweepInterval < time.Millisecond:
		return bad("sweep-interval", c.SweepInterval, "must be at least 1ms")
	case c.MaxInFlight < 1 || c.MaxInFlight > 65536:
		return bad("max-in-flight", c.MaxInFlight, "must be between 1 and 65536")
	case c.MaxInFlightPerService < 1:
		return bad("max-in-flight-per-service", c.MaxInFlightPerService, "must be at least 1")
	case c.AttemptTimeout < time.Millisecond:
		return bad("attempt-timeout", c.AttemptTimeout, "must be at least 1ms")
	case c.RetryMin < time.Millisecond:
		return bad("retry-min", c.RetryMin, "must be at least 1ms")
	case c.RetryMax < c.RetryMin:
		return bad("retry-max", c.RetryMax, "must be at least retry-min")
	case c.ProbeTimeout < time.Millisecond:
		return bad("probe-timeout", c.ProbeTimeout, "must be at least 1ms")
	case c.ProbeMax < time.Millisecond:
		return bad("probe-max", c.ProbeMax, "must be at least 1ms")
	case c.RequestWorkers < 1 || c.RequestWorkers > 4096:
		return bad("request-workers", c.RequestWorkers, "must be between 1 and 4096")
	case c.QueryWorkers < 1 || c.QueryWorkers > 4096:
		return bad("query-workers", c.QueryWorkers, "must be between 1 and 4096")
	case c.MaxBatch < 1:
		return bad("max-batch", c.MaxBatch, "must be at least 1")
	case c.MaxBatchBytes < 1:
		return bad("max-batch-bytes", c.MaxBatchBytes, "must be at least 1")
	case c.MaxServiceName < 1:
		return bad("max-service-name", c.MaxServiceName, "must be at least 1")
	case c.Heartbeat < time.Millisecond:
		return bad("heartbeat", c.Heartbeat, "must be at least 1ms")
	case c.Liveness < 1:
		return bad("liveness", c.Liveness, "must be at least 1")
	case c.ShutdownGrace < 0:
		return bad("shutdown-grace", c.ShutdownGrace, "must not be negative")
	}
	return nil
}

// Stats counts what a Server did since New.
type Stats struct {
	Submitted        uint64 // Requests stored and answered 200 + UUID.
	Replied          uint64 // Replies stored.
	Closed           uint64 // titanic.close requests that deleted something.
	ExpiredReplies   uint64 // Replies deleted by ReplyTTL.
	ExpiredRequests  uint64 // Requests deleted by RequestTTL before any reply.
	Attempts         uint64 // Requests sent to workers (first attempts and retries).
	Retries          uint64 // Attempts that failed and were scheduled again.
	Timeouts         uint64 // Attempts that got no reply within AttemptTimeout.
	SendErrors       uint64 // Attempts that failed on the socket.
	DuplicateReplies uint64 // Replies not stored: request closed, expired or answered elsewhere meanwhile.
	LeasesClaimed    uint64 // Shared store: requests taken over from other servers (or from an earlier run).
	LeasesLost       uint64 // Shared store: requests another server took over from this one.
	Invalid          uint64 // Requests answered 400 for being malformed.
	Errors           uint64 // Requests answered 500.
	StoreErrors      uint64 // Failed store operations (commits and reads).

	Commits      uint64        // Group commits (store transactions).
	CommittedOps uint64        // Operations in them; CommittedOps/Commits is the mean batch.
	MaxBatch     int           // Largest batch so far.
	CommitTime   time.Duration // Total time spent in commits.

	Pending  int // Requests stored without a reply, as the dispatcher sees them (shared store: those leased to this server).
	InFlight int // Attempts at workers now.
	Store    Counts
}

type counters struct {
	submitted, closed, expiredReplies, expiredRequests atomic.Uint64
	attempts, retries, timeouts, sendErrors, replied   atomic.Uint64
	duplicateReplies, invalid, errors, storeErrors     atomic.Uint64
	leasesClaimed, leasesLost                          atomic.Uint64
}

// Server is a Titanic server (9/TSP): it serves titanic.request,
// titanic.reply and titanic.close as workers of a 7/MDP broker, and
// dispatches stored requests to their services through the same broker.
// Create it with New, start it with Run.
type Server struct {
	cfg    Config
	log    *slog.Logger
	store  Store
	commit *committer
	disp   *dispatcher
	ids    idGen
	stats  counters
	errLog ratelog.Limiter

	mu       sync.Mutex
	started  bool
	closed   bool
	cancel   context.CancelFunc
	finished chan struct{}
}

// New validates cfg, opens the store (creating Dir if needed) and loads the
// requests that still wait for a reply. It does not connect to the broker:
// Run does. Errors name the setting or the store file at fault.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.CurveCert != nil {
		// Checked here, so that a bad certificate fails New, not every
		// connection that Run makes.
		if _, err := secure.CurveClient(cfg.CurveServerKey, cfg.CurveCert, "titanic"); err != nil {
			return nil, fmt.Errorf("%w: curve-cert: %w", ErrConfig, err)
		}
	}
	st := cfg.Store
	where := cfg.Dir
	if st == nil && cfg.Postgres != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		pg, err := OpenPostgres(ctx, cfg.Postgres, PGOptions{LeaseTTL: cfg.LeaseTTL})
		cancel()
		if err != nil {
			return nil, err
		}
		st, where = pg, RedactURL(cfg.Postgres)
	}
	if st == nil {
		if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("titanic: store directory: %w", err)
		}
		b, err := OpenBolt(filepath.Join(cfg.Dir, DBFile), BoltOptions{MaxSize: cfg.MaxStoreBytes, Verify: cfg.VerifyStore})
		if err != nil {
			return nil, err
		}
		st = b
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "titanic"), store: st, finished: make(chan struct{})}
	s.errLog.Window, s.errLog.Burst = 10*time.Second, 1
	s.disp = newDispatcher(s)
	n := 0
	if s.disp.shared == nil {
		// A shared store's pending requests are claimed once running, as
		// their leases allow.
		if err := st.Pending(func(id ID, service string) bool {
			s.disp.load(id, service)
			n++
			return true
		}); err != nil {
			st.Close()
			return nil, fmt.Errorf("titanic: loading pending requests: %w", err)
		}
	}
	s.disp.pendingGauge.Store(int64(n))
	s.commit = newCommitter(st, cfg.MaxBatch, cfg.MaxBatchBytes, cfg.SpareProc)
	c := st.Counts()
	s.log.Info("titanic store opened", "store", where, "pending", n, "replies", c.Replies, "bytes", c.Bytes)
	return s, nil
}

// Run connects to the broker, serves the three Titanic services and
// dispatches stored requests until ctx is cancelled or Close is called.
// Then it stops taking requests, waits up to ShutdownGrace for attempts in
// flight, commits what is queued and closes the store. It returns nil after
// a clean stop, or the error that kept it from starting.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return errors.New("titanic: server closed")
	case s.started:
		s.mu.Unlock()
		return errors.New("titanic: already running")
	}
	s.started = true
	ctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	s.mu.Unlock()
	defer close(s.finished)
	defer cancel()

	dispDone := make(chan struct{})
	dctx, stopDisp := context.WithCancel(context.Background())
	go func() { defer close(dispDone); s.disp.run(dctx) }()
	sweepDone := make(chan struct{})
	go func() { defer close(sweepDone); s.sweeper(ctx) }()

	quiet := slog.New(minLevel{slog.LevelWarn, s.cfg.Logger.Handler()})
	wopts := []worker.Option{worker.WithHeartbeat(s.cfg.Heartbeat), worker.WithLiveness(s.cfg.Liveness),
		worker.WithLogger(quiet)}
	if s.cfg.CurveCert != nil {
		wopts = append(wopts, worker.WithCurve(s.cfg.CurveServerKey, s.cfg.CurveCert))
	}
	var workers []*worker.Worker
	var runErr error
	for _, w := range []struct {
		service string
		h       worker.HandlerFunc
		n       int
	}{
		{ServiceRequest, s.serveRequest, s.cfg.RequestWorkers},
		{ServiceReply, s.serveReply, s.cfg.QueryWorkers},
		{ServiceClose, s.serveClose, s.cfg.QueryWorkers},
	} {
		wk, err := worker.New(s.cfg.Broker, w.service, w.h, append(wopts, worker.WithConcurrency(w.n))...)
		if err != nil {
			runErr = err
			break
		}
		workers = append(workers, wk)
	}
	var wg sync.WaitGroup
	var errMu sync.Mutex
	if runErr == nil {
		for _, wk := range workers {
			wg.Go(func() {
				if err := wk.Run(ctx); err != nil {
					errMu.Lock()
					if runErr == nil {
						runErr = err
					}
					errMu.Unlock()
					cancel()
				}
			})
		}
		s.log.Info("titanic running", "broker", s.cfg.Broker, "pending", s.disp.pendingGauge.Load())
	} else {
		cancel()
	}
	<-ctx.Done()
	// Order matters: first stop taking requests (handlers still waiting for
	// a commit get their answer, the committer still runs), then let the
	// dispatcher finish what is in flight and store the replies, and only
	// then stop the committer and close the store.
	wg.Wait()
	<-sweepDone
	stopDisp()
	<-dispDone
	s.commit.stop()
	if sh := s.disp.shared; sh != nil {
		// Let the other servers take over at once rather than after the
		// lease TTL.
		if err := sh.Release(); err != nil {
			s.log.Warn("titanic: cannot release leases; other servers take over when they run out", "error", err.Error())
		}
	}
	if err := s.store.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("titanic: closing store: %w", err)
	}
	st := s.Stats()
	s.log.Info("titanic stopped", "submitted", st.Submitted, "replied", st.Replied, "pending", st.Store.Pending)
	return runErr
}

// Close stops a running server and waits for Run to return, or releases the
// store of a server that was never run. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	started, cancel := s.started, s.cancel
	s.mu.Unlock()
	if started {
		cancel()
		<-s.finished
		return nil
	}
	s.commit.stop()
	return s.store.Close()
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	cm := s.commit
	return Stats{
		Submitted:        c.submitted.Load(),
		Replied:          c.replied.Load(),
		Closed:           c.closed.Load(),
		ExpiredReplies:   c.expiredReplies.Load(),
		ExpiredRequests:  c.expiredRequests.Load(),
		Attempts:         c.attempts.Load(),
		Retries:          c.retries.Load(),
		Timeouts:         c.timeouts.Load(),
		SendErrors:       c.sendErrors.Load(),
		DuplicateReplies: c.duplicateReplies.Load(),
		LeasesClaimed:    c.leasesClaimed.Load(),
		LeasesLost:       c.leasesLost.Load(),
		Invalid:          c.invalid.Load(),
		Errors:           c.errors.Load(),
		StoreErrors:      c.storeErrors.Load(),
		Commits:          cm.commits.Load(),
		CommittedOps:     cm.ops.Load(),
		MaxBatch:         int(cm.maxBatch.Load()),
		CommitTime:       time.Duration(cm.commitNanos.Load()),
		Pending:          int(s.disp.pendingGauge.Load()),
		InFlight:         int(s.disp.inflightGauge.Load()),
		Store:            s.store.Counts(),
	}
}

// commitWait commits op and waits for the result. A handler whose worker is
// shutting down keeps waiting (the committer outlives the workers, and the
// client should get its answer); one whose connection is lost stops
// waiting, since its reply could not be delivered anyway.
func (s *Server) commitWait(ctx context.Context, op *Op) error {
	ch := make(chan error, 1)
	s.commit.submit(op, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		if errors.Is(context.Cause(ctx), worker.ErrShutdown) {
			return <-ch
		}
		return context.Cause(ctx)
	}
}

func (s *Server) storeError(what string, err error) {
	s.stats.storeErrors.Add(1)
	s.stats.errors.Add(1)
	if n, ok := s.errLog.Allow(time.Now()); ok {
		s.log.Error("titanic: store failure; answering 500", "op", what, "error", err.Error(), "suppressed", n)
	}
}

func (s *Server) invalid(service, why string) [][]byte {
	s.stats.invalid.Add(1)
	s.log.Debug("titanic: invalid request; answering 400", "service", service, "reason", why)
	return [][]byte{status400}
}

// serveRequest is titanic.request (9/TSP "The titanic.request Service"):
// frame 0 is the target service, frames 1+ the body. It answers 200 and the
// UUID only once the request is durably stored ("stores it persistently,
// and returns a UUID"): the group commit has returned.
func (s *Server) serveRequest(ctx context.Context, req *worker.Request) ([][]byte, error) {
	if len(req.Body) == 0 || len(req.Body[0]) == 0 {
		return s.invalid(ServiceRequest, "missing service name"), nil
	}
	if len(req.Body[0]) > s.cfg.MaxServiceName {
		return s.invalid(ServiceRequest, "service name too long"), nil
	}
	service := string(req.Body[0])
	body := req.Body[1:]
	if len(body) == 0 {
		// 9/TSP asks for 2 or more frames. A request with none is still
		// forwardable: MDP needs one body frame, so it gets one empty frame,
		// as the client library sends for an empty body.
		body = [][]byte{{}}
	}
	now := time.Now()
	op := &Op{Kind: OpSubmit, ID: s.ids.next(now), Service: service, Body: body, Time: now}
	if err := s.commitWait(ctx, op); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, worker.ErrConnectionLost) {
			return nil, err
		}
		s.storeError("submit", err)
		return [][]byte{status500}, nil
	}
	if !op.Applied {
		s.storeError("submit", fmt.Errorf("UUID collision on %s", op.ID))
		return [][]byte{status500}, nil
	}
	s.stats.submitted.Add(1)
	s.disp.add(op.ID, service, body)
	return [][]byte{status200, op.ID.AppendHex(make([]byte, 0, 32))}, nil
}

// serveReply is titanic.reply (9/TSP "The titanic.reply Service"): 200 and
// the reply frames, 300 while the request waits, 400 for an unknown or
// malformed UUID. It only reads: the reply is never deleted ("MUST NOT
// delete a reply when successfully delivered"), so asking again gives the
// same answer.
func (s *Server) serveReply(ctx context.Context, req *worker.Request) ([][]byte, error) {
	id, err := ParseID(req.Body[0])
	if err != nil {
		return s.invalid(ServiceReply, err.Error()), nil
	}
	e, err := s.store.Get(id)
	if err != nil {
		s.storeError("reply", err)
		return [][]byte{status500}, nil
	}
	switch {
	case e.Replied:
		out := make([][]byte, 0, 1+len(e.Reply))
		return append(append(out, status200), e.Reply...), nil
	case e.Found:
		return [][]byte{status300}, nil
	}
	return [][]byte{status400}, nil
}

// serveClose is titanic.close (9/TSP "The titanic.close Service"): it
// deletes the request and its reply and answers 200, also for a UUID it
// does not know ("MUST return 200 OK if the UUID is not known"), malformed
// ones included. The deletion is committed before the answer.
func (s *Server) serveClose(ctx context.Context, req *worker.Request) ([][]byte, error) {
	id, err := ParseID(req.Body[0])
	if err != nil {
		return [][]byte{status200}, nil
	}
	e, err := s.store.Get(id)
	if err != nil && !errors.Is(err, ErrCorrupt) {
		s.storeError("close", err)
		return [][]byte{status500}, nil
	}
	if err == nil && !e.Found {
		return [][]byte{status200}, nil
	}
	// Found, or a record too damaged to read: delete it.
	op := &Op{Kind: OpClose, ID: id}
	if err := s.commitWait(ctx, op); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, worker.ErrConnectionLost) {
			return nil, err
		}
		s.storeError("close", err)
		return [][]byte{status500}, nil
	}
	if op.Applied {
		s.stats.closed.Add(1)
		s.disp.cancel(id)
	}
	return [][]byte{status200}, nil
}

// sweeper deletes expired replies and requests every SweepInterval.
func (s *Server) sweeper(ctx context.Context) {
	if s.cfg.ReplyTTL < 0 && s.cfg.RequestTTL == 0 {
		return
	}
	const limit = 10000
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		for ctx.Err() == nil {
			now := time.Now()
			op := &Op{Kind: OpExpire, Limit: limit}
			if s.cfg.ReplyTTL >= 0 {
				op.ReplyBefore = now.Add(-s.cfg.ReplyTTL)
			}
			if s.cfg.RequestTTL > 0 {
				op.RequestBefore = now.Add(-s.cfg.RequestTTL)
			}
			if err := s.commit.commit(op); err != nil {
				if !errors.Is(err, errCommitterStopped) {
					s.stats.storeErrors.Add(1)
					s.log.Error("titanic: expiry failed", "error", err.Error())
				}
				break
			}
			s.stats.expiredReplies.Add(uint64(op.ExpiredReplies))
			s.stats.expiredRequests.Add(uint64(len(op.ExpiredRequests)))
			if len(op.ExpiredRequests) > 0 {
				s.disp.cancel(op.ExpiredRequests...)
			}
			if op.ExpiredReplies > 0 || len(op.ExpiredRequests) > 0 {
				s.log.Info("titanic: expired", "replies", op.ExpiredReplies, "requests", len(op.ExpiredRequests))
			}
			if op.ExpiredReplies < limit && len(op.ExpiredRequests) < limit {
				break
			}
		}
	}
}

// LocalEndpoint turns an endpoint a broker is bound to (as
// broker.Broker.Endpoints reports it) into one that a Titanic in the same
// host can connect to: a wildcard host ("*", "0.0.0.0", "::") becomes the
// loopback address. Other endpoints, ipc:// ones included, are returned as
// they are.
func LocalEndpoint(bound string) string {
	rest, ok := strings.CutPrefix(bound, "tcp://")
	if !ok {
		return bound
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return bound
	}
	host, port := rest[:i], rest[i:]
	switch host {
	case "*", "0.0.0.0":
		return "tcp://127.0.0.1" + port
	case "[::]", "::", "[*]":
		return "tcp://[::1]" + port
	}
	return bound
}

// minLevel is a slog.Handler that drops records below min, so that the
// worker library's per-socket connection messages (one per unit of
// concurrency, hundreds for Titanic) do not drown Titanic's own log at
// Info. Warnings and errors pass.
type minLevel struct {
	min slog.Level
	slog.Handler
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.min, h.Handler.WithAttrs(as)}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.min, h.Handler.WithGroup(name)}
}
