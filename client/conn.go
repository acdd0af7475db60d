package client

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/majordomo-go/majordomo/internal/peercfg"
	"github.com/majordomo-go/majordomo/internal/transport"
)

type sockRef struct{ s transport.Socket }

// errNoSocket: the socket could not be reopened after a failure.
var errNoSocket = errors.New("client: no socket")

// conn is one DEALER socket to the broker plus the messages waiting to be
// written to it. It belongs to a single owner goroutine (transport sockets
// are not goroutine-safe), except wake, which any goroutine may call.
type conn struct {
	zctx     transport.Context
	endpoint string
	opts     transport.Options
	sock     transport.Socket
	// cur publishes sock to other goroutines, for wake only.
	cur atomic.Pointer[sockRef]
	// outq holds messages refused with ErrAgain (high-water mark reached),
	// oldest first: the owner goroutine must never block in Send, or it
	// would stop reading replies and the broker would drop them.
	outq [][][]byte

	// watch makes the conn count lost connections (Client only: a
	// Pipeline never resends, so it has no use for it).
	watch bool
	// drops counts the connections to the broker that ended, over every
	// socket this conn has had (the transport's Disconnected counter). A
	// request sent when drops was lower went over a connection that is
	// gone. base holds the counts of sockets already closed.
	drops, base uint64
}

func newConn(zctx transport.Context, endpoint string, hwm int, sec *transport.Security, watch bool) *conn {
	return &conn{zctx: zctx, endpoint: endpoint, watch: watch, opts: transport.Options{
		Security: sec, // nil: no security.
		// Linger 0: a closed socket's unsent requests are void by
		// definition (Lazy Pirate resends them on the new socket).
		Linger:  0,
		SendHWM: hwm,
		RecvHWM: hwm,
	}}
}

// open creates and connects a new socket, replacing (and closing) any old
// one. Unsent messages of the old socket are discarded.
func (c *conn) open() error {
	c.close()
	s, err := peercfg.Dial(c.zctx, c.endpoint, c.opts)
	if err != nil {
		return err
	}
	c.sock = s
	c.cur.Store(&sockRef{s})
	return nil
}

// pollDrops returns drops, updated from the socket's counter.
func (c *conn) pollDrops() uint64 {
	if !c.watch {
		return c.drops
	}
	c.drops = c.base
	if c.sock != nil {
		c.drops += uint64(c.sock.Stats().Disconnected)
	}
	return c.drops
}

func (c *conn) close() {
	if c.sock != nil {
		c.base += uint64(c.sock.Stats().Disconnected)
		c.cur.Store(nil)
		c.sock.Close()
		c.sock = nil
	}
	clear(c.outq)
	c.outq = c.outq[:0]
}

// send writes one message, or queues it behind earlier queued ones.
func (c *conn) send(frames [][]byte) error {
	if c.sock == nil {
		return errNoSocket
	}
	if len(c.outq) == 0 {
		err := c.sock.Send(frames, true)
		if err == nil {
			return nil
		}
		if !errors.Is(err, transport.ErrAgain) && !errors.Is(err, transport.ErrInterrupted) {
			return err
		}
	}
	c.outq = append(c.outq, frames)
	return nil
}

// hold defers the socket's writes until the next flush, so that a burst
// of sends is one write.
func (c *conn) hold() {
	if c.sock != nil {
		c.sock.Hold()
	}
}

// flush writes queued messages until the socket refuses one, then writes
// what hold deferred.
func (c *conn) flush() error {
	if c.sock == nil {
		return errNoSocket
	}
	defer c.sock.Flush()
	n := 0
	for n < len(c.outq) {
		err := c.sock.Send(c.outq[n], true)
		if err != nil {
			if errors.Is(err, transport.ErrAgain) || errors.Is(err, transport.ErrInterrupted) {
				break
			}
			return err
		}
		c.outq[n] = nil
		n++
	}
	if n > 0 {
		c.outq = append(c.outq[:0], c.outq[n:]...)
	}
	return nil
}

// recv returns the next waiting message, or nil when there is none.
func (c *conn) recv() ([][]byte, error) {
	if c.sock == nil {
		return nil, errNoSocket
	}
	frames, _, err := c.sock.Recv(0, true)
	if err != nil {
		if errors.Is(err, transport.ErrAgain) || errors.Is(err, transport.ErrInterrupted) {
			return nil, nil
		}
		return nil, fmt.Errorf("client: recv: %w", err)
	}
	return frames, nil
}

// wake interrupts the owner's wait (transport.Socket.Wake), so that it looks
// at its channel at once. Any goroutine may call it. A wake that reaches a
// socket just replaced is harmless: the owner checks its channel before it
// waits on the new one.
func (c *conn) wake() {
	if r := c.cur.Load(); r != nil {
		r.s.Wake()
	}
}

// wait waits up to d (d < 0: no limit) for a message; an interrupted or
// woken wait reports false.
func (c *conn) wait(d time.Duration) (bool, error) {
	if c.sock == nil {
		return false, errNoSocket
	}
	ok, err := c.sock.WaitReadable(d)
	if errors.Is(err, transport.ErrInterrupted) {
		return false, nil
	}
	return ok, err
}
