// Package config builds mdbroker's effective configuration from four layers,
// highest precedence first: command-line flags, environment variables
// (MDBROKER_*), a TOML config file, and built-in defaults.
//
// Every setting has one name used everywhere: the flag --max-queue, the file
// key max-queue and the environment variable MDBROKER_MAX_QUEUE. Values are
// validated as they are read, and every problem is reported with where the
// bad value came from; unknown file keys, unknown MDBROKER_* variables and
// unknown flags are errors that suggest the nearest valid name.
package config

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/emqp"
	"github.com/majordomo-go/majordomo/titanic"
)

// Defaults of the settings that are not broker settings.
const (
	// DefaultProcs is the default of procs (GOMAXPROCS): see its usage.
	DefaultProcs = 1
	// DefaultDrainTimeout is how long SIGTERM waits for in-flight requests.
	DefaultDrainTimeout = 10 * time.Second
	// DefaultMetricsMaxServices bounds how many services get their own
	// label value in the Prometheus metrics.
	DefaultMetricsMaxServices = 200
	// EnvPrefix starts every environment variable the configuration reads.
	EnvPrefix = "MDBROKER_"
	// EnvConfigFile names the config file when --config is not given.
	EnvConfigFile = EnvPrefix + "CONFIG"
)

// Config is the effective configuration of mdbroker: the broker's settings
// plus logging, the HTTP operations server and the shutdown grace period.
type Config struct {
	Endpoints          []string      // endpoint
	Heartbeat          time.Duration // heartbeat
	Liveness           int           // liveness
	RequestTimeout     time.Duration // request-timeout
	MaxQueue           int           // max-queue
	MaxQueuedBytes     int64         // max-queued-bytes
	MaxServices        int           // max-services
	MaxServiceName     int           // max-service-name
	ServiceTTL         time.Duration // service-ttl
	MaxAttempts        int           // max-attempts
	NoRedelivery       bool          // no-redelivery
	MaxFrames          int           // max-frames
	MaxClientInFlight  int           // max-client-in-flight
	MaxFrameSize       int64         // max-frame-size
	LogLevel           slog.Level    // log-level
	LogJSON            bool          // log-json
	HTTP               string        // http: listen address of the operations server; "" is off.
	DrainTimeout       time.Duration // drain-timeout
	Procs              int           // procs: GOMAXPROCS, 0 for Go's default.
	MetricsMaxServices int           // metrics-max-services
	CurveSecretKey     string        // curve-secret-key
	CurveAllow         string        // curve-allow
	Policy             string        // policy
	PlainPasswords     string        // plain-passwords
	PlainEndpoints     []string      // plain-endpoint
	AllowIPs           []string      // allow-ip
	DenyIPs            []string      // deny-ip

	EMQPFrontend              string        // emqp-frontend
	EMQPBackend               string        // emqp-backend
	EMQPAdmin                 string        // emqp-admin
	EMQPPubIn                 string        // emqp-pub-in
	EMQPPubOut                string        // emqp-pub-out
	EMQPSecurity              string        // emqp-security: EMQPSecurityAuto or EMQPSecurityNone.
	EMQPHeartbeat             time.Duration // emqp-heartbeat
	EMQPHeartbeatTimeout      time.Duration // emqp-heartbeat-timeout
	EMQPMaxQueue              int           // emqp-max-queue
	EMQPMaxQueuedBytes        int64         // emqp-max-queued-bytes
	EMQPMaxAttempts           int           // emqp-max-attempts
	EMQPIgnoreAdminDisconnect bool          // emqp-ignore-admin-disconnect
	EMQPQueueTimeout          time.Duration // emqp-queue-timeout
	EMQPStrictPriority        bool          // emqp-strict-priority
	Scheduler                 bool          // scheduler
	SchedulerStore            string        // scheduler-store

	TitanicDir        string        // titanic-dir
	TitanicStore      string        // titanic-store
	TitanicLeaseTTL   time.Duration // titanic-lease-ttl
	TitanicReplyTTL   time.Duration // titanic-reply-ttl
	TitanicRequestTTL time.Duration // titanic-request-ttl
}

// Titanic returns the settings of the built-in Titanic service, connecting
// to the broker at endpoint, and false when it is off (neither titanic-dir
// nor titanic-store).
func (c Config) Titanic(endpoint string, log *slog.Logger) (titanic.Config, bool) {
	if c.TitanicDir == "" && c.TitanicStore == "" {
		return titanic.Config{}, false
	}
	if log != nil {
		log = log.With("service", "titanic")
	}
	return titanic.Config{
		Broker: titanic.LocalEndpoint(endpoint), Dir: c.TitanicDir,
		Postgres: c.TitanicStore, LeaseTTL: c.TitanicLeaseTTL,
		ReplyTTL: c.TitanicReplyTTL, RequestTTL: c.TitanicRequestTTL,
		Heartbeat: c.Heartbeat, Liveness: c.Liveness, Logger: log,
		// bbolt's fdatasync blocks a thread; with procs 1 it would stop the
		// broker for every commit. PostgreSQL commits wait on the network.
		SpareProc: c.TitanicDir != "",
	}, true
}

