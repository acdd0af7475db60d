package broker

// The broker's side of security: CURVE/PLAIN on the ROUTER's endpoints, the
// in-process authentication hook (27/ZAP semantics), and per-service
// authorization of READY and REQUEST by the User-Id the transport attaches
// to every message, as libzmq does. The package
// github.com/majordomo-go/majordomo/auth reads the keys, lists and policy.

import (
	"errors"
	"fmt"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/internal/inproc"
	"github.com/majordomo-go/majordomo/internal/ratelog"
	"github.com/majordomo-go/majordomo/internal/secure"
	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
)

// FrontMDP is the front name of the broker's endpoints: their ZAP domain
// (27/ZAP: the domain "SHALL contain a (non-empty) string"), under which
// the Authenticator counts their handshakes.
const FrontMDP = "mdp"

// FrontInternal is the front name of Config.Internal endpoints.
const FrontInternal = "mdp-internal"

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

// server is the auth package's view of s: what every listening socket
// applies.
func (s *Security) server() *auth.ServerSecurity {
	return &auth.ServerSecurity{Cert: s.CurveCert, Authenticator: s.Authenticator}
}

// mechanism is what Config.Endpoints speak.
func (s *Security) mechanism() transport.Mechanism { return secure.Mechanism(s.server()) }

func (s *Security) validate() error {
	if s == nil {
		return nil
	}
	if err := s.server().Validate(); err != nil {
		return &ConfigError{Field: "Security", Reason: err.Error()}
	}
	if len(s.PlainEndpoints) > 0 && (s.CurveCert == nil || !s.Authenticator.PlainEnabled()) {
		return &ConfigError{Field: "Security.PlainEndpoints", Reason: "need a CURVE certificate and a password file"}
	}
	for _, ep := range s.PlainEndpoints {
		if err := transport.CheckEndpoint(ep, true); err != nil {
			return &ConfigError{Field: "Security.PlainEndpoints", Value: ep, Reason: err.Error()}
		}
	}
	if s.Authorizer != nil && s.mechanism() == transport.Null {
		return &ConfigError{Field: "Security.Authorizer", Reason: "a policy needs authenticated identities: CURVE or PLAIN"}
	}
	return nil
}

// security is the broker's run-time security state, fixed by New (Reload
// does not change it).
type security struct {
	cfg   *Security
	authz Authorizer
	// trustInproc: peers with no User-Id are in-process ones (see
	// Config.Internal), which the policy does not restrict.
	trustInproc bool
	// Refusal logs are rate-limited (the counters are exact); the loop
	// goroutine alone uses these.
	refusals ratelog.Limiter
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
	secured, err := secure.Context(zctx, s.Authenticator)
	if err != nil {
		return nil, zctx, o, fmt.Errorf("broker: %w", err)
	}
	sec := &security{cfg: s, authz: s.Authorizer, trustInproc: len(cfg.Internal) > 0,
		refusals: ratelog.Limiter{Window: time.Second, Burst: 20}}
	// The policy is applied per message, by the User-Id the transport
	// attaches.
	o.UserID = s.Authorizer != nil
	// Handover would let a second connection that presents a registered
	// worker's routing id take over its pipe and answer as that worker
	// whatever identity it authenticated with; with security on, a
	// routing id stays with the connection that first used it.
	o.RouterHandover = false
	cfg.Logger.Info("security on", "mechanism", secure.MechanismName(s.mechanism()),
		"plain_endpoints", s.PlainEndpoints, "policy", s.Authorizer != nil)
	return sec, secured, o, nil
}

// bind binds every endpoint: Config.Endpoints with the configured
// mechanism, then the PLAIN ones, then the internal ones (the transport
// fixes an endpoint's mechanism when it is bound).
func (b *Broker) bind() error {
	if b.sec == nil {
		for _, ep := range b.cfg.Endpoints {
			if err := b.bindOne(ep, auth.Listener{Front: FrontMDP, Mechanism: auth.MechanismNull}); err != nil {
				return err
			}
		}
	} else {
		srv := b.sec.cfg.server()
		for _, ep := range b.cfg.Endpoints {
			l, err := secure.Listen(srv, b.sock, FrontMDP, ep)
			if err != nil {
				return err
			}
			b.listened(l)
		}
		for _, ep := range b.sec.cfg.PlainEndpoints {
			l, err := secure.ListenWith(srv, b.sock, FrontMDP, ep, transport.Plain)
			if err != nil {
				return err
			}
			b.listened(l)
		}
		// In-process connections have no handshake; NULL with a domain of
		// its own keeps any handshake a transport might make countable.
		if err := b.sock.SetSecurity(&transport.Security{Mechanism: transport.Null, Server: true, ZAPDomain: FrontInternal}); err != nil {
			return err
		}
	}
	for _, ep := range b.cfg.Internal {
		if err := b.bindOne(ep, auth.Listener{Front: FrontInternal, Mechanism: auth.MechanismNull}); err != nil {
			return err
		}
	}
	return nil
}

