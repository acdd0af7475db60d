package client

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/internal/peercfg"
	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
)

// Defaults for the options. The timeout and retry count are those of the
// Guide's Majordomo client (mdcliapi), so that behaviour under failure is
// what Majordomo users already expect.
const (
	// DefaultTimeout is how long one attempt waits for a reply.
	DefaultTimeout = 2500 * time.Millisecond
	// DefaultRetries is how many times a request is resent on a fresh
	// socket when the broker does not answer.
	DefaultRetries = 3
	// DefaultWindow is the default number of requests a Pipeline keeps in
	// flight.
	DefaultWindow = 10000
	// DefaultSockets is how many sockets a Client may open to each broker
	// (WithSockets), that is how many calls to one service run at once.
	DefaultSockets = 4
	// MaxSockets bounds WithSockets.
	MaxSockets = 64
)

// Option configures a Client. Options are applied in order by Connect, which
// returns the first error an option reports.
type Option func(*config) error

type config struct {
	version mdp.Version
	timeout time.Duration
	retries int
	// Common holds the brokers beyond Connect's (WithBrokers), the
	// security of every socket (WithCurve, WithPlain) and the logger.
	peercfg.Common
	// checkFirst asks about the service before a request's first send
	// (WithServiceCheck).
	checkFirst bool
	// sockets bounds the client's sockets to each broker (WithSockets).
	sockets int
}

func defaultConfig() config {
	return config{version: mdp.V1, timeout: DefaultTimeout, retries: DefaultRetries, sockets: DefaultSockets}
}

// WithSockets sets how many sockets the client may open to each broker
// (default DefaultSockets, at most MaxSockets), and so how many calls to
// one service run at once. An MDP reply names its service but not its
// request, so one socket carries at most one request per service; as
// net/http's transport opens another connection to a busy host, the client
// opens another socket when every one it has carries a call to the
// service, and keeps it for later calls. Calls beyond n wait inside the
// client for a socket's turn. n = 1 sends concurrent calls to one service
// one after the other, in call order.
func WithSockets(n int) Option {
	return func(c *config) error {
		if n < 1 || n > MaxSockets {
			return fmt.Errorf("%w: %d sockets per broker, want 1 to %d", ErrInvalidOption, n, MaxSockets)
		}
		c.sockets = n
		return nil
	}
}

// WithVersion selects the protocol: mdp.V1 (7/MDP, the default, understood by
// every Majordomo broker) or mdp.V2 (18/MDP, needed for streamed replies).
func WithVersion(v mdp.Version) Option {
	return func(c *config) error {
		if v != mdp.V1 && v != mdp.V2 {
			return fmt.Errorf("%w: version %d", ErrInvalidOption, v)
		}
		c.version = v
		return nil
	}
}

// WithTimeout sets how long one attempt waits for a reply (for a stream: for
// the next message) before the client asks the broker about the service
// (see Client.Request), and how long it waits for that answer. See Client for what
// follows. The request's context still bounds the whole call.
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout %v must be positive", ErrInvalidOption, d)
		}
		c.timeout = d
		return nil
	}
}

// WithRetries sets how many times a request is resent on a new socket when
// the broker does not answer (see Client) before the call fails with
// ErrTimeout. Zero means one attempt only. Waiting on a live broker that
// reports a worker for the service uses up no retries.
func WithRetries(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("%w: retries %d must not be negative", ErrInvalidOption, n)
		}
		c.retries = n
		return nil
	}
}

// MaxBrokers is the most brokers one Client talks to.
const MaxBrokers = 64

// WithBrokers adds brokers to the one given to Connect. The client keeps a
// socket to each, spreads requests over those that answer, and moves a
// request (and the ones after it) to another broker when its broker stops
// answering; see the package documentation, "Several brokers". Endpoints
// must be distinct and non-empty, at most MaxBrokers in all. Security
// options apply to every broker, so brokers reached with CURVE must share
// one server key.
func WithBrokers(endpoints ...string) Option {
	return func(c *config) error { return invalid(c.AddBrokers(endpoints)) }
}

// WithServiceCheck makes every request (other than mmi.* requests) start
// with the question Request asks after a timeout (mmi.workers, or
// mmi.service on other brokers): when the broker has no worker the call
// fails at once with ErrNoWorkers and the request is never sent, so nothing
// is left in the broker's queue. It costs one extra round trip to the broker
// per request; without it the client asks only after an attempt times out.
// A broker without MMI ("501") gets the request as usual.
func WithServiceCheck() Option {
	return func(c *config) error {
		c.checkFirst = true
		return nil
	}
}

// WithLogger gives the client a logger for retries and protocol
// anomalies. Without one it logs nothing, as a library should not write to
// a process's log unasked. It logs nothing on the success path either way.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { return invalid(c.SetLogger(l)) }
}

// WithCurve encrypts and authenticates the connection with CURVE
// (25/ZMTP-CURVE): serverKey is the broker's public key (auth.LoadPublicKey
// reads it from Z85 text or a certificate file), cert the client's own
// secret certificate (auth.LoadSecretCert). A broker that refuses the key,
// or a request for a service the broker's policy does not let this client
// call, is never answered: the call fails with ErrTimeout, whose message
// then mentions CURVE.
func WithCurve(serverKey auth.Key, cert *auth.Cert) Option {
	return func(c *config) error { return invalid(c.SetCurve(serverKey, cert, "client")) }
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

// timeoutHint is added to ErrTimeout messages when security is on, since a
// refused handshake or an unauthorized service look like silence.
func (c *config) timeoutHint() string {
	if c.Security == nil {
		return ""
	}
	if c.Security.Mechanism == transport.Curve {
		return " (CURVE: the broker may not know this key or this client may not call the service)"
	}
	return " (PLAIN: the broker may refuse these credentials or this client may not call the service)"
}

// noWorkersHint is added to ErrNoWorkers messages when a policy may be in
// force: a broker answers "404" (mmi.service, mmi.workers) for a service
// this client may neither call nor serve.
func (c *config) noWorkersHint() string {
	if c.Security == nil {
		return ""
	}
	return " (or this client may not call it)"
}
