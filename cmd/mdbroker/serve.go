package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/internal/config"
	"github.com/majordomo-go/majordomo/emqp"
	"github.com/majordomo-go/majordomo/ops"
	"github.com/majordomo-go/majordomo/titanic"
)

// httpShutdownTimeout bounds how long the HTTP server waits for requests in
// progress once the broker has stopped.
const httpShutdownTimeout = 2 * time.Second

// daemon is a running mdbroker: the broker, its HTTP server and the
// configuration they run with.
type daemon struct {
	cfg      config.Config
	level    *slog.LevelVar
	log      *slog.Logger
	b        *broker.Broker
	http     *ops.Server // nil unless --http is set.
	httpAddr string      // Its address as bound.
	reload   func() (*config.Loaded, error)
}

// serve runs the broker described by l until signals on sigs stop it:
// SIGHUP reloads (through reload), the first SIGINT or SIGTERM drains, a
// second one stops at once. It returns the exit status.
func serve(l *config.Loaded, stderr io.Writer, sigs <-chan os.Signal, reload func() (*config.Loaded, error)) int {
	d := &daemon{cfg: l.Config, level: new(slog.LevelVar), reload: reload}
	d.level.Set(l.Config.LogLevel)
	opts := &slog.HandlerOptions{Level: d.level}
	if l.Config.LogJSON {
		d.log = slog.New(slog.NewJSONHandler(stderr, opts))
	} else {
		d.log = slog.New(slog.NewTextHandler(stderr, opts))
	}
	if l.File != "" {
		d.log.Info("configuration loaded", "file", l.File)
	}
	bcfg := l.Config.Broker(d.log)
	// One line naming the file, exit status 2: a missing or malformed key, a
	// secret key or password file readable by group or other, a bad policy.
	sec, err := broker.LoadSecurity(l.Config.Security(), d.log)
	if err != nil {
		fmt.Fprintf(stderr, "mdbroker: %v\n", err)
		return 2
	}
	bcfg.Security = sec
	if l.Config.TitanicDir != "" || l.Config.TitanicStore != "" {
		// Titanic reaches the broker in-process: no port, no handshake,
		// whatever the endpoints' security.
		bcfg.Internal = append(bcfg.Internal, titanicEndpoint)
	}
	b, err := broker.New(bcfg)
	if err != nil {
		fmt.Fprintf(stderr, "mdbroker: %v\n", err)
		if errors.Is(err, broker.ErrConfig) {
			return 2
		}
		return 1
	}
	d.b = b
	if l.Config.HTTP != "" {
		d.http, err = ops.New(ops.Options{Broker: b, MetricsMaxServices: l.Config.MetricsMaxServices, Logger: d.log})
		if err == nil {
			var addr net.Addr
			if addr, err = d.http.Start(l.Config.HTTP); err == nil {
				d.httpAddr = addr.String()
			}
		}
		if err != nil {
			b.Close()
			fmt.Fprintf(stderr, "mdbroker: http: %v\n", err)
			return 1
		}
	}
	// The eMQP (EventMQ) fronts, when configured, run beside the MDP broker
	// with their own event loop over the same dispatch core.
	var e *emqp.Server
	var emqpErr chan error
	if ecfg, on := l.Config.EMQP(d.log); on {
		d.secureEMQP(&ecfg, sec, l.Config.EMQPPlaintext())
		if e, err = emqp.New(ecfg); err != nil {
			b.Close()
			d.stopHTTP()
			fmt.Fprintf(stderr, "mdbroker: %v\n", err)
			if errors.Is(err, emqp.ErrConfig) {
				return 2
			}
			return 1
		}
		if d.http != nil {
			if err := d.http.AddEMQP(e); err != nil {
				d.log.Warn("eMQP metrics off", "error", err.Error())
			}
		}
		emqpErr = make(chan error, 1)
		go func() { emqpErr <- e.Run(context.Background()) }()
	}
	closeEMQP := func() {
		if e != nil {
			e.Close()
		}
	}
	d.warnPlaintext(sec, b, e)
	// Titanic (9/TSP), when configured, is an ordinary MDP client and
	// worker of this broker, in-process.
	_, titErr, stopTitanic, code := d.startTitanic(l, stderr)
	if code != 0 {
		closeEMQP()
		b.Close()
		d.stopHTTP()
		return code
	}
	// adminStop turns emq-cli's DISCONNECT into a first SIGTERM.
	adminStop := make(chan os.Signal, 1)
	runErr := make(chan error, 1)
	go func() { runErr <- b.Run(context.Background()) }()

	drained := make(chan error, 1)
	draining := false
	for {
		select {
		case err := <-emqpErr:
			emqpErr = nil
			if errors.Is(err, emqp.ErrAdminShutdown) {
				// emq-cli's DISCONNECT stops emq-router: here it stops the
				// whole broker, as a first SIGTERM does.
				d.log.Info("eMQP admin DISCONNECT: shutting down")
				adminStop <- syscall.SIGTERM
				continue
			}
			if err != nil {
				d.log.Error("eMQP server failed", "error", err)
				b.Close()
				d.stopHTTP()
				return 1
			}
		case err := <-titErr:
			titErr = nil
			if err != nil {
				d.log.Error("Titanic failed", "error", err)
			}
		case err := <-runErr:
			if draining {
				// Shutdown returns right after Run does.
				d.drainDone(<-drained)
			}
			stopTitanic()
			closeEMQP()
			d.stopHTTP()
			if err != nil {
				d.log.Error("broker failed", "error", err)
				return 1
			}
			return 0
		case sig := <-adminStop:
			if !draining {
				draining = true
				stopTitanic()
				d.startDrain(sig, b, e, drained)
			}
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				d.reloadConfig()
			case !draining:
				draining = true
				// Titanic first: its attempts in flight finish and are
				// stored while the broker still dispatches.
				stopTitanic()
				d.startDrain(sig, b, e, drained)
			default:
				d.log.Warn("second signal: stopping now", "signal", sig.String())
				go stopTitanic()
				go closeEMQP()
				go b.Close()
			}
		}
	}
}

