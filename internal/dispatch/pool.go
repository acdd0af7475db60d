package dispatch

import (
	"errors"
	"slices"
	"time"
)

// Errors returned by Pool.
var (
	// ErrQueueFull: the queue holds Limits.MaxLen jobs already.
	ErrQueueFull = errors.New("dispatch: queue full")
	// ErrQueueBytes: the job would take the queue past Limits.MaxBytes, or
	// the shared Budget past its Max.
	ErrQueueBytes = errors.New("dispatch: queued bytes limit reached")
	// ErrTooManyQueues: creating the queue would exceed Limits.MaxQueues.
	ErrTooManyQueues = errors.New("dispatch: too many queues")
	// ErrTooManySubscriptions: a worker asked for more than
	// Limits.MaxQueuesPerWorker queues.
	ErrTooManySubscriptions = errors.New("dispatch: too many queues for one worker")
)

// Budget is a byte budget shared by several queues (the broker's
// MaxQueuedBytes over all services). A nil *Budget is no budget.
type Budget struct {
	Max  int64 // 0: unlimited.
	used int64
}

func (b *Budget) fits(n int64) bool {
	return b == nil || b.Max <= 0 || b.used+n <= b.Max
}

func (b *Budget) add(n int64) {
	if b != nil {
		b.used += n
	}
}

// Limits bound what a Pool holds. Zero means unlimited, except where noted.
type Limits struct {
	MaxLen   int     // Waiting jobs per queue.
	MaxBytes int64   // Waiting bytes per queue.
	Budget   *Budget // Waiting bytes over every queue sharing the budget.
	// MaxQueues bounds how many queues exist at once.
	MaxQueues int
	// MaxQueuesPerWorker bounds one worker's subscriptions.
	MaxQueuesPerWorker int
	// MaxIdleSubmitters is how many empty submitter lanes each queue keeps
	// for reuse (0: DefaultMaxIdleSubmitters).
	MaxIdleSubmitters int
}

// Selection is how a worker with a free slot chooses among its queues that
// have jobs waiting.
type Selection uint8

const (
	// WeightedRoundRobin serves the queues in proportion to their weights
	// (smooth weighted round-robin, as nginx balances upstreams): a queue of
	// weight 30 next to one of weight 10 gets three jobs in four, and no
	// queue with jobs waiting is starved.
	WeightedRoundRobin Selection = iota
	// StrictPriority always serves the heaviest queue with jobs waiting
	// first (ties in the order the worker listed them), as EventMQ's
	// router does; lighter queues wait while heavier ones have work.
	StrictPriority
)

// String names the selection mode.
func (s Selection) String() string {
	if s == StrictPriority {
		return "strict"
	}
	return "weighted"
}

// Config configures a Pool.
type Config struct {
	Limits
	Selection Selection
}

// QueueStats are the counters the pool keeps for a queue. Only the pool
// writes them; read them with Queue.Stats.
type QueueStats struct {
	Submitted  uint64    // Jobs offered with Submit or refused with Reject.
	Rejected   uint64    // Of which refused by a bound.
	Expired    uint64    // Jobs removed by Expire.
	Dispatched uint64    // Jobs handed to a worker, redeliveries included.
	Requeued   uint64    // Jobs put back with Requeue (redeliveries).
	QueueWait  Histogram // Time from entering the queue to a worker.
	// EverServed is set when a worker first subscribes to the queue.
	EverServed bool
}

// Outcomes are what the protocol layer records about a queue's jobs once
// they have left it, which the pool cannot see: only the protocol knows
// what "done" means. The pool never reads or writes them.
type Outcomes struct {
	Completed   uint64    // Jobs whose worker reported completion.
	Dropped     uint64    // Jobs lost for any other reason.
	ServiceTime Histogram // Time from dispatch to completion.
}

// Sub is one queue a worker serves, with its weight (values below 1 count
// as 1).
type Sub struct {
	Queue  string
	Weight int
}

// bucket holds a queue's ready workers of one weight, least recently used
// at the front.
type bucket[J, P any] struct {
	weight  int
	workers Deque[*Worker[J, P]]
}

// Queue is a named queue: its waiting jobs, fair across submitters, and the
// workers ready to take them.
type Queue[J, P any] struct {
	name    string
	fair    Fair[J]
	buckets []bucket[J, P] // Heaviest first.
	members int            // Workers subscribed.
	ready   int            // Of which with a free slot.
	stats   QueueStats
	// Outcomes are the protocol's counters of the queue's jobs.
	Outcomes Outcomes
	// Data is the protocol's own record of the queue, as Worker.Peer is of
	// a worker; the pool never looks at it.
	Data       any
	emptySince time.Time
	gone       bool
}

