package broker

import (
	"time"

	"github.com/majordomo-go/majordomo/mdp"
)

// request is a client request the broker has accepted.
type request struct {
	client    []byte // ROUTER identity of the client.
	version   mdp.Version
	delimited bool // Client framing: answer in the same shape.
	service   *service
	body      [][]byte
	size      int64
	queuedAt  time.Time // When it last entered a queue.
	sentAt    time.Time // When it was last handed to a worker.
	attempts  int       // Deliveries to workers so far.
}

// worker is a registered worker.
type worker struct {
	id        []byte
	key       string
	service   *service
	version   mdp.Version
	delimited bool
	expiry    time.Time // Removed if nothing is heard from it by then.
	lastSent  time.Time // Last time the broker sent it anything.
	req       *request  // The request it holds, or nil when idle.
	since     time.Time // When it registered.
	served    uint64    // Final replies it delivered.
}

// clientQueue holds one client's requests waiting on one service, oldest
// first.
type clientQueue struct {
	key  string
	reqs deque[*request]
}

// service is a named queue with its workers.
type service struct {
	name    string
	nameB   []byte
	idle    deque[*worker] // Least recently used at the front.
	workers int
	busy    int
	// Clients with waiting requests, served round-robin so that one client
	// with thousands of requests queued cannot starve the others (7/MDP:
	// "The broker SHOULD serve clients on a fair basis").
	ring    deque[*clientQueue]
	clients map[string]*clientQueue
	queued  int
	// queuedBytes is the body bytes of the queued requests.
	queuedBytes int64
	counters    serviceCounters
	// emptySince is when the service last had neither workers nor queued
	// requests; zero while it has either.
	emptySince time.Time
}

func newService(name string) *service {
	return &service{name: name, nameB: []byte(name), clients: make(map[string]*clientQueue)}
}

// enqueue appends r to its client's queue, or puts it at the front when it
// comes back from a dead worker so that it does not lose its place.
func (s *service) enqueue(r *request, front bool) {
	key := string(r.client)
	q := s.clients[key]
	if q == nil {
		q = &clientQueue{key: key}
		s.clients[key] = q
		if front {
			s.ring.pushFront(q)
		} else {
			s.ring.pushBack(q)
		}
	}
	if front {
		q.reqs.pushFront(r)
	} else {
		q.reqs.pushBack(r)
	}
	s.queued++
	s.queuedBytes += r.size
	s.emptySince = time.Time{}
}

// dequeue takes the next request in round-robin order over clients.
func (s *service) dequeue() *request {
	if s.ring.len() == 0 {
		return nil
	}
	q := s.ring.popFront()
	r := q.reqs.popFront()
	if q.reqs.len() > 0 {
		s.ring.pushBack(q)
	} else {
		delete(s.clients, q.key)
	}
	s.queued--
	s.queuedBytes -= r.size
	return r
}

// expire removes every request queued before cutoff, calling fn for each.
func (s *service) expire(cutoff time.Time, fn func(*request)) {
	if s.queued == 0 {
		return
	}
	n := s.ring.len()
	for i := 0; i < n; i++ {
		q := s.ring.popFront()
		kept := q.reqs.filter(func(r *request) bool {
			if r.queuedAt.Before(cutoff) {
				s.queued--
				s.queuedBytes -= r.size
				s.counters.expired++
				fn(r)
				return false
			}
			return true
		})
		if kept > 0 {
			s.ring.pushBack(q)
		} else {
			delete(s.clients, q.key)
		}
	}
}

// removeIdle takes w out of the idle list.
func (s *service) removeIdle(w *worker) {
	s.idle.remove(func(x *worker) bool { return x == w })
}

// deque is a growable ring buffer: O(1) at both ends, no allocation in steady
// state.
type deque[T any] struct {
	buf        []T
	head, size int
}

func (d *deque[T]) len() int { return d.size }

func (d *deque[T]) grow() {
	if d.size < len(d.buf) {
		return
	}
	n := len(d.buf) * 2
	if n == 0 {
		n = 4
	}
	nb := make([]T, n)
	for i := 0; i < d.size; i++ {
		nb[i] = d.buf[(d.head+i)%len(d.buf)]
	}
	d.buf, d.head = nb, 0
}

func (d *deque[T]) pushBack(v T) {
	d.grow()
	d.buf[(d.head+d.size)%len(d.buf)] = v
	d.size++
}

func (d *deque[T]) pushFront(v T) {
	d.grow()
	d.head = (d.head - 1 + len(d.buf)) % len(d.buf)
	d.buf[d.head] = v
	d.size++
}

func (d *deque[T]) popFront() T {
	var zero T
	v := d.buf[d.head]
	d.buf[d.head] = zero // Let the GC have it.
	d.head = (d.head + 1) % len(d.buf)
	d.size--
	return v
}

func (d *deque[T]) at(i int) T { return d.buf[(d.head+i)%len(d.buf)] }

// filter keeps the elements for which keep returns true, in order, and
// returns how many are left.
func (d *deque[T]) filter(keep func(T) bool) int {
	n := d.size
	out := 0
	var zero T
	for i := 0; i < n; i++ {
		v := d.at(i)
		if keep(v) {
			d.buf[(d.head+out)%len(d.buf)] = v
			out++
		}
	}
	for i := out; i < n; i++ {
		d.buf[(d.head+i)%len(d.buf)] = zero
	}
	d.size = out
	return out
}

// remove deletes the first element matching match.
func (d *deque[T]) remove(match func(T) bool) bool {
	found := false
	d.filter(func(v T) bool {
		if !found && match(v) {
			found = true
			return false
		}
		return true
	})
	return found
}
