package transport

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/majordomo-go/majordomo/internal/zmtp"
	"github.com/majordomo-go/majordomo/internal/zmtp/mech"
)

// NewContext returns a context of the pure-Go ZMTP engine.
func NewContext() (Context, error) {
	return &context{zc: zmtp.NewContext()}, nil
}

type context struct{ zc *zmtp.Context }

func (c *context) SetAuthenticator(a Authenticator) { c.zc.SetAuthenticator(a) }

func (c *context) Authenticator() Authenticator { return c.zc.Authenticator() }

func (c *context) Term() error { return c.zc.Term() }

func (c *context) NewSocket(t Type, o Options) (Socket, error) {
	return newSocket(c, t, o, nil)
}

// NewPub creates a PUB socket, and NewSub a SUB socket subscribed to the
// given prefixes (none: nothing; an empty prefix: everything). A PUB socket
// never blocks a sender: at a subscriber's high-water mark the message is
// dropped for that subscriber, which is PUB's contract.
func NewPub(c Context, o Options) (Socket, error) { return c.NewSocket(Pub, o) }

// NewSub creates a SUB socket; see NewPub.
func NewSub(c Context, o Options, prefixes ...[]byte) (Socket, error) {
	cc, ok := c.(*context)
	if !ok {
		return nil, fmt.Errorf("transport: NewSub: unsupported context %T", c)
	}
	if prefixes == nil {
		prefixes = [][]byte{}
	}
	return newSocket(cc, Sub, o, prefixes)
}

func newSocket(c *context, t Type, o Options, subs [][]byte) (Socket, error) {
	var zt zmtp.Type
	switch t {
	case Router:
		zt = zmtp.Router
	case Dealer:
		zt = zmtp.Dealer
	case Req:
		zt = zmtp.Req
	case Pub:
		zt = zmtp.Pub
	case Sub:
		zt = zmtp.Sub
	default:
		return nil, fmt.Errorf("transport: unknown socket type %d", t)
	}
	sec, err := o.Security.engine()
	if err != nil {
		return nil, err
	}
	if o.Linger < 0 {
		o.Linger = time.Hour
	}
	zs, err := c.zc.NewSocket(zt, zmtp.Options{
		Identity: o.Identity, SendHWM: o.SendHWM, RecvHWM: o.RecvHWM, MaxMsgSize: o.MaxMsgSize,
		Linger: o.Linger, RouterMandatory: o.RouterMandatory, RouterHandover: o.RouterHandover,
		Immediate: o.Immediate, ReconnectInterval: o.ReconnectInterval,
		HeartbeatInterval: o.HeartbeatInterval, MaxConnections: o.MaxConnections, Logger: o.Logger,
		Batch:    o.BatchSends,
		Security: sec, Subscribe: subs,
	})
	if err != nil {
		return nil, fmt.Errorf("transport: new socket: %w", err)
	}
	return &socket{zs}, nil
}

// socket adapts *zmtp.Socket to Socket.
type socket struct{ *zmtp.Socket }

func (s *socket) SetSecurity(sec *Security) error {
	z, err := sec.engine()
	if err != nil {
		return err
	}
	return s.Socket.SetSecurity(z)
}

// CurveKeypair returns a new long-term CURVE key pair (X25519), as 32 raw
// bytes each.
func CurveKeypair() (public, secret [32]byte, err error) {
	p, s, err := mech.CurveKeypair()
	if err != nil {
		return public, secret, err
	}
	copy(public[:], p)
	copy(secret[:], s)
	return public, secret, nil
}

// CurvePublic derives the public key of a CURVE secret key, so that a
// certificate's two keys can be checked against each other.
func CurvePublic(secret [32]byte) ([32]byte, error) {
	var public [32]byte
	p, err := mech.CurvePublic(secret[:])
	if err != nil {
		return public, err
	}
	copy(public[:], p)
	return public, nil
}

// ErrWoken is returned by Poller.Wait when Wake interrupted it.
var ErrWoken = errors.New("transport: poller woken")

// MaxPollerSockets is the most sockets one Poller waits on.
const MaxPollerSockets = 64

// Poller lets the one goroutine that owns several sockets wait until any of
// them has a message, a timeout passes, or another goroutine calls Wake.
// The sockets share one notification channel, so a wait costs one select
// whatever their number.
type Poller struct {
	socks  []*zmtp.Socket
	notify chan struct{}
	wake   chan struct{}
	closed bool
}

// NewPoller returns a Poller over socks (1 to MaxPollerSockets sockets of
// this package). Sockets must not be polled by two Pollers.
func NewPoller(socks ...Socket) (*Poller, error) {
	if len(socks) == 0 || len(socks) > MaxPollerSockets {
		return nil, fmt.Errorf("transport: Poller needs 1 to %d sockets, not %d", MaxPollerSockets, len(socks))
	}
	p := &Poller{notify: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
	for _, s := range socks {
		zs, ok := s.(*socket)
		if !ok {
			return nil, fmt.Errorf("transport: Poller: unsupported socket type %T", s)
		}
		p.socks = append(p.socks, zs.Socket)
	}
	for _, zs := range p.socks {
		zs.SetNotify(p.notify)
	}
	return p, nil
}

// Wake makes a Wait in progress, or the next one, return at once. Any
// goroutine may call it.
func (p *Poller) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Check returns the set of sockets (bit i for socks[i]) with a message
// waiting, without blocking. It writes pending sends first.
func (p *Poller) Check() (uint64, error) {
	if p.closed {
		return 0, ErrClosed
	}
	var set uint64
	for i, s := range p.socks {
		ok, err := s.WaitReadable(0)
		if err != nil {
			return 0, err
		}
		if ok {
			set |= 1 << i
		}
	}
	return set, nil
}

// Wait returns the set of sockets that have a message waiting, as soon as
// there is one, or 0 when timeout passes (a negative timeout waits for
// ever). It returns 0 and ErrWoken when Wake was called.
func (p *Poller) Wait(timeout time.Duration) (uint64, error) {
	var timer <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	for {
		set, err := p.Check()
		if set != 0 || err != nil {
			return set, err
		}
		select {
		case <-p.notify:
			// A reader woke us: let the readers the same network poll made
			// runnable hand over first, for one batch (zmtp's WaitReadable
			// does the same for a batching socket).
			runtime.Gosched()
		case <-p.wake:
			return 0, ErrWoken
		case <-timer:
			return 0, nil
		}
	}
}

// Close releases the Poller; it does not close the sockets.
func (p *Poller) Close() error {
	p.closed = true
	return nil
}
