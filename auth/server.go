package auth

import (
	"errors"
	"strings"
)

// The server side of security, shared by every server of the module (the
// MDP broker, the eMQP fronts): which mechanism a listening socket speaks
// and the ZAP domain its handshakes are counted under. The module's
// internal/secure applies it to the transport's sockets and installs the
// Authenticator as the authentication hook of a transport context.

// Mechanism names, as logs, metrics and the status API show them.
const (
	MechanismNull  = "NULL"
	MechanismPlain = "PLAIN"
	MechanismCurve = "CURVE"
)

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

// ConnStats are the connection counters of one front's listening socket,
// kept by the transport below any protocol: a peer that sends garbage, never
// finishes its handshake or breaks framing is counted here, since it never
// reaches a protocol counter. Handshakes refused by the Authenticator are
// split by reason in Stats.
type ConnStats struct {
	// Front names the front ("mdp", "emqp-backend", ...).
	Front string
	// Accepted counts connections accepted on the front's endpoints.
	Accepted uint64
	// Open is the number of connections past their handshake and open.
	Open int
	// HandshakeFailed counts connections closed during the greeting or
	// handshake: garbage, the handshake deadline, a wrong mechanism or
	// socket type. AuthRefused counts those the Authenticator refused.
	HandshakeFailed, AuthRefused uint64
	// ProtocolErrors counts connections closed for a malformed frame or
	// command after the handshake, TooLarge those closed for a frame over
	// the size limit.
	ProtocolErrors, TooLarge uint64
	// RefusedLimit counts connections closed at once because the socket
	// had its maximum of connections.
	RefusedLimit uint64
	// Disconnected counts connections that ended after their handshake.
	Disconnected uint64
	// HWMDropped counts messages dropped at a peer's high-water mark by
	// a socket that drops rather than reports (a PUB socket's slow
	// subscribers); the routers report instead, and the servers count
	// those drops by their own reasons.
	HWMDropped uint64
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

// Mechanism is what the listeners speak: MechanismCurve, MechanismPlain
// or MechanismNull.
func (s *ServerSecurity) Mechanism() string {
	switch {
	case s == nil || s.Plaintext:
		return MechanismNull
	case s.Cert != nil:
		return MechanismCurve
	case s.Authenticator != nil && s.Authenticator.PlainEnabled():
		return MechanismPlain
	}
	return MechanismNull
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

// RefuseMechanism counts, under front, a peer at address that spoke
// mechanism (empty: unknown) to an endpoint speaking another. Such a peer
// never reaches Authenticate, since the handshake fails before a 27/ZAP
// request is made; the transport reports it here so that it is counted
// (RefusedMechanism) and logged like any other refusal.
func (a *Authenticator) RefuseMechanism(front, address, mechanism string) {
	if mechanism == "" {
		mechanism = "?"
	}
	a.refuse(&Request{Domain: front, Address: address, Mechanism: mechanism}, RefusedMechanism, "")
}
