// Package ops is mdbroker's operations HTTP server: Prometheus metrics at
// /metrics, liveness and readiness probes at /healthz and /readyz, the
// broker's state as JSON at /api/v1/status, and a live status page for
// people at /, served from files embedded in the binary.
//
// Everything it shows comes from broker.Status, a snapshot built on the
// broker's event loop and copied out: no handler holds a lock the loop
// needs, and a slow HTTP client cannot slow the broker down.
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultReadyTimeout is how long /readyz waits for the event loop.
const DefaultReadyTimeout = time.Second

// Options configure a Server.
type Options struct {
	// Broker is the broker to report on (required).
	Broker Source
	// MetricsMaxServices caps the services with a label of their own in
	// /metrics (see Collector). Zero puts every service under _other.
	MetricsMaxServices int
	// ReadyTimeout is how long /readyz waits for the event loop to answer
	// (default DefaultReadyTimeout).
	ReadyTimeout time.Duration
	// Logger receives the server's logs (default slog.Default()).
	Logger *slog.Logger
}

// Server is the operations HTTP server. Create it with New, then either
// mount Handler in a server of your own or call Start and, on the way out,
// Shutdown.
type Server struct {
	opts      Options
	log       *slog.Logger
	collector *Collector
	registry  *prometheus.Registry
	handler   http.Handler
	rates     rateTracker
	sec       *security // Fronts and listeners beyond the broker's.
	draining  atomic.Bool
	probing   atomic.Bool // A readiness probe is waiting on the event loop.

	srv    *http.Server
	served chan struct{}
}

// New returns a server for opts.Broker.
func New(opts Options) (*Server, error) {
	if opts.Broker == nil {
		return nil, errors.New("ops: Options.Broker is nil")
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{opts: opts, log: opts.Logger}
	s.collector = NewCollector(opts.Broker, opts.MetricsMaxServices)
	s.sec = s.collector.sec
	s.registry = prometheus.NewRegistry()
	if err := s.registry.Register(s.collector); err != nil {
		return nil, err
	}
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	static, err := fs.Sub(webFiles, "web")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(s.log.Handler(), slog.LevelError),
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /api/v1/status", s.status)
	files := http.FileServerFS(static)
	mux.Handle("GET /{$}", files)
	mux.Handle("GET /static/", files)
	s.handler = securityHeaders(mux)
	return s, nil
}

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler { return s.handler }

// Registry returns the Prometheus registry behind /metrics, to which the
// caller may add collectors of its own.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// SetDraining marks the broker as draining: /readyz answers 503 so that
// load balancers stop sending new clients, and the status page says so.
func (s *Server) SetDraining(on bool) { s.draining.Store(on) }

// SetMetricsMaxServices changes the cap on labelled services in /metrics.
func (s *Server) SetMetricsMaxServices(n int) { s.collector.SetMaxServices(n) }

// Start listens on addr ("127.0.0.1:8080"; port 0 picks one) and serves in
// the background. It returns the address bound.
func (s *Server) Start(addr string) (net.Addr, error) {
	if s.srv != nil {
		return nil, errors.New("ops: server already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ops: %w", err)
	}
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.served = make(chan struct{})
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server failed", "error", err)
		}
	}()
	s.sec.http.Store(&auth.Listener{Front: FrontHTTP, Endpoint: "http://" + ln.Addr().String(), Mechanism: auth.MechanismNull})
	s.log.Info("http server listening", "addr", ln.Addr().String())
	return ln.Addr(), nil
}

// Shutdown stops a started server: it stops accepting connections, waits
// for requests in progress until ctx is done, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	<-s.served
	return err
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	plain(w, http.StatusOK, "ok")
}

// readyz answers 200 if the event loop built a status snapshot within the
// ready timeout, 503 otherwise. At most one probe waits on the loop at a
// time, so a stuck loop cannot pile up goroutines.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.draining.Load() {
		plain(w, http.StatusServiceUnavailable, "draining")
		return
	}
	if !s.probing.CompareAndSwap(false, true) {
		plain(w, http.StatusServiceUnavailable, "event loop unresponsive: an earlier probe is still waiting")
		return
	}
	answered := make(chan bool, 1)
	go func() {
		defer s.probing.Store(false)
		answered <- !s.opts.Broker.Status().Now.IsZero()
	}()
	timer := time.NewTimer(s.opts.ReadyTimeout)
	defer timer.Stop()
	select {
	case running := <-answered:
		if !running {
			plain(w, http.StatusServiceUnavailable, "broker not running")
			return
		}
		plain(w, http.StatusOK, "ok")
	case <-timer.C:
		s.log.Warn("readiness probe: event loop did not answer", "timeout", s.opts.ReadyTimeout)
		plain(w, http.StatusServiceUnavailable, fmt.Sprintf("event loop did not answer within %s", s.opts.ReadyTimeout))
	}
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	st := s.opts.Broker.Status()
	r := newStatusResponse(&st, &s.rates, s.draining.Load())
	r.Security = s.sec.fronts(&st)
	body, err := json.Marshal(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body)
}

func plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// securityHeaders keeps the page to its own origin: no inline script, no
// third-party content, no framing.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}
