package worker

import "sync"

// slots is the worker's handler concurrency, shared by every session on
// every broker: a session runs a handler only while it holds a slot, so a
// worker with concurrency N never runs more than N at once however many
// brokers hand it requests (issue 13). A session that has a request but no
// slot waits in FIFO order; release hands the slot straight to the first
// waiter and wakes its socket wait, so no wake-up is lost between a failed
// acquire and the wait.
//
// With one broker there are exactly N sessions and each holds at most one
// request, so a slot is always free when a session asks.
type slots struct {
	mu      sync.Mutex
	free    int
	waiters []*session
}

func newSlots(n int) *slots { return &slots{free: n} }

// acquire takes a slot for s, or queues s for the next one and reports
// false. s must then call acquire again after each wake, and cancel when it
// stops waiting.
func (p *slots) acquire(s *session) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.granted {
		s.granted = false
		return true
	}
	if p.free > 0 && !s.queued {
		p.free--
		return true
	}
	if !s.queued {
		s.queued = true
		p.waiters = append(p.waiters, s)
	}
	return false
}

// release returns a slot: to the first waiter if there is one, else to the
// pool.
func (p *slots) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.releaseLocked()
}

func (p *slots) releaseLocked() {
	if len(p.waiters) == 0 {
		p.free++
		return
	}
	s := p.waiters[0]
	p.waiters[0] = nil
	p.waiters = p.waiters[1:]
	s.queued = false
	s.granted = true
	s.wake()
}

// cancel withdraws s from the queue, and passes on a slot it was handed but
// did not use.
func (p *slots) cancel(s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.queued {
		for i, w := range p.waiters {
			if w == s {
				p.waiters = append(p.waiters[:i:i], p.waiters[i+1:]...)
				break
			}
		}
		s.queued = false
	}
	if s.granted {
		s.granted = false
		p.releaseLocked()
	}
}
