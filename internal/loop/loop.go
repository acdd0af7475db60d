// Package loop holds the lifecycle an event-loop server shares with the
// goroutines around it: Run starts the loop once, Close stops it (or
// releases a server that never ran), other goroutines hand it work through
// Call, and Drain waits for in-flight work before stopping. The MDP broker
// and the eMQP server both use it, so that the subtle orderings (queue then
// wake; a call run just before the loop stopped) live in one place.
//
// The loop itself belongs to its server: it selects on Calls and Stopping
// between waits, and the server's wake function must interrupt those waits.
package loop

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Errors returned by Begin.
var (
	ErrRunning = errors.New("loop: already running")
	ErrClosed  = errors.New("loop: closed")
)

// Life is one server's lifecycle. The zero value is not usable: call New.
type Life struct {
	wake  func()
	calls chan func()
	stop  chan struct{}
	done  chan struct{}

	mu       sync.Mutex // Guards started and stopOnce only.
	started  bool
	stopOnce sync.Once
}

// New returns a Life whose loop is interrupted by wake (any goroutine may
// call it, at any time).
func New(wake func()) *Life {
	return &Life{wake: wake, calls: make(chan func(), 64), stop: make(chan struct{}), done: make(chan struct{})}
}

// Begin marks the loop as started. It fails with ErrRunning on a second call
// and ErrClosed after Stop. On success the caller must call End when its
// loop returns.
func (l *Life) Begin() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started {
		return ErrRunning
	}
	select {
	case <-l.stop:
		return ErrClosed
	default:
	}
	l.started = true
	return nil
}

// End marks the loop as finished; Done is closed.
func (l *Life) End() { close(l.done) }

// Stop asks the loop to stop and waits until it has, or, if it never ran,
// calls release instead (once). It is safe to call more than once.
func (l *Life) Stop(release func()) {
	l.mu.Lock()
	started := l.started
	l.stopOnce.Do(func() {
		close(l.stop)
		if started {
			l.wake()
		} else {
			release()
		}
	})
	l.mu.Unlock()
	if started {
		<-l.done
	}
}

// Calls delivers the work other goroutines hand the loop; the loop runs each
// function it receives.
func (l *Life) Calls() <-chan func() { return l.calls }

// Stopping is closed when Stop is called.
func (l *Life) Stopping() <-chan struct{} { return l.stop }

// Done is closed when the loop has finished (End).
func (l *Life) Done() <-chan struct{} { return l.done }

// Finished reports whether End has been called.
func (l *Life) Finished() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// Call runs fn on the loop goroutine and waits for it. It returns false,
// without running fn, if the loop has not started or has finished.
func (l *Life) Call(fn func()) bool {
	l.mu.Lock()
	started := l.started
	l.mu.Unlock()
	if !started {
		return false
	}
	finished := make(chan struct{})
	select {
	case l.calls <- func() { fn(); close(finished) }:
	case <-l.done:
		return false
	}
	// Queue first, then wake: the loop looks at the queue after every wake.
	l.wake()
	select {
	case <-finished:
		return true
	case <-l.done:
		// The loop may have run the call just before it stopped.
		select {
		case <-finished:
			return true
		default:
			return false
		}
	}
}

// Drain is a graceful stop: pause runs once on the loop (stop handing out
// new work), then Drain polls pending on the loop until it reports none or
// ctx is done, and finally calls stop. It returns ctx.Err() if work was
// still pending, nil otherwise.
func Drain(ctx context.Context, l *Life, pause func(), pending func() int, stop func()) error {
	left := -1
	if l.Call(pause) {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
	poll:
		for {
			if !l.Call(func() { left = pending() }) || left == 0 {
				break
			}
			select {
			case <-ctx.Done():
				break poll
			case <-tick.C:
			}
		}
	}
	stop()
	if left > 0 {
		return ctx.Err()
	}
	return nil
}
