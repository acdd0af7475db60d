package titanic

import (
	"container/heap"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/majordomo-go/majordomo/client"
)

// How the dispatcher works.
//
// Every stored request without a reply is an item, queued under its target
// service. One goroutine (run) owns all dispatch state; the other
// goroutines talk to it through an inbox (post). It hands items to lanes
// (lane.go). A lane is one client.Client (the client library's engine: one
// DEALER socket to the broker, owned by the client's goroutine) with at
// most one request in flight. MDP replies carry the service name but no
// request id, so "one request per socket" is what makes every reply land
// on the right UUID, whatever the service and whatever order workers
// answer in; MaxInFlight lanes give that many requests in flight at once.
// Requests go out with client.Client.Go, whose answer comes back to run as
// an event, so no goroutine waits on a reply. After an attempt times out,
// the lane's client replaces its socket before it sends to that service
// again (Lazy Pirate, 7/MDP "MDP/Client"), so a late reply can never be
// taken for the next request's.
//
// Before the first request to a service, and again after a timeout, the
// dispatcher asks the broker whether the service has workers (8/MMI
// mmi.service), so that requests wait in Titanic, not in the broker's
// queue, while a service has no worker (9/TSP "Request Execution": "The
// server executes requests asynchronously by sending them to the broker as
// and when services are available"). A broker that does not implement MMI
// (501) is assumed to have every service.
//
// A reply is handed to the group committer; only once it is committed is
// the item forgotten and the reply visible to titanic.reply. A failed
// attempt (timeout, socket error) is retried after an exponential backoff
// with jitter, without limit (RequestTTL, if set, bounds how long a request
// may wait). A failed reply commit is retried with the reply kept in memory:
// the request is not sent again.

var (
	// errTimeout: a lane's attempt got no reply within AttemptTimeout.
	errTimeout = errors.New("titanic: attempt timed out")
	// errGone: the request is no longer stored (closed or expired).
	errGone = errors.New("titanic: request no longer stored")
	// errAbandoned: the dispatcher is stopping.
	errAbandoned = errors.New("titanic: attempt abandoned at shutdown")
)

// keepBodies is how many queued requests of one service keep their body in
// memory; beyond it a body is read back from the store when its turn comes,
// so that a service without workers cannot fill memory with request bodies.
const keepBodies = 1024

type itemState uint8

const (
	stQueued     itemState = iota + 1 // In its service's queue.
	stDelayed                         // Waiting for a retry.
	stInFlight                        // With a lane.
	stStoring                         // Reply being committed.
	stStoreRetry                      // Reply commit failed; retry later.
)

type item struct {
	id        ID
	svc       *service
	body      [][]byte // nil: read from the store when dispatched.
	state     itemState
	attempts  int
	cancelled bool
	reply     [][]byte // stStoring, stStoreRetry.
	storeErrs int
	timerSeq  uint64
	lost      bool // Its lease went to another server while in flight.
}

type availability uint8

const (
	availUnknown availability = iota
	availPresent
	availAbsent
)

type service struct {
	name     string
	queue    []*item // queue[head:] are waiting.
	head     int
	inflight int
	avail    availability
	probing  bool
	probeDue bool // A probe is scheduled on the timer heap.
	backoff  time.Duration
	inReady  bool
	timerSeq uint64
	dead     int // Cancelled items still in queue.
}

func (s *service) queued() int { return len(s.queue) - s.head }

func (s *service) push(it *item) {
	s.queue = append(s.queue, it)
}

// compact drops cancelled items from the queue.
func (s *service) compact() {
	q := s.queue[:0]
	for _, it := range s.queue[s.head:] {
		if !it.cancelled {
			q = append(q, it)
		}
	}
	clear(s.queue[len(q):])
	s.queue, s.head, s.dead = q, 0, 0
}

