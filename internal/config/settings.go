package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/majordomo-go/majordomo/internal/transport"
)

// kind is the type of a setting's value.
type kind uint8

const (
	kDuration kind = iota
	kInt
	kSize
	kBool
	kString
	kList
	kLevel
)

func (k kind) String() string {
	return [...]string{"duration", "int", "size", "bool", "string", "list", "level"}[k]
}

// setting is one row of the settings table. reload says whether SIGHUP
// applies a new value (Reload) or it needs a restart. field returns a
// pointer to the setting's field in a Config; check validates a parsed
// value. lib names the library Config fields the setting becomes, as
// "broker.MaxQueue" (see Explain).
type setting struct {
	name   string
	kind   kind
	usage  string
	reload bool
	field  func(c *Config) any
	check  func(v any) error
	lib    []string
	// metaname names one value of a list in usage text (default ENDPOINT).
	metaname string
}

// metavar is what usage text shows for the setting's value.
func (s *setting) metavar() string {
	switch {
	case s.kind == kBool:
		return ""
	case s.kind == kList && s.metaname != "":
		return s.metaname
	case s.kind == kList:
		return "ENDPOINT"
	}
	return strings.ToUpper(s.kind.String())
}

// settings is every setting, in the order usage text and --print-config
// show them.
var settings = []*setting{
	{name: "endpoint", kind: kList, usage: "endpoint to bind, tcp:// or ipc://; repeat the flag, or use a list in the file and commas in the environment",
		field: func(c *Config) any { return &c.Endpoints }, check: checkEndpoints, lib: []string{"broker.Endpoints"}},
	{name: "heartbeat", kind: kDuration, reload: true, usage: "heartbeat interval, both ways (the Guide's workers use 2.5s)",
		field: func(c *Config) any { return &c.Heartbeat }, check: minDuration(10 * time.Millisecond), lib: []string{"broker.HeartbeatInterval"}},
	{name: "liveness", kind: kInt, reload: true, usage: "heartbeat intervals a worker may stay silent before it is removed",
		field: func(c *Config) any { return &c.Liveness }, check: minInt(1), lib: []string{"broker.HeartbeatLiveness"}},
	{name: "request-timeout", kind: kDuration, reload: true, usage: "how long a request may wait in a queue for a worker",
		field: func(c *Config) any { return &c.RequestTimeout }, check: minDuration(time.Millisecond), lib: []string{"broker.RequestTimeout"}},
	{name: "max-queue", kind: kInt, reload: true, usage: "requests queued per service; more are dropped and counted",
		field: func(c *Config) any { return &c.MaxQueue }, check: minInt(1), lib: []string{"broker.MaxQueue"}},
	{name: "max-queued-bytes", kind: kSize, reload: true, usage: "body bytes queued over all services (e.g. 256MiB)",
		field: func(c *Config) any { return &c.MaxQueuedBytes }, check: minInt(1), lib: []string{"broker.MaxQueuedBytes"}},
	{name: "max-services", kind: kInt, reload: true, usage: "services tracked at once",
		field: func(c *Config) any { return &c.MaxServices }, check: minInt(1), lib: []string{"broker.MaxServices"}},
	{name: "max-service-name", kind: kInt, reload: true, usage: "longest service name accepted in a REQUEST or READY, in bytes; longer ones are dropped and counted",
		field: func(c *Config) any { return &c.MaxServiceName }, check: minInt(1), lib: []string{"broker.MaxServiceName"}},
	{name: "service-ttl", kind: kDuration, reload: true, usage: "how long a service with no workers and no queue is remembered",
		field: func(c *Config) any { return &c.ServiceTTL }, check: minDuration(time.Millisecond), lib: []string{"broker.ServiceTTL"}},
	{name: "max-attempts", kind: kInt, reload: true, usage: "deliveries of one request when workers die holding it",
		field: func(c *Config) any { return &c.MaxAttempts }, check: minInt(1), lib: []string{"broker.MaxAttempts"}},
	{name: "no-redelivery", kind: kBool, reload: true, usage: "drop a request whose worker dies instead of redelivering it",
		field: func(c *Config) any { return &c.NoRedelivery }, lib: []string{"broker.DisableRedelivery"}},
	{name: "max-client-in-flight", kind: kInt, reload: true, usage: "requests one client may have outstanding (queued or at a worker); more are dropped and counted",
		field: func(c *Config) any { return &c.MaxClientInFlight }, check: minInt(1), lib: []string{"broker.MaxClientInFlight"}},
	{name: "max-frames", kind: kInt, reload: true, usage: "frames per message; longer messages are dropped",
		field: func(c *Config) any { return &c.MaxFrames }, check: minInt(4), lib: []string{"broker.MaxFrames"}},
	{name: "max-frame-size", kind: kSize, usage: "largest frame accepted (libzmq ZMQ_MAXMSGSIZE); a peer sending more is disconnected",
		field: func(c *Config) any { return &c.MaxFrameSize }, check: minInt(64), lib: []string{"broker.MaxFrameSize", "emqp.MaxFrameSize"}},
	{name: "log-level", kind: kLevel, reload: true, usage: "log level: debug, info, warn or error",
		field: func(c *Config) any { return &c.LogLevel }},
	{name: "log-json", kind: kBool, usage: "log in JSON instead of text",
		field: func(c *Config) any { return &c.LogJSON }},
	{name: "http", kind: kString, usage: "listen address of the HTTP server for /metrics, /healthz, /readyz, /api/v1/status and the status page (e.g. 127.0.0.1:8080); empty is off",
		field: func(c *Config) any { return &c.HTTP }, check: checkListen},
	{name: "procs", kind: kInt, usage: "OS threads that run Go code at once (GOMAXPROCS); 0 leaves Go's default (every CPU). The default, 1, was fastest in every load measured: the broker's loop is one goroutine, and with more threads the Go runtime wakes an idle one at each hand-off between goroutines. When procs is not set, a GOMAXPROCS environment variable wins",
		field: func(c *Config) any { return &c.Procs }, check: minInt(0)},
	{name: "drain-timeout", kind: kDuration, reload: true, usage: "on SIGTERM, how long in-flight requests may take before workers are disconnected",
		field: func(c *Config) any { return &c.DrainTimeout }, check: minDuration(0)},
	{name: "metrics-max-services", kind: kInt, reload: true, usage: `services with a label of their own in /metrics; the rest are summed under service="_other"`,
		field: func(c *Config) any { return &c.MetricsMaxServices }, check: minInt(0)},
	{name: "curve-secret-key", kind: kString, usage: "the broker's secret CURVE certificate (czmq format, mode 0600): every endpoint speaks CURVE, the eMQP fronts included unless emqp-security is \"none\"",
		field: func(c *Config) any { return &c.CurveSecretKey }},
	{name: "curve-allow", kind: kString, usage: "directory of the public certificates of admitted clients and workers, re-read on SIGHUP; without it any key is admitted",
		field: func(c *Config) any { return &c.CurveAllow }},
	{name: "policy", kind: kString, usage: "authorization policy file: which services each identity may call and register; re-read on SIGHUP",
		field: func(c *Config) any { return &c.Policy }, lib: []string{"broker.Security.Authorizer", "emqp.Authorizer"}},
	{name: "plain-passwords", kind: kString, usage: "PLAIN username=password file (mode 0600), re-read on SIGHUP; insecure: trusted networks only",
		field: func(c *Config) any { return &c.PlainPasswords }},
	{name: "plain-endpoint", kind: kList, usage: "endpoint speaking PLAIN next to the CURVE ones; repeat the flag",
		field: func(c *Config) any { return &c.PlainEndpoints }, check: checkOptionalEndpoints, lib: []string{"broker.Security.PlainEndpoints"}},
	{name: "allow-ip", kind: kList, usage: "admit only these addresses or CIDR prefixes (all mechanisms)", metaname: "ADDRESS",
		field: func(c *Config) any { return &c.AllowIPs }},
	{name: "deny-ip", kind: kList, usage: "refuse these addresses or CIDR prefixes", metaname: "ADDRESS",
		field: func(c *Config) any { return &c.DenyIPs }},
	{name: "emqp-frontend", kind: kString, usage: "eMQP/1.0 (EventMQ) frontend endpoint for clients and schedulers, e.g. tcp://*:47291; off if empty",
		field: func(c *Config) any { return &c.EMQPFrontend }, lib: []string{"emqp.Frontend"}},
	{name: "emqp-backend", kind: kString, usage: "eMQP/1.0 backend endpoint for job managers, e.g. tcp://*:47290",
		field: func(c *Config) any { return &c.EMQPBackend }, lib: []string{"emqp.Backend"}},
	{name: "emqp-admin", kind: kString, usage: "eMQP/1.0 admin endpoint for emq-cli, e.g. tcp://127.0.0.1:47293; off if empty",
		field: func(c *Config) any { return &c.EMQPAdmin }, lib: []string{"emqp.Admin"}},
	{name: "emqp-pub-in", kind: kString, usage: "eMQP/1.0 endpoint publishers send PUBLISH to, e.g. tcp://*:47298; off if empty",
		field: func(c *Config) any { return &c.EMQPPubIn }, lib: []string{"emqp.PubIn"}},
	{name: "emqp-pub-out", kind: kString, usage: "eMQP/1.0 endpoint SUB sockets connect to, e.g. tcp://*:47299",
		field: func(c *Config) any { return &c.EMQPPubOut }, lib: []string{"emqp.PubOut"}},
	{name: "emqp-security", kind: kString, usage: `security of the eMQP fronts: "auto" speaks what the MDP endpoints speak (CURVE with curve-secret-key, else PLAIN with plain-passwords); "none" is plaintext, for EventMQ peers that cannot speak CURVE (allow-ip and deny-ip still apply; warned at every start)`,
		field: func(c *Config) any { return &c.EMQPSecurity }, check: checkEMQPSecurity},
	{name: "emqp-heartbeat", kind: kDuration, usage: "eMQP heartbeat interval to job managers and schedulers",
		field: func(c *Config) any { return &c.EMQPHeartbeat }, lib: []string{"emqp.HeartbeatInterval"}},
	{name: "emqp-heartbeat-timeout", kind: kDuration, usage: "how long an eMQP job manager or scheduler may stay silent before it is dropped",
		field: func(c *Config) any { return &c.EMQPHeartbeatTimeout }, lib: []string{"emqp.HeartbeatTimeout"}},
	{name: "emqp-max-queue", kind: kInt, usage: "eMQP requests waiting per queue; more are rejected and counted",
		field: func(c *Config) any { return &c.EMQPMaxQueue }, lib: []string{"emqp.MaxQueue"}},
	{name: "emqp-max-queued-bytes", kind: kSize, usage: "eMQP request bytes waiting over all queues (e.g. 256MiB); more are rejected and counted",
		field: func(c *Config) any { return &c.EMQPMaxQueuedBytes }, check: minInt(1), lib: []string{"emqp.MaxQueuedBytes"}},
	{name: "emqp-max-attempts", kind: kInt, usage: "deliveries of a guarantee request without retry-count when job managers die holding it",
		field: func(c *Config) any { return &c.EMQPMaxAttempts }, check: minInt(1), lib: []string{"emqp.MaxAttempts"}},
	{name: "emqp-ignore-admin-disconnect", kind: kBool, usage: "acknowledge emq-cli's shutdown (DISCONNECT) without acting on it; off, it makes mdbroker drain and exit, as emq-router does",
		field: func(c *Config) any { return &c.EMQPIgnoreAdminDisconnect }, lib: []string{"emqp.IgnoreAdminDisconnect"}},
	{name: "emqp-queue-timeout", kind: kDuration, usage: "expire eMQP requests that waited this long for a job manager; 0 keeps them, as EventMQ does",
		field: func(c *Config) any { return &c.EMQPQueueTimeout }, lib: []string{"emqp.QueueTimeout"}},
	{name: "emqp-strict-priority", kind: kBool, usage: "serve a job manager's heaviest queue first (EventMQ's order) instead of in proportion to weights",
		field: func(c *Config) any { return &c.EMQPStrictPriority }, lib: []string{"emqp.StrictPriority"}},
	{name: "scheduler", kind: kBool, usage: "run the built-in eMQP scheduler in place of emq-scheduler",
		field: func(c *Config) any { return &c.Scheduler }, lib: []string{"emqp.Scheduler"}},
	{name: "titanic-dir", kind: kString, usage: "run the Titanic service (9/TSP) with its store in this directory; off if empty",
		field: func(c *Config) any { return &c.TitanicDir }},
	{name: "titanic-store", kind: kString, usage: "keep Titanic's requests in this PostgreSQL database (postgres://user@host/db) instead of titanic-dir; brokers that share it share their Titanic requests. Keep the password out of it: PGPASSWORD or ~/.pgpass",
		field: func(c *Config) any { return &c.TitanicStore }, check: checkPostgresURL},
	{name: "titanic-lease-ttl", kind: kDuration, usage: "with titanic-store: how long the Titanic requests of a broker that died stay leased to it before another broker takes them over",
		field: func(c *Config) any { return &c.TitanicLeaseTTL }, check: minDuration(10 * time.Millisecond)},
	{name: "titanic-reply-ttl", kind: kDuration, usage: "how long Titanic keeps a reply nobody closes",
		field: func(c *Config) any { return &c.TitanicReplyTTL }},
	{name: "titanic-request-ttl", kind: kDuration, usage: "how long a Titanic request may wait for a reply before it is deleted; 0 waits for ever",
		field: func(c *Config) any { return &c.TitanicRequestTTL }},
	{name: "scheduler-store", kind: kString, usage: "bbolt file where the built-in scheduler keeps its schedules; empty keeps them in memory",
		field: func(c *Config) any { return &c.SchedulerStore }, lib: []string{"emqp.SchedulerStore"}},
}

