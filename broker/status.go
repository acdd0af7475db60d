package broker

import (
	"slices"
	"strings"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/internal/dispatch"
	"github.com/majordomo-go/majordomo/internal/secure"
)

// LatencyBuckets are the upper bounds of the latency histograms kept per
// service (queue wait and service time): the core's, shared with eMQP so
// that the metrics of both protocols line up.
var LatencyBuckets = dispatch.LatencyBuckets

// Histogram is a non-cumulative latency histogram over LatencyBuckets:
// Counts[i] counts the observations in (LatencyBuckets[i-1],
// LatencyBuckets[i]] and the last element those above the largest bound;
// Mean and Quantile summarise it, Clone copies it.
type Histogram = dispatch.Histogram

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
	// Listeners describes every endpoint bound and the mechanism it
	// speaks, internal ones included.
	Listeners []auth.Listener
	// Security is the mechanism of Endpoints ("CURVE", "PLAIN", "NULL"),
	// and Policy whether an Authorizer is in force.
	Security string
	Policy   bool
	// Auth are the Authenticator's counters (zero without security): by
	// reason, and by front (ZAP domain), every front that shares the
	// Authenticator included.
	Auth auth.Stats
	// Conns are the connection counters of the broker's socket.
	Conns []auth.ConnStats
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
	// Fixed at New, or atomic counters: read off the loop.
	st.Listeners = b.Listeners()
	st.Security = auth.MechanismNull
	if b.sec != nil {
		st.Security = secure.MechanismName(b.sec.cfg.mechanism())
		st.Policy = b.sec.authz != nil
	}
	st.Auth = b.AuthStats()
	st.Conns = b.ConnStats()
	return st
}

func (b *Broker) status() Status {
	now := time.Now()
	st := Status{Stats: b.snapshot(), Started: b.startedAt, Now: now, Endpoints: b.Endpoints()}
	st.Services = make([]ServiceStatus, 0, b.pool.Len())
	b.pool.Range(func(q *queue) bool {
		s, c, o := serviceOf(q), q.Stats(), &q.Outcomes
		st.Services = append(st.Services, ServiceStatus{
			Name: q.Name(), Workers: q.Members(), Idle: q.Ready(), Busy: q.Members() - q.Ready(),
			Queued: q.Len(), QueuedBytes: q.Bytes(), Registered: c.EverServed,
			Requests: s.requests(), Replies: o.Completed, Partials: s.partials,
			Expired: c.Expired, Redelivered: s.redelivered, Dropped: o.Dropped, DroppedBy: s.droppedBy,
			QueueWait: c.QueueWait.Clone(), ServiceTime: o.ServiceTime.Clone(),
		})
		return true
	})
	slices.SortFunc(st.Services, func(a, b ServiceStatus) int { return strings.Compare(a.Name, b.Name) })
	st.Workers = make([]WorkerStatus, 0, len(b.workers))
	for _, w := range b.workers {
		st.Workers = append(st.Workers, WorkerStatus{
			Identity: printable(w.id), Service: w.service.name(), Protocol: w.version.String(),
			Busy: w.req != nil, Since: w.since, LastSeen: now.Sub(w.live.LastHeard),
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