func (s *service) pop() *item {
	it := s.queue[s.head]
	if it.cancelled {
		s.dead--
	}
	s.queue[s.head] = nil
	s.head++
	if s.head == len(s.queue) {
		s.queue, s.head = s.queue[:0], 0
	} else if s.head >= 1024 && s.head*2 >= len(s.queue) {
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	return it
}

type evKind uint8

const (
	evAdd evKind = iota + 1
	evCancel
	evResult
	evStored
	evProbe
	evLeaseSnap // Shared store: send the held IDs on snap.
	evRenewed   // Shared store: leases renewed.
	evClaimed   // Shared store: requests claimed.
)

type event struct {
	kind    evKind
	item    *item
	id      ID
	service string
	body    [][]byte
	err     error
	applied bool
	exists  bool
	noMMI   bool

	lane       *lane       // evResult: free again.
	snap       chan<- []ID // evLeaseSnap.
	held, kept []ID        // evRenewed.
	claimed    []Claimed   // evClaimed.
	validUntil time.Time   // evRenewed.
}

// job is an item handed to a lane, with what the lane needs to send it.
type job struct {
	it      *item
	id      ID
	service string
	body    [][]byte // nil: read it from the store first.
}

// timer is an entry of the dispatcher's timer heap; entries whose seq no
// longer matches their item's or service's are stale and skipped.
type timer struct {
	at  time.Time
	it  *item
	svc *service
	seq uint64
}

type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = timer{}
	*h = old[:len(old)-1]
	return t
}

type dispatcher struct {
	srv *Server
	cfg *Config

	mu     sync.Mutex
	events []event
	wake   chan struct{}

	// Owned by run.
	items     map[ID]*item
	services  map[string]*service
	ready     []*service // ready[readyHead:] is the round-robin ring.
	readyHead int
	timers    timerHeap
	seq       uint64
	inflight  int
	storing   int
	noMMI     bool

	// shared is the store's SharedStore side, nil for a store of one's
	// own; leaseUntil is when this server's leases may have run out, as far
	// as it knows (see lease.go).
	shared     SharedStore
	leaseUntil time.Time

	jobs   chan job
	probes chan string
	// lanes are every lane made so far, idle those without a request;
	// laneOpts configure their clients (see launch).
	lanes, idle []*lane
	laneOpts    []client.Option

	inflightGauge atomic.Int64
	pendingGauge  atomic.Int64
}

func newDispatcher(srv *Server) *dispatcher {
	shared, _ := srv.store.(SharedStore)
	cfg := &srv.cfg
	// The attempt's context, AttemptTimeout, ends every lane request; the
	// client's own timeout, longer, never fires, so that the client does not
	// ask mmi or resend on its own (the dispatcher's prober and backoff do
	// that), and retries 0 stop it from resending on a lost connection.
	laneOpts := append(clientOpts(cfg, srv.log),
		client.WithTimeout(2*cfg.AttemptTimeout+time.Minute), client.WithRetries(0))
	return &dispatcher{
		srv:      srv,
		shared:   shared,
		cfg:      cfg,
		wake:     make(chan struct{}, 1),
		items:    make(map[ID]*item),
		services: make(map[string]*service),
		jobs:     make(chan job, cfg.MaxInFlight),
		probes:   make(chan string, 4096),
		laneOpts: laneOpts,
	}
}