// startTitanic starts the built-in Titanic service if configured. It returns
// the server's Run result channel (nil when off), a function that stops it
// and waits (safe to call more than once), and a non-zero exit code when it
// could not start.
func (d *daemon) startTitanic(l *config.Loaded, stderr io.Writer) (*titanic.Server, chan error, func(), int) {
	noop := func() {}
	tcfg, on := l.Config.Titanic(titanicEndpoint, d.log)
	if !on {
		return nil, nil, noop, 0
	}
	srv, err := titanic.New(tcfg)
	if err != nil {
		fmt.Fprintf(stderr, "mdbroker: %v\n", err)
		if errors.Is(err, titanic.ErrConfig) {
			return nil, nil, noop, 2
		}
		return nil, nil, noop, 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := srv.Run(ctx)
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		errc <- err
	}()
	store := tcfg.Dir
	if tcfg.Postgres != "" {
		store = titanic.RedactURL(tcfg.Postgres)
	}
	d.log.Info("titanic started", "store", store, "broker", tcfg.Broker)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	return srv, errc, stop, 0
}

// titanicEndpoint is the broker's internal endpoint for the built-in
// Titanic (broker.Config.Internal).
const titanicEndpoint = "inproc://mdbroker-titanic"

// secureEMQP applies the broker's security to the eMQP fronts: the same
// mechanism, Authenticator (allow-list, passwords, IP lists) and policy,
// unless the operator chose plaintext fronts (emqp-security = "none"),
// which the IP lists still filter and the policy cannot apply to.
func (d *daemon) secureEMQP(ecfg *emqp.Config, sec *broker.Security, plaintext bool) {
	if sec == nil {
		return
	}
	ecfg.Security = &auth.ServerSecurity{Cert: sec.CurveCert, Authenticator: sec.Authenticator, Plaintext: plaintext}
	if plaintext {
		if sec.Authorizer != nil {
			d.log.Warn("policy not applied to the eMQP fronts: emqp-security = \"none\" leaves their peers unauthenticated")
		}
		return
	}
	if sec.Authorizer != nil {
		ecfg.Authorizer = sec.Authorizer
	}
}

