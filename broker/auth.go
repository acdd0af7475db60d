package broker

// The broker's side of security: CURVE/PLAIN on the ROUTER's endpoints, the
// in-process ZAP handler, and per-service authorization of READY and
// REQUEST by the ZAP User-Id libzmq attaches to every message. The package
// github.com/majordomo-go/majordomo/auth reads the keys, lists and policy.

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
)

// zapDomain is the ZAP domain of the broker's endpoints (27/ZAP: the domain
// "SHALL contain a (non-empty) string").
const zapDomain = "majordomo"

// Authorizer decides, for an authenticated peer (its ZAP User-Id: a CURVE
// key in Z85 or a PLAIN user name), which services it may call and which it
// may register. *auth.Authorizer implements it from a policy file. The
// broker calls it from its loop for every READY and every client REQUEST,
// so it must be fast and safe for concurrent use with its own reloads.
type Authorizer interface {
	MayCall(identity, service string) bool
	MayRegister(identity, service string) bool
}

// Security turns on authentication, encryption and authorization. A nil
// *Security (the default) changes nothing and costs nothing.
type Security struct {
	// CurveCert is the broker's secret certificate (auth.LoadSecretCert):
	// with it, every endpoint in Config.Endpoints speaks CURVE
	// (25/ZMTP-CURVE). Without it they speak PLAIN if the Authenticator
	// has a password file, else NULL filtered by address.
	CurveCert *auth.Cert
	// PlainEndpoints are more endpoints, speaking PLAIN (24/ZMTP-PLAIN),
	// alongside CURVE ones; they need CurveCert and a password file. PLAIN
	// "SHOULD NOT be used on public infrastructure" (24/ZMTP-PLAIN).
	PlainEndpoints []string
	// Authenticator answers the ZAP requests (required).
	Authenticator *auth.Authenticator
	// Authorizer, if not nil, is consulted for every READY and REQUEST;
	// nil allows every authenticated peer everything.
	Authorizer Authorizer
}

// mechanism is what Config.Endpoints speak.
func (s *Security) mechanism() transport.Mechanism {
	switch {
	case s.CurveCert != nil:
		return transport.Curve
	case s.Authenticator != nil && s.Authenticator.PlainEnabled():
		return transport.Plain
	}
	return transport.Null
}

func (s *Security) validate() error {
	if s == nil {
		return nil
	}
	bad := func(why string) error { return fmt.Errorf("%w: security: %s", ErrConfig, why) }
	if s.Authenticator == nil {
		return bad("an Authenticator is required")
	}
	if s.CurveCert != nil {
		if _, ok := s.CurveCert.Secret(); !ok {
			return bad("the broker's certificate has no secret key")
		}
		if !s.Authenticator.CurveEnabled() {
			return bad("CURVE needs an allow-list directory, or CurveAllowAny")
		}
	}
	if len(s.PlainEndpoints) > 0 && (s.CurveCert == nil || !s.Authenticator.PlainEnabled()) {
		return bad("PlainEndpoints need a CURVE certificate and a password file")
	}
	for _, ep := range s.PlainEndpoints {
		if !strings.HasPrefix(ep, "tcp://") && !strings.HasPrefix(ep, "ipc://") && !strings.HasPrefix(ep, "inproc://") {
			return bad(fmt.Sprintf("plain endpoint %q must start with tcp://, ipc:// or inproc://", ep))
		}
	}
	if s.Authorizer != nil && s.mechanism() == transport.Null {
		return bad("a policy needs authenticated identities: CURVE or PLAIN")
	}
	return nil
}

// security is the broker's run-time security state, fixed by New (Reload
// does not change it).
type security struct {
	cfg   *Security
	zap   *auth.Handler
	authz Authorizer
	// Refusal logs are rate-limited (the counters are exact); the loop
	// goroutine alone uses these.
	logWindow  time.Time
	logCount   int
	suppressed int
}

// securedContext stops the ZAP handler, whose socket lives in the same
// libzmq context, before the context is terminated: Term would otherwise
// wait for ever for that socket.
type securedContext struct {
	transport.Context
	zap *auth.Handler
}

func (c *securedContext) Term() error {
	c.zap.Stop()
	return c.Context.Term()
}

