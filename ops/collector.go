package ops

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/prometheus/client_golang/prometheus"
)

// OtherService is the service label value under which the collector sums
// services that get no label of their own.
const OtherService = "_other"

// Source is what the operations server needs from a broker: one snapshot
// method, built on the broker's event loop and copied out. *broker.Broker
// implements it.
type Source interface {
	Status() broker.Status
}

// Collector is a prometheus.Collector that takes one broker.Status per
// scrape and turns it into const metrics, so that a scrape never holds a
// lock the broker's event loop needs.
//
// Label cardinality is bounded: a service gets its own service label only
// if it has had a worker (broker.ServiceStatus.Registered) and fewer than
// the cap (SetMaxServices) already have one. Every other service, and in
// particular every name a client made up, is summed under
// service="_other". A labelled service keeps its label until the broker
// forgets it. The _other counters only ever grow: when a service leaves
// _other (forgotten, or given its own label), what it had added stays in a
// retired total, so rate() over _other shows no false resets.
type Collector struct {
	src Source
	max atomic.Int64

	mu      sync.Mutex // Guards the fields below; one scrape at a time.
	labeled map[string]bool
	members map[string]*member // Services summed under _other.
	retired counts             // What former members added to _other.

	d   descs
	sd  securityDescs
	sec *security // The fronts beyond the broker's (Server.AddEMQP).
}

// counts are the cumulative per-service values, as added up under _other.
type counts struct {
	requests, replies, partials, expired, redelivered uint64
	dropped                                           dropCounts // By broker.DropReason.
	queueWait, serviceTime                            hist
}

// dropCounts has one counter per broker.DropReason.
type dropCounts = [len(broker.Stats{}.Dropped)]uint64

type hist struct {
	buckets []uint64 // Non-cumulative, len(LatencyBuckets)+1.
	count   uint64
	sum     time.Duration
}

// member is a service summed under _other: it adds last - base.
type member struct {
	base, last counts
}

// NewCollector returns a collector over src that gives at most maxServices
// services a label of their own.
func NewCollector(src Source, maxServices int) *Collector {
	c := &Collector{src: src, labeled: make(map[string]bool), members: make(map[string]*member), d: newDescs(),
		sd: newSecurityDescs(), sec: &security{}}
	c.retired = zeroCounts()
	c.SetMaxServices(maxServices)
	return c
}

// SetMaxServices changes the cap on labelled services. Lowering it moves
// the labelled services past the cap (by name, last first) to _other at
// the next scrape.
func (c *Collector) SetMaxServices(n int) {
	c.max.Store(int64(max(n, 0)))
}

// Describe sends the descriptors of every metric the collector emits.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.d.all() {
		ch <- d
	}
	for _, d := range c.sd.all() {
		ch <- d
	}
}

// Collect takes one broker.Status and sends every metric.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Status()
	c.collectGlobal(ch, &st)
	c.sd.collect(ch, c.sec.fronts(&st))

	c.mu.Lock()
	defer c.mu.Unlock()
	cur := make(map[string]counts, len(st.Services))
	for i := range st.Services {
		cur[st.Services[i].Name] = countsOf(&st.Services[i])
	}
	// Forget what the broker forgot.
	for name := range c.labeled {
		if _, ok := cur[name]; !ok {
			delete(c.labeled, name)
		}
	}
	for name, m := range c.members {
		if _, ok := cur[name]; !ok {
			c.retire(m, m.last)
			delete(c.members, name)
		}
	}
	// Enforce a lowered cap: demote the labelled services last by name.
	if limit := int(c.max.Load()); len(c.labeled) > limit {
		seen := 0
		for i := range st.Services {
			name := st.Services[i].Name
			if !c.labeled[name] {
				continue
			}
			if seen++; seen > limit {
				delete(c.labeled, name)
				c.members[name] = &member{base: cur[name], last: cur[name]}
			}
		}
	}
	other := zeroCounts()
	var otherGauges serviceGauges
	aggregated := 0
	for i := range st.Services {
		s := &st.Services[i]
		now := cur[s.Name]
		m := c.members[s.Name]
		if !c.labeled[s.Name] && s.Registered && len(c.labeled) < int(c.max.Load()) {
			if m != nil {
				c.retire(m, now)
				delete(c.members, s.Name)
			}
			c.labeled[s.Name] = true
		}
		if c.labeled[s.Name] {
			c.emitService(ch, s.Name, &now, gaugesOf(s))
			continue
		}
		if m == nil {
			m = &member{base: zeroCounts(), last: zeroCounts()}
			c.members[s.Name] = m
		}
		if now.less(&m.last) {
			// The broker forgot the service and it came back between two
			// scrapes: a new incarnation, counted from zero.
			c.retire(m, m.last)
			m.base = zeroCounts()
		}
		m.last = now
		other.add(&now, 1)
		other.add(&m.base, -1)
		otherGauges.add(gaugesOf(s))
		aggregated++
	}
	other.add(&c.retired, 1)
	c.emitService(ch, OtherService, &other, otherGauges)
	ch <- prometheus.MustNewConstMetric(c.d.aggregated, prometheus.GaugeValue, float64(aggregated))
}