// Name returns the queue's name.
func (q *Queue[J, P]) Name() string { return q.name }

// Len returns the number of waiting jobs.
func (q *Queue[J, P]) Len() int { return q.fair.Len() }

// Bytes returns the bytes of the waiting jobs.
func (q *Queue[J, P]) Bytes() int64 { return q.fair.Bytes() }

// Stats returns the pool's counters of the queue. The histogram's buckets
// are shared with the queue: Clone it to hand it to another goroutine.
func (q *Queue[J, P]) Stats() QueueStats { return q.stats }

// Members returns the number of workers subscribed to the queue.
func (q *Queue[J, P]) Members() int { return q.members }

// Ready returns the number of subscribed workers with a free slot.
func (q *Queue[J, P]) Ready() int { return q.ready }

func (q *Queue[J, P]) bucketFor(weight int, create bool) *bucket[J, P] {
	for i := range q.buckets {
		switch b := &q.buckets[i]; {
		case b.weight == weight:
			return b
		case b.weight < weight:
			if !create {
				return nil
			}
			q.buckets = slices.Insert(q.buckets, i, bucket[J, P]{weight: weight})
			return &q.buckets[i]
		}
	}
	if !create {
		return nil
	}
	q.buckets = append(q.buckets, bucket[J, P]{weight: weight})
	return &q.buckets[len(q.buckets)-1]
}

// membership is one queue of a worker.
type membership[J, P any] struct {
	q       *Queue[J, P]
	weight  int
	current int // Smooth weighted round-robin state.
}

// Worker is a peer that takes jobs: a 7/MDP worker (one queue, one slot)
// or an eMQP job manager (several weighted queues, one slot per READY).
type Worker[J, P any] struct {
	// Peer is the protocol's own record of the worker.
	Peer    P
	subs    []membership[J, P]
	slots   int
	removed bool
	// Taken counts the slots used, that is the jobs handed to the worker.
	Taken uint64
}

// Slots returns the worker's free slots (credit).
func (w *Worker[J, P]) Slots() int { return w.slots }

// Subs returns the worker's queues and weights, heaviest first.
func (w *Worker[J, P]) Subs() []Sub {
	out := make([]Sub, len(w.subs))
	for i, m := range w.subs {
		out[i] = Sub{Queue: m.q.name, Weight: m.weight}
	}
	return out
}

// Pool routes jobs from named queues to workers with free slots. It is the
// protocol-neutral core both the MDP broker and the eMQP router are built
// on; it does no I/O and is owned by one goroutine (no locks).
//
// The invariant it keeps: a worker with a free slot has no job waiting in
// any of its queues, except while the pool is paused. Submit therefore
// hands a job straight to a ready worker when there is one, and Credit is
// followed by Next until the worker's slots or its queues run out.
type Pool[J, P any] struct {
	cfg    Config
	queues map[string]*Queue[J, P]
	paused bool
}

// NewPool returns an empty pool.
func NewPool[J, P any](cfg Config) *Pool[J, P] {
	return &Pool[J, P]{cfg: cfg, queues: make(map[string]*Queue[J, P])}
}

// SetLimits changes the limits (a configuration reload). Jobs already
// waiting beyond new bounds stay; new submissions see the new bounds.
func (p *Pool[J, P]) SetLimits(l Limits) {
	p.cfg.Limits = l
	for _, q := range p.queues {
		q.fair.maxIdle = l.MaxIdleSubmitters
	}
}

// SetPaused stops (true) or resumes handing out jobs: paused, Submit
// queues everything and Next and Dispatch hand out nothing (a broker
// draining for shutdown). After resuming, call Dispatch on every queue.
func (p *Pool[J, P]) SetPaused(paused bool) { p.paused = paused }

// Paused reports whether the pool is paused.
func (p *Pool[J, P]) Paused() bool { return p.paused }

// Len returns the number of queues.
func (p *Pool[J, P]) Len() int { return len(p.queues) }

// Queue returns the queue called name, or nil.
func (p *Pool[J, P]) Queue(name string) *Queue[J, P] { return p.queues[name] }

// QueueBytes is Queue for a name held in a []byte, without allocating.
func (p *Pool[J, P]) QueueBytes(name []byte) *Queue[J, P] { return p.queues[string(name)] }

