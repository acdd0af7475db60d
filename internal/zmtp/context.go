// Package zmtp is a pure-Go ZeroMQ transport: ZMTP 3.0 and 3.1 (23/ZMTP,
// 37/ZMTP) over tcp:// and ipc://, an in-process inproc:// transport, the
// NULL, PLAIN and CURVE security mechanisms (package mech), and the socket
// types Majordomo needs (ROUTER, DEALER, REQ, PUB, SUB) with libzmq's
// observable semantics. It knows nothing of Majordomo.
//
// The I/O follows nats-server: one reader goroutine per connection cuts
// every complete frame of a read and hands whole messages to the socket's
// owner in one batch; the owner writes into per-connection buffers and
// writes each connection once per batch, itself, without blocking.
package zmtp

import (
	"fmt"
	"sync"

	"github.com/majordomo-go/majordomo/internal/zmtp/mech"
)

// Context holds the inproc:// namespace and the default authenticator of
// its sockets (libzmq's context, with the ZAP handler replaced by a call).
type Context struct {
	mu      sync.Mutex
	auth    mech.Authenticator
	inproc  map[string]*Socket
	waiting map[string][]inprocWait // Connects made before the Bind.
	sockets map[*Socket]struct{}
	closed  bool
}

type inprocWait struct {
	s *Socket
	p *pipe
}

// NewContext returns an empty context.
func NewContext() *Context {
	return &Context{inproc: map[string]*Socket{}, waiting: map[string][]inprocWait{}, sockets: map[*Socket]struct{}{}}
}

// SetAuthenticator sets the authenticator of the context's server sockets
// whose Security names none; nil removes it (every peer is accepted).
func (c *Context) SetAuthenticator(a mech.Authenticator) {
	c.mu.Lock()
	c.auth = a
	c.mu.Unlock()
}

// Authenticator returns the context's authenticator, or nil.
func (c *Context) Authenticator() mech.Authenticator { return c.authenticator() }

func (c *Context) authenticator() mech.Authenticator {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.auth
}

// NewSocket creates a socket of type t.
func (c *Context) NewSocket(t Type, o Options) (*Socket, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if o.Security != nil {
		if err := o.Security.Validate(); err != nil {
			return nil, err
		}
	}
	s, err := newSocket(c, t, o)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.sockets[s] = struct{}{}
	c.mu.Unlock()
	return s, nil
}

// Term marks the context closed: no new sockets. Sockets still open keep
// working until closed.
func (c *Context) Term() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func (c *Context) forget(s *Socket) {
	c.mu.Lock()
	delete(c.sockets, s)
	c.mu.Unlock()
}

func (c *Context) bindInproc(name string, s *Socket) error {
	c.mu.Lock()
	if _, taken := c.inproc[name]; taken {
		c.mu.Unlock()
		return fmt.Errorf("%w: inproc://%s", ErrInUse, name)
	}
	c.inproc[name] = s
	waiting := c.waiting[name]
	delete(c.waiting, name)
	c.mu.Unlock()
	for _, w := range waiting {
		pairInproc(w.s, w.p, s)
	}
	return nil
}

func (c *Context) connectInproc(name string, s *Socket, p *pipe) error {
	c.mu.Lock()
	bound := c.inproc[name]
	if bound == nil {
		// libzmq lets inproc connect before bind; the pipe waits.
		c.waiting[name] = append(c.waiting[name], inprocWait{s, p})
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	if !bound.typ.compatible(s.typ.String()) {
		return fmt.Errorf("zmtp: inproc://%s: %s cannot talk to %s", name, s.typ, bound.typ)
	}
	pairInproc(s, p, bound)
	return nil
}

// unbind removes s's inproc names and its waiting connects.
func (c *Context) unbind(s *Socket) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, b := range c.inproc {
		if b == s {
			delete(c.inproc, name)
		}
	}
	for name, ws := range c.waiting {
		keep := ws[:0]
		for _, w := range ws {
			if w.s != s {
				keep = append(keep, w)
			}
		}
		if len(keep) == 0 {
			delete(c.waiting, name)
		} else {
			c.waiting[name] = keep
		}
	}
}

// subscriptions are a PUB peer's prefixes with counts (37/ZMTP:
// "Subscriptions SHALL be additive and SHALL NOT be idempotent").
type subscriptions struct {
	list []subEntry
}

type subEntry struct {
	prefix string
	n      int
}

func (ss *subscriptions) add(t []byte) {
	for i := range ss.list {
		if ss.list[i].prefix == string(t) {
			ss.list[i].n++
			return
		}
	}
	ss.list = append(ss.list, subEntry{string(t), 1})
}

func (ss *subscriptions) remove(t []byte) {
	for i := range ss.list {
		if ss.list[i].prefix == string(t) {
			if ss.list[i].n--; ss.list[i].n == 0 {
				ss.list = append(ss.list[:i], ss.list[i+1:]...)
			}
			return
		}
	}
}

func (ss *subscriptions) match(topic []byte) bool {
	for _, e := range ss.list {
		if len(topic) >= len(e.prefix) && string(topic[:len(e.prefix)]) == e.prefix {
			return true
		}
	}
	return false
}
