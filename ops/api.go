package ops

import (
	"sync"
	"time"

	"github.com/majordomo-go/majordomo/broker"
)

// StatusResponse is the body of GET /api/v1/status: a broker.Status in
// JSON, with rates computed from successive snapshots. Durations are in
// seconds.
type StatusResponse struct {
	Started       time.Time         `json:"started"`
	Now           time.Time         `json:"now"`
	UptimeSeconds float64           `json:"uptime_seconds"`
	Running       bool              `json:"running"`  // The event loop answered.
	Draining      bool              `json:"draining"` // SIGTERM received: no new dispatches.
	Endpoints     []string          `json:"endpoints"`
	Totals        Totals            `json:"totals"`
	Rates         *Rates            `json:"rates"` // Null until two snapshots are apart.
	Dropped       map[string]uint64 `json:"dropped"`
	Removed       map[string]uint64 `json:"removed"`
	Services      []ServiceInfo     `json:"services"`
	Workers       []WorkerInfo      `json:"workers"`
	// Security shows every front with its endpoints, their mechanisms and
	// its refusals, and lists the plaintext endpoints.
	Security *SecurityInfo `json:"security"`
}

// Totals are the broker-wide gauges and counters of a StatusResponse.
type Totals struct {
	Connections int    `json:"connections"`
	Workers     int    `json:"workers"`
	IdleWorkers int    `json:"idle_workers"`
	BusyWorkers int    `json:"busy_workers"`
	Services    int    `json:"services"`
	Queued      int    `json:"queued"`
	QueuedBytes int64  `json:"queued_bytes"`
	Requests    uint64 `json:"requests"`
	MMIRequests uint64 `json:"mmi_requests"`
	Dispatched  uint64 `json:"dispatched"`
	Redelivered uint64 `json:"redelivered"`
	Replies     uint64 `json:"replies"`
	Partials    uint64 `json:"partials"`
	Registered  uint64 `json:"registrations"`
	Heartbeats  uint64 `json:"heartbeats_sent"`
	Dropped     uint64 `json:"dropped"`
}

// Rates are per-second rates over WindowSeconds, the time between this
// snapshot and an earlier one (about a second or more).
type Rates struct {
	WindowSeconds float64 `json:"window_seconds"`
	Requests      float64 `json:"requests"`
	Replies       float64 `json:"replies"`
	Dropped       float64 `json:"dropped"` // Expired requests included.
}

// ServiceInfo is one service of a StatusResponse.
type ServiceInfo struct {
	Name        string  `json:"name"`
	Registered  bool    `json:"registered"` // Has had a worker.
	Workers     int     `json:"workers"`
	Idle        int     `json:"idle"`
	Busy        int     `json:"busy"`
	Queued      int     `json:"queued"`
	QueuedBytes int64   `json:"queued_bytes"`
	Requests    uint64  `json:"requests"`
	Replies     uint64  `json:"replies"`
	Partials    uint64  `json:"partials"`
	Expired     uint64  `json:"expired"`
	Redelivered uint64  `json:"redelivered"`
	Dropped     uint64  `json:"dropped"`
	Rates       *Rates  `json:"rates"`
	QueueWait   Latency `json:"queue_wait"`
	ServiceTime Latency `json:"service_time"`
}

// Latency summarises a broker.Histogram. Quantiles are estimated from the
// buckets by linear interpolation, as Prometheus' histogram_quantile does.
type Latency struct {
	Count       uint64  `json:"count"`
	MeanSeconds float64 `json:"mean_seconds"`
	P50Seconds  float64 `json:"p50_seconds"`
	P90Seconds  float64 `json:"p90_seconds"`
	P99Seconds  float64 `json:"p99_seconds"`
}

// WorkerInfo is one worker of a StatusResponse.
type WorkerInfo struct {
	Identity        string    `json:"identity"`
	Service         string    `json:"service"`
	Protocol        string    `json:"protocol"`
	Busy            bool      `json:"busy"`
	Since           time.Time `json:"since"`
	AgeSeconds      float64   `json:"age_seconds"`
	LastSeenSeconds float64   `json:"last_seen_seconds"`
	Served          uint64    `json:"served"`
}

// newStatusResponse converts st; rates may be nil.
func newStatusResponse(st *broker.Status, rt *rateTracker, draining bool) *StatusResponse {
	r := &StatusResponse{
		Started: st.Started, Now: st.Now, Running: !st.Now.IsZero(), Draining: draining,
		Endpoints: st.Endpoints,
		Totals: Totals{
			Connections: st.Stats.Connections, Workers: st.Stats.Workers, IdleWorkers: st.IdleWorkers, BusyWorkers: st.BusyWorkers,
			Services: st.Stats.Services, Queued: st.Queued, QueuedBytes: st.QueuedBytes,
			Requests: st.Requests, MMIRequests: st.MMIRequests, Dispatched: st.Dispatched,
			Redelivered: st.Redelivered, Replies: st.Replies, Partials: st.Partials,
			Registered: st.Registered, Heartbeats: st.Heartbeats, Dropped: st.TotalDropped(),
		},
		Dropped:  make(map[string]uint64),
		Removed:  make(map[string]uint64),
		Services: make([]ServiceInfo, 0, len(st.Services)),
		Workers:  make([]WorkerInfo, 0, len(st.Workers)),
	}
	if r.Endpoints == nil {
		r.Endpoints = []string{}
	}
	if r.Running {
		r.UptimeSeconds = st.Now.Sub(st.Started).Seconds()
	}
	for _, d := range broker.DropReasons() {
		r.Dropped[d.String()] = st.DroppedBy(d)
	}
	for _, d := range broker.RemoveReasons() {
		r.Removed[d.String()] = st.RemovedBy(d)
	}
	var base *sample
	var window time.Duration
	if r.Running && rt != nil {
		base, window = rt.observe(st)
	}
	if base != nil {
		r.Rates = base.global.rates(totalsOf(st), window)
	}
	for i := range st.Services {
		s := &st.Services[i]
		info := ServiceInfo{
			Name: s.Name, Registered: s.Registered, Workers: s.Workers, Idle: s.Idle, Busy: s.Busy,
			Queued: s.Queued, QueuedBytes: s.QueuedBytes, Requests: s.Requests, Replies: s.Replies,
			Partials: s.Partials, Expired: s.Expired, Redelivered: s.Redelivered, Dropped: s.Dropped,
			QueueWait: latencyOf(s.QueueWait), ServiceTime: latencyOf(s.ServiceTime),
		}
		if base != nil {
			info.Rates = base.services[s.Name].rates(serviceTotals(s), window)
		}
		r.Services = append(r.Services, info)
	}
	for _, w := range st.Workers {
		r.Workers = append(r.Workers, WorkerInfo{
			Identity: w.Identity, Service: w.Service, Protocol: w.Protocol, Busy: w.Busy,
			Since: w.Since, AgeSeconds: st.Now.Sub(w.Since).Seconds(),
			LastSeenSeconds: w.LastSeen.Seconds(), Served: w.Served,
		})
	}
	return r
}