// lookup finds a setting by name.
func lookup(name string) *setting {
	for _, s := range settings {
		if s.name == name {
			return s
		}
	}
	return nil
}

func names() []string {
	out := make([]string, len(settings))
	for i, s := range settings {
		out[i] = s.name
	}
	return out
}

// parseText parses a value written as text (flag, environment, or a string
// in the file) and checks it.
func (s *setting) parseText(text string) (any, error) {
	var v any
	var err error
	switch s.kind {
	case kDuration:
		v, err = parseDuration(text)
	case kInt:
		var n int64
		n, err = strconv.ParseInt(strings.TrimSpace(text), 0, strconv.IntSize)
		if err != nil {
			err = errors.New("want an integer")
		}
		v = int(n)
	case kSize:
		v, err = ParseSize(text)
	case kBool:
		v, err = strconv.ParseBool(strings.TrimSpace(text))
		if err != nil {
			err = errors.New("want true or false")
		}
	case kString:
		v = text
	case kList:
		var list []string
		for _, e := range strings.Split(text, ",") {
			if e = strings.TrimSpace(e); e != "" {
				list = append(list, e)
			}
		}
		v = list
	case kLevel:
		v, err = parseLevel(text)
	}
	if err != nil {
		return nil, err
	}
	return v, s.validate(v)
}

