// Package transport is the small interface between Majordomo for Go and its
// message transport, implemented by the pure-Go ZMTP engine in
// internal/zmtp (no cgo, no libzmq). Everything above it speaks only this
// package's types.
//
// A Socket is not safe for concurrent use: exactly one goroutine may own it at
// a time. Ownership may be handed to another goroutine through a
// synchronising operation such as a channel send. Wake, Connections and
// Stats may be called from any goroutine.
package transport

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/majordomo-go/majordomo/internal/zmtp"
	"github.com/majordomo-go/majordomo/internal/zmtp/mech"
)

// Transport errors.
var (
	// ErrAgain: a non-blocking operation could not proceed: no message to
	// receive, or the peer's high-water mark is reached.
	ErrAgain = zmtp.ErrAgain
	// ErrUnroutable: a ROUTER send named a peer that is not connected.
	ErrUnroutable = zmtp.ErrUnroutable
	// ErrInterrupted: Wake interrupted a blocking call.
	ErrInterrupted = zmtp.ErrInterrupted
	// ErrClosed: the socket or its context is closed.
	ErrClosed = zmtp.ErrClosed
)

// Type is a socket type.
type Type int

// Socket types used by Majordomo.
const (
	Router Type = iota + 1
	Dealer
	Req
	// Pub and Sub serve publish-subscribe fronts such as eMQP's.
	Pub
	Sub
)

// Mechanism is a ZMTP 3 security mechanism.
type Mechanism int

// Security mechanisms.
const (
	// Null is 23/ZMTP NULL: no authentication, no encryption. A server with
	// a ZAPDomain still asks the context's authenticator, which can filter
	// by address.
	Null Mechanism = iota
	// Plain is 24/ZMTP-PLAIN: a cleartext user name and password, for
	// internal networks only.
	Plain
	// Curve is 25/ZMTP-CURVE (26/CurveZMQ): authenticated and encrypted.
	Curve
)

// Security selects a socket's security mechanism.
type Security struct {
	Mechanism Mechanism
	// Server makes the socket the mechanism's server side: it
	// authenticates its peers through its context's authenticator.
	Server bool
	// PublicKey and SecretKey are the socket's own long-term CURVE key pair
	// (32 raw bytes each). A server needs only SecretKey.
	PublicKey, SecretKey []byte
	// ServerKey is the CURVE server's public key, for a client (26/CurveZMQ:
	// "the clients MUST know the server public key before they can
	// connect").
	ServerKey []byte
	// Username and Password are a PLAIN client's credentials.
	Username, Password string
	// ZAPDomain is the authentication domain (27/ZAP "domain") passed to
	// the authenticator. With Null it is what turns authentication on.
	ZAPDomain string
	// MechanismMismatch, if set, is called when a peer connects with
	// another mechanism (a plaintext peer at a CURVE endpoint); the
	// connection is closed before any authentication. peerMechanism is ""
	// when the peer closed during the greeting after reading ours (libzmq's
	// way of refusing our mechanism).
	MechanismMismatch func(address, peerMechanism string)
}

// engine converts s to the engine's form.
func (s *Security) engine() (*zmtp.Security, error) {
	if s == nil {
		return nil, nil
	}
	z := &zmtp.Security{Server: s.Server, PublicKey: s.PublicKey, SecretKey: s.SecretKey,
		ServerKey: s.ServerKey, Username: s.Username, Password: s.Password, Domain: s.ZAPDomain,
		MechanismMismatch: s.MechanismMismatch}
	switch s.Mechanism {
	case Null:
		z.Mechanism = "NULL"
	case Plain:
		z.Mechanism = "PLAIN"
	case Curve:
		z.Mechanism = "CURVE"
	default:
		return nil, fmt.Errorf("transport: unknown security mechanism %d", s.Mechanism)
	}
	// The engine validates it (NewSocket, SetSecurity).
	return z, nil
}

