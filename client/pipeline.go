package client

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/majordomo-go/majordomo/mdp"
)

// Reply is one reply received by a Pipeline.
type Reply struct {
	// Service names the service that answered. It is the only correlation
	// MDP provides.
	Service string
	// Body is the reply body.
	Body [][]byte
	// Final is false for an 18/MDP PARTIAL and true for the FINAL (or the
	// 7/MDP REPLY) that completes a request.
	Final bool
}

// Pipeline is an asynchronous, pipelined connection to the broker, like the
// Guide's mdcliapi2: Send queues requests without waiting for replies, Recv
// returns replies in the order they arrive. It has its own DEALER socket,
// owned by its own goroutine, and is safe for concurrent use.
//
// What can be relied upon, given that MDP carries no request id:
//
//   - Every reply names its service (Reply.Service), and nothing more.
//   - Replies arrive in completion order. With a single worker for a
//     service they come back in the order the requests were sent; with
//     several workers, or when the broker hands a request to another worker
//     after a failure, they do not. Replies of different services interleave
//     arbitrarily.
//   - To match a reply to its request, put your own id in the request body
//     and have the worker echo it.
//   - A Pipeline never resends. A request lost with a broker restart or a
//     dead worker simply gets no reply; Outstanding tells how many are
//     missing, and Reset abandons them on a fresh socket so that no late
//     reply can be mistaken for a reply to a later request.
//
// At most window requests are outstanding: Send blocks while that many have
// been sent and their FINAL not yet taken by Recv.
type Pipeline struct {
	c      *Client
	window chan struct{} // One token per outstanding request.
	ctrl   chan pipeMsg
	conn   *conn // Owned by the pipeline's goroutine; others call only wake.
	box    mailbox

	closing   chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type pipeMsg struct {
	service string
	body    [][]byte
	reset   chan int // Non-nil: a Reset; receives how many were abandoned.
}

// Pipeline opens a pipelined connection with room for window outstanding
// requests (DefaultWindow if window <= 0). It uses the Client's endpoint and
// protocol version; the Client's timeout and retries do not apply. Closing
// the Client closes the Pipeline.
func (c *Client) Pipeline(window int) (*Pipeline, error) {
	if window <= 0 {
		window = DefaultWindow
	}
	p := &Pipeline{
		c:       c,
		window:  make(chan struct{}, window),
		ctrl:    make(chan pipeMsg, maxBatch),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	p.box.init()
	// Room for every outstanding request on both sides of the socket, so
	// that neither the client nor the broker ever has to drop.
	conn := newConn(c.zctx, c.endpoint, window+1000, c.cfg.Security, false)
	p.conn = conn
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if err := conn.open(); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c.pipelines[p] = struct{}{}
	go p.run(conn)
	return p, nil
}

// Send queues one request (one empty body frame if body is empty). It
// returns once the request is handed to the pipeline's goroutine, blocking
// only while the window is full.
func (p *Pipeline) Send(ctx context.Context, service string, body ...[]byte) error {
	if service == "" {
		return ErrEmptyService
	}
	select {
	case <-p.closing: // Checked first: select picks at random among ready cases.
		return ErrClosed
	default:
	}
	select {
	case p.window <- struct{}{}:
	case <-ctx.Done():
		return ctxError(ctx, service)
	case <-p.closing:
		return ErrClosed
	}
	select {
	case p.ctrl <- pipeMsg{service: service, body: copyBody(body)}:
		p.conn.wake()
		return nil
	case <-ctx.Done():
		p.release()
		return ctxError(ctx, service)
	case <-p.closing:
		p.release()
		return ErrClosed
	}
}

// Recv returns the next reply, waiting until one arrives, ctx ends or the
// pipeline is closed.
func (p *Pipeline) Recv(ctx context.Context) (Reply, error) {
	for {
		if ev, ok := p.box.take(); ok {
			r := ev.reply
			if r.Final {
				p.release()
			}
			return r, nil
		}
		select {
		case <-p.box.notify:
		case <-ctx.Done():
			return Reply{}, ctxError(ctx, "*")
		case <-p.done:
			if p.box.len() > 0 {
				continue
			}
			return Reply{}, ErrClosed
		}
	}
}

// Outstanding returns how many requests were sent and their FINAL not yet
// returned by Recv.
func (p *Pipeline) Outstanding() int { return len(p.window) }

// Reset abandons every request sent so far that has no reply yet: it closes
// the socket, opens a new one and frees their window slots. Replies already
// received stay available to Recv. It returns how many requests were
// abandoned. Use it as the pipelined form of Lazy Pirate, then resend what
// your own ids show as missing.
func (p *Pipeline) Reset(ctx context.Context) (int, error) {
	ch := make(chan int, 1)
	select {
	case p.ctrl <- pipeMsg{reset: ch}:
		p.conn.wake()
	case <-ctx.Done():
		return 0, ctxError(ctx, "*")
	case <-p.closing:
		return 0, ErrClosed
	}
	select {
	case n := <-ch:
		return n, nil
	case <-p.done:
		return 0, ErrClosed
	}
}

// Close closes the pipeline. Outstanding requests are abandoned and waiting
// Recv calls return ErrClosed once the replies already received are taken.
func (p *Pipeline) Close() error {
	p.closeOnce.Do(func() {
		close(p.closing)
		p.conn.wake()
		<-p.done
		p.c.mu.Lock()
		delete(p.c.pipelines, p)
		p.c.mu.Unlock()
	})
	return nil
}

func (p *Pipeline) release() {
	select {
	case <-p.window:
	default:
	}
}

// run is the goroutine that owns the pipeline's socket.
func (p *Pipeline) run(conn *conn) {
	defer close(p.done)
	defer conn.close()
	log := p.c.log
	pending := 0 // Sent, FINAL not yet received.
	handle := func(m pipeMsg) {
		if m.reset != nil {
			if err := conn.open(); err != nil {
				log.Error("pipeline: cannot reopen socket", "error", err.Error())
			}
			n := pending
			for range pending {
				p.release()
			}
			pending = 0
			m.reset <- n
			return
		}
		msg := mdp.Message{Version: p.c.cfg.version, Role: mdp.RoleClient, Command: mdp.Request,
			Service: []byte(m.service), Body: m.body}
		frames, err := mdp.Encode(&msg)
		if err == nil {
			err = conn.send(frames)
		}
		if err != nil {
			log.Error("pipeline: send failed", "service", m.service, "error", err.Error())
			p.release()
			return
		}
		pending++
	}
	for {
		// Everything this round sends goes out in one write at the flush.
		conn.hold()
		if pending == 0 && len(conn.outq) == 0 {
			select {
			case m := <-p.ctrl:
				handle(m)
			case <-p.closing:
				return
			}
		}
	drain:
		for range maxBatch {
			select {
			case m := <-p.ctrl:
				handle(m)
			case <-p.closing:
				return
			default:
				break drain
			}
		}
		if err := conn.flush(); err != nil {
			log.Error("pipeline: send failed", "error", err.Error())
		}
		// Sleep until a reply or a Wake from Send, Reset or Close.
		wait := time.Duration(-1)
		if len(conn.outq) > 0 {
			wait = retrySlice
		}
		if len(p.ctrl) > 0 {
			wait = 0 // Queued before a Wake that may have hit an old socket.
		}
		ready, err := conn.wait(wait)
		if err != nil {
			log.Error("pipeline: poll failed; reopening socket", "error", err.Error())
			if err := conn.open(); err != nil {
				log.Error("pipeline: cannot reopen socket", "error", err.Error())
			}
			time.Sleep(failPause) // Do not spin on a persistent failure.
			continue
		}
		for i := 0; ready && i < maxBatch; i++ {
			frames, err := conn.recv()
			if err != nil || frames == nil {
				break
			}
			m, err := mdp.DecodeFromBroker(frames)
			if err != nil || m.Role != mdp.RoleClient || m.Version != p.c.cfg.version {
				log.Debug("pipeline: ignoring malformed message from broker", "error", errString(err))
				continue
			}
			final := m.Command == mdp.Final
			if final && pending > 0 {
				pending--
			}
			p.box.put(event{reply: Reply{Service: string(m.Service), Body: m.Body, Final: final}})
		}
	}
}
