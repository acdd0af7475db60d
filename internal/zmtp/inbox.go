package zmtp

import (
	"sync"
	"sync/atomic"
)

// itemKind says what an inbox item carries.
type itemKind uint8

const (
	itemMsg    itemKind = iota // A whole message from a peer.
	itemAttach                 // A connection finished its handshake.
	itemDetach                 // A connection ended.
	itemSub                    // A SUB peer subscribed (PUB sockets).
	itemCancel                 // A SUB peer cancelled a subscription.
)

// item is what connection goroutines hand to a socket's owner. Control
// items travel in the same FIFO as messages, so the owner sees a peer's
// attach before its first message and its detach after its last.
type item struct {
	kind    itemKind
	p       *pipe
	l       link
	msg     [][]byte
	dropped int    // Frames of msg discarded beyond MaxFrames.
	topic   []byte // itemSub, itemCancel; routing id for itemAttach.
	uid     string // The sending connection's authenticated User-Id.
}

// inbox is the one hand-off point between a socket's connection goroutines
// and its owner: readers append whole batches under the mutex, the owner
// takes everything at once. It is the only lock on the receive path.
type inbox struct {
	mu      sync.Mutex
	items   []item
	msgs    int  // Items pushed by readers (pushCtl's do not count).
	max     int  // Readers wait while msgs >= max (RecvHWM).
	waiting int  // Readers waiting for room.
	closed  bool // The socket is closed: readers stop.
	room    *sync.Cond
	notify  chan struct{} // Capacity 1: "items is not empty", for the owner.
	ctl     atomic.Int32  // Control items queued: the owner's Send looks.
}

func (in *inbox) init(max int, notify chan struct{}) {
	in.max = max
	in.room = sync.NewCond(&in.mu)
	in.notify = notify
}

// push appends a batch and wakes the owner. It then waits, if the inbox is
// over its bound, until the owner has taken some (back-pressure: the
// reader stops reading and TCP flow control slows the peer). It returns
// false once the socket is closed.
func (in *inbox) push(batch []item, ctl int) bool {
	// Every item counts toward the bound, subscriptions included, so that a
	// peer cannot grow a PUB socket's inbox without limit while its owner
	// does not look.
	n := len(batch)
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return false
	}
	in.items = append(in.items, batch...)
	in.msgs += n
	if ctl > 0 {
		in.ctl.Add(int32(ctl))
	}
	notify := in.notify
	for in.msgs >= in.max && !in.closed {
		in.waiting++
		signal(notify)
		in.room.Wait()
		in.waiting--
	}
	closed := in.closed
	in.mu.Unlock()
	signal(notify)
	return !closed
}

// pushCtl queues one control item without waiting for room: a connection's
// end must always reach the owner.
func (in *inbox) pushCtl(it item) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	in.items = append(in.items, it)
	in.ctl.Add(1)
	notify := in.notify
	in.mu.Unlock()
	signal(notify)
}

// take moves every queued item to dst and returns it.
func (in *inbox) take(dst []item) []item {
	in.mu.Lock()
	if len(in.items) == 0 {
		in.mu.Unlock()
		return dst
	}
	if len(dst) == 0 {
		dst, in.items = in.items, dst[:0]
	} else {
		dst = append(dst, in.items...)
		clear(in.items)
		in.items = in.items[:0]
	}
	in.msgs = 0
	in.ctl.Store(0)
	if in.waiting > 0 {
		in.room.Broadcast()
	}
	in.mu.Unlock()
	return dst
}

// setNotify replaces the owner's notification channel (a Poller shares one
// over several sockets).
func (in *inbox) setNotify(ch chan struct{}) {
	in.mu.Lock()
	in.notify = ch
	pending := len(in.items) > 0
	in.mu.Unlock()
	if pending {
		signal(ch)
	}
}

func (in *inbox) close() {
	in.mu.Lock()
	in.closed = true
	in.items = nil
	in.room.Broadcast()
	in.mu.Unlock()
}

// signal does a non-blocking send on a capacity-1 channel.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// offer appends one message if the inbox has room, without waiting (an
// inproc sender must not block on another socket's owner).
func (in *inbox) offer(it item) bool {
	in.mu.Lock()
	if in.closed || in.msgs >= in.max {
		in.mu.Unlock()
		return false
	}
	in.items = append(in.items, it)
	in.msgs++
	notify := in.notify
	in.mu.Unlock()
	signal(notify)
	return true
}