// Options are applied when a socket is created. Zero values take the
// engine's defaults (libzmq's where libzmq has one), except Linger, where
// zero means "discard at once".
type Options struct {
	// Identity is the routing id a DEALER or REQ socket announces (empty: the
	// ROUTER peer generates one).
	Identity []byte
	// SendHWM is the most messages queued toward one peer, RecvHWM the most
	// received but not yet taken (0: 1000 each).
	SendHWM, RecvHWM int
	// MaxMsgSize is the largest frame a peer may send; a larger one closes
	// the connection (0: 64 MiB).
	MaxMsgSize int64
	// Linger is how long Close keeps flushing pending messages.
	Linger time.Duration
	// RouterMandatory makes ROUTER sends to unknown peers fail with
	// ErrUnroutable instead of being silently dropped.
	RouterMandatory bool
	// RouterHandover lets a new connection that presents an identity already
	// in use take it over.
	RouterHandover bool
	// Immediate queues messages only to completed connections.
	Immediate bool
	// ReconnectInterval is the first delay before a reconnect (0: 100 ms).
	ReconnectInterval time.Duration
	// HeartbeatInterval makes the socket send a ZMTP 3.1 PING this often on
	// each connection and close one that stays silent for three intervals
	// (0: off). PINGs from peers are always answered.
	HeartbeatInterval time.Duration
	// MaxConnections caps the connections a bound socket accepts (0:
	// 65536); Logger, if set, says so once when the cap is reached.
	MaxConnections int
	Logger         *slog.Logger
	// BatchSends defers the writes of sends made while the owner works
	// through a batch of received messages to the batch's end (one write
	// per peer per batch). Only for loops that always come back to Recv,
	// WaitReadable or Flush.
	BatchSends bool
	// Security, if not nil, is applied before any Bind or Connect (see
	// Socket.SetSecurity). nil means NULL.
	Security *Security
	// UserID is accepted for compatibility; the User-Id is always recorded.
	UserID bool
}

// Stats are a socket's connection counters.
type Stats = zmtp.Stats

// Socket is one transport socket. See the package comment for ownership.
type Socket interface {
	// Bind binds to an endpoint and returns the endpoint actually bound,
	// which differs from the argument when it asked for a wildcard port
	// ("tcp://127.0.0.1:*" or ":0").
	Bind(endpoint string) (string, error)
	// Connect connects to an endpoint, reconnecting after every loss.
	Connect(endpoint string) error
	// Send sends one multipart message. With dontwait it returns ErrAgain
	// instead of blocking at the high-water mark.
	Send(frames [][]byte, dontwait bool) error
	// Recv receives one multipart message. A blocking Recv returns
	// ErrInterrupted if Wake is called while it waits. At most maxFrames
	// frames are kept (0: no limit); the rest are discarded, and their
	// number is returned as dropped. With dontwait it returns ErrAgain when
	// no message is waiting. A message is never split across two calls.
	Recv(maxFrames int, dontwait bool) (frames [][]byte, dropped int, err error)
	// WaitReadable waits up to timeout for a message to arrive and reports
	// whether one is waiting. A negative timeout waits for ever. It returns
	// (false, nil) early if Wake is called. It writes pending sends first.
	WaitReadable(timeout time.Duration) (bool, error)
	// Flush writes the sends a BatchSends socket deferred, or that
	// followed Hold.
	Flush()
	// Hold defers the writes of the sends that follow until Flush, Recv,
	// WaitReadable or Close: a burst of sends then costs one write per
	// connection.
	Hold()
	// Wake makes a WaitReadable or blocking Recv in progress, or the next
	// one, return at once. Any goroutine may call it.
	Wake()
	// Close closes the socket, lingering as configured.
	Close() error
	// SetSecurity changes the security mechanism for the endpoints bound
	// or connected after it, so one socket can serve CURVE on one endpoint
	// and PLAIN on another. nil means NULL.
	SetSecurity(s *Security) error
	// UserID returns the authenticated User-Id of the connection that sent
	// the message the last Recv returned (27/ZAP: the "user id" of the
	// authenticator's 200 answer), or "" when it was not authenticated.
	UserID() string
	// Connections is the number of connections past their handshake. Any
	// goroutine may call it.
	Connections() int
	// Stats returns the socket's connection counters. Any goroutine may
	// call it.
	Stats() Stats
}

// Context creates sockets; inproc:// endpoints are private to a context.
type Context interface {
	// NewSocket creates a socket of type t with the given options.
	NewSocket(t Type, o Options) (Socket, error)
	// SetAuthenticator sets the authenticator that server sockets of this
	// context ask about every connecting peer (what libzmq's ZAP handler
	// did); nil accepts every peer.
	SetAuthenticator(a Authenticator)
	// Authenticator returns the context's authenticator, or nil.
	Authenticator() Authenticator
	// Term ends the context; close its sockets first.
	Term() error
}

// AuthRequest is what an Authenticator is asked: 27/ZAP's request fields.
type AuthRequest = mech.AuthRequest

// AuthResult is an Authenticator's answer (Status 200 admits the peer).
type AuthResult = mech.AuthResult

// Authenticator decides whether a peer may connect; see Context.
type Authenticator = mech.Authenticator

// CheckEndpoint reports whether Bind (bind) or Connect would accept
// endpoint: tcp://HOST:PORT (a wildcard host or port only to bind),
// ipc://PATH or inproc://NAME. Configuration checks use it so that they
// apply the engine's own rule.
func CheckEndpoint(endpoint string, bind bool) error { return zmtp.CheckEndpoint(endpoint, bind) }
