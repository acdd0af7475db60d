package transport

/*
#include <errno.h>
#include <poll.h>

// mdgm_readable reports whether fd is readable now, without consuming
// anything: libzmq's ZMQ_FD (an eventfd, or a socketpair) stays readable
// until the socket's owner processes the pending commands.
static int mdgm_readable(int fd) {
	struct pollfd p;
	p.fd = fd;
	p.events = POLLIN;
	p.revents = 0;
	int rc;
	do {
		rc = poll(&p, 1, 0);
	} while (rc < 0 && errno == EINTR);
	return rc > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP)) != 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// MaxPollerSockets is the most sockets one Poller waits on.
const MaxPollerSockets = 64

// Poller lets the one goroutine that owns several sockets wait until any of
// them may have a message, a timeout passes, or another goroutine calls
// Wake. A Socket may only be waited on by its owner, and Go's netpoller
// parks one goroutine on one descriptor, so the Poller runs a small watcher
// goroutine per socket that parks on a duplicate of the socket's ZMQ_FD and
// only ever polls that descriptor: it never touches the libzmq socket.
//
// ZMQ_FD is edge-triggered: it signals "look at ZMQ_EVENTS", and signals
// again only after the owner has done so. Wait honours that rule: before it
// sleeps it reads ZMQ_EVENTS of every socket (WaitReadable(0)), and only
// then re-arms the watchers whose signal it has consumed. A watcher checks
// the descriptor's level before it parks, so a signal that arrives between
// the owner's check and the watcher's park is not lost. After Wait reports
// a socket, its owner must receive from it until ErrAgain (or call Wait
// again, which looks at ZMQ_EVENTS first).
//
// A Poller is owned by the same goroutine as its sockets, except Wake,
// which any goroutine may call. Close it before closing the sockets.
type Poller struct {
	socks    []Socket
	watchers []*watcher
	notify   chan int      // Watcher i saw its descriptor readable.
	wake     chan struct{} // Wake was called.
	timer    *time.Timer
	wg       sync.WaitGroup
	closed   bool
}

type watcher struct {
	file  *os.File
	raw   syscall.RawConn
	arm   chan struct{}
	quit  chan struct{}
	armed bool // Owner's view: the watcher is waiting on its descriptor.
}

// pollFD returns the netpoller-registered duplicate of s's ZMQ_FD.
func pollFD(s Socket) (*fdWaiter, error) {
	switch v := s.(type) {
	case *nativeSocket:
		return &v.poll, nil
	case *zmqSocket:
		return &v.poll, nil
	}
	return nil, fmt.Errorf("transport: Poller: unsupported socket type %T", s)
}

// NewPoller returns a Poller over socks (at most MaxPollerSockets).
func NewPoller(socks ...Socket) (*Poller, error) {
	if len(socks) == 0 || len(socks) > MaxPollerSockets {
		return nil, fmt.Errorf("transport: Poller needs 1 to %d sockets, not %d", MaxPollerSockets, len(socks))
	}
	p := &Poller{
		socks:  socks,
		notify: make(chan int, len(socks)),
		wake:   make(chan struct{}, 1),
		timer:  time.NewTimer(time.Hour),
	}
	p.timer.Stop()
	for _, s := range socks {
		w, err := newWatcher(s)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.watchers = append(p.watchers, w)
	}
	for i, w := range p.watchers {
		p.wg.Add(1)
		go w.run(i, p.notify, &p.wg)
		w.armed = true
		w.arm <- struct{}{}
	}
	return p, nil
}

func newWatcher(s Socket) (*watcher, error) {
	fw, err := pollFD(s)
	if err != nil {
		return nil, err
	}
	if fw.raw == nil {
		return nil, ErrClosed
	}
	// A duplicate of our own, so that this watcher's deadline (used to stop
	// it) never disturbs the socket's own waits.
	dup := -1
	var dupErr error
	if err := fw.raw.Control(func(fd uintptr) { dup, dupErr = syscall.Dup(int(fd)) }); err != nil {
		return nil, fmt.Errorf("transport: Poller: %w", err)
	}
	if dupErr != nil {
		return nil, fmt.Errorf("transport: Poller: dup ZMQ_FD: %w", dupErr)
	}
	syscall.CloseOnExec(dup)
	w := &watcher{file: os.NewFile(uintptr(dup), "zmq-fd-watch"), arm: make(chan struct{}, 1), quit: make(chan struct{})}
	if w.raw, err = w.file.SyscallConn(); err != nil {
		w.file.Close()
		return nil, fmt.Errorf("transport: Poller: ZMQ_FD not pollable: %w", err)
	}
	return w, nil
}

// run waits for an arm, then for the descriptor to be readable, reports it,
// and goes back to waiting for an arm.
func (w *watcher) run(i int, notify chan<- int, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		select {
		case <-w.arm:
		case <-w.quit:
			return
		}
		err := w.raw.Read(func(fd uintptr) bool {
			select {
			case <-w.quit:
				return true
			default:
			}
			return C.mdgm_readable(C.int(fd)) != 0
		})
		select {
		case <-w.quit:
			return
		default:
		}
		if err != nil {
			// Not expected (the descriptor is ours until Close); report
			// the socket so that its owner looks at it, and stop
			// watching rather than spin.
			notify <- i
			<-w.quit
			return
		}
		notify <- i
	}
}

// Wake makes a Wait in progress, or the next one, return at once. Any
// goroutine may call it.
func (p *Poller) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// ErrWoken is returned by Wait when Wake interrupted it.
var ErrWoken = errors.New("transport: poller woken")

// Wait returns the set of sockets (bit i for socks[i]) that have a message
// waiting, as soon as there is one, or 0 when timeout passes (a negative
// timeout waits for ever). It returns 0 and ErrWoken when Wake was called.
func (p *Poller) Wait(timeout time.Duration) (uint64, error) {
	if p.closed {
		return 0, ErrClosed
	}
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		ready, err := p.Check()
		if err != nil || ready != 0 {
			return ready, err
		}
		// Nothing pending, and every ZMQ_FD signal so far consumed by the
		// ZMQ_EVENTS reads above: re-arm the watchers that fired.
		for _, w := range p.watchers {
			if !w.armed {
				w.armed = true
				w.arm <- struct{}{}
			}
		}
		var timerC <-chan time.Time
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return 0, nil
			}
			p.timer.Reset(d)
			timerC = p.timer.C
		}
		select {
		case i := <-p.notify:
			p.watchers[i].armed = false
		case <-p.wake:
			p.stopTimer()
			return 0, ErrWoken
		case <-timerC:
			return 0, nil
		}
		p.stopTimer()
		// Collect every other watcher that fired meanwhile.
		for more := true; more; {
			select {
			case i := <-p.notify:
				p.watchers[i].armed = false
			default:
				more = false
			}
		}
	}
}

func (p *Poller) stopTimer() {
	if !p.timer.Stop() {
		select {
		case <-p.timer.C:
		default:
		}
	}
}

// Check reads ZMQ_EVENTS of every socket and returns the set with a
// message waiting, without blocking.
func (p *Poller) Check() (uint64, error) {
	var ready uint64
	for i, s := range p.socks {
		ok, err := s.WaitReadable(0)
		if err != nil {
			return ready, err
		}
		if ok {
			ready |= 1 << uint(i)
		}
	}
	return ready, nil
}

// Close stops the watchers and releases their descriptors. It does not
// close the sockets. It is safe to call twice.
func (p *Poller) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	for _, w := range p.watchers {
		close(w.quit)
		// A deadline in the past makes a parked Read return.
		w.file.SetReadDeadline(time.Unix(1, 0))
	}
	p.wg.Wait()
	for _, w := range p.watchers {
		w.file.Close()
	}
	p.timer.Stop()
	return nil
}