// retire keeps what member m added to _other up to the values at.
func (c *Collector) retire(m *member, at counts) {
	c.retired.add(&at, 1)
	c.retired.add(&m.base, -1)
}

func (c *Collector) collectGlobal(ch chan<- prometheus.Metric, st *broker.Status) {
	d := &c.d
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter(d.requests, st.Requests)
	counter(d.mmiRequests, st.MMIRequests)
	counter(d.dispatched, st.Dispatched)
	counter(d.redelivered, st.Redelivered)
	counter(d.replies, st.Replies)
	counter(d.partials, st.Partials)
	counter(d.registrations, st.Registered)
	counter(d.heartbeats, st.Heartbeats)
	for _, r := range broker.DropReasons() {
		counter(d.dropped, st.DroppedBy(r), r.String(), DropClass(r))
	}
	for _, r := range broker.RemoveReasons() {
		counter(d.removed, st.RemovedBy(r), r.String())
	}
	gauge(d.workers, float64(st.IdleWorkers), "idle")
	gauge(d.workers, float64(st.BusyWorkers), "busy")
	gauge(d.services, float64(st.Stats.Services))
	gauge(d.connections, float64(st.Stats.Connections))
	gauge(d.queued, float64(st.Queued))
	gauge(d.queuedBytes, float64(st.QueuedBytes))
	if !st.Started.IsZero() {
		gauge(d.startTime, float64(st.Started.UnixNano())/1e9)
	}
}

// serviceGauges are the per-service values that are not cumulative.
type serviceGauges struct {
	idle, busy, queued int
	queuedBytes        int64
}

func (g *serviceGauges) add(o serviceGauges) {
	g.idle += o.idle
	g.busy += o.busy
	g.queued += o.queued
	g.queuedBytes += o.queuedBytes
}

func gaugesOf(s *broker.ServiceStatus) serviceGauges {
	return serviceGauges{idle: s.Idle, busy: s.Busy, queued: s.Queued, queuedBytes: s.QueuedBytes}
}

func (c *Collector) emitService(ch chan<- prometheus.Metric, name string, v *counts, g serviceGauges) {
	d := &c.d
	counter := func(desc *prometheus.Desc, n uint64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(n), name)
	}
	gauge := func(desc *prometheus.Desc, n float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, n, append([]string{name}, labels...)...)
	}
	counter(d.svcRequests, v.requests)
	counter(d.svcReplies, v.replies)
	counter(d.svcPartials, v.partials)
	counter(d.svcExpired, v.expired)
	counter(d.svcRedelivered, v.redelivered)
	for r, n := range v.dropped {
		// Expiries have their own metric; other reasons appear once seen,
		// which keeps the series few (labelled services × reasons seen).
		if reason := broker.DropReason(r); n > 0 && reason != broker.DropExpired {
			ch <- prometheus.MustNewConstMetric(d.svcDropped, prometheus.CounterValue, float64(n), name, reason.String())
		}
	}
	gauge(d.svcWorkers, float64(g.idle), "idle")
	gauge(d.svcWorkers, float64(g.busy), "busy")
	gauge(d.svcQueued, float64(g.queued))
	gauge(d.svcQueuedBytes, float64(g.queuedBytes))
	ch <- constHistogram(d.svcQueueWait, &v.queueWait, name)
	ch <- constHistogram(d.svcServiceTime, &v.serviceTime, name)
}

