// Package app is mdbroker put together: from an internal/config
// configuration it builds the Majordomo broker, the eMQP fronts, the
// built-in Titanic service and the HTTP operations server, runs them, and
// handles the signals: SIGHUP reloads, the first SIGTERM or SIGINT drains,
// a second one stops at once. cmd/mdbroker parses the command line and
// calls New and Run; everything New or Run starts is released on one path,
// close.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/emqp"
	"github.com/majordomo-go/majordomo/internal/config"
	"github.com/majordomo-go/majordomo/ops"
	"github.com/majordomo-go/majordomo/titanic"
)

// httpShutdownTimeout bounds how long the HTTP server waits for requests in
// progress once the broker has stopped.
const httpShutdownTimeout = 2 * time.Second

// titanicEndpoint is the broker's internal endpoint for the built-in
// Titanic (broker.Config.Internal).
const titanicEndpoint = "inproc://mdbroker-titanic"

// ErrConfig is wrapped by every error of New caused by the configuration
// (mdbroker exits with status 2); New's other errors are failures to start
// (status 1).
var ErrConfig = errors.New("invalid configuration")

// configError marks err as a configuration error without changing its
// text: err's own text names the setting or file at fault.
type configError struct{ err error }

func (e configError) Error() string   { return e.err.Error() }
func (e configError) Unwrap() []error { return []error{e.err, ErrConfig} }

// badConfig wraps err in ErrConfig if it is a configuration error of the
// library whose ErrConfig is libErr; nil libErr means it always is.
func badConfig(err, libErr error) error {
	if libErr == nil || errors.Is(err, libErr) {
		return configError{err}
	}
	return err
}

// Options is what New needs from the command line.
type Options struct {
	// Loaded is the configuration to start with.
	Loaded *config.Loaded
	// Log receives the logs (text or JSON, as log-json says).
	Log io.Writer
	// Signals delivers SIGHUP, SIGINT and SIGTERM (signal.Notify).
	Signals <-chan os.Signal
	// Reload reads the configuration again on SIGHUP: the same flags,
	// environment and file as Loaded came from.
	Reload func() (*config.Loaded, error)
}

// App is a mdbroker: the broker and what runs beside it.
type App struct {
	cfg     config.Config // As running: a reload changes only what may change.
	level   *slog.LevelVar
	log     *slog.Logger
	signals <-chan os.Signal
	reload  func() (*config.Loaded, error)

	sec      *broker.Security // Nil without security.
	b        *broker.Broker
	e        *emqp.Server    // Nil unless the eMQP fronts are on.
	tit      *titanic.Server // Nil unless Titanic is on.
	http     *ops.Server     // Nil unless http is set.
	httpAddr string          // Its address as bound.

	titBroker string // Titanic's way to the broker, for the log.
	titOnce   sync.Once
	titCancel context.CancelFunc // Set by startTitanic, before any stop.
	titDone   chan struct{}
}

// New builds every part mdbroker's configuration asks for: it loads the
// security files, binds the broker's endpoints and the eMQP fronts, starts
// the HTTP server and opens Titanic's store. On error it has released
// whatever it had started, and the error is one line naming the setting or
// file at fault; it wraps ErrConfig when the configuration is to blame.
func New(o Options) (_ *App, err error) {
	l := o.Loaded
	a := &App{cfg: l.Config, level: new(slog.LevelVar), signals: o.Signals, reload: o.Reload}
	a.level.Set(a.cfg.LogLevel)
	hopts := &slog.HandlerOptions{Level: a.level}
	if a.cfg.LogJSON {
		a.log = slog.New(slog.NewJSONHandler(o.Log, hopts))
	} else {
		a.log = slog.New(slog.NewTextHandler(o.Log, hopts))
	}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	if l.File != "" {
		a.log.Info("configuration loaded", "file", l.File)
	}
	if a.sec, err = loadSecurity(a.cfg, a.log); err != nil {
		return nil, badConfig(err, nil)
	}
	bcfg := a.cfg.Broker(a.log)
	bcfg.Security = a.sec
	if a.cfg.TitanicDir != "" || a.cfg.TitanicStore != "" {
		// Titanic reaches the broker in-process: no port, no handshake,
		// whatever the endpoints' security.
		bcfg.Internal = append(bcfg.Internal, titanicEndpoint)
	}
	if a.b, err = broker.New(bcfg); err != nil {
		return nil, badConfig(config.Explain(err), broker.ErrConfig)
	}
	if err := a.startHTTP(); err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	// The eMQP (EventMQ) fronts, when configured, run beside the MDP
	// broker with their own event loop over the same dispatch core.
	if ecfg, on := a.cfg.EMQP(a.log); on {
		a.secureEMQP(&ecfg)
		if a.e, err = emqp.New(ecfg); err != nil {
			return nil, badConfig(config.Explain(err), emqp.ErrConfig)
		}
		if a.http != nil {
			if err := a.http.AddEMQP(a.e); err != nil {
				a.log.Warn("eMQP metrics off", "error", err.Error())
			}
		}
	}
	a.warnPlaintext()
	// Titanic (9/TSP), when configured, is an ordinary MDP client and
	// worker of this broker, in-process.
	if tcfg, on := a.cfg.Titanic(titanicEndpoint, a.log); on {
		if a.tit, err = titanic.New(tcfg); err != nil {
			return nil, badConfig(err, titanic.ErrConfig)
		}
		a.titBroker = tcfg.Broker
	}
	return a, nil
}

