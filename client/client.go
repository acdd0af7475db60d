package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/majordomo-go/majordomo/internal/inproc"
	"github.com/majordomo-go/majordomo/internal/transport"
)

// retrySlice is how soon the owner tries again to send a message that the
// socket refused at its high-water mark: the transport can wait for a
// message to read, not for room to write.
const retrySlice = time.Millisecond

// failPause is how long the owner pauses after a hard socket failure, so
// that a persistent one does not make it spin.
const failPause = 10 * time.Millisecond

// maxBatch is how many channel messages or socket messages the owner handles
// in a row before it looks at the other side.
const maxBatch = 256

// Client is a Majordomo client: DEALER sockets to a broker (one broker, or
// several with WithBrokers), each owned by an internal goroutine. All
// methods are safe for concurrent use. See Request for what happens when a
// reply is late, and the package documentation for several brokers.
//
// Replies carry no request id in MDP, only the service name, so one socket
// carries at most one request per service: that is what makes every reply
// land with the right caller. Calls to different services share a socket
// and run in parallel. Calls to the same service that overlap get sockets
// of their own, opened when needed and kept for later calls, up to
// WithSockets per broker (DefaultSockets); calls beyond that wait inside the
// client for their turn. For many more requests in flight to one service,
// use a Pipeline and correlate replies yourself. With several brokers each
// socket carries one request per service per broker.
type Client struct {
	endpoint  string   // The first broker: the one Pipelines use.
	endpoints []string // Every broker, the first one first.
	cfg       config
	log       *slog.Logger
	zctx      transport.Context   // The first broker's.
	zctxs     []transport.Context // Every context, once each, for Close.
	ctxs      []transport.Context // Each broker's, for new owners.

	brokerIdx map[string]int // Position of each endpoint, for RequestAt; read-only.
	closing   chan struct{}

	closeOnce sync.Once
	closeErr  error

	mu        sync.Mutex // Guards pipelines, closed, owners and busy.
	pipelines map[*Pipeline]struct{}
	closed    bool
	// owners are the client's socket sets, one socket to each broker
	// apiece: the first made by Connect, the others when calls to one
	// service overlap (acquire), at most cfg.sockets.
	owners []*owner
	// busy counts the calls in progress per slot key (see slotKey), per
	// owner; keys with no calls are deleted.
	busy map[string][]int
}

type ctrlKind uint8

const (
	ctrlStart  ctrlKind = iota + 1 // Send a new call.
	ctrlCancel                     // The caller gave up on a call.
)

type ctrlMsg struct {
	kind ctrlKind
	call *call
}

// call is one request, or one mmi.service question that a link asks about
// a request (target set). Its fields after box belong to the owner
// goroutine.
type call struct {
	service string
	body    [][]byte // A private copy: the caller may reuse its buffers.
	stream  bool     // Deliver PARTIALs too.
	box     mailbox

	owner      *owner    // The owner it was handed to (acquire).
	key        string    // Its slot key (slotKey), for release.
	link       *link     // The link it was launched on.
	pin        *link     // RequestAt: the only link it may use.
	avoid      uint64    // Links (bits) that failed it or had no workers: tried last.
	frames     [][]byte  // Encoded request, reused on every attempt.
	phase      phase     // Where it is in the retry loop.
	retries    int       // Resends left.
	deadline   time.Time // When the current attempt (or stream gap) times out; zero while a question is out.
	drops      uint64    // The link's connection losses when it was last sent.
	sent       bool      // Sent at least once: its reply may come.
	progressed bool      // A PARTIAL arrived: resending would repeat it.
	cancelled  bool
	probe      *call // The question asked about it, until answered.
	target     *call // For a question: the call it asks about.
}

// phase is where a call is in the retry loop (link.go).
type phase uint8

const (
	phaseCheck phase = iota + 1 // WithServiceCheck's question is out; the request is not sent.
	phaseWait                   // Sent; waiting for the reply until deadline.
	phaseProbe                  // Timed out; a question is out; the request stays queued at the broker.
)

// Connect creates a client for the broker at endpoint (for example
// "tcp://127.0.0.1:5555"), and for every broker WithBrokers adds. Like
// every ZeroMQ connect it succeeds whether or not the brokers are up:
// requests wait for them, within their timeouts. An inproc:// endpoint must
// be one a broker in this process is bound to (broker.Config.Internal); the
// client then needs no credentials.
func Connect(endpoint string, opts ...Option) (*Client, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	endpoints, err := cfg.Endpoints(endpoint, MaxBrokers)
	if err != nil {
		return nil, invalid(err)
	}
	ctxs, err := inproc.Contexts(endpoints)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	log := cfg.Log
	if len(endpoints) == 1 {
		log = log.With("endpoint", endpoint)
	}
	c := &Client{
		endpoint:  endpoint,
		endpoints: endpoints,
		cfg:       cfg,
		log:       log,
		zctx:      ctxs[0],
		zctxs:     inproc.Unique(ctxs),
		brokerIdx: make(map[string]int, len(endpoints)),
		closing:   make(chan struct{}),
		pipelines: make(map[*Pipeline]struct{}),
		busy:      make(map[string][]int),
	}
	c.ctxs = ctxs
	for i, ep := range endpoints {
		c.brokerIdx[ep] = i
	}
	o, err := c.newOwner(0)
	if err != nil {
		for _, zc := range c.zctxs {
			zc.Term()
		}
		return nil, err
	}
	c.owners = []*owner{o}
	return c, nil
}

