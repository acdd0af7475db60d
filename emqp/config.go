package emqp

import (
	"errors"
	"fmt"
	"github.com/majordomo-go/majordomo/internal/transport"
	"log/slog"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/emqp/wire"
)

// Defaults for Config, EventMQ's own where it has one (eventmq/conf.py).
const (
	DefaultHeartbeatInterval = wire.HeartbeatInterval * time.Second // HEARTBEAT_INTERVAL.
	DefaultHeartbeatTimeout  = wire.HeartbeatTimeout * time.Second  // HEARTBEAT_TIMEOUT.
	DefaultMaxQueue          = 10000                                // HWM.
	DefaultMaxQueuedBytes    = 256 << 20
	DefaultMaxQueues         = 10000
	DefaultQueueTTL          = time.Minute
	DefaultMaxAttempts       = 3
	DefaultLeaveGrace        = 300 * time.Second // KILL_GRACE_PERIOD of the job manager.
	DefaultMaxFrameSize      = 64 << 20
)

// Config holds an eMQP server's settings. Endpoints are tcp://, ipc:// or
// inproc:// addresses; an empty endpoint turns that socket off, but
// Frontend and Backend are required. The zero value of every other field
// means "use the default".
type Config struct {
	// Frontend is where clients and schedulers connect (EventMQ's
	// FRONTEND_ADDR, port 47291).
	Frontend string
	// Backend is where job managers connect (BACKEND_ADDR, port 47290).
	Backend string
	// Admin is where emq-cli connects (ADMINISTRATIVE_ADDR, port 47293).
	Admin string
	// PubIn is where publishers send PUBLISH (PUBLISHER_INCOMING_ADDR,
	// port 47298); PUBLISH on the frontend is accepted too.
	PubIn string
	// PubOut is where SUB sockets connect (PUBLISHER_OUTGOING_ADDR, port
	// 47299). It is required when PubIn is set.
	PubOut string

	// HeartbeatInterval is how often every job manager and scheduler is
	// sent a HEARTBEAT, whatever else it is sent.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout is how long a job manager or scheduler may stay
	// silent before it is dropped.
	HeartbeatTimeout time.Duration

	// DefaultQueue receives requests for queues no job manager serves
	// (EventMQ's DEFAULT_QUEUE_NAME, "default").
	DefaultQueue string
	// DefaultQueues are the queues of a job manager whose INFORM names
	// none (default [[10, DefaultQueue]], EventMQ's QUEUES).
	DefaultQueues []wire.QueueSpec
	// StrictPriority makes a job manager with a free slot take work from
	// its heaviest queue first, as EventMQ's router does. Off (the
	// default), its queues are served in proportion to their weights.
	StrictPriority bool

	// MaxQueue bounds the requests waiting in one queue; more are
	// rejected and counted (EventMQ's HWM).
	MaxQueue int
	// MaxQueuedBytes bounds the bytes waiting over every queue.
	MaxQueuedBytes int64
	// MaxQueues bounds how many queues exist at once.
	MaxQueues int
	// QueueTimeout, if positive, expires requests that waited that long
	// for a job manager. Zero (the default) keeps them until one comes,
	// as EventMQ does.
	QueueTimeout time.Duration
	// QueueTTL is how long a queue with neither job managers nor waiting
	// requests is remembered.
	QueueTTL time.Duration
	// MaxAttempts is how many deliveries a request with the guarantee
	// header and no retry-count gets when job managers die holding it.
	// retry-count:N allows N redeliveries (N+1 deliveries) instead.
	MaxAttempts int
	// LeaveGrace is how long a job manager that said KBYE may still
	// deliver the replies it owes; after that its guaranteed requests are
	// redelivered.
	LeaveGrace time.Duration
	// IgnoreAdminDisconnect makes the server acknowledge emq-cli's
	// DISCONNECT (shutdown) without acting on it. Off, Run returns
	// ErrAdminShutdown after shutting down, as emq-router exits.
	IgnoreAdminDisconnect bool

	// Scheduler turns on the built-in scheduler, which stands in for
	// emq-scheduler: it takes every SCHEDULE (UNSCHEDULE still reaches
	// connected schedulers too) and makes the REQUESTs itself.
	Scheduler bool
	// SchedulerStore is the bbolt file where the built-in scheduler keeps
	// its schedules so that they survive a restart. Empty keeps them in
	// memory only.
	SchedulerStore string

	// Security, if not nil, applies to every listening socket: all five
	// fronts, each counted under its own ZAP domain (FrontBackend, ...).
	// With its Plaintext set they speak NULL, still filtered by the
	// Authenticator's address lists. Nil: NULL for all, as EventMQ.
	Security *auth.ServerSecurity
	// Authorizer, if not nil, applies a per-service policy to the
	// identities CURVE or PLAIN authenticated, mapped onto eMQP: a REQUEST
	// is a call of the queue it is routed to, a SCHEDULE or UNSCHEDULE a
	// call of the queue it names, a job manager's INFORM a register of
	// every queue it lists, a scheduler's INFORM a register of
	// ServiceScheduler, an emq-cli command a call of ServiceAdmin, and a
	// PUBLISH a call of ServicePublish. Refusals are not answered and are
	// counted (Stats.Unauthorized).
	Authorizer Authorizer

	// MaxFrameSize is the largest frame accepted (libzmq's ZMQ_MAXMSGSIZE).
	MaxFrameSize int64
	// Logger receives the server's logs (default slog.Default()).
	Logger *slog.Logger
}

// Authorizer decides what an authenticated peer (its ZAP User-Id: a CURVE
// key in Z85 or a PLAIN user name) may do; *auth.Authorizer implements it
// from a policy file. It is called from the server's loop, so it must be
// fast and safe for concurrent use with its own reloads.
type Authorizer interface {
	MayCall(identity, service string) bool
	MayRegister(identity, service string) bool
}