// Ensure returns the queue called name, creating it if needed; it fails
// with ErrTooManyQueues at Limits.MaxQueues.
func (p *Pool[J, P]) Ensure(name string) (*Queue[J, P], error) {
	if q := p.queues[name]; q != nil {
		return q, nil
	}
	if p.cfg.MaxQueues > 0 && len(p.queues) >= p.cfg.MaxQueues {
		return nil, ErrTooManyQueues
	}
	q := &Queue[J, P]{name: name}
	q.fair.maxIdle = p.cfg.MaxIdleSubmitters
	p.queues[name] = q
	return q, nil
}

// EnsureBytes is Ensure for a name held in a []byte; it allocates only when
// it creates the queue.
func (p *Pool[J, P]) EnsureBytes(name []byte) (*Queue[J, P], error) {
	if q := p.queues[string(name)]; q != nil {
		return q, nil
	}
	return p.Ensure(string(name))
}

// Range calls fn for every queue, in no particular order, until fn returns
// false. fn may Forget the queue it is given.
func (p *Pool[J, P]) Range(fn func(*Queue[J, P]) bool) {
	for _, q := range p.queues {
		if !fn(q) {
			return
		}
	}
}

// Forget removes a queue that has no members. Its waiting jobs, if any,
// are returned through fn (which may be nil) so that the caller can count
// them. It reports false if the queue still has workers.
func (p *Pool[J, P]) Forget(q *Queue[J, P], fn func(Entry[J])) bool {
	if q.members > 0 || q.gone {
		return false
	}
	p.Drain(q, fn)
	q.gone = true
	delete(p.queues, q.name)
	return true
}

// EvictCandidate returns a queue without workers that could be forgotten
// to make room for a new one, preferring one with nothing waiting, or nil.
func (p *Pool[J, P]) EvictCandidate() *Queue[J, P] {
	var victim *Queue[J, P]
	for _, q := range p.queues {
		if q.members > 0 {
			continue
		}
		victim = q
		if q.Len() == 0 {
			break
		}
	}
	return victim
}

// Sweep forgets every queue that has had neither workers nor waiting jobs
// for at least ttl, calling fn (which may be nil) for each. Call it from
// the housekeeping timer.
func (p *Pool[J, P]) Sweep(now time.Time, ttl time.Duration, fn func(*Queue[J, P])) {
	for name, q := range p.queues {
		if q.members > 0 || q.Len() > 0 {
			q.emptySince = time.Time{}
			continue
		}
		if q.emptySince.IsZero() {
			q.emptySince = now
			continue
		}
		if now.Sub(q.emptySince) >= ttl {
			q.gone = true
			delete(p.queues, name)
			if fn != nil {
				fn(q)
			}
		}
	}
}

// Join adds a worker serving subs (duplicates are merged, keeping the
// heaviest weight), creating queues as needed. The worker starts with no
// slots: give it some with Credit. On error nothing is joined.
func (p *Pool[J, P]) Join(peer P, subs []Sub) (*Worker[J, P], error) {
	w := &Worker[J, P]{Peer: peer}
	if err := p.Resubscribe(w, subs); err != nil {
		return nil, err
	}
	return w, nil
}

// Resubscribe replaces the queues a worker serves (a worker that announces
// itself again). It keeps the worker's slots.
func (p *Pool[J, P]) Resubscribe(w *Worker[J, P], subs []Sub) error {
	if p.cfg.MaxQueuesPerWorker > 0 && len(subs) > p.cfg.MaxQueuesPerWorker {
		return ErrTooManySubscriptions
	}
	ms := make([]membership[J, P], 0, len(subs))
	for _, s := range subs {
		weight := max(s.Weight, 1)
		if i := slices.IndexFunc(ms, func(m membership[J, P]) bool { return m.q.name == s.Queue }); i >= 0 {
			ms[i].weight = max(ms[i].weight, weight)
			continue
		}
		q, err := p.Ensure(s.Queue)
		if err != nil {
			return err
		}
		ms = append(ms, membership[J, P]{q: q, weight: weight})
	}
	// Heaviest first; ties keep the worker's order (StrictPriority).
	slices.SortStableFunc(ms, func(a, b membership[J, P]) int { return b.weight - a.weight })
	slots := w.slots
	if w.subs != nil && !w.removed {
		p.setSlots(w, 0)
		for _, m := range w.subs {
			m.q.members--
		}
	}
	w.subs, w.removed = ms, false
	for _, m := range ms {
		m.q.members++
		m.q.stats.EverServed = true
		m.q.emptySince = time.Time{}
	}
	p.setSlots(w, slots)
	return nil
}