// constHistogram converts the broker's non-cumulative buckets into
// Prometheus' cumulative ones; the overflow bucket is +Inf, which is the
// total count.
func constHistogram(desc *prometheus.Desc, h *hist, label string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(broker.LatencyBuckets))
	var cum uint64
	for i, bound := range broker.LatencyBuckets {
		if i < len(h.buckets) {
			cum += h.buckets[i]
		}
		buckets[bound.Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(desc, h.count, h.sum.Seconds(), buckets, label)
}

func zeroCounts() counts {
	return counts{
		queueWait:   hist{buckets: make([]uint64, len(broker.LatencyBuckets)+1)},
		serviceTime: hist{buckets: make([]uint64, len(broker.LatencyBuckets)+1)},
	}
}

func histOf(h broker.Histogram) hist {
	out := hist{buckets: make([]uint64, len(broker.LatencyBuckets)+1), count: h.Count, sum: h.Sum}
	copy(out.buckets, h.Counts)
	return out
}

func countsOf(s *broker.ServiceStatus) counts {
	return counts{
		requests: s.Requests, replies: s.Replies, partials: s.Partials, expired: s.Expired,
		redelivered: s.Redelivered, dropped: s.DroppedBy,
		queueWait: histOf(s.QueueWait), serviceTime: histOf(s.ServiceTime),
	}
}

// add adds sign (1 or -1) times o to c. Unsigned wrap-around makes a
// subtraction followed by the matching addition exact.
func (c *counts) add(o *counts, sign int) {
	op := func(a *uint64, b uint64) {
		if sign < 0 {
			*a -= b
		} else {
			*a += b
		}
	}
	op(&c.requests, o.requests)
	op(&c.replies, o.replies)
	op(&c.partials, o.partials)
	op(&c.expired, o.expired)
	op(&c.redelivered, o.redelivered)
	for i := range c.dropped {
		op(&c.dropped[i], o.dropped[i])
	}
	for _, p := range [2][2]*hist{{&c.queueWait, &o.queueWait}, {&c.serviceTime, &o.serviceTime}} {
		h, g := p[0], p[1]
		for i := range h.buckets {
			op(&h.buckets[i], g.buckets[i])
		}
		op(&h.count, g.count)
		if sign < 0 {
			h.sum -= g.sum
		} else {
			h.sum += g.sum
		}
	}
}

// less reports whether any counter in c is below its value in o, which
// only happens when the service was forgotten and created again.
func (c *counts) less(o *counts) bool {
	return c.requests < o.requests || c.replies < o.replies || c.partials < o.partials ||
		c.expired < o.expired || c.redelivered < o.redelivered || droppedLess(&c.dropped, &o.dropped) ||
		c.queueWait.count < o.queueWait.count || c.serviceTime.count < o.serviceTime.count
}

func droppedLess(a, b *dropCounts) bool {
	for i := range a {
		if a[i] < b[i] {
			return true
		}
	}
	return false
}

// DropClass groups a drop reason for the class label of
// mdbroker_dropped_messages_total: "malformed" (the message could not be
// decoded or was too long), "protocol" (valid but not allowed at that
// point), "limit" (a configured bound was reached) or "delivery" (a valid
// request or reply could not be delivered).
func DropClass(r broker.DropReason) string {
	switch r {
	case broker.DropEmpty, broker.DropDelimiter, broker.DropHeader, broker.DropCommand, broker.DropShort,
		broker.DropExtraFrames, broker.DropService, broker.DropEnvelope, broker.DropTooManyFrames:
		return "malformed"
	case broker.DropUnexpected, broker.DropMMIWorker:
		return "protocol"
	case broker.DropQueueFull, broker.DropQueueBytes, broker.DropTooManyServices:
		return "limit"
	}
	return "delivery"
}
