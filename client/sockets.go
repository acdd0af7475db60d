package client

import (
	"fmt"
)

// A Client's socket pool. MDP replies name their service, not their
// request, so a socket can carry one request per service (per broker) and
// no more. To let calls to one service overlap, as net/http's transport
// opens a second connection to a host whose first one is busy, a Client has
// several owners, each with one socket to every broker, and hands each call
// to one of them: the first that has a slot free for the call's service, or
// a new owner while there are fewer than WithSockets, or else the least
// busy one, where the call waits in line. Calls to different services, and
// calls that never overlap, all use the first owner, so a client that
// never needs more never opens more. An owner, once made, stays until
// Close: sockets are cheap next to the handshake (CURVE) a new one costs.
//
// Each owner keeps its retry state (tainted services, brokers marked down)
// for its own sockets: what one learns about a broker the others learn when
// their own calls meet it.

// newOwner makes an owner with a socket to each broker and starts its
// goroutine.
func (c *Client) newOwner(idx int) (*owner, error) {
	o := &owner{c: c, idx: idx, waiting: make(map[string][]*call),
		ctrl: make(chan ctrlMsg, maxBatch), done: make(chan struct{})}
	log := c.log
	if idx > 0 {
		log = log.With("socket", idx)
	}
	for i, ep := range c.endpoints {
		lg := log
		if len(c.endpoints) > 1 {
			lg = log.With("endpoint", ep)
		}
		l := newLink(o, newConn(c.ctxs[i], ep, 10000, c.cfg.Security, true), i, lg)
		o.links = append(o.links, l)
		if err := l.conn.open(); err != nil {
			o.closeLinks()
			return nil, fmt.Errorf("client: %s: %w", ep, err)
		}
	}
	if len(o.links) == 1 {
		o.conn = o.links[0].conn
	} else if o.preparePoller(); o.woke.Load() == nil {
		o.closeLinks()
		return nil, fmt.Errorf("client: cannot poll %d sockets", len(o.links))
	}
	go o.run()
	return o, nil
}

// closeLinks closes the sockets of an owner whose goroutine never started.
func (o *owner) closeLinks() {
	for _, l := range o.links {
		l.conn.close()
	}
}

// slotKey names the slots a call competes for in an owner: its service on
// any broker, or on the one broker it is pinned to (RequestAt), and how
// many such slots one owner has.
func (c *Client) slotKey(service string, pin int) (string, int) {
	if pin < 0 {
		return service, len(c.endpoints)
	}
	return fmt.Sprintf("%d\x00%s", pin, service), 1
}

// acquire chooses cl's owner (see the top of this file) and counts cl as
// busy there until release. pin is the index of the only broker cl may use,
// or -1.
func (c *Client) acquire(cl *call, pin int) error {
	key, slots := c.slotKey(cl.service, pin)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	counts := c.busy[key]
	busy := func(i int) int {
		if i < len(counts) {
			return counts[i]
		}
		return 0
	}
	best := 0
	for i := range c.owners {
		if busy(i) < busy(best) {
			best = i
		}
		if busy(i) < slots {
			best = i
			break
		}
	}
	if busy(best) >= slots && len(c.owners) < c.cfg.sockets {
		o, err := c.newOwner(len(c.owners))
		if err != nil {
			// The call still runs, in line on a socket it has.
			c.log.Error("cannot open another socket; the request waits for a busy one", "error", err.Error())
		} else {
			c.owners = append(c.owners, o)
			best = o.idx
		}
	}
	for len(counts) <= best {
		counts = append(counts, 0)
	}
	counts[best]++
	c.busy[key] = counts
	cl.owner, cl.key = c.owners[best], key
	if pin >= 0 {
		cl.pin = cl.owner.links[pin]
	}
	return nil
}

// release ends cl's count in its owner (acquire). Call it once per call,
// when the caller stops waiting for it.
func (c *Client) release(cl *call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	counts := c.busy[cl.key]
	counts[cl.owner.idx]--
	for _, n := range counts {
		if n > 0 {
			return
		}
	}
	delete(c.busy, cl.key)
}