// post hands an event to the run goroutine; it never blocks.
func (d *dispatcher) post(ev event) {
	d.mu.Lock()
	d.events = append(d.events, ev)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// add tells the dispatcher about a newly stored request.
func (d *dispatcher) add(id ID, service string, body [][]byte) {
	d.post(event{kind: evAdd, id: id, service: service, body: body})
}

// cancel tells the dispatcher that requests are no longer stored.
func (d *dispatcher) cancel(ids ...ID) {
	d.mu.Lock()
	for _, id := range ids {
		d.events = append(d.events, event{kind: evCancel, id: id})
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// load queues a request found in the store at startup (before run).
func (d *dispatcher) load(id ID, service string) {
	d.enqueue(id, service, nil)
}

func (d *dispatcher) service(name string) *service {
	s := d.services[name]
	if s == nil {
		s = &service{name: name}
		d.services[name] = s
	}
	return s
}

func (d *dispatcher) enqueue(id ID, name string, body [][]byte) {
	if _, dup := d.items[id]; dup {
		return
	}
	s := d.service(name)
	if s.queued() >= keepBodies {
		body = nil
	}
	it := &item{id: id, svc: s, body: body, state: stQueued}
	d.items[id] = it
	s.push(it)
	d.mark(s)
}

// gc forgets a service that has nothing queued or in flight, so that
// requests to many different names cannot grow the map for ever. What is
// known about its workers is forgotten too: the next request asks again.
// Items waiting for a retry find their service again by name.
func (d *dispatcher) gc(s *service) {
	if s.queued() == 0 && s.inflight == 0 && !s.probing && !s.inReady && d.services[s.name] == s {
		delete(d.services, s.name)
	}
}

// eligible reports whether s can take a lane now.
func (d *dispatcher) eligible(s *service) bool {
	return s.queued() > 0 && s.inflight < d.cfg.MaxInFlightPerService &&
		(s.avail == availPresent || d.noMMI)
}

// mark puts s on the ready ring if it can be served, or starts a probe if
// its availability is unknown.
func (d *dispatcher) mark(s *service) {
	if s.queued() == 0 {
		return
	}
	if !d.noMMI && s.avail == availUnknown && !s.probing && !s.probeDue {
		select {
		case d.probes <- s.name:
			s.probing = true
		default:
			d.schedProbe(s, 50*time.Millisecond)
		}
	}
	if !s.inReady && d.eligible(s) {
		s.inReady = true
		d.ready = append(d.ready, s)
	}
}

func (d *dispatcher) schedProbe(s *service, after time.Duration) {
	d.seq++
	s.timerSeq = d.seq
	s.probeDue = true
	heap.Push(&d.timers, timer{at: time.Now().Add(after), svc: s, seq: d.seq})
}

func (d *dispatcher) schedItem(it *item, after time.Duration) {
	d.seq++
	it.timerSeq = d.seq
	heap.Push(&d.timers, timer{at: time.Now().Add(after), it: it, seq: d.seq})
}

// backoff returns the delay before retry n (1-based): RetryMin doubling up
// to RetryMax, with ±20% jitter so that retries of a burst spread out.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	j := time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return max(j, time.Millisecond)
}

// run is the dispatcher's goroutine. It returns when ctx ends and the
// attempts in flight have finished (or the shutdown grace has passed).
func (d *dispatcher) run(ctx context.Context) {
	laneCtx, stopLanes := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	probeCtx, stopProbe := context.WithCancel(context.Background())
	wg.Go(func() { d.prober(probeCtx) })
	if d.shared != nil {
		// Stopped with the prober: leases are renewed until the attempts in
		// flight are over.
		wg.Go(func() { d.leaser(probeCtx) })
	}
	defer func() {
		stopLanes()
		stopProbe()
		wg.Wait()
		d.closeLanes()
	}()

	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	var stopping bool
	var graceEnd <-chan time.Time
	done := ctx.Done()
	for {
		d.handleEvents()
		now := time.Now()
		d.fireTimers(now)
		if !stopping && d.leased(now) {
			d.dispatch()
			d.launch(laneCtx, &wg)
		}
		d.inflightGauge.Store(int64(d.inflight))
		d.pendingGauge.Store(int64(len(d.items)))
		if stopping && d.inflight == 0 && d.storing == 0 {
			return
		}
		wait := time.Hour
		if len(d.timers) > 0 {
			wait = max(time.Until(d.timers[0].at), 0)
		}
		tm.Reset(wait)
		select {
		case <-d.wake:
		case <-tm.C:
		case <-done:
			stopping, done = true, nil
			graceEnd = time.After(d.cfg.ShutdownGrace)
			// No job waits in d.jobs: launch sends every job dispatch
			// queues, and nothing is dispatched from now on.
			if d.inflight > 0 {
				d.srv.log.Info("dispatcher stopping; waiting for attempts in flight",
					"in_flight", d.inflight, "grace", d.cfg.ShutdownGrace)
			}
		case <-graceEnd:
			if d.inflight > 0 || d.storing > 0 {
				d.srv.log.Warn("dispatcher stopped with attempts in flight; they will be sent again after restart",
					"in_flight", d.inflight, "storing", d.storing)
			}
			return
		}
	}
}

func (d *dispatcher) handleEvents() {
	d.mu.Lock()
	evs := d.events
	d.events = nil
	d.mu.Unlock()
	for i := range evs {
		d.handle(&evs[i])
	}
}

func (d *dispatcher) handle(ev *event) {
	st := &d.srv.stats
	switch ev.kind {
	case evAdd:
		d.enqueue(ev.id, ev.service, ev.body)
	case evCancel:
		if it := d.items[ev.id]; it != nil {
			d.drop(it)
		}
	case evLeaseSnap, evRenewed, evClaimed:
		d.handleLease(ev)
	case evResult:
		if ev.lane != nil {
			d.idle = append(d.idle, ev.lane)
		}
		it := ev.item
		d.inflight--
		it.svc.inflight--
		switch {
		case it.cancelled:
		case ev.err == nil:
			it.state, it.reply = stStoring, ev.body
			d.storeReply(it)
		case errors.Is(ev.err, errGone):
			it.cancelled = true
			delete(d.items, it.id)
		case errors.Is(ev.err, errAbandoned):
			// Shutting down: it stays stored and is sent again after restart.
		case it.lost:
			// Another server holds it now and will retry it.
			it.cancelled = true
			delete(d.items, it.id)
		default:
			if errors.Is(ev.err, errTimeout) {
				st.timeouts.Add(1)
				if !d.noMMI && it.svc.avail == availPresent {
					it.svc.avail = availUnknown // Did its workers go away?
				}
			} else {
				st.sendErrors.Add(1)
			}
			st.retries.Add(1)
			it.state = stDelayed
			delay := backoff(it.attempts, d.cfg.RetryMin, d.cfg.RetryMax)
			d.schedItem(it, delay)
			d.srv.log.Debug("attempt failed; will retry", "uuid", it.id.String(), "service", it.svc.name,
				"attempt", it.attempts, "retry_in", delay, "error", ev.err)
		}
		d.mark(it.svc)
		d.gc(it.svc)
	case evStored:
		it := ev.item
		d.storing--
		switch {
		case ev.err == nil:
			if ev.applied {
				st.replied.Add(1)
			} else {
				st.duplicateReplies.Add(1) // Closed or expired meanwhile.
			}
			if !it.cancelled {
				delete(d.items, it.id)
			}
			it.reply = nil
		case errors.Is(ev.err, errCommitterStopped):
			// Shutting down: the request stays stored without a reply and
			// is sent again after restart (at-least-once).
		default:
			st.storeErrors.Add(1)
			if n, ok := d.srv.errLog.Allow(time.Now()); ok {
				d.srv.log.Error("titanic: cannot store a reply; keeping it and retrying",
					"uuid", it.id.String(), "error", ev.err.Error(), "suppressed", n)
			}
			it.storeErrs++
			it.state = stStoreRetry
			d.schedItem(it, backoff(it.storeErrs, d.cfg.RetryMin, d.cfg.RetryMax))
		}
	case evProbe:
		s := d.services[ev.service]
		if s == nil {
			return
		}
		s.probing = false
		switch {
		case ev.noMMI:
			if !d.noMMI {
				d.srv.log.Info("broker does not implement mmi.service (501); dispatching without checking for workers")
			}
			d.noMMI = true
			for _, s := range d.services {
				d.mark(s)
			}
		case ev.err != nil:
			s.backoff = min(max(2*s.backoff, 100*time.Millisecond), d.cfg.ProbeMax)
			d.schedProbe(s, s.backoff)
		case ev.exists:
			s.avail, s.backoff = availPresent, 0
		default:
			s.avail = availAbsent
			s.backoff = min(max(2*s.backoff, 50*time.Millisecond), d.cfg.ProbeMax)
			d.schedProbe(s, s.backoff)
		}
		d.mark(s)
		d.gc(s)
	}
}

func (d *dispatcher) storeReply(it *item) {
	d.storing++
	op := &Op{Kind: OpReply, ID: it.id, Body: it.reply, Time: time.Now()}
	d.srv.commit.submit(op, func(err error) {
		d.post(event{kind: evStored, item: it, err: err, applied: op.Applied})
	})
}

func (d *dispatcher) fireTimers(now time.Time) {
	for len(d.timers) > 0 && !d.timers[0].at.After(now) {
		t := heap.Pop(&d.timers).(timer)
		switch {
		case t.svc != nil:
			s := t.svc
			if s.timerSeq != t.seq || d.services[s.name] != s {
				continue
			}
			s.probeDue = false
			if s.avail != availPresent {
				s.avail = availUnknown
			}
			d.mark(s)
		case t.it != nil:
			it := t.it
			if it.timerSeq != t.seq || it.cancelled {
				continue
			}
			switch it.state {
			case stDelayed:
				it.state = stQueued
				it.svc = d.service(it.svc.name) // It may have been forgotten meanwhile.
				it.svc.push(it)
				d.mark(it.svc)
			case stStoreRetry:
				it.state = stStoring
				d.storeReply(it)
			}
		}
	}
}

// dispatch hands queued items to free lanes, round-robin over the services
// that can take one.
func (d *dispatcher) dispatch() {
	for d.inflight < d.cfg.MaxInFlight && d.readyHead < len(d.ready) {
		s := d.ready[d.readyHead]
		d.ready[d.readyHead] = nil
		d.readyHead++
		if d.readyHead == len(d.ready) {
			d.ready, d.readyHead = d.ready[:0], 0
		} else if d.readyHead >= 256 && d.readyHead*2 >= len(d.ready) {
			n := copy(d.ready, d.ready[d.readyHead:])
			clear(d.ready[n:])
			d.ready, d.readyHead = d.ready[:n], 0
		}
		s.inReady = false
		if !d.eligible(s) {
			d.mark(s) // Starts a probe if needed.
			d.gc(s)
			continue
		}
		it := s.pop()
		if it.cancelled {
			d.mark(s)
			d.gc(s)
			continue
		}
		it.state = stInFlight
		it.attempts++
		d.srv.stats.attempts.Add(1)
		d.inflight++
		s.inflight++
		d.jobs <- job{it: it, id: it.id, service: s.name, body: it.body}
		d.mark(s)
	}
}

// prober answers availability questions with mmi.service, one at a time.
func (d *dispatcher) prober(ctx context.Context) {
	opts := append(clientOpts(d.cfg, d.srv.log), client.WithTimeout(d.cfg.ProbeTimeout), client.WithRetries(0))
	cl, err := client.Connect(d.cfg.Broker, opts...)
	if err != nil {
		d.srv.log.Error("dispatcher: cannot create MMI client; assuming every service has workers", "error", err)
		for {
			select {
			case name := <-d.probes:
				d.post(event{kind: evProbe, service: name, noMMI: true})
			case <-ctx.Done():
				return
			}
		}
	}
	defer cl.Close()
	for {
		select {
		case name := <-d.probes:
			pctx, cancel := context.WithTimeout(ctx, d.cfg.ProbeTimeout)
			ok, err := cl.ServiceExists(pctx, name)
			cancel()
			ev := event{kind: evProbe, service: name, exists: ok, err: err}
			if errors.Is(err, client.ErrNotImplemented) {
				ev.err, ev.noMMI = nil, true
			}
			d.post(ev)
		case <-ctx.Done():
			return
		}
	}
}