// startSecurity starts the ZAP handler in zctx (27/ZAP: "The handler SHALL
// start before any server starts") and returns the context to use from now
// on and the ROUTER's options adjusted. Without security it returns its
// arguments unchanged.
func startSecurity(cfg Config, zctx transport.Context, o transport.Options) (*security, transport.Context, transport.Options, error) {
	s := cfg.Security
	if s == nil {
		return nil, zctx, o, nil
	}
	h, err := auth.StartHandler(zctx, s.Authenticator)
	if err != nil {
		return nil, zctx, o, fmt.Errorf("broker: %w", err)
	}
	sec := &security{cfg: s, zap: h, authz: s.Authorizer}
	o.Security = endpointSecurity(s, s.mechanism())
	// The policy is applied per message, by the User-Id libzmq attaches.
	o.UserID = s.Authorizer != nil
	// Handover would let a second connection that presents a registered
	// worker's routing id take over its pipe and answer as that worker
	// whatever identity it authenticated with; with security on, a
	// routing id stays with the connection that first used it.
	o.RouterHandover = false
	cfg.Logger.Info("security on", "mechanism", mechanismName(s.mechanism()),
		"plain_endpoints", s.PlainEndpoints, "policy", s.Authorizer != nil)
	return sec, &securedContext{Context: zctx, zap: h}, o, nil
}

func endpointSecurity(s *Security, m transport.Mechanism) *transport.Security {
	ts := &transport.Security{Mechanism: m, Server: true, ZAPDomain: zapDomain}
	if m == transport.Curve {
		sk, _ := s.CurveCert.Secret()
		ts.SecretKey = sk[:]
		ts.PublicKey = s.CurveCert.Public[:]
	}
	return ts
}

func mechanismName(m transport.Mechanism) string {
	return [...]string{"NULL", "PLAIN", "CURVE"}[m]
}

// bindPlain binds the PLAIN endpoints after the others: libzmq fixes an
// endpoint's mechanism when it is bound.
func (b *Broker) bindPlain() error {
	if b.sec == nil || len(b.sec.cfg.PlainEndpoints) == 0 {
		return nil
	}
	if err := b.sock.SetSecurity(endpointSecurity(b.sec.cfg, transport.Plain)); err != nil {
		return err
	}
	for _, ep := range b.sec.cfg.PlainEndpoints {
		bound, err := b.sock.Bind(ep)
		if err != nil {
			return err
		}
		b.endpoints = append(b.endpoints, bound)
	}
	return nil
}

// AuthStats returns the ZAP handler's counters (refused handshakes by
// reason), or zero Stats without security.
func (b *Broker) AuthStats() auth.Stats {
	if b.sec == nil {
		return auth.Stats{}
	}
	return b.sec.cfg.Authenticator.Stats()
}

// identity is the ZAP User-Id of the message being handled.
func (b *Broker) identity() string { return b.sock.UserID() }

// mayCall reports whether the sender of the current message may call
// service.
func (b *Broker) mayCall(service []byte) bool {
	if b.sec == nil || b.sec.authz == nil {
		return true
	}
	return b.sec.authz.MayCall(b.identity(), string(service))
}

// mayRegister reports whether the sender of the current READY may serve
// service.
func (b *Broker) mayRegister(service string) bool {
	if b.sec == nil || b.sec.authz == nil {
		return true
	}
	return b.sec.authz.MayRegister(b.identity(), service)
}

// mayView reports whether MMI answers may mention service to the sender of
// the current request: only services it may call or register.
func (b *Broker) mayView(service string) bool {
	if b.sec == nil || b.sec.authz == nil {
		return true
	}
	id := b.identity()
	return b.sec.authz.MayCall(id, service) || b.sec.authz.MayRegister(id, service)
}

// refuseWorker answers a READY for a service the worker may not serve with
// DISCONNECT (7/MDP: the broker "MUST respond to any valid but unexpected
// command by sending DISCONNECT and then no further commands").
func (b *Broker) refuseWorker(sender []byte, m *mdp.Message) {
	b.drop(DropUnauthorizedReady, "worker not authorized for service", "service", string(m.Service))
	b.stats.Removed[RemovedUnauthorized]++
	b.sendDisconnect(sender, m.Version, m.Delimited)
	b.logRefusal("worker refused", "worker", printable(sender), "identity", b.identity(),
		"service", string(m.Service), "reason", RemovedUnauthorized.String())
}

// refuseRequest drops a request for a service the client may not call. The
// client hears nothing, as for any dropped request: its library times out.
func (b *Broker) refuseRequest(sender []byte, m *mdp.Message) {
	b.drop(DropUnauthorizedCall, "client not authorized for service", "service", string(m.Service))
	b.logRefusal("request refused", "client", printable(sender), "identity", b.identity(),
		"service", string(m.Service), "reason", DropUnauthorizedCall.String())
}

