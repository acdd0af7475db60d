package zmtp

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/majordomo-go/majordomo/internal/zmtp/mech"
)

// Errors returned by sockets.
var (
	// ErrAgain: a non-blocking operation could not proceed: no message
	// waiting, or every eligible peer is at its high-water mark.
	ErrAgain = errors.New("zmtp: resource temporarily unavailable")
	// ErrUnroutable: a ROUTER send named a peer that is not connected.
	ErrUnroutable = errors.New("zmtp: peer unreachable")
	// ErrInterrupted: Wake interrupted a blocking call.
	ErrInterrupted = errors.New("zmtp: interrupted")
	// ErrClosed: the socket or its context is closed.
	ErrClosed = errors.New("zmtp: closed")
	// ErrEndpoint: an endpoint string is malformed or of an unknown
	// transport.
	ErrEndpoint = errors.New("zmtp: bad endpoint")
	// ErrInUse: Bind to an inproc name or address that is taken.
	ErrInUse = errors.New("zmtp: address in use")
	// ErrNotSupported: an operation the socket type does not have (Recv
	// on PUB, Send on SUB).
	ErrNotSupported = errors.New("zmtp: operation not supported by this socket type")
)

// Type is a socket type; the names are those of 23/ZMTP's Socket-Type
// property.
type Type int

// Socket types. Only those the project uses exist.
const (
	Router Type = iota + 1
	Dealer
	Req
	Pub
	Sub
)

func (t Type) String() string {
	switch t {
	case Router:
		return "ROUTER"
	case Dealer:
		return "DEALER"
	case Req:
		return "REQ"
	case Pub:
		return "PUB"
	case Sub:
		return "SUB"
	}
	return "UNKNOWN"
}

// compatible reports whether a peer of Socket-Type peer may talk to a socket
// of type t (23/ZMTP "Socket Types": the valid combinations; libzmq also
// accepts XPUB/XSUB in place of PUB/SUB).
func (t Type) compatible(peer string) bool {
	switch t {
	case Router:
		return peer == "DEALER" || peer == "REQ" || peer == "ROUTER"
	case Dealer, Req:
		return peer == "ROUTER" || peer == "REP" || peer == "DEALER"
	case Pub:
		return peer == "SUB" || peer == "XSUB"
	case Sub:
		return peer == "PUB" || peer == "XPUB"
	}
	return false
}

// Security selects a socket's security mechanism for the endpoints bound or
// connected after it is set. The zero value is NULL without authentication.
type Security struct {
	// Mechanism is mech.Null, mech.Plain or mech.Curve ("" means NULL).
	Mechanism string
	// Server makes the socket the mechanism's server side.
	Server bool
	// PublicKey and SecretKey are the socket's CURVE key pair (32 raw bytes
	// each); a server needs only SecretKey.
	PublicKey, SecretKey []byte
	// ServerKey is a CURVE client's copy of the server's public key.
	ServerKey []byte
	// Username and Password are a PLAIN client's credentials.
	Username, Password string
	// Domain is the authentication domain passed to the Authenticator (27/ZAP
	// "domain"). A NULL server asks the Authenticator only when it is set.
	Domain string
	// MechanismMismatch, if set, is called (from a connection goroutine)
	// when a peer's greeting names another mechanism than ours, before any
	// authentication: the connection is then closed (23/ZMTP). Servers use
	// it to count plaintext peers at secured endpoints. peerMechanism is
	// "" when the peer closed during the greeting after reading ours, as
	// libzmq does when our mechanism is not its own.
	MechanismMismatch func(address, peerMechanism string)
	// Auth authenticates peers on a server socket. nil: the context's
	// authenticator, if any; none accepts every peer (libzmq without a ZAP
	// handler).
	Auth mech.Authenticator
}

