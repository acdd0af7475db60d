package worker

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/internal/peercfg"
	"github.com/majordomo-go/majordomo/mdp"
)

// Defaults for the options. The heartbeat settings are the Guide's (2500 ms,
// liveness 3), which is also what this project's broker uses: 7/MDP
// ("Known Weaknesses") warns that broker and worker must agree on them.
const (
	DefaultHeartbeat       = 2500 * time.Millisecond
	DefaultLiveness        = 3
	DefaultReconnectMin    = 100 * time.Millisecond
	DefaultReconnectMax    = 10 * time.Second
	DefaultShutdownTimeout = 5 * time.Second
)

// Option configures a Worker.
type Option func(*config) error

type config struct {
	version         mdp.Version
	heartbeat       time.Duration
	liveness        int
	reconnectMin    time.Duration
	reconnectMax    time.Duration
	concurrency     int
	shutdownTimeout time.Duration
	busyLiveness    bool
	// Common holds the brokers beyond New's (WithBrokers), the security
	// of every socket (WithCurve, WithPlain) and the logger.
	peercfg.Common
}

func defaultConfig() config {
	return config{
		version:         mdp.V1,
		heartbeat:       DefaultHeartbeat,
		liveness:        DefaultLiveness,
		reconnectMin:    DefaultReconnectMin,
		reconnectMax:    DefaultReconnectMax,
		concurrency:     1,
		shutdownTimeout: DefaultShutdownTimeout,
		busyLiveness:    true,
	}
}

// WithVersion selects the protocol: mdp.V1 (7/MDP, the default) or mdp.V2
// (18/MDP, which lets handlers send PARTIAL replies).
func WithVersion(v mdp.Version) Option {
	return func(c *config) error {
		if v != mdp.V1 && v != mdp.V2 {
			return fmt.Errorf("%w: version %d", ErrInvalidOption, v)
		}
		c.version = v
		return nil
	}
}

// WithHeartbeat sets the heartbeat interval. It must match the broker's:
// the broker removes a worker it has not heard from for its own liveness ×
// interval.
func WithHeartbeat(d time.Duration) Option {
	return func(c *config) error {
		if d < time.Millisecond {
			return fmt.Errorf("%w: heartbeat %v must be at least 1ms", ErrInvalidOption, d)
		}
		c.heartbeat = d
		return nil
	}
}

// WithLiveness sets how many heartbeat intervals of silence make the worker
// consider the broker dead and reconnect (7/MDP "Heartbeating": "usually
// 3-5").
func WithLiveness(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: liveness %d must be at least 1", ErrInvalidOption, n)
		}
		c.liveness = n
		return nil
	}
}

// WithReconnect sets the backoff between failed connection attempts: it
// starts at min and doubles, with jitter, up to max. A reconnection after a
// healthy connection is immediate.
func WithReconnect(min, max time.Duration) Option {
	return func(c *config) error {
		if min <= 0 || max < min {
			return fmt.Errorf("%w: reconnect backoff %v..%v", ErrInvalidOption, min, max)
		}
		c.reconnectMin, c.reconnectMax = min, max
		return nil
	}
}

// WithBusyLiveness(false) stops the worker from declaring the broker dead
// while a handler runs; the silence check resumes, with a fresh window,
// once the handler returns. Use it with brokers derived from the Guide's
// mdbroker, which heartbeat idle workers only (despite 7/MDP's "Both broker
// and worker MUST send heartbeats"): with them a handler running longer than
// liveness × heartbeat would otherwise be abandoned. The default, true,
// suits this project's broker, which heartbeats busy workers too.
func WithBusyLiveness(check bool) Option {
	return func(c *config) error {
		c.busyLiveness = check
		return nil
	}
}

// WithConcurrency sets how many requests the worker serves at once. Each
// unit of concurrency is a separate socket registered with the broker as a
// separate worker (MDP lets a worker hold one request at a time), so one
// slow request does not hold up the others. With several brokers
// (WithBrokers) each broker gets n sockets, and n stays the limit for all
// of them together.
func WithConcurrency(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: concurrency %d must be at least 1", ErrInvalidOption, n)
		}
		c.concurrency = n
		return nil
	}
}

// WithBrokers adds brokers to the one given to New: the worker registers
// its service with every one of them, each through sockets of its own (see
// the package documentation, "Several brokers"). Endpoints must be
// distinct and non-empty. Security options apply to every broker, so
// brokers reached with CURVE must share one server key.
func WithBrokers(endpoints ...string) Option {
	return func(c *config) error { return invalid(c.AddBrokers(endpoints)) }
}

// WithShutdownTimeout sets how long Run waits, once its context is
// cancelled, for running handlers to return (their replies are still sent)
// before it gives up on them.
func WithShutdownTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: shutdown timeout %v", ErrInvalidOption, d)
		}
		c.shutdownTimeout = d
		return nil
	}
}

// WithLogger gives the worker a logger. Without one it logs nothing, as a
// library should not write to a process's log unasked. With one it logs
// connection changes at Info, lost requests and handler failures at Warn
// and Error, and nothing per successful request.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { return invalid(c.SetLogger(l)) }
}

// WithCurve encrypts and authenticates the worker's connections with CURVE
// (25/ZMTP-CURVE): serverKey is the broker's public key (auth.LoadPublicKey),
// cert the worker's own secret certificate (auth.LoadSecretCert). A broker
// whose policy does not let this identity serve the service answers READY
// with DISCONNECT; the worker logs it and keeps reconnecting with backoff.
func WithCurve(serverKey auth.Key, cert *auth.Cert) Option {
	return func(c *config) error { return invalid(c.SetCurve(serverKey, cert, "worker")) }
}

// WithPlain authenticates with a PLAIN user name and password
// (24/ZMTP-PLAIN). They cross the network in clear: trusted networks only.
func WithPlain(username, password string) Option {
	return func(c *config) error { return invalid(c.SetPlain(username, password)) }
}

// invalid wraps an error of a shared option check in ErrInvalidOption.
func invalid(err error) error {
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOption, err)
	}
	return nil
}
