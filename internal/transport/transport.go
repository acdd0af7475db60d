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
)

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
}

// Context creates sockets and is torn down with Term once they are closed.
type Context interface {
	// NewSocket creates a socket of type t with the given options.
	NewSocket(t Type, o Options) (Socket, error)
	// Term terminates the context; it blocks until every socket is closed.
	Term() error
}
