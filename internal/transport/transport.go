// Package transport is the small interface between Majordomo for Go and its
// message transport, with an implementation over libzmq through
// github.com/pebbe/zmq4. Nothing outside this package imports zmq4, so a
// faster binding can replace it without touching the broker.
//
// A Socket is not safe for concurrent use: exactly one goroutine may own it at
// a time (libzmq sockets are not thread-safe). Ownership may be handed to
// another goroutine through a synchronising operation such as a channel send.
package transport

import (
	"errors"
	"fmt"
	"time"
)

// Transport errors, normalised from libzmq errno values.
var (
	// ErrAgain: a non-blocking operation could not proceed (EAGAIN): no
	// message to receive, or the peer's high-water mark is reached.
	ErrAgain = errors.New("transport: resource temporarily unavailable")
	// ErrUnroutable: a ROUTER send named a peer that is not connected
	// (EHOSTUNREACH with ROUTER_MANDATORY).
	ErrUnroutable = errors.New("transport: peer unreachable")
	// ErrInterrupted: a blocking call was interrupted by a signal (EINTR).
	// Callers retry or check for shutdown; see pebbe/zmq4 issue 161.
	ErrInterrupted = errors.New("transport: interrupted system call")
	// ErrClosed: the socket or its context is closed (ETERM, or use after
	// Close).
	ErrClosed = errors.New("transport: closed")
)

// Type is a socket type.
type Type int

// Socket types used by Majordomo.
const (
	Router Type = iota + 1
	Dealer
	Req
	// Rep is used only by the ZAP handler (27/ZAP: "The handler SHALL use
	// a REP or ROUTER socket").
	Rep
	// Pair reads a socket monitor's events (see Socket.Monitor).
	Pair
)

// Socket monitor events that Monitor reports (libzmq's ZMQ_EVENT_*).
const (
	EventAccepted     uint16 = 0x0020 // ZMQ_EVENT_ACCEPTED: a peer connected.
	EventDisconnected uint16 = 0x0200 // ZMQ_EVENT_DISCONNECTED: a peer's connection ended.
)

// ParseMonitorEvent decodes one message of a socket monitor: the event, its
// value and the endpoint it concerns. ok is false for a malformed message.
func ParseMonitorEvent(frames [][]byte) (event uint16, value uint32, endpoint string, ok bool) {
	if len(frames) != 2 || len(frames[0]) != 6 {
		return 0, 0, "", false
	}
	f := frames[0]
	event = uint16(f[0]) | uint16(f[1])<<8
	value = uint32(f[2]) | uint32(f[3])<<8 | uint32(f[4])<<16 | uint32(f[5])<<24
	return event, value, string(frames[1]), true
}

// Mechanism is a ZMTP 3.0 security mechanism.
type Mechanism int

// Security mechanisms.
const (
	// Null is 23/ZMTP NULL: no authentication, no encryption (libzmq's
	// default). A server with a ZAPDomain still asks the ZAP handler, which
	// can filter by address.
	Null Mechanism = iota
	// Plain is 24/ZMTP-PLAIN: a cleartext user name and password, for
	// internal networks only.
	Plain
	// Curve is 25/ZMTP-CURVE (26/CurveZMQ): authenticated and encrypted.
	Curve
)

// Security selects a socket's security mechanism. libzmq does the
// cryptography; this package only sets the socket options.
type Security struct {
	Mechanism Mechanism
	// Server makes the socket the mechanism's server side: it
	// authenticates its peers through the ZAP handler of its context.
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
	// ZAPDomain is ZMQ_ZAP_DOMAIN on a server socket. With Null it is what
	// turns the ZAP request on. Empty leaves the socket's domain as it was
	// (libzmq refuses to clear it).
	ZAPDomain string
}

// validate checks the key sizes before anything reaches libzmq.
func (s *Security) validate() error {
	key := func(name string, k []byte, required bool) error {
		if len(k) == 0 && !required {
			return nil
		}
		if len(k) != 32 {
			return fmt.Errorf("transport: CURVE %s must be 32 bytes, not %d", name, len(k))
		}
		return nil
	}
	switch s.Mechanism {
	case Null:
	case Plain:
		if !s.Server && (s.Username == "" || len(s.Username) > 255 || len(s.Password) > 255) {
			// libzmq treats an empty user name as "back to NULL".
			return errors.New("transport: PLAIN needs a user name; user name and password are at most 255 bytes")
		}
	case Curve:
		if err := key("secret key", s.SecretKey, true); err != nil {
			return err
		}
		if err := key("public key", s.PublicKey, !s.Server); err != nil {
			return err
		}
		if err := key("server key", s.ServerKey, !s.Server); err != nil {
			return err
		}
	default:
		return fmt.Errorf("transport: unknown security mechanism %d", s.Mechanism)
	}
	if len(s.ZAPDomain) > 255 {
		return errors.New("transport: ZAP domain longer than 255 bytes")
	}
	return nil
}