// Options configure a socket at creation.
type Options struct {
	// Identity is the routing id this socket announces in its READY
	// (Identity property); a ROUTER peer routes to it by that name.
	Identity []byte
	// SendHWM is the most messages queued toward one peer (default 1000);
	// beyond it a send to that peer fails with ErrAgain or is dropped, as
	// libzmq's ZMQ_SNDHWM.
	SendHWM int
	// RecvHWM bounds the messages received but not yet taken by Recv over
	// the whole socket (default 1000); readers stop reading beyond it.
	RecvHWM int
	// MaxMsgSize is the largest frame a peer may send (0: 64 MiB); a larger
	// frame header closes the connection before anything is allocated.
	MaxMsgSize int64
	// MaxFrames is the most frames kept per message (0: 65536); further
	// frames are read and discarded, and Recv reports their number.
	MaxFrames int
	// Linger is how long Close keeps flushing queued messages.
	Linger time.Duration
	// RouterMandatory makes a ROUTER send to an unknown peer fail with
	// ErrUnroutable instead of being dropped silently.
	RouterMandatory bool
	// RouterHandover lets a new connection announcing an identity already
	// in use take it over; without it the newcomer is refused.
	RouterHandover bool
	// Immediate queues messages only to connected peers.
	Immediate bool
	// ReconnectInterval is the first delay before reconnecting (default
	// 100 ms); it doubles up to ReconnectIntervalMax (default 5 s).
	ReconnectInterval, ReconnectIntervalMax time.Duration
	// HandshakeTimeout bounds greeting and security handshake (default 10 s).
	HandshakeTimeout time.Duration
	// HeartbeatInterval sends a 37/ZMTP PING to each 3.1 peer this often
	// (0: off); HeartbeatTimeout closes a connection silent that long after
	// a PING (default 3 intervals); HeartbeatTTL is the TTL asked of the
	// peer (default HeartbeatTimeout).
	HeartbeatInterval, HeartbeatTimeout, HeartbeatTTL time.Duration
	// MaxConnections caps the accepted connections of the socket that are
	// open, in their handshake or past it (0: 65536); beyond it new
	// connections are closed at once and counted.
	MaxConnections int
	// Security, if not nil, is set before any Bind or Connect.
	Security *Security
	// Batch defers the writes of sends made while the owner works through
	// a batch of received messages (see Socket) to the end of the batch: one
	// write per peer per batch instead of one per message. Only for owners
	// that always come back to Recv, WaitReadable or Flush; off, every send
	// is written at once.
	Batch bool
	// Logger receives the socket's rare operational messages (connection
	// limit reached); nil logs nothing.
	Logger *slog.Logger
	// Subscribe lists the SUB socket's initial prefixes.
	Subscribe [][]byte
}

func (o *Options) defaults() {
	if o.SendHWM <= 0 {
		o.SendHWM = 1000
	}
	if o.RecvHWM <= 0 {
		o.RecvHWM = 1000
	}
	if o.MaxMsgSize <= 0 {
		o.MaxMsgSize = 64 << 20
	}
	if o.MaxFrames <= 0 {
		o.MaxFrames = 1 << 16
	}
	if o.ReconnectInterval <= 0 {
		o.ReconnectInterval = 100 * time.Millisecond
	}
	if o.ReconnectIntervalMax < o.ReconnectInterval {
		o.ReconnectIntervalMax = 5 * time.Second
		if o.ReconnectIntervalMax < o.ReconnectInterval {
			o.ReconnectIntervalMax = o.ReconnectInterval
		}
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.HeartbeatInterval > 0 && o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = 3 * o.HeartbeatInterval
	}
	if o.HeartbeatTTL <= 0 {
		o.HeartbeatTTL = o.HeartbeatTimeout
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 1 << 16
	}
}

// Validate checks key sizes and names before any connection uses them.
func (sec *Security) Validate() error {
	key := func(name string, k []byte, required bool) error {
		if len(k) == 0 && !required {
			return nil
		}
		if len(k) != 32 {
			return fmt.Errorf("zmtp: CURVE %s must be 32 bytes, not %d", name, len(k))
		}
		return nil
	}
	switch sec.Mechanism {
	case "", mech.Null:
	case mech.Plain:
		if !sec.Server && (sec.Username == "" || len(sec.Username) > 255 || len(sec.Password) > 255) {
			return errors.New("zmtp: PLAIN needs a user name; user name and password are at most 255 bytes")
		}
	case mech.Curve:
		if err := key("secret key", sec.SecretKey, true); err != nil {
			return err
		}
		if err := key("public key", sec.PublicKey, !sec.Server); err != nil {
			return err
		}
		if err := key("server key", sec.ServerKey, !sec.Server); err != nil {
			return err
		}
	default:
		return fmt.Errorf("zmtp: unknown security mechanism %q", sec.Mechanism)
	}
	if len(sec.Domain) > 255 {
		return errors.New("zmtp: authentication domain longer than 255 bytes")
	}
	return nil
}