func (a *App) startHTTP() error {
	if a.cfg.HTTP == "" {
		return nil
	}
	var err error
	a.http, err = ops.New(ops.Options{Broker: a.b, MetricsMaxServices: a.cfg.MetricsMaxServices, Logger: a.log})
	if err != nil {
		return err
	}
	addr, err := a.http.Start(a.cfg.HTTP)
	if err != nil {
		a.http = nil // Not started: nothing to shut down.
		return err
	}
	a.httpAddr = addr.String()
	return nil
}

// Run serves until the broker stops: a first SIGTERM or SIGINT, or ctx
// being done, drains in-flight requests within drain-timeout; a second
// signal stops at once; SIGHUP reloads what can change at run time; eMQP's
// admin DISCONNECT drains as SIGTERM does. On the way out it releases
// everything New started. It returns nil after a clean shutdown and the
// error (already logged) when the broker or the eMQP server failed. Call it
// once.
func (a *App) Run(ctx context.Context) error {
	defer a.close()
	var emqpErr chan error
	if a.e != nil {
		emqpErr = make(chan error, 1)
		go func() { emqpErr <- a.e.Run(context.Background()) }()
	}
	titErr := a.startTitanic()
	runErr := make(chan error, 1)
	go func() { runErr <- a.b.Run(context.Background()) }()

	done := ctx.Done()
	drained := make(chan error, 1)
	draining := false
	drain := func(why string) {
		if !draining {
			draining = true
			// Titanic first: its attempts in flight finish and are
			// stored while the broker still dispatches.
			a.stopTitanic()
			a.startDrain(why, drained)
		}
	}
	for {
		select {
		case err := <-emqpErr:
			emqpErr = nil
			if errors.Is(err, emqp.ErrAdminShutdown) {
				// emq-cli's DISCONNECT stops emq-router: here it stops
				// the whole broker, as a first SIGTERM does.
				a.log.Info("eMQP admin DISCONNECT: shutting down")
				drain(syscall.SIGTERM.String())
				continue
			}
			if err != nil {
				a.log.Error("eMQP server failed", "error", err)
				return err
			}
		case err := <-titErr:
			titErr = nil
			if err != nil {
				a.log.Error("Titanic failed", "error", err)
			}
		case err := <-runErr:
			if draining {
				// Shutdown returns right after Run does.
				a.drainDone(<-drained)
			}
			if err != nil {
				a.log.Error("broker failed", "error", err)
			}
			return err
		case <-done:
			done = nil
			drain("context done")
		case sig := <-a.signals:
			switch {
			case sig == syscall.SIGHUP:
				a.reloadConfig()
			case !draining:
				drain(sig.String())
			default:
				a.log.Warn("second signal: stopping now", "signal", sig.String())
				go a.stopTitanic()
				if a.e != nil {
					go a.e.Close()
				}
				go a.b.Close()
			}
		}
	}
}

// close releases everything New and Run started, in order: Titanic (a
// client of the broker), the eMQP fronts, the broker, the HTTP server. It
// is the one clean-up path, for a New that fails and for every end of Run.
func (a *App) close() {
	a.stopTitanic()
	if a.e != nil {
		a.e.Close()
	}
	if a.b != nil {
		a.b.Close()
	}
	if a.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		defer cancel()
		if err := a.http.Shutdown(ctx); err != nil {
			a.log.Warn("http server shutdown", "error", err)
		}
	}
}

// startTitanic runs the built-in Titanic service, if configured, and
// returns the channel its Run result arrives on (nil when off).
func (a *App) startTitanic() chan error {
	if a.tit == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	a.titCancel, a.titDone = cancel, make(chan struct{})
	done := a.titDone
	go func() {
		defer close(done)
		err := a.tit.Run(ctx)
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		errc <- err
	}()
	store := a.cfg.TitanicDir
	if a.cfg.TitanicStore != "" {
		store = titanic.RedactURL(a.cfg.TitanicStore)
	}
	a.log.Info("titanic started", "store", store, "broker", a.titBroker)
	return errc
}

// stopTitanic stops Titanic and waits for it, or releases its store if it
// never ran. It is safe to call more than once and concurrently.
func (a *App) stopTitanic() {
	if a.tit == nil {
		return
	}
	a.titOnce.Do(func() {
		if a.titCancel == nil { // Never ran.
			a.tit.Close()
			return
		}
		a.titCancel()
		<-a.titDone
	})
}

// startDrain drains the MDP broker and the eMQP server, if any, at once
// within the drain timeout, and sends the outcome on drained.
func (a *App) startDrain(why string, drained chan<- error) {
	if a.http != nil {
		a.http.SetDraining(true)
	}
	timeout := a.cfg.DrainTimeout
	a.log.Info("shutting down: draining in-flight requests", "signal", why,
		"drain_timeout", timeout, "hint", "send the signal again to stop at once")
	b, e := a.b, a.e
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			if e == nil {
				errc <- nil
				return
			}
			errc <- e.Shutdown(ctx)
		}()
		err := b.Shutdown(ctx)
		drained <- errors.Join(err, <-errc)
	}()
}

// drainDone logs how a drain ended.
func (a *App) drainDone(err error) {
	if err != nil {
		a.log.Warn("drain timeout expired: workers disconnected with requests in flight",
			"drain_timeout", a.cfg.DrainTimeout)
	}
}