// logRefusal logs at Warn, at most 20 lines a second; the counters are the
// complete record.
func (b *Broker) logRefusal(msg string, args ...any) {
	s := b.sec
	if b.now.Sub(s.logWindow) >= time.Second {
		s.logWindow, s.logCount = b.now, 0
	}
	if s.logCount >= 20 {
		s.suppressed++
		return
	}
	s.logCount++
	if s.suppressed > 0 {
		args = append(args, "not_logged_before", s.suppressed)
		s.suppressed = 0
	}
	b.log.Warn(msg, args...)
}

// ReloadSecurity re-reads the allow-list directory, the password file and,
// if the Authorizer has a Reload method (auth.Authorizer does), the policy,
// for example on SIGHUP. Connected peers stay connected: authentication
// happens once per connection, and the new policy applies from their next
// READY or request. On error what was in force stays in force.
func (b *Broker) ReloadSecurity() error {
	if b.sec == nil {
		return nil // Nothing to re-read.
	}
	err := b.sec.cfg.Authenticator.Reload()
	if r, ok := b.sec.authz.(interface{ Reload() error }); ok {
		err = errors.Join(err, r.Reload())
	}
	return err
}

// SecurityFiles names the files and lists a broker's security is read from,
// as mdbroker's flags give them. The zero value means no security.
type SecurityFiles struct {
	CurveSecretKey string   // --curve-secret-key: the broker's secret certificate.
	CurveAllow     string   // --curve-allow: directory of admitted public certificates.
	Policy         string   // --policy: authorization policy file.
	PlainPasswords string   // --plain-passwords: PLAIN "user=password" file.
	PlainEndpoints []string // --plain-endpoint: PLAIN endpoints next to CURVE ones.
	AllowIPs       []string // --allow-ip: only these addresses or prefixes.
	DenyIPs        []string // --deny-ip: never these addresses or prefixes.
}

// LoadSecurity reads f into a Security for Config.Security, or returns nil
// if f asks for none. Every error is one line naming the file and wraps
// ErrConfig: a missing or malformed key, a secret key or password file that
// other users can read (auth.ErrPermissions), a missing allow-list
// directory, a malformed policy. Without CurveAllow, CURVE admits any
// client key (logged as a warning).
func LoadSecurity(f SecurityFiles, log *slog.Logger) (*Security, error) {
	if f.CurveSecretKey == "" && f.CurveAllow == "" && f.Policy == "" && f.PlainPasswords == "" &&
		len(f.PlainEndpoints) == 0 && len(f.AllowIPs) == 0 && len(f.DenyIPs) == 0 {
		return nil, nil
	}
	if log == nil {
		log = slog.Default()
	}
	bad := func(err error) error { return fmt.Errorf("%w: %w", ErrConfig, err) }
	switch {
	case f.CurveAllow != "" && f.CurveSecretKey == "":
		return nil, bad(errors.New("--curve-allow needs --curve-secret-key"))
	case f.Policy != "" && f.CurveSecretKey == "" && f.PlainPasswords == "":
		return nil, bad(errors.New("--policy needs authenticated peers: --curve-secret-key or --plain-passwords"))
	case len(f.PlainEndpoints) > 0 && (f.CurveSecretKey == "" || f.PlainPasswords == ""):
		return nil, bad(errors.New("--plain-endpoint needs --curve-secret-key and --plain-passwords (without CURVE, --plain-passwords makes every --endpoint PLAIN)"))
	}
	s := &Security{PlainEndpoints: f.PlainEndpoints}
	if f.CurveSecretKey != "" {
		c, err := auth.LoadSecretCert(f.CurveSecretKey)
		if err != nil {
			return nil, bad(err)
		}
		s.CurveCert = c
	}
	a, err := auth.NewAuthenticator(auth.Config{
		CurveAllowDir: f.CurveAllow,
		CurveAllowAny: f.CurveSecretKey != "" && f.CurveAllow == "",
		PasswordFile:  f.PlainPasswords,
		AllowIPs:      f.AllowIPs,
		DenyIPs:       f.DenyIPs,
		Logger:        log,
	})
	if err != nil {
		return nil, bad(err)
	}
	s.Authenticator = a
	if f.Policy != "" {
		z, err := auth.NewAuthorizer(f.Policy, a, log)
		if err != nil {
			return nil, bad(err)
		}
		s.Authorizer = z
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}