// Options are applied when a socket is created. Zero values leave libzmq's
// defaults, except Linger, where zero means "discard at once".
type Options struct {
	// Identity sets ZMQ_ROUTING_ID on DEALER/REQ sockets (empty: libzmq
	// generates one).
	Identity []byte
	// SendHWM and RecvHWM are ZMQ_SNDHWM/ZMQ_RCVHWM (0: libzmq default 1000).
	SendHWM, RecvHWM int
	// MaxMsgSize is ZMQ_MAXMSGSIZE: libzmq disconnects a peer that sends a
	// frame larger than this (0: unlimited).
	MaxMsgSize int64
	// Linger is ZMQ_LINGER: how long Close waits to flush pending messages.
	Linger time.Duration
	// RouterMandatory makes ROUTER sends to unknown peers fail with
	// ErrUnroutable instead of being silently dropped.
	RouterMandatory bool
	// RouterHandover lets a new connection that presents an identity already
	// in use take it over (ZMQ_ROUTER_HANDOVER).
	RouterHandover bool
	// Immediate is ZMQ_IMMEDIATE: queue messages only to completed
	// connections.
	Immediate bool
	// ReconnectInterval is ZMQ_RECONNECT_IVL (0: libzmq default 100 ms).
	ReconnectInterval time.Duration
	// Security, if not nil, is applied before any Bind or Connect (see
	// Socket.SetSecurity). nil leaves libzmq's NULL mechanism and costs
	// nothing.
	Security *Security
	// UserID makes Recv record the ZAP User-Id that libzmq attaches to each
	// message received over an authenticated connection; Socket.UserID
	// returns it. Off, Recv does no per-message metadata lookup.
	UserID bool
}

// Socket is one transport socket. See the package comment for ownership.
type Socket interface {
	// Bind binds to an endpoint and returns the endpoint actually bound,
	// which differs from the argument when it asked for a wildcard port
	// ("tcp://127.0.0.1:*" or ":0").
	Bind(endpoint string) (string, error)
	// Connect connects to an endpoint.
	Connect(endpoint string) error
	// Send sends one multipart message. With dontwait it returns ErrAgain
	// instead of blocking at the high-water mark.
	Send(frames [][]byte, dontwait bool) error
	// Recv receives one multipart message. A blocking Recv returns
	// ErrInterrupted if Wake is called while it waits. At most maxFrames frames are
	// kept (0: no limit); the rest are read and discarded, and their number
	// is returned as dropped, so that a hostile peer cannot make the caller
	// hold an unbounded frame list. With dontwait it returns ErrAgain when
	// no message is waiting. A message is never split across two calls.
	Recv(maxFrames int, dontwait bool) (frames [][]byte, dropped int, err error)
	// WaitReadable waits up to timeout for a message to arrive and reports
	// whether one is waiting. A negative timeout waits for ever. It returns
	// (false, nil) early if Wake is called.
	WaitReadable(timeout time.Duration) (bool, error)
	// Wake makes a WaitReadable or blocking Recv in progress, or the next
	// one, return at once. Unlike every other method it may be called from
	// any goroutine: it is how other goroutines get the owner's attention.
	Wake()
	// Close closes the socket, lingering as configured.
	Close() error
	// SetSecurity changes the security mechanism for the endpoints bound
	// or connected after it: libzmq fixes a connection's mechanism when
	// Bind or Connect is called, so one socket can serve CURVE on one
	// endpoint and PLAIN on another. nil means NULL.
	SetSecurity(s *Security) error
	// Monitor makes libzmq publish this socket's connection events
	// (EventAccepted, EventDisconnected) on a PAIR socket bound at endpoint,
	// an inproc:// address in the same context; connect a Pair socket to it
	// and decode with ParseMonitorEvent.
	Monitor(endpoint string) error
	// UserID returns the ZAP User-Id of the message the last Recv returned
	// (27/ZAP: the "user id" of the handler's 200 reply), or "" when the
	// connection was not authenticated or Options.UserID is off.
	UserID() string
}

// Context creates sockets and is torn down with Term once they are closed.
type Context interface {
	// NewSocket creates a socket of type t with the given options.
	NewSocket(t Type, o Options) (Socket, error)
	// Term terminates the context; it blocks until every socket is closed.
	Term() error
}