func latencyOf(h broker.Histogram) Latency {
	l := Latency{Count: h.Count}
	if h.Count == 0 {
		return l
	}
	l.MeanSeconds = h.Sum.Seconds() / float64(h.Count)
	l.P50Seconds = Quantile(h, 0.5).Seconds()
	l.P90Seconds = Quantile(h, 0.9).Seconds()
	l.P99Seconds = Quantile(h, 0.99).Seconds()
	return l
}

// Quantile estimates the q-quantile (0 < q < 1) of h by linear
// interpolation inside the bucket that holds it. Observations above the
// largest bound are reported as that bound, as histogram_quantile does.
func Quantile(h broker.Histogram, q float64) time.Duration {
	if h.Count == 0 || len(h.Counts) == 0 {
		return 0
	}
	rank := q * float64(h.Count)
	var cum float64
	for i, n := range h.Counts {
		if n == 0 {
			continue
		}
		if cum+float64(n) >= rank {
			if i >= len(broker.LatencyBuckets) {
				return broker.LatencyBuckets[len(broker.LatencyBuckets)-1]
			}
			var lo time.Duration
			if i > 0 {
				lo = broker.LatencyBuckets[i-1]
			}
			hi := broker.LatencyBuckets[i]
			frac := (rank - cum) / float64(n)
			return lo + time.Duration(frac*float64(hi-lo))
		}
		cum += float64(n)
	}
	return broker.LatencyBuckets[len(broker.LatencyBuckets)-1]
}

// triple is the counters rates are computed from.
type triple struct{ requests, replies, dropped uint64 }

func totalsOf(st *broker.Status) triple {
	return triple{st.Requests, st.Replies, st.TotalDropped()}
}

func serviceTotals(s *broker.ServiceStatus) triple {
	return triple{s.Requests, s.Replies, s.Dropped + s.Expired}
}

// rates returns the per-second rates from t (earlier) to now over window. A
// counter that went down (the service was forgotten and came back) counts
// from zero, as Prometheus' rate() does.
func (t triple) rates(now triple, window time.Duration) *Rates {
	sec := window.Seconds()
	d := func(a, b uint64) float64 {
		if b < a {
			return float64(b) / sec
		}
		return float64(b-a) / sec
	}
	return &Rates{WindowSeconds: sec, Requests: d(t.requests, now.requests),
		Replies: d(t.replies, now.replies), Dropped: d(t.dropped, now.dropped)}
}

// sample is the counters of one snapshot.
type sample struct {
	at       time.Time
	global   triple
	services map[string]triple
}

// Rate windows: rates are computed against the newest sample at least
// minWindow old, or failing that the oldest sample at least minUsable old.
// Samples are kept at least sampleEvery apart, at most maxSamples.
const (
	minWindow   = time.Second
	minUsable   = 200 * time.Millisecond
	sampleEvery = 250 * time.Millisecond
	maxSamples  = 16
)

// rateTracker keeps recent samples so that any number of pollers get rates
// over a window of about a second, whatever their polling interval.
type rateTracker struct {
	mu      sync.Mutex
	samples []*sample // Oldest first.
}

// observe records st and returns the sample to compute rates against and
// the time between the two, or nil if there is none yet.
func (rt *rateTracker) observe(st *broker.Status) (*sample, time.Duration) {
	cur := &sample{at: st.Now, global: totalsOf(st), services: make(map[string]triple, len(st.Services))}
	for i := range st.Services {
		cur.services[st.Services[i].Name] = serviceTotals(&st.Services[i])
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var base *sample
	keepFrom := 0
	for i, s := range rt.samples {
		if age := cur.at.Sub(s.at); age >= minWindow {
			base, keepFrom = s, i
		}
	}
	if base == nil {
		for _, s := range rt.samples {
			if cur.at.Sub(s.at) >= minUsable {
				base = s
				break
			}
		}
	}
	if keepFrom > 0 {
		rt.samples = append([]*sample(nil), rt.samples[keepFrom:]...)
	}
	if n := len(rt.samples); n == 0 || cur.at.Sub(rt.samples[n-1].at) >= sampleEvery {
		rt.samples = append(rt.samples, cur)
	}
	if len(rt.samples) > maxSamples {
		rt.samples = append([]*sample(nil), rt.samples[len(rt.samples)-maxSamples:]...)
	}
	if base == nil {
		return nil, 0
	}
	return base, cur.at.Sub(base.at)
}
