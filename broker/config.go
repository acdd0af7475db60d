package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/majordomo-go/majordomo/internal/transport"
)

// Defaults for Config. The heartbeat defaults match the Guide's workers
// (2500 ms, liveness 3) so that unmodified Guide peers interoperate.
const (
	DefaultEndpoint          = "tcp://*:5555"
	DefaultHeartbeatInterval = 2500 * time.Millisecond
	DefaultHeartbeatLiveness = 3
	DefaultRequestTimeout    = 60 * time.Second
	DefaultMaxQueue          = 10000
	DefaultMaxQueuedBytes    = 256 << 20
	DefaultMaxServices       = 10000
	DefaultMaxServiceName    = 255
	DefaultServiceTTL        = 60 * time.Second
	DefaultMaxAttempts       = 3
	DefaultMaxFrames         = 1024
	DefaultMaxFrameSize      = 64 << 20
	DefaultMaxClientInFlight = 10000
)

// Config holds a broker's settings. The zero value of every field but
// Endpoints means "use the default"; use the Disable... fields to switch
// features off.
type Config struct {
	// Endpoints to bind, tcp:// or ipc:// (default DefaultEndpoint). A
	// wildcard port ("tcp://127.0.0.1:*" or ":0") is resolved; Endpoints()
	// reports what was bound.
	Endpoints []string
	// HeartbeatInterval is how often the broker heartbeats every worker and
	// expects to hear from each.
	HeartbeatInterval time.Duration
	// HeartbeatLiveness is how many intervals a worker may stay silent
	// before it is removed, busy or idle.
	HeartbeatLiveness int
	// RequestTimeout is how long a request may wait in a service queue for a
	// worker before it expires (dropped, counted, logged).
	RequestTimeout time.Duration
	// MaxQueue bounds the requests queued per service.
	MaxQueue int
	// MaxQueuedBytes bounds the body bytes queued over all services.
	MaxQueuedBytes int64
	// MaxServices bounds how many services the broker tracks at once, so
	// that clients asking for random names cannot grow memory without bound.
	MaxServices int
	// MaxServiceName is the longest service name accepted, in bytes (as
	// AMQP's and eMQP's queue names and Titanic's MaxServiceName). 7/MDP
	// sets no limit; without one, a client asking for MaxServices names of
	// a frame's size each would hold that much memory for ServiceTTL.
	// Longer REQUESTs and READYs are dropped as DropService.
	MaxServiceName int
	// ServiceTTL is how long a service with no workers and no queued
	// requests is remembered before it is forgotten.
	ServiceTTL time.Duration
	// MaxAttempts is how many times one request may be handed to a worker
	// (the first delivery included) when workers die holding it.
	MaxAttempts int
	// DisableRedelivery drops a request held by a worker that dies instead
	// of handing it to another worker.
	DisableRedelivery bool
	// MaxClientInFlight bounds the requests one client may have outstanding
	// (queued or held by a worker); beyond it new requests from that client
	// are dropped and counted, so that one client cannot fill every queue.
	MaxClientInFlight int
	// MaxFrames is the most frames accepted in one message; longer messages
	// are dropped and counted.
	MaxFrames int
	// MaxFrameSize is the largest frame accepted (libzmq's ZMQ_MAXMSGSIZE);
	// a peer announcing a larger one is disconnected before anything is
	// allocated for it.
	MaxFrameSize int64
	// Internal are inproc:// endpoints for peers in this process, such as
	// mdbroker's built-in Titanic; a client or worker of this module
	// reaches them by name (client.Connect("inproc://...")). In-process
	// connections have no handshake, so they need no key and open no port,
	// whatever Security says; and, since only code in this process can
	// connect to them, the policy (Security.Authorizer) does not restrict
	// their peers, nor those of any inproc:// endpoint of the broker. The
	// policy still decides what a client may reach through them: a
	// titanic.request is checked as a call of the service it names.
	Internal []string
	// Logger receives the broker's logs (default slog.Default()).
	Logger *slog.Logger
	// Security turns on CURVE or PLAIN, the ZAP handler and per-service
	// authorization (see auth.go); nil leaves the broker open, as 7/MDP
	// is. It is fixed at New: Reload does not change it.
	Security *Security
}

