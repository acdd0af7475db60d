package auth

import (
	"errors"
	"strings"
	"sync"

	"github.com/majordomo-go/majordomo/internal/transport"
)

// The server side of security, shared by every server of the module (the
// MDP broker, the eMQP fronts): which mechanism a listening socket speaks,
// the ZAP domain its handshakes are counted under, and the ZAP handler of
// the transport context the socket lives in. Nothing here depends on how
// the transport implements the mechanisms: it only fills in
// transport.Security and answers 27/ZAP requests.

// Mechanism names, as logs, metrics and the status API show them.
const (
	MechanismNull  = "NULL"
	MechanismPlain = "PLAIN"
	MechanismCurve = "CURVE"
)

// MechanismName returns the 23/ZMTP name of m.
func MechanismName(m transport.Mechanism) string {
	switch m {
	case transport.Plain:
		return MechanismPlain
	case transport.Curve:
		return MechanismCurve
	}
	return MechanismNull
}

// Listener describes one listening endpoint for operators.
type Listener struct {
	// Front names the protocol front the endpoint belongs to ("mdp",
	// "emqp-backend", ...). It is the ZAP domain of the endpoint's socket,
	// so the Authenticator counts the endpoint's handshakes under it
	// (Stats.Fronts).
	Front string
	// Endpoint is the endpoint as bound.
	Endpoint string
	// Mechanism is MechanismCurve, MechanismPlain or MechanismNull.
	Mechanism string
}

// Plaintext reports whether the endpoint is reachable from outside the
// process and neither authenticated nor encrypted (NULL, at most filtered
// by address). An inproc:// endpoint is not: only code in the process can
// connect to it.
func (l Listener) Plaintext() bool {
	return l.Mechanism == MechanismNull && !strings.HasPrefix(l.Endpoint, "inproc://")
}

// ServerSecurity is the security that a server applies to every listening
// socket it opens. A nil *ServerSecurity means none: NULL, no ZAP handler.
type ServerSecurity struct {
	// Cert is the server's secret certificate: with it, listeners speak
	// CURVE (25/ZMTP-CURVE). Without it they speak PLAIN if the
	// Authenticator has a password file, else NULL.
	Cert *Cert
	// Authenticator answers the ZAP requests of every listener (required).
	Authenticator *Authenticator
	// Plaintext makes the listeners speak NULL whatever Cert and the
	// Authenticator offer: an operator's explicit choice for peers that
	// cannot speak CURVE or PLAIN. The Authenticator still filters them by
	// address (its IP allow and deny lists).
	Plaintext bool
}

// Mechanism is what the listeners speak.
func (s *ServerSecurity) Mechanism() transport.Mechanism {
	switch {
	case s == nil || s.Plaintext:
		return transport.Null
	case s.Cert != nil:
		return transport.Curve
	case s.Authenticator != nil && s.Authenticator.PlainEnabled():
		return transport.Plain
	}
	return transport.Null
}

// Validate checks that the settings can work together.
func (s *ServerSecurity) Validate() error {
	if s == nil {
		return nil
	}
	if s.Authenticator == nil {
		return errors.New("an Authenticator is required")
	}
	if s.Cert != nil {
		if _, ok := s.Cert.Secret(); !ok {
			return errors.New("the server's certificate has no secret key")
		}
		if !s.Authenticator.CurveEnabled() {
			return errors.New("CURVE needs an allow-list directory, or CurveAllowAny")
		}
	}
	return nil
}

// Socket returns the server-side transport security for a listening socket
// of front speaking m: the ZAP domain is the front's name, so that every
// handshake on it, NULL ones included, reaches the Authenticator and is
// counted under the front. m Curve needs Cert.
func (s *ServerSecurity) Socket(front string, m transport.Mechanism) (*transport.Security, error) {
	if front == "" {
		// 27/ZAP: the domain "SHALL contain a (non-empty) string".
		return nil, errors.New("auth: a front needs a name (its ZAP domain)")
	}
	ts := &transport.Security{Mechanism: m, Server: true, ZAPDomain: front}
	if a := s.Authenticator; a != nil {
		// A peer speaking another mechanism never reaches authentication:
		// count it here, under this front, as a mechanism refusal.
		ts.MechanismMismatch = func(address, peer string) {
			if peer == "" {
				peer = "?"
			}
			a.refuse(&Request{Domain: front, Address: address, Mechanism: peer}, RefusedMechanism, "")
		}
	}
	if m == transport.Curve {
		if s.Cert == nil {
			return nil, errors.New("auth: CURVE needs the server's certificate")
		}
		sk, ok := s.Cert.Secret()
		if !ok {
			return nil, errors.New("auth: the server's certificate has no secret key")
		}
		ts.SecretKey = sk[:]
		ts.PublicKey = s.Cert.Public[:]
	}
	return ts, nil
}

// Listen sets sock to speak the configured mechanism on the endpoints it
// binds from now on, counted under front, binds endpoint and returns the
// Listener bound. It is the one way a server of this module opens a
// listening endpoint when security is on, so that no front is left out.
func (s *ServerSecurity) Listen(sock transport.Socket, front, endpoint string) (Listener, error) {
	return s.ListenWith(sock, front, endpoint, s.Mechanism())
}

// ListenWith is Listen with an explicit mechanism (for PLAIN endpoints
// next to CURVE ones).
func (s *ServerSecurity) ListenWith(sock transport.Socket, front, endpoint string, m transport.Mechanism) (Listener, error) {
	ts, err := s.Socket(front, m)
	if err != nil {
		return Listener{}, err
	}
	// The transport fixes an endpoint's mechanism when it is bound.
	if err := sock.SetSecurity(ts); err != nil {
		return Listener{}, err
	}
	bound, err := sock.Bind(endpoint)
	if err != nil {
		return Listener{}, err
	}
	return Listener{Front: front, Endpoint: bound, Mechanism: MechanismName(m)}, nil
}

// SecureContext starts a ZAP handler for a in zctx (27/ZAP: "The handler
// SHALL start before any server starts": call it before any socket of
// zctx binds) and returns the context to use from then on: its Term stops
// the handler first, since the context would otherwise wait for ever for
// the handler's socket. One handler runs per context.
func SecureContext(zctx transport.Context, a *Authenticator) (transport.Context, error) {
	h, err := StartHandler(zctx, a)
	if err != nil {
		return nil, err
	}
	return &securedContext{Context: zctx, zap: h}, nil
}

type securedContext struct {
	transport.Context
	zap  *Handler
	once sync.Once
}

func (c *securedContext) Term() error {
	c.once.Do(c.zap.Stop)
	return c.Context.Term()
}