// bindOne binds ep as it is, described by l.
func (b *Broker) bindOne(ep string, l auth.Listener) error {
	bound, err := b.sock.Bind(ep)
	if err != nil {
		return err
	}
	l.Endpoint = bound
	b.listened(l)
	return nil
}

// listened records a bound endpoint, and shares the broker's transport
// context under an inproc:// one so that in-process clients and workers
// can reach it.
func (b *Broker) listened(l auth.Listener) {
	b.listeners = append(b.listeners, l)
	if l.Front != FrontInternal {
		b.endpoints = append(b.endpoints, l.Endpoint)
	}
	if inproc.IsEndpoint(l.Endpoint) {
		if err := inproc.Register(l.Endpoint, b.shared); err != nil {
			b.log.Warn("in-process endpoint not reachable by in-process clients", "endpoint", l.Endpoint, "error", err.Error())
			return
		}
		b.inproc = append(b.inproc, l.Endpoint)
	}
}

// unshare forgets the broker's inproc:// endpoints.
func (b *Broker) unshare() {
	for _, ep := range b.inproc {
		inproc.Unregister(ep, b.shared)
	}
	b.inproc = nil
}

// Listeners describes every endpoint the broker listens on, the internal
// ones included: front, endpoint as bound, mechanism.
func (b *Broker) Listeners() []auth.Listener {
	return append([]auth.Listener(nil), b.listeners...)
}

// ConnStats returns the connection counters of the broker's socket, under
// FrontMDP (its internal endpoints included). Any goroutine may call it.
func (b *Broker) ConnStats() []auth.ConnStats {
	return []auth.ConnStats{secure.ConnStats(FrontMDP, b.sock)}
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

// unrestricted reports whether the policy does not apply to the sender of
// the current message: there is none, or the sender is in-process. With a
// policy every network endpoint speaks CURVE or PLAIN (validate), and the
// ZAP handler gives every peer it admits a non-empty User-Id (a CURVE key,
// a PLAIN user name, never empty: LoadPasswords refuses an empty name);
// only in-process connections, which have no handshake, carry none.
func (b *Broker) unrestricted() bool {
	return b.sec == nil || b.sec.authz == nil || b.sec.trustInproc && b.identity() == ""
}

// mayCall reports whether the sender of the current message may call
// service.
func (b *Broker) mayCall(service []byte) bool {
	if b.unrestricted() {
		return true
	}
	return b.sec.authz.MayCall(b.identity(), string(service))
}

// mayCallThrough reports whether the sender may make the call m makes on
// its behalf through a broker-side proxy: titanic.request stores a request
// for the service named in its first body frame (9/TSP) and Titanic, an
// in-process peer the policy does not restrict, later calls it; without
// this check a client could reach, through Titanic, a service the policy
// does not let it call.
func (b *Broker) mayCallThrough(m *mdp.Message) bool {
	if b.unrestricted() || string(m.Service) != titanicRequest || len(m.Body) == 0 {
		return true
	}
	return b.sec.authz.MayCall(b.identity(), string(m.Body[0]))
}

// titanicRequest is 9/TSP's request service.
const titanicRequest = "titanic.request"

// mayRegister reports whether the sender of the current READY may serve
// service.
func (b *Broker) mayRegister(service string) bool {
	if b.unrestricted() {
		return true
	}
	return b.sec.authz.MayRegister(b.identity(), service)
}

// mayView reports whether MMI answers may mention service to the sender of
// the current request: only services it may call or register.
func (b *Broker) mayView(service string) bool {
	if b.unrestricted() {
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
	n, ok := b.sec.refusals.Allow(b.now)
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "not_logged_before", n)
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
