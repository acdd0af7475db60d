package broker

import (
	"errors"
	"time"

	"github.com/majordomo-go/majordomo/internal/dispatch"
	"github.com/majordomo-go/majordomo/mdp"
)

// The broker's queues, workers and their bookkeeping are the
// protocol-neutral core's (internal/dispatch), shared with the eMQP server:
// a service is a pool queue, fair across clients and bounded in length and
// bytes, and an MDP worker is a pool worker with one queue and one slot of
// credit that its reply refills. What stays here is what only 7/MDP knows:
// the request and worker records, MMI, authorization and the per-client
// in-flight limit.
type (
	pool  = dispatch.Pool[*request, *worker]
	queue = dispatch.Queue[*request, *worker]
	entry = dispatch.Entry[*request]
)

// request is a client request the broker has accepted. While it waits, the
// pool's entry for it holds when it entered the queue.
type request struct {
	client    []byte // ROUTER identity of the client.
	version   mdp.Version
	delimited bool // Client framing: answer in the same shape.
	service   *service
	body      [][]byte
	size      int64
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
	dw        *dispatch.Worker[*request, *worker] // Its place in the pool.
	live      dispatch.Liveness
	req       *request  // The request it holds, or nil when idle.
	since     time.Time // When it registered.
	served    uint64    // Final replies it delivered.
}

// service is the broker's record of a pool queue (its Data): what the
// metrics and replies need that the protocol-neutral queue does not keep.
type service struct {
	q     *queue
	nameB []byte // The name as a frame, so that replies need no conversion.
	// partials and redelivered count PARTIALs delivered and requests handed
	// to a second or later worker; the pool counts redeliveries when they
	// are queued again, not when they are delivered.
	partials    uint64
	redelivered uint64
	droppedBy   [numDropReasons]uint64
}

func (s *service) name() string { return s.q.Name() }

// count records a request of this service dropped for reason r. Outcomes'
// Dropped counts every reason but expiry, which the pool's Expired counts.
func (s *service) count(r DropReason) {
	s.droppedBy[r]++
	if r != DropExpired {
		s.q.Outcomes.Dropped++
	}
}

// requests is how many requests the service was asked for: those offered to
// the pool plus those the client's in-flight limit refused before it.
func (s *service) requests() uint64 {
	return s.q.Stats().Submitted + s.droppedBy[DropClientInFlight]
}

// serviceOf returns the broker's record of q, making it on first sight.
func serviceOf(q *queue) *service {
	s, _ := q.Data.(*service)
	if s == nil {
		s = &service{q: q, nameB: []byte(q.Name())}
		q.Data = s
	}
	return s
}

// service finds or creates a service, or returns nil when MaxServices would
// be exceeded. A worker's READY may evict a service that has no workers, so
// that clients asking for thousands of made-up names cannot lock real
// workers out; the evicted service's queued requests are dropped and
// counted.
func (b *Broker) service(name []byte, forWorker bool) *service {
	q, err := b.pool.EnsureBytes(name)
	if errors.Is(err, dispatch.ErrTooManyQueues) && forWorker {
		if victim := b.pool.EvictCandidate(); victim != nil {
			b.pool.Forget(victim, func(e entry) {
				b.stats.Dropped[DropTooManyServices]++
				b.release(e.Value)
			})
			q, err = b.pool.EnsureBytes(name)
		}
	}
	if err != nil {
		return nil
	}
	return serviceOf(q)
}

// limits are the pool's bounds for cfg; budget is the broker's one byte
// budget over all services, whose Max the caller sets.
func (c Config) limits(budget *dispatch.Budget) dispatch.Limits {
	return dispatch.Limits{MaxLen: c.MaxQueue, Budget: budget, MaxQueues: c.MaxServices}
}

// heartbeats is the 7/MDP heartbeat policy for cfg: a worker is sent a
// HEARTBEAT when it has been sent nothing for an interval ("any command
// acts as a heartbeat"), idle or busy, and is dead after liveness ×
// interval of silence.
func (c Config) heartbeats() dispatch.Heartbeats {
	return dispatch.Heartbeats{
		Interval:   c.HeartbeatInterval,
		Timeout:    c.HeartbeatInterval * time.Duration(c.HeartbeatLiveness),
		SendsCount: true,
	}
}