// The names the policy knows eMQP's non-queue operations by.
const (
	ServiceScheduler = "emqp.scheduler" // Registering as a scheduler (INFORM on the frontend).
	ServiceAdmin     = "emqp.admin"     // emq-cli's commands, DISCONNECT (shutdown) included.
	ServicePublish   = "emqp.publish"   // PUBLISH, on the frontend or the pub-in socket.
)

// Front names: the ZAP domain of each listening socket, under which its
// handshakes and policy refusals are counted.
const (
	FrontFrontend = "emqp-frontend"
	FrontBackend  = "emqp-backend"
	FrontAdmin    = "emqp-admin"
	FrontPubIn    = "emqp-pub-in"
	FrontPubOut   = "emqp-pub-out"
)

// ErrConfig is wrapped by every configuration error New returns.
var ErrConfig = errors.New("emqp: invalid configuration")

// ConfigError is a Config field that New or Validate refuses: the field's
// Go name ("HeartbeatTimeout"), its value and why. It wraps ErrConfig, and
// lets a program name its own flag or key for the field.
type ConfigError struct {
	Field  string
	Value  any // Nil when the reason is about the field as a whole.
	Reason string
}

// Error returns "emqp: invalid configuration: Field=Value: Reason".
func (e *ConfigError) Error() string {
	if e.Value == nil {
		return fmt.Sprintf("%v: %s: %s", ErrConfig, e.Field, e.Reason)
	}
	return fmt.Sprintf("%v: %s=%v: %s", ErrConfig, e.Field, e.Value, e.Reason)
}

// Unwrap returns ErrConfig.
func (e *ConfigError) Unwrap() error { return ErrConfig }

func (c Config) withDefaults() Config {
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.DefaultQueue == "" {
		c.DefaultQueue = wire.DefaultQueue
	}
	if len(c.DefaultQueues) == 0 {
		c.DefaultQueues = []wire.QueueSpec{{Weight: wire.DefaultWeight, Name: c.DefaultQueue}}
	}
	if c.MaxQueue == 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	if c.MaxQueuedBytes == 0 {
		c.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if c.MaxQueues == 0 {
		c.MaxQueues = DefaultMaxQueues
	}
	if c.QueueTTL == 0 {
		c.QueueTTL = DefaultQueueTTL
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.LeaveGrace == 0 {
		c.LeaveGrace = DefaultLeaveGrace
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks the settings after defaults are applied and names the
// first bad one.
func (c Config) Validate() error {
	bad := func(field string, v any, why string) error {
		return &ConfigError{Field: field, Value: v, Reason: why}
	}
	for _, ep := range []struct{ name, v string }{
		{"Frontend", c.Frontend}, {"Backend", c.Backend}, {"Admin", c.Admin},
		{"PubIn", c.PubIn}, {"PubOut", c.PubOut},
	} {
		if ep.v == "" {
			continue
		}
		if err := transport.CheckEndpoint(ep.v, true); err != nil {
			return bad(ep.name, ep.v, err.Error())
		}
	}
	switch {
	case c.Frontend == "":
		return bad("Frontend", `""`, "required")
	case c.Backend == "":
		return bad("Backend", `""`, "required")
	case c.PubIn != "" && c.PubOut == "":
		return bad("PubOut", `""`, "required with PubIn")
	case c.HeartbeatInterval < 10*time.Millisecond:
		return bad("HeartbeatInterval", c.HeartbeatInterval, "must be at least 10ms")
	case c.HeartbeatTimeout <= c.HeartbeatInterval:
		return bad("HeartbeatTimeout", c.HeartbeatTimeout, "must be longer than the heartbeat interval")
	case c.MaxQueue < 1:
		return bad("MaxQueue", c.MaxQueue, "must be at least 1")
	case c.MaxQueuedBytes < 1:
		return bad("MaxQueuedBytes", c.MaxQueuedBytes, "must be at least 1")
	case c.MaxQueues < 1:
		return bad("MaxQueues", c.MaxQueues, "must be at least 1")
	case c.QueueTimeout < 0:
		return bad("QueueTimeout", c.QueueTimeout, "must not be negative")
	case c.QueueTTL < 0:
		return bad("QueueTTL", c.QueueTTL, "must not be negative")
	case c.MaxAttempts < 1:
		return bad("MaxAttempts", c.MaxAttempts, "must be at least 1")
	case c.LeaveGrace < 0:
		return bad("LeaveGrace", c.LeaveGrace, "must not be negative")
	case c.MaxFrameSize < 64:
		return bad("MaxFrameSize", c.MaxFrameSize, "must be at least 64")
	case c.SchedulerStore != "" && !c.Scheduler:
		return bad("SchedulerStore", c.SchedulerStore, "needs the built-in scheduler (Scheduler)")
	case len(c.DefaultQueue) > wire.MaxQueueNameLen:
		return bad("DefaultQueue", c.DefaultQueue, "longer than 255 bytes")
	}
	if err := c.Security.Validate(); err != nil {
		return &ConfigError{Field: "Security", Reason: err.Error()}
	}
	if c.Authorizer != nil && c.Security.Mechanism() == auth.MechanismNull {
		return &ConfigError{Field: "Authorizer", Reason: "a policy needs authenticated identities: CURVE or PLAIN on the eMQP fronts"}
	}
	for _, q := range c.DefaultQueues {
		if q.Name == "" || len(q.Name) > wire.MaxQueueNameLen || q.Weight < 1 {
			return bad("DefaultQueues", q, "needs a name of 1 to 255 bytes and a weight of at least 1")
		}
	}
	return nil
}
