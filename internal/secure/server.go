package secure

import (
	"errors"
	"sync"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/internal/transport"
)

// MechanismName returns the 23/ZMTP name of m, as auth names mechanisms.
func MechanismName(m transport.Mechanism) string {
	switch m {
	case transport.Plain:
		return auth.MechanismPlain
	case transport.Curve:
		return auth.MechanismCurve
	}
	return auth.MechanismNull
}

// Mechanism is the transport mechanism the listeners of s speak (a nil s:
// NULL).
func Mechanism(s *auth.ServerSecurity) transport.Mechanism {
	switch s.Mechanism() {
	case auth.MechanismCurve:
		return transport.Curve
	case auth.MechanismPlain:
		return transport.Plain
	}
	return transport.Null
}

// Socket returns the server-side transport security for a listening socket
// of front speaking m: the ZAP domain is the front's name, so that every
// handshake on it, NULL ones included, reaches the Authenticator and is
// counted under the front. m Curve needs s.Cert.
func Socket(s *auth.ServerSecurity, front string, m transport.Mechanism) (*transport.Security, error) {
	if front == "" {
		// 27/ZAP: the domain "SHALL contain a (non-empty) string".
		return nil, errors.New("auth: a front needs a name (its ZAP domain)")
	}
	ts := &transport.Security{Mechanism: m, Server: true, ZAPDomain: front}
	if s == nil {
		return ts, nil
	}
	if a := s.Authenticator; a != nil {
		// A peer speaking another mechanism never reaches authentication:
		// count it here, under this front, as a mechanism refusal.
		ts.MechanismMismatch = func(address, peer string) { a.RefuseMechanism(front, address, peer) }
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

// Listen sets sock to speak the mechanism of s on the endpoints it binds
// from now on, counted under front, binds endpoint and returns the Listener
// bound. It is the one way a server of this module opens a listening
// endpoint when security is on, so that no front is left out.
func Listen(s *auth.ServerSecurity, sock transport.Socket, front, endpoint string) (auth.Listener, error) {
	return ListenWith(s, sock, front, endpoint, Mechanism(s))
}

// ListenWith is Listen with an explicit mechanism (for PLAIN endpoints
// next to CURVE ones).
func ListenWith(s *auth.ServerSecurity, sock transport.Socket, front, endpoint string, m transport.Mechanism) (auth.Listener, error) {
	ts, err := Socket(s, front, m)
	if err != nil {
		return auth.Listener{}, err
	}
	// The transport fixes an endpoint's mechanism when it is bound.
	if err := sock.SetSecurity(ts); err != nil {
		return auth.Listener{}, err
	}
	bound, err := sock.Bind(endpoint)
	if err != nil {
		return auth.Listener{}, err
	}
	return auth.Listener{Front: front, Endpoint: bound, Mechanism: MechanismName(m)}, nil
}

// ConnStats reads the connection counters of sock, the listening socket of
// front. Any goroutine may call it.
func ConnStats(front string, sock transport.Socket) auth.ConnStats {
	st := sock.Stats()
	return auth.ConnStats{
		Front: front, Accepted: uint64(st.Accepted), Open: int(st.Active),
		HandshakeFailed: uint64(st.HandshakeFailed), AuthRefused: uint64(st.AuthRefused),
		ProtocolErrors: uint64(st.ProtocolErrors), TooLarge: uint64(st.TooLarge),
		RefusedLimit: uint64(st.RefusedLimit), Disconnected: uint64(st.Disconnected),
		HWMDropped: uint64(st.Dropped),
	}
}

// Context installs a as the authentication hook of zctx (27/ZAP: "The
// handler SHALL start before any server starts": call it before any socket
// of zctx binds) and returns the context to use from then on: its Term
// removes the hook first. One hook serves a context.
func Context(zctx transport.Context, a *auth.Authenticator) (transport.Context, error) {
	h, err := startHandler(zctx, a)
	if err != nil {
		return nil, err
	}
	return &securedContext{Context: zctx, zap: h}, nil
}

type securedContext struct {
	transport.Context
	zap  *handler
	once sync.Once
}

func (c *securedContext) Term() error {
	c.once.Do(c.zap.stop)
	return c.Context.Term()
}
