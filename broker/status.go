package broker

import (
	"slices"
	"strings"
	"time"
)

// LatencyBuckets are the upper bounds of the latency histograms kept per
// service (queue wait and service time). They span 50 µs to 60 s, enough for
// both an in-memory echo and a slow batch job.
var LatencyBuckets = []time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond,
	500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond,
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute,
}

// Histogram is a cumulative-free latency histogram: Counts[i] is the number
// of observations in (LatencyBuckets[i-1], LatencyBuckets[i]], and the last
// element counts those above the largest bound.
type Histogram struct {
	Counts []uint64
	Count  uint64
	Sum    time.Duration
}

func (h *Histogram) observe(d time.Duration) {
	if h.Counts == nil {
		h.Counts = make([]uint64, len(LatencyBuckets)+1)
	}
	i, _ := slices.BinarySearch(LatencyBuckets, d)
	h.Counts[i]++
	h.Count++
	h.Sum += d
}

func (h Histogram) clone() Histogram {
	h.Counts = slices.Clone(h.Counts)
	return h
}

// serviceCounters are the per-service counters the loop keeps.
type serviceCounters struct {
	requests    uint64
	replies     uint64
	partials    uint64
	expired     uint64
	redelivered uint64
	droppedBy   [numDropReasons]uint64
	queueWait   Histogram
	serviceTime Histogram
	everWorker  bool // Has had a worker registered at least once.
}

// dropped is the total of droppedBy but expiries, which Expired counts.
func (c *serviceCounters) dropped() uint64 {
	var n uint64
	for r, v := range c.droppedBy {
		if DropReason(r) != DropExpired {
			n += v
		}
	}
	return n
}

// ServiceStatus is one service in a Status.
type ServiceStatus struct {
	Name        string
	Workers     int   // Registered workers.
	Idle        int   // Of which idle.
	Busy        int   // Of which holding a request.
	Queued      int   // Requests waiting for a worker.
	QueuedBytes int64 // Their body bytes.
	// Registered is true if the service has had a worker at some point.
	// Services that never had one exist only because clients asked for
	// them; metrics exporters aggregate those to keep label sets bounded.
	Registered  bool
	Requests    uint64 // Requests accepted for this service.
	Replies     uint64 // Final replies delivered.
	Partials    uint64 // PARTIALs delivered.
	Expired     uint64 // Requests expired in the queue.
	Redelivered uint64 // Requests handed to a second or later worker.
	Dropped     uint64 // Requests dropped for any reason but expiry.
	// DroppedBy counts this service's dropped requests by DropReason
	// (expired ones included).
	DroppedBy   [numDropReasons]uint64
	QueueWait   Histogram
	ServiceTime Histogram
}

// WorkerStatus is one worker in a Status.
type WorkerStatus struct {
	Identity string // Printable form of the ROUTER identity.
	Service  string
	Protocol string // "MDP/0.1" or "MDP/0.2".
	Busy     bool
	Since    time.Time     // When it registered.
	LastSeen time.Duration // Time since the broker last heard from it.
	Served   uint64        // Final replies it delivered.
}

// Status is a detailed snapshot of the broker for operators: the global
// counters plus every service and worker.
type Status struct {
	Stats
	Started   time.Time
	Now       time.Time
	Endpoints []string
	Services  []ServiceStatus // Sorted by name.
	Workers   []WorkerStatus  // Sorted by service, then identity.
}

// Status returns a detailed snapshot. It is built on the event loop and copied
// out, so the caller may keep it as long as it likes. After Run has returned
// it holds only the final Stats.
func (b *Broker) Status() Status {
	var st Status
	if !b.inLoop(func() { st = b.status() }) {
		st.Stats = b.finalStats()
		st.Endpoints = b.Endpoints()
	}
	return st
}

func (b *Broker) status() Status {
	now := time.Now()
	st := Status{Stats: b.snapshot(), Started: b.started0, Now: now, Endpoints: b.Endpoints()}
	st.Services = make([]ServiceStatus, 0, len(b.services))
	for _, s := range b.services {
		c := &s.counters
		st.Services = append(st.Services, ServiceStatus{
			Name: s.name, Workers: s.workers, Idle: s.idle.len(), Busy: s.busy,
			Queued: s.queued, QueuedBytes: s.queuedBytes, Registered: c.everWorker,
			Requests: c.requests, Replies: c.replies, Partials: c.partials,
			Expired: c.expired, Redelivered: c.redelivered, Dropped: c.dropped(), DroppedBy: c.droppedBy,
			QueueWait: c.queueWait.clone(), ServiceTime: c.serviceTime.clone(),
		})
	}
	slices.SortFunc(st.Services, func(a, b ServiceStatus) int { return strings.Compare(a.Name, b.Name) })
	st.Workers = make([]WorkerStatus, 0, len(b.workers))
	live := b.liveness()
	for _, w := range b.workers {
		st.Workers = append(st.Workers, WorkerStatus{
			Identity: printable(w.id), Service: w.service.name, Protocol: w.version.String(),
			Busy: w.req != nil, Since: w.since, LastSeen: now.Sub(w.expiry.Add(-live)),
			Served: w.served,
		})
	}
	slices.SortFunc(st.Workers, func(a, b WorkerStatus) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return strings.Compare(a.Identity, b.Identity)
	})
	return st
}