// Leave removes a worker from the pool; it gets no more jobs. The jobs it
// holds are the caller's business (see Redelivery and Requeue).
func (p *Pool[J, P]) Leave(w *Worker[J, P]) {
	if w.removed {
		return
	}
	p.setSlots(w, 0)
	for _, m := range w.subs {
		m.q.members--
	}
	w.removed = true
}

// Credit gives a worker n more free slots (an MDP worker's READY or
// reply, an eMQP READY). Follow it with Next until it returns false.
func (p *Pool[J, P]) Credit(w *Worker[J, P], n int) {
	if n <= 0 || w.removed {
		return
	}
	p.setSlots(w, w.slots+n)
}

// SetSlots sets a worker's free slots, for example to zero when an eMQP
// job manager says goodbye but still owes replies.
func (p *Pool[J, P]) SetSlots(w *Worker[J, P], n int) {
	if w.removed {
		return
	}
	p.setSlots(w, max(n, 0))
}

// setSlots keeps the invariant that a worker sits in the ready list of
// each of its queues exactly when it has a free slot.
func (p *Pool[J, P]) setSlots(w *Worker[J, P], n int) {
	was := w.slots
	w.slots = n
	switch {
	case was == 0 && n > 0:
		for _, m := range w.subs {
			m.q.bucketFor(m.weight, true).workers.PushBack(w)
			m.q.ready++
		}
	case was > 0 && n == 0:
		p.unready(w, nil)
	}
}

// unready takes w out of the ready lists of its queues, except skip's
// (from which the caller has popped it already).
func (p *Pool[J, P]) unready(w *Worker[J, P], skip *Queue[J, P]) {
	for _, m := range w.subs {
		if m.q != skip {
			if b := m.q.bucketFor(m.weight, false); b != nil {
				b.workers.RemoveLast(func(x *Worker[J, P]) bool { return x == w })
			}
		}
		m.q.ready--
	}
}

// take uses one of w's slots for a job from q; popped says that w was
// just popped from q's ready list, heaviest bucket first.
func (p *Pool[J, P]) take(w *Worker[J, P], q *Queue[J, P], popped bool, b *bucket[J, P]) {
	w.slots--
	w.Taken++
	q.stats.Dispatched++
	if w.slots > 0 {
		if popped {
			b.workers.PushBack(w) // Least recently used order across slots.
		}
		return
	}
	if popped {
		p.unready(w, q)
	} else {
		p.unready(w, nil)
	}
}

// pickReady pops the best ready worker of q: heaviest weight first, least
// recently used among equals.
func (p *Pool[J, P]) pickReady(q *Queue[J, P]) (*Worker[J, P], *bucket[J, P]) {
	for i := range q.buckets {
		b := &q.buckets[i]
		if w, ok := b.workers.PopFront(); ok {
			return w, b
		}
	}
	return nil, nil
}

// Submit offers a job from submitter to q. When q has nothing waiting and
// a worker is ready, a slot of that worker is taken and the worker is
// returned: the caller sends it the job. Otherwise the job is queued, within
// the bounds (ErrQueueFull, ErrQueueBytes: the job is not queued), and w is
// nil.
func (p *Pool[J, P]) Submit(q *Queue[J, P], submitter []byte, job J, size int64, now time.Time) (*Worker[J, P], error) {
	q.stats.Submitted++
	if p.direct(q) {
		w, b := p.pickReady(q)
		p.take(w, q, true, b)
		q.stats.QueueWait.Observe(0)
		return w, nil
	}
	if err := p.bounds(q, size); err != nil {
		q.stats.Rejected++
		return nil, err
	}
	q.fair.Push(submitter, job, size, now)
	p.cfg.Budget.add(size)
	q.emptySince = time.Time{}
	return nil, nil
}

// Reject is for a job of size bytes that the protocol refuses by a rule of
// its own (the MDP broker's per-client in-flight limit) instead of
// offering it with Submit. When the pool's bounds would have refused the
// job too, Reject counts it as Submit would (submitted and rejected) and
// returns that error, so that a full queue is reported as such before the
// protocol's own reason, as that broker always has; otherwise it counts
// nothing and returns nil, and the refusal is the protocol's to count.
func (p *Pool[J, P]) Reject(q *Queue[J, P], size int64) error {
	if p.direct(q) {
		return nil
	}
	err := p.bounds(q, size)
	if err != nil {
		q.stats.Submitted++
		q.stats.Rejected++
	}
	return err
}