// warnPlaintext logs, at every start of a broker with security configured,
// one warning per listening endpoint that is neither authenticated nor
// encrypted, naming it, so that no plaintext listener goes unnoticed.
func (d *daemon) warnPlaintext(sec *broker.Security, b *broker.Broker, e *emqp.Server) {
	if sec == nil {
		return
	}
	ls := b.Listeners()
	if e != nil {
		ls = append(ls, e.Listeners()...)
	}
	for _, l := range ls {
		if l.Plaintext() {
			why := "emqp-security = \"none\""
			if l.Front == broker.FrontMDP {
				why = "no curve-secret-key or plain-passwords: filtered by address only"
			}
			d.log.Warn("plaintext endpoint: neither authenticated nor encrypted", "front", l.Front,
				"endpoint", l.Endpoint, "because", why)
		}
	}
	if d.httpAddr != "" {
		d.log.Warn("plaintext endpoint: the HTTP operations server has no authentication or encryption; keep it on loopback or behind an authenticating proxy",
			"front", "http", "endpoint", d.httpAddr)
	}
}

// startDrain drains the MDP broker and the eMQP server, if any, at once
// within the drain timeout, and sends the outcome on drained.
func (d *daemon) startDrain(sig os.Signal, b *broker.Broker, e *emqp.Server, drained chan<- error) {
	if d.http != nil {
		d.http.SetDraining(true)
	}
	timeout := d.cfg.DrainTimeout
	d.log.Info("shutting down: draining in-flight requests", "signal", sig.String(),
		"drain_timeout", timeout, "hint", "send the signal again to stop at once")
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
func (d *daemon) drainDone(err error) {
	if err != nil {
		d.log.Warn("drain timeout expired: workers disconnected with requests in flight",
			"drain_timeout", d.cfg.DrainTimeout)
	}
}

func (d *daemon) stopHTTP() {
	if d.http == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
	defer cancel()
	if err := d.http.Shutdown(ctx); err != nil {
		d.log.Warn("http server shutdown", "error", err)
	}
}

// reloadConfig reads the configuration again (file, environment, flags)
// and applies what can change at run time. A bad configuration changes
// nothing.
func (d *daemon) reloadConfig() {
	l, err := d.reload()
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			d.log.Error("reload failed; configuration unchanged", "error", line)
		}
		return
	}
	next := l.Config
	// Allow-list, passwords and policy are re-read without dropping
	// connected peers; their paths need a restart.
	if err := d.b.ReloadSecurity(); err != nil {
		d.log.Error("security reload failed; previous keys, passwords and policy kept", "error", err)
	}
	changed, restart, err := d.b.Reload(next.Broker(d.log))
	if err != nil {
		d.log.Error("reload failed; configuration unchanged", "error", err)
		return
	}
	old := d.cfg
	diff := func(name string) bool {
		a, b := config.Format(old, name), config.Format(next, name)
		if a != b {
			changed = append(changed, fmt.Sprintf("%s: %s -> %s", name, a, b))
		}
		return a != b
	}
	if diff("log-level") {
		d.level.Set(next.LogLevel)
	}
	diff("drain-timeout")
	if diff("metrics-max-services") && d.http != nil {
		d.http.SetMetricsMaxServices(next.MetricsMaxServices)
	}
	for _, name := range append(append([]string{"log-json", "http"}, config.SecuritySettings()...), config.EMQPSettings()...) {
		if config.Format(old, name) != config.Format(next, name) {
			restart = append(restart, name)
		}
	}
	// What needs a restart keeps running as it is.
	next.Endpoints, next.MaxFrameSize = old.Endpoints, old.MaxFrameSize
	next.LogJSON, next.HTTP = old.LogJSON, old.HTTP
	next.CurveSecretKey, next.CurveAllow, next.Policy = old.CurveSecretKey, old.CurveAllow, old.Policy
	next.PlainPasswords, next.PlainEndpoints = old.PlainPasswords, old.PlainEndpoints
	next.AllowIPs, next.DenyIPs = old.AllowIPs, old.DenyIPs
	next.KeepEMQP(old)
	d.cfg = next
	if len(changed) == 0 && len(restart) == 0 {
		d.log.Info("configuration reloaded: nothing changed", "file", l.File)
	} else {
		d.log.Info("configuration reloaded", "file", l.File, "changed", changed, "needs_restart", restart)
	}
	for _, name := range restart {
		running, configured := config.Format(old, name), config.Format(l.Config, name)
		if name == "titanic-store" { // May hold a password.
			running, configured = titanic.RedactURL(running), titanic.RedactURL(configured)
		}
		d.log.Warn("setting not applied: it needs a restart", "setting", name, "running", running, "configured", configured)
	}
}