// EMQP returns the eMQP server's settings, and false when the eMQP fronts
// are off (neither frontend nor backend set).
func (c Config) EMQP(log *slog.Logger) (emqp.Config, bool) {
	if c.EMQPFrontend == "" && c.EMQPBackend == "" {
		return emqp.Config{}, false
	}
	if log != nil {
		log = log.With("protocol", "emqp")
	}
	return emqp.Config{
		Frontend: c.EMQPFrontend, Backend: c.EMQPBackend, Admin: c.EMQPAdmin,
		PubIn: c.EMQPPubIn, PubOut: c.EMQPPubOut,
		HeartbeatInterval: c.EMQPHeartbeat, HeartbeatTimeout: c.EMQPHeartbeatTimeout,
		MaxQueue: c.EMQPMaxQueue, QueueTimeout: c.EMQPQueueTimeout,
		MaxQueuedBytes: c.EMQPMaxQueuedBytes, MaxAttempts: c.EMQPMaxAttempts,
		IgnoreAdminDisconnect: c.EMQPIgnoreAdminDisconnect,
		StrictPriority:        c.EMQPStrictPriority,
		Scheduler:             c.Scheduler, SchedulerStore: c.SchedulerStore,
		MaxFrameSize: c.MaxFrameSize, Logger: log,
	}, true
}

// Values of emqp-security.
const (
	// EMQPSecurityAuto: the eMQP fronts speak what the MDP endpoints speak.
	EMQPSecurityAuto = "auto"
	// EMQPSecurityNone: the eMQP fronts speak NULL (plaintext), for
	// EventMQ's own peers, which cannot speak CURVE; the IP lists still
	// apply, and mdbroker warns at every start.
	EMQPSecurityNone = "none"
)

// EMQPPlaintext reports whether the operator chose plaintext eMQP fronts.
func (c Config) EMQPPlaintext() bool { return c.EMQPSecurity == EMQPSecurityNone }

// Defaults returns the configuration used when nothing is set.
func Defaults() Config {
	return Config{
		Endpoints:            []string{broker.DefaultEndpoint},
		Heartbeat:            broker.DefaultHeartbeatInterval,
		Liveness:             broker.DefaultHeartbeatLiveness,
		RequestTimeout:       broker.DefaultRequestTimeout,
		MaxQueue:             broker.DefaultMaxQueue,
		MaxQueuedBytes:       broker.DefaultMaxQueuedBytes,
		MaxServices:          broker.DefaultMaxServices,
		MaxServiceName:       broker.DefaultMaxServiceName,
		ServiceTTL:           broker.DefaultServiceTTL,
		MaxAttempts:          broker.DefaultMaxAttempts,
		MaxFrames:            broker.DefaultMaxFrames,
		MaxClientInFlight:    broker.DefaultMaxClientInFlight,
		MaxFrameSize:         broker.DefaultMaxFrameSize,
		LogLevel:             slog.LevelInfo,
		DrainTimeout:         DefaultDrainTimeout,
		Procs:                DefaultProcs,
		MetricsMaxServices:   DefaultMetricsMaxServices,
		EMQPHeartbeat:        emqp.DefaultHeartbeatInterval,
		EMQPHeartbeatTimeout: emqp.DefaultHeartbeatTimeout,
		EMQPMaxQueue:         emqp.DefaultMaxQueue,
		EMQPMaxQueuedBytes:   emqp.DefaultMaxQueuedBytes,
		EMQPMaxAttempts:      emqp.DefaultMaxAttempts,
		EMQPSecurity:         EMQPSecurityAuto,
		TitanicReplyTTL:      titanic.DefaultReplyTTL,
		TitanicLeaseTTL:      titanic.DefaultLeaseTTL,
	}
}

// Broker returns the broker.Config for c, logging to logger.
func (c Config) Broker(logger *slog.Logger) broker.Config {
	return broker.Config{
		Endpoints:         append([]string(nil), c.Endpoints...),
		HeartbeatInterval: c.Heartbeat,
		HeartbeatLiveness: c.Liveness,
		RequestTimeout:    c.RequestTimeout,
		MaxQueue:          c.MaxQueue,
		MaxQueuedBytes:    c.MaxQueuedBytes,
		MaxServices:       c.MaxServices,
		MaxServiceName:    c.MaxServiceName,
		ServiceTTL:        c.ServiceTTL,
		MaxAttempts:       c.MaxAttempts,
		DisableRedelivery: c.NoRedelivery,
		MaxFrames:         c.MaxFrames,
		MaxClientInFlight: c.MaxClientInFlight,
		MaxFrameSize:      c.MaxFrameSize,
		Logger:            logger,
	}
}

// Setting describes one configuration setting, for usage text and docs.
type Setting struct {
	Name    string // Flag and file key; the variable is EnvName(Name).
	Type    string // duration, int, size, bool, string, list or level.
	Usage   string
	Default string // Formatted as in a config file, without quotes.
	// Reload is true if SIGHUP applies a new value without a restart.
	Reload bool
	// Metavar names one value in usage text (ENDPOINT, ADDRESS); empty
	// for a bool, the upper-case Type otherwise.
	Metavar string
}

// Settings lists every setting in the order usage text and --print-config
// show them.
func Settings() []Setting {
	d := Defaults()
	out := make([]Setting, len(settings))
	for i, s := range settings {
		out[i] = Setting{Name: s.name, Type: s.kind.String(), Usage: s.usage,
			Default: s.format(&d), Reload: s.reload, Metavar: s.metavar()}
	}
	return out
}

// EnvName returns the environment variable for a setting name:
// max-queue -> MDBROKER_MAX_QUEUE.
func EnvName(name string) string {
	b := []byte(EnvPrefix + name)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// Source says where a setting's effective value came from.
type Source struct {
	Kind string // "default", "file", "env" or "flag".
	Name string // The file path, variable or flag; empty for defaults.
}

// String describes the source for messages, e.g. "env MDBROKER_MAX_QUEUE".
func (s Source) String() string {
	if s.Name == "" {
		return s.Kind
	}
	return fmt.Sprintf("%s %s", s.Kind, s.Name)
}