// parseTOML converts a value decoded from the config file and checks it.
func (s *setting) parseTOML(raw any) (any, error) {
	mismatch := func(want string) error {
		return fmt.Errorf("want %s, not a TOML %s", want, tomlType(raw))
	}
	var v any
	switch s.kind {
	case kDuration:
		str, ok := raw.(string)
		if !ok {
			return nil, mismatch(`a duration string such as "2.5s"`)
		}
		return s.parseText(str)
	case kInt:
		n, ok := raw.(int64)
		if !ok {
			return nil, mismatch("an integer")
		}
		if n > math.MaxInt32 || n < math.MinInt32 {
			return nil, fmt.Errorf("%d is out of range", n)
		}
		v = int(n)
	case kSize:
		switch x := raw.(type) {
		case int64:
			v = x
		case string:
			return s.parseText(x)
		default:
			return nil, mismatch(`a byte count or a size string such as "256MiB"`)
		}
	case kBool:
		b, ok := raw.(bool)
		if !ok {
			return nil, mismatch("true or false")
		}
		v = b
	case kString, kLevel:
		str, ok := raw.(string)
		if !ok {
			return nil, mismatch("a string")
		}
		return s.parseText(str)
	case kList:
		switch x := raw.(type) {
		case string:
			v = []string{x}
		case []any:
			list := make([]string, 0, len(x))
			for _, e := range x {
				str, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("want a list of strings, found a TOML %s in it", tomlType(e))
				}
				list = append(list, str)
			}
			v = list
		default:
			return nil, mismatch("a string or a list of strings")
		}
	}
	return v, s.validate(v)
}

