package client

import (
	"context"
	"sync"
)

// Go sends one request as Request does, without waiting for the reply: it
// returns once the request is handed to the client's goroutine, and done is
// called later, exactly once, with what Request would have returned: the
// FINAL's body, or the error that ended the call (ErrTimeout, ErrNoWorkers,
// ErrClosed, or ctx's error as Request reports it). Timeouts, mmi
// questions and resends are those of Request, and so is the rule of one
// request per service on the wire: calls to a service that already has one
// wait inside the client.
//
// It is for a caller that keeps many requests in flight over many clients
// from one goroutine, which would otherwise need a goroutine per request
// blocked in Request, and a second goroutine switch per reply.
//
// done runs on the client's own goroutine, or on a goroutine of ctx's
// (context.AfterFunc) when ctx ends first: it must return quickly and must
// not call this Client's methods, or the client stalls. When Go returns an
// error (empty service, ctx already ended, client closed) done is not
// called.
func (c *Client) Go(ctx context.Context, service string, body [][]byte, done func(reply [][]byte, err error)) error {
	if service == "" {
		return ErrEmptyService
	}
	if ctx.Err() != nil {
		return ctxError(ctx, service)
	}
	a := &asyncCall{done: done}
	cl := &call{service: service, body: copyBody(body), retries: c.cfg.retries}
	cl.box.fn = func(ev event) { a.fire(ev.body, ev.err, nil) }
	select {
	case <-c.closing: // Checked first: select picks at random among ready cases.
		return ErrClosed
	default:
	}
	if err := c.acquire(cl, -1); err != nil {
		return err
	}
	a.release = func() { c.release(cl) }
	o := cl.owner
	select {
	case o.ctrl <- ctrlMsg{ctrlStart, cl}:
	case <-ctx.Done():
		c.release(cl)
		return ctxError(ctx, service)
	case <-c.closing:
		c.release(cl)
		return ErrClosed
	}
	o.wake()
	select {
	case <-c.closing:
		// Close may have drained this owner before the send: make sure
		// the call is answered (whoever takes it from ctrl answers it).
		o.drainStarts()
	default:
	}
	a.setStop(context.AfterFunc(ctx, func() {
		// The owner hears of the cancellation before the caller does, as
		// with Request: a call made from done for the same service then
		// finds the slot freed, not still held by this one.
		a.fire(nil, ctxError(ctx, service), func() { c.cancel(cl) })
	}))
	return nil
}

// asyncCall makes sure a Go call's done runs once, whichever of the owner
// goroutine and the context ends it first.
type asyncCall struct {
	done  func([][]byte, error)
	mu    sync.Mutex
	fired bool
	stop  func() bool // Unregisters the context's AfterFunc.
	// release frees the call's slot in its owner (Client.release), once.
	release func()
}

// fire calls first (if not nil) and then done, unless done was called
// already.
func (a *asyncCall) fire(reply [][]byte, err error, first func()) {
	a.mu.Lock()
	if a.fired {
		a.mu.Unlock()
		return
	}
	a.fired = true
	stop := a.stop
	a.mu.Unlock()
	if stop != nil {
		stop()
	}
	if first != nil {
		first()
	}
	if a.release != nil {
		a.release()
	}
	a.done(reply, err)
}

// drainStarts answers ErrClosed to every call still waiting in the owner's
// ctrl channel: after Close, nobody else will.
func (o *owner) drainStarts() {
	for {
		select {
		case m := <-o.ctrl:
			if m.kind == ctrlStart {
				m.call.box.put(event{err: ErrClosed})
			}
		default:
			return
		}
	}
}

// setStop records the AfterFunc's stop, or calls it if done already ran.
func (a *asyncCall) setStop(stop func() bool) {
	a.mu.Lock()
	if a.fired {
		a.mu.Unlock()
		stop()
		return
	}
	a.stop = stop
	a.mu.Unlock()
}