// Brokers returns the endpoints of the client's brokers: the one given to
// Connect, then those of WithBrokers.
func (c *Client) Brokers() []string { return slices.Clone(c.endpoints) }

// Close stops the client and every Pipeline opened from it. Calls in
// progress fail with ErrClosed. Close is safe to call more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true // No owner is added from now on.
		ps := make([]*Pipeline, 0, len(c.pipelines))
		for p := range c.pipelines {
			ps = append(ps, p)
		}
		owners := c.owners
		c.mu.Unlock()
		for _, p := range ps {
			p.Close()
		}
		close(c.closing)
		for _, o := range owners {
			o.wake()
		}
		for _, o := range owners {
			<-o.done
			// Calls handed over that the owner never took: a Go call must
			// still get its answer.
			o.drainStarts()
		}
		// Every socket is closed now, so Term does not block.
		var errs []error
		for _, zc := range c.zctxs {
			errs = append(errs, zc.Term())
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// Request sends one request to service and returns the body of its reply.
// With no body it sends one empty frame, because 7/MDP and 18/MDP define a
// REQUEST as "4 or more frames" and brokers drop shorter ones.
//
// When no reply arrives within the timeout (WithTimeout), the client does
// not resend blindly: it first asks the broker about the service, in a
// separate round trip, and waits up to the timeout again for the answer.
// The question is mmi.workers where the broker has it (this project's
// broker), whose counts also show whether the broker still holds the
// request, and the standard 8/MMI mmi.service otherwise. Then:
//
//   - no worker ("404"): the call fails at once with ErrNoWorkers, naming
//     the service. Nothing is resent; the request already sent stays in the
//     broker's queue (at most that one copy) until the broker expires it or
//     a worker arrives and runs it, its reply then discarded.
//   - a worker ("200"): the broker is alive and the request is queued or
//     being worked on. The client keeps waiting without queueing a second
//     copy, and asks again after each further timeout; only ctx ends the
//     wait, so give it a deadline. A slow worker thus runs the request
//     once. If mmi.workers shows the request neither queued nor held by a
//     worker, the broker dropped it (queue full, expired, or a worker failed
//     with redelivery off): it is resent on the same socket, using a retry.
//     A broker with mmi.service only cannot show that, and such a lost
//     request is waited for until ctx ends.
//   - no answer: the broker is unreachable. The client closes the socket,
//     opens a new one and resends the requests that went to that broker,
//     as the Lazy Pirate pattern of 7/MDP "MDP/Client" does, up to
//     WithRetries times, then fails with ErrTimeout. A connection the
//     transport reports lost is treated the same way without asking, since
//     a restarted broker would answer "200" without holding the request.
//     A broker without MMI ("501") gets the same Lazy Pirate resends. A new
//     socket voids the replies of every request sent on the old one, so
//     those are resent too; only here can a worker receive a request twice,
//     and MDP assumes idempotent workers.
//
// The cost is one mmi round trip per timed-out attempt (none while replies
// come in time), and up to twice the timeout per attempt before a silent
// broker is given up on. mmi.* requests are answered by the broker itself,
// so their silence counts as "no answer" directly. WithServiceCheck asks
// before the first send too, for callers who prefer a fast ErrNoWorkers to
// one extra round trip per request. Under 18/MDP, PARTIALs are skipped and
// the FINAL's body is returned; use Stream to see them.
//
// The context bounds the whole call. When it ends first the call returns
// its error (a deadline also matches ErrTimeout); the reply, if it comes
// later, is discarded.
func (c *Client) Request(ctx context.Context, service string, body ...[]byte) ([][]byte, error) {
	return c.request(ctx, service, body, -1)
}

// request runs one call to completion (Request and RequestAt); pin is the
// index of the only broker it may use, or -1.
func (c *Client) request(ctx context.Context, service string, body [][]byte, pin int) ([][]byte, error) {
	cl, err := c.start(ctx, service, body, false, pin)
	if err != nil {
		return nil, err
	}
	defer c.release(cl)
	for {
		ev, err := c.wait(ctx, cl)
		if err != nil {
			return nil, err
		}
		if ev.err != nil {
			return nil, ev.err
		}
		if ev.final {
			return ev.body, nil
		}
	}
}

// Stream sends one request and returns an iterator over its replies: each
// PARTIAL body, then the FINAL body, which is always the last value. Under
// 7/MDP there is only the one reply. An error ends the sequence and is
// yielded with a nil body.
//
// Every range over the returned sequence sends the request anew. Breaking
// out of the loop abandons the request. Until the first PARTIAL arrives a
// timed-out stream is handled like Request (mmi.service, then wait, fail
// with ErrNoWorkers or resend); after it, silence longer than the timeout
// ends the stream with ErrTimeout, since a resend would repeat what was
// already delivered.
func (c *Client) Stream(ctx context.Context, service string, body ...[]byte) iter.Seq2[[][]byte, error] {
	return func(yield func([][]byte, error) bool) {
		cl, err := c.start(ctx, service, body, true, -1)
		if err != nil {
			yield(nil, err)
			return
		}
		defer c.release(cl)
		for {
			ev, err := c.wait(ctx, cl)
			if err == nil {
				err = ev.err
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(ev.body, nil) {
				if !ev.final {
					c.cancel(cl)
				}
				return
			}
			if ev.final {
				return
			}
		}
	}
}

// start validates a call and hands it to an owner goroutine (acquire); the
// caller must release the call once it is done with it. pin is the index of
// the only broker the call may use, or -1.
func (c *Client) start(ctx context.Context, service string, body [][]byte, stream bool, pin int) (*call, error) {
	if service == "" {
		return nil, ErrEmptyService
	}
	if ctx.Err() != nil {
		return nil, ctxError(ctx, service)
	}
	cl := &call{service: service, body: copyBody(body), stream: stream, retries: c.cfg.retries}
	cl.box.init()
	select {
	case <-c.closing: // Checked first: select picks at random among ready cases.
		return nil, ErrClosed
	default:
	}
	if err := c.acquire(cl, pin); err != nil {
		return nil, err
	}
	o := cl.owner
	select {
	case o.ctrl <- ctrlMsg{ctrlStart, cl}:
		o.wake()
		return cl, nil
	case <-ctx.Done():
		c.release(cl)
		return nil, ctxError(ctx, service)
	case <-c.closing:
		c.release(cl)
		return nil, ErrClosed
	}
}

// wait returns the call's next event, or the error that ends the wait. A
// context that ends cancels the call inside the owner goroutine.
func (c *Client) wait(ctx context.Context, cl *call) (event, error) {
	for {
		if ev, ok := cl.box.take(); ok {
			return ev, nil
		}
		select {
		case <-cl.box.notify:
		case <-ctx.Done():
			c.cancel(cl)
			return event{}, ctxError(ctx, cl.service)
		case <-cl.owner.done:
			if ev, ok := cl.box.take(); ok {
				return ev, nil
			}
			return event{}, ErrClosed
		}
	}
}

// cancel tells the owner goroutine the caller no longer waits for cl.
func (c *Client) cancel(cl *call) {
	select {
	case cl.owner.ctrl <- ctrlMsg{ctrlCancel, cl}:
		cl.owner.wake()
	case <-c.closing:
	}
}

// copyBody copies the body frames into one allocation and guarantees at
// least one frame.
func copyBody(body [][]byte) [][]byte {
	if len(body) == 0 {
		return [][]byte{{}}
	}
	n := 0
	for _, f := range body {
		n += len(f)
	}
	buf := make([]byte, 0, n)
	out := make([][]byte, len(body))
	for i, f := range body {
		start := len(buf)
		buf = append(buf, f...)
		out[i] = buf[start:len(buf):len(buf)]
	}
	return out
}

// event is what the owner goroutine tells a caller.
type event struct {
	body  [][]byte
	final bool
	err   error
	reply Reply // Pipeline replies only.
}

// mailbox is an unbounded queue from the owner goroutine to one caller, so
// that the owner never blocks on a slow reader.
type mailbox struct {
	mu     sync.Mutex
	items  []event
	notify chan struct{} // Capacity 1: "something was put".
	// fn, if set (Client.Go), takes every event instead of the queue; it
	// runs on the owner goroutine.
	fn func(event)
}

func (m *mailbox) init() { m.notify = make(chan struct{}, 1) }

func (m *mailbox) put(ev event) {
	if m.fn != nil {
		m.fn(ev)
		return
	}
	m.mu.Lock()
	m.items = append(m.items, ev)
	m.mu.Unlock()
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

func (m *mailbox) take() (event, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.items) == 0 {
		return event{}, false
	}
	ev := m.items[0]
	m.items[0] = event{}
	m.items = m.items[1:]
	if len(m.items) == 0 {
		m.items = nil
	}
	return ev, true
}

func (m *mailbox) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}