// direct reports whether a job submitted to q now goes straight to a worker.
func (p *Pool[J, P]) direct(q *Queue[J, P]) bool {
	return !p.paused && q.fair.Len() == 0 && q.ready > 0
}

// bounds returns the error for a job of size bytes that q cannot queue.
func (p *Pool[J, P]) bounds(q *Queue[J, P], size int64) error {
	l := &p.cfg.Limits
	switch {
	case l.MaxLen > 0 && q.fair.Len() >= l.MaxLen:
		return ErrQueueFull
	case l.MaxBytes > 0 && q.fair.Bytes()+size > l.MaxBytes, !l.Budget.fits(size):
		return ErrQueueBytes
	}
	return nil
}

// Requeue puts a job back at the head of q for submitter, ignoring the
// bounds (it was accepted once and must not be lost to them), and stamps it
// with at for expiry. Follow it with Dispatch.
func (p *Pool[J, P]) Requeue(q *Queue[J, P], submitter string, job J, size int64, at time.Time) {
	q.stats.Requeued++
	q.fair.PushFront(submitter, job, size, at)
	p.cfg.Budget.add(size)
	q.emptySince = time.Time{}
}

func (p *Pool[J, P]) pop(q *Queue[J, P], now time.Time) Entry[J] {
	e, _ := q.fair.Pop()
	p.cfg.Budget.add(-e.Size)
	q.stats.QueueWait.Observe(now.Sub(e.At))
	return e
}

// Dispatch hands the next job waiting in q to q's best ready worker,
// taking a slot. ok is false when q has nothing waiting, no ready worker,
// or the pool is paused. Call it until it returns false after Requeue or
// after resuming.
func (p *Pool[J, P]) Dispatch(q *Queue[J, P], now time.Time) (w *Worker[J, P], e Entry[J], ok bool) {
	if p.paused || q.fair.Len() == 0 || q.ready == 0 {
		return nil, e, false
	}
	w, b := p.pickReady(q)
	e = p.pop(q, now)
	p.take(w, q, true, b)
	return w, e, true
}

// Next picks, for a worker with a free slot, the next job from its queues
// (by the pool's Selection), taking a slot. ok is false when the worker has
// no slot, none of its queues has a job waiting, or the pool is paused.
func (p *Pool[J, P]) Next(w *Worker[J, P], now time.Time) (e Entry[J], q *Queue[J, P], ok bool) {
	if p.paused || w.slots == 0 || w.removed {
		return e, nil, false
	}
	i := p.choose(w)
	if i < 0 {
		return e, nil, false
	}
	q = w.subs[i].q
	e = p.pop(q, now)
	p.take(w, q, false, nil)
	return e, q, true
}

// choose returns the index of the membership to serve, or -1.
func (p *Pool[J, P]) choose(w *Worker[J, P]) int {
	if p.cfg.Selection == StrictPriority {
		for i := range w.subs {
			if w.subs[i].q.fair.Len() > 0 {
				return i
			}
		}
		return -1
	}
	best, total := -1, 0
	for i := range w.subs {
		m := &w.subs[i]
		if m.q.fair.Len() == 0 {
			continue
		}
		m.current += m.weight
		total += m.weight
		if best < 0 || m.current > w.subs[best].current {
			best = i
		}
	}
	if best >= 0 {
		w.subs[best].current -= total
	}
	return best
}

// Expire removes from every queue the jobs that entered it before cutoff,
// calling fn for each, and returns how many it removed.
func (p *Pool[J, P]) Expire(cutoff time.Time, fn func(*Queue[J, P], Entry[J])) int {
	n := 0
	for _, q := range p.queues {
		if q.fair.Len() == 0 {
			continue
		}
		n += q.fair.Expire(cutoff, func(e Entry[J]) {
			p.cfg.Budget.add(-e.Size)
			q.stats.Expired++
			if fn != nil {
				fn(q, e)
			}
		})
	}
	return n
}

// Drain removes every job waiting in q, calling fn (which may be nil) for
// each, and returns how many it removed.
func (p *Pool[J, P]) Drain(q *Queue[J, P], fn func(Entry[J])) int {
	return q.fair.Drain(func(e Entry[J]) {
		p.cfg.Budget.add(-e.Size)
		if fn != nil {
			fn(e)
		}
	})
}

// Totals sums the queues: jobs and bytes waiting, ready workers.
func (p *Pool[J, P]) Totals() (waiting int, bytes int64, ready int) {
	for _, q := range p.queues {
		waiting += q.fair.Len()
		bytes += q.fair.Bytes()
		ready += q.ready
	}
	return waiting, bytes, ready
}