// ErrConfig is wrapped by every configuration error returned by New.
var ErrConfig = errors.New("broker: invalid configuration")

// ConfigError is a Config field that New, Reload or Validate refuses: the
// field's name, its value and why. It wraps ErrConfig. Field is the Go name
// of the field ("HeartbeatInterval"), with the path of the struct it is in
// for nested ones ("Security.PlainEndpoints"), so that a program can name
// its own flag or key for it.
type ConfigError struct {
	Field  string
	Value  any // Nil when the reason is about the field as a whole.
	Reason string
}

// Error returns "broker: invalid configuration: Field=Value: Reason".
func (e *ConfigError) Error() string {
	if e.Value == nil {
		return fmt.Sprintf("%v: %s: %s", ErrConfig, e.Field, e.Reason)
	}
	return fmt.Sprintf("%v: %s=%v: %s", ErrConfig, e.Field, e.Value, e.Reason)
}

// Unwrap returns ErrConfig.
func (e *ConfigError) Unwrap() error { return ErrConfig }

func (c Config) withDefaults() Config {
	if len(c.Endpoints) == 0 {
		c.Endpoints = []string{DefaultEndpoint}
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.HeartbeatLiveness == 0 {
		c.HeartbeatLiveness = DefaultHeartbeatLiveness
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxQueue == 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	if c.MaxQueuedBytes == 0 {
		c.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if c.MaxServices == 0 {
		c.MaxServices = DefaultMaxServices
	}
	if c.MaxServiceName == 0 {
		c.MaxServiceName = DefaultMaxServiceName
	}
	if c.ServiceTTL == 0 {
		c.ServiceTTL = DefaultServiceTTL
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MaxClientInFlight == 0 {
		c.MaxClientInFlight = DefaultMaxClientInFlight
	}
	if c.MaxFrames == 0 {
		c.MaxFrames = DefaultMaxFrames
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks the settings after defaults are applied and names the first
// bad one.
func (c Config) Validate() error {
	bad := func(field string, v any, why string) error {
		return &ConfigError{Field: field, Value: v, Reason: why}
	}
	for _, ep := range c.Endpoints {
		if err := transport.CheckEndpoint(ep, true); err != nil {
			return bad("Endpoints", ep, err.Error())
		}
	}
	for _, ep := range c.Internal {
		if !strings.HasPrefix(ep, "inproc://") {
			return bad("Internal", ep, "must start with inproc://")
		}
	}
	switch {
	case c.HeartbeatInterval < 10*time.Millisecond:
		return bad("HeartbeatInterval", c.HeartbeatInterval, "must be at least 10ms")
	case c.HeartbeatLiveness < 1:
		return bad("HeartbeatLiveness", c.HeartbeatLiveness, "must be at least 1")
	case c.RequestTimeout < 0:
		return bad("RequestTimeout", c.RequestTimeout, "must not be negative")
	case c.MaxQueue < 1:
		return bad("MaxQueue", c.MaxQueue, "must be at least 1")
	case c.MaxQueuedBytes < 1:
		return bad("MaxQueuedBytes", c.MaxQueuedBytes, "must be at least 1")
	case c.MaxServices < 1:
		return bad("MaxServices", c.MaxServices, "must be at least 1")
	case c.MaxServiceName < 1:
		return bad("MaxServiceName", c.MaxServiceName, "must be at least 1")
	case c.ServiceTTL < 0:
		return bad("ServiceTTL", c.ServiceTTL, "must not be negative")
	case c.MaxAttempts < 1:
		return bad("MaxAttempts", c.MaxAttempts, "must be at least 1")
	case c.MaxClientInFlight < 1:
		return bad("MaxClientInFlight", c.MaxClientInFlight, "must be at least 1")
	case c.MaxFrames < 4:
		return bad("MaxFrames", c.MaxFrames, "must be at least 4")
	case c.MaxFrameSize < 64:
		return bad("MaxFrameSize", c.MaxFrameSize, "must be at least 64")
	}
	return c.Security.validate()
}