func (s *setting) validate(v any) error {
	if s.check == nil {
		return nil
	}
	return s.check(v)
}

// set stores a parsed value in c.
func (s *setting) set(c *Config, v any) {
	switch p := s.field(c).(type) {
	case *time.Duration:
		*p = v.(time.Duration)
	case *int:
		*p = v.(int)
	case *int64:
		*p = v.(int64)
	case *bool:
		*p = v.(bool)
	case *string:
		*p = v.(string)
	case *[]string:
		*p = append([]string(nil), v.([]string)...)
	case *slog.Level:
		*p = v.(slog.Level)
	}
}

// format returns the value as it would be written in a config file, without
// quotes.
func (s *setting) format(c *Config) string {
	switch p := s.field(c).(type) {
	case *time.Duration:
		return FormatDuration(*p)
	case *int:
		return strconv.Itoa(*p)
	case *int64:
		return FormatSize(*p)
	case *bool:
		return strconv.FormatBool(*p)
	case *string:
		return *p
	case *[]string:
		return strings.Join(*p, ",")
	case *slog.Level:
		return strings.ToLower(p.String())
	}
	return ""
}

// toml returns the value as a TOML literal.
func (s *setting) toml(c *Config) string {
	switch p := s.field(c).(type) {
	case *int, *bool:
		return s.format(c)
	case *int64:
		if str := FormatSize(*p); str != strconv.FormatInt(*p, 10) {
			return strconv.Quote(str)
		}
		return s.format(c)
	case *[]string:
		q := make([]string, len(*p))
		for i, e := range *p {
			q[i] = strconv.Quote(e)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	return strconv.Quote(s.format(c))
}

func minInt(min int64) func(any) error {
	return func(v any) error {
		var n int64
		switch x := v.(type) {
		case int:
			n = int64(x)
		case int64:
			n = x
		}
		if n < min {
			if min == 1 {
				return errors.New("must be positive")
			}
			return fmt.Errorf("must be at least %d", min)
		}
		return nil
	}
}

func minDuration(min time.Duration) func(any) error {
	return func(v any) error {
		if d := v.(time.Duration); d < min {
			if min == 0 {
				return errors.New("must not be negative")
			}
			return fmt.Errorf("must be at least %s", FormatDuration(min))
		}
		return nil
	}
}

// checkPostgresURL accepts "" (off) or a postgres:// URL. The value is not
// repeated in the error: it may hold a password.
func checkPostgresURL(v any) error {
	s := v.(string)
	if s == "" || strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		return nil
	}
	return errors.New("want a postgres:// URL")
}

// checkOptionalEndpoints is checkEndpoints for a list that may be empty.
func checkOptionalEndpoints(v any) error {
	if len(v.([]string)) == 0 {
		return nil
	}
	return checkEndpoints(v)
}

func checkEndpoints(v any) error {
	list := v.([]string)
	if len(list) == 0 {
		return errors.New("want at least one endpoint")
	}
	for _, ep := range list {
		if err := transport.CheckEndpoint(ep, true); err != nil {
			return err
		}
	}
	return nil
}

func checkEMQPSecurity(v any) error {
	switch v.(string) {
	case EMQPSecurityAuto, EMQPSecurityNone:
		return nil
	}
	return fmt.Errorf("want %q or %q", EMQPSecurityAuto, EMQPSecurityNone)
}

func checkListen(v any) error {
	addr := v.(string)
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New(`want host:port, e.g. "127.0.0.1:8080"`)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, errors.New(`want a duration such as "500ms", "2.5s" or "1m"`)
	}
	return d, nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, errors.New("want debug, info, warn or error")
}

// FormatDuration formats d as time.Duration.String does, without the zero
// units it appends: 1m rather than 1m0s.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseSize parses a byte count: a plain integer, or an integer with one of
// the suffixes B, KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB
// (powers of 1000), with optional space: "256MiB", "64 MiB", "1000000".
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, errors.New(`want a byte count such as 1048576, "64KiB" or "256MiB"`)
	}
	if n > 0 && n > math.MaxInt64/mult || n < 0 && n < math.MinInt64/mult {
		return 0, errors.New("size out of range")
	}
	return n * mult, nil
}

// FormatSize formats n with the largest binary unit that divides it exactly:
// 268435456 -> "256MiB", 1000 -> "1000".
func FormatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case []any, []map[string]any:
		return "array"
	case map[string]any:
		return "table"
	case time.Time:
		return "datetime"
	}
	return fmt.Sprintf("%T", v)
}
