package ops

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/majordomo-go/majordomo/emqp"
)

// EMQPSource is what the eMQP collector reads: emqp.Server satisfies it.
type EMQPSource interface {
	Status() emqp.Status
}

// MaxEMQPQueues caps the queues with a label of their own. Queues are made
// by job managers' INFORMs (a client's request for an unknown queue goes to
// the default one), so they are few; past the cap, the rest are left out of
// the per-queue series and still counted in the totals.
const MaxEMQPQueues = 200

// EMQPCollector exports an eMQP server's Status as Prometheus metrics, from
// one snapshot per scrape, like Collector does for the MDP broker.
type EMQPCollector struct {
	src EMQPSource
	d   emqpDescs
}

type emqpDescs struct {
	requests, dispatched, redelivered, replies, published, heartbeats *prometheus.Desc
	dropped, removed                                                  *prometheus.Desc
	jobManagers, schedulers, freeSlots, inFlight, waiting             *prometheus.Desc
	qWaiting, qInFlight, qWorkers, qSubmitted, qCompleted, qRejected  *prometheus.Desc
	qQueueWait, qServiceTime                                          *prometheus.Desc
}

// NewEMQPCollector returns a collector over src.
func NewEMQPCollector(src EMQPSource) *EMQPCollector {
	n := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("mdbroker_emqp_"+name, help, labels, nil)
	}
	return &EMQPCollector{src: src, d: emqpDescs{
		requests:     n("requests_total", "eMQP REQUESTs received."),
		dispatched:   n("dispatched_total", "eMQP REQUESTs sent to job managers, redeliveries included."),
		redelivered:  n("redelivered_total", "Guaranteed eMQP requests redelivered after their job manager died."),
		replies:      n("replies_total", "eMQP REPLYs received from job managers."),
		published:    n("published_total", "eMQP PUBLISHes sent to subscribers."),
		heartbeats:   n("heartbeats_sent_total", "eMQP HEARTBEATs sent."),
		dropped:      n("dropped_messages_total", "eMQP messages dropped, by reason.", "reason"),
		removed:      n("peers_removed_total", "eMQP job managers and schedulers removed, by reason.", "reason"),
		jobManagers:  n("job_managers", "eMQP job managers registered."),
		schedulers:   n("schedulers", "eMQP schedulers registered."),
		freeSlots:    n("free_slots", "READY credit not yet used, over all job managers."),
		inFlight:     n("in_flight_requests", "Tracked eMQP requests (reply-requested or guarantee) awaiting their REPLY."),
		waiting:      n("waiting_requests", "eMQP requests waiting for a free slot."),
		qWaiting:     n("queue_waiting_requests", "Requests waiting in the queue.", "queue"),
		qInFlight:    n("queue_in_flight_requests", "Tracked requests from the queue awaiting their REPLY.", "queue"),
		qWorkers:     n("queue_job_managers", "Job managers serving the queue.", "queue"),
		qSubmitted:   n("queue_submitted_total", "Requests routed to the queue.", "queue"),
		qCompleted:   n("queue_completed_total", "REPLYs for tracked requests of the queue.", "queue"),
		qRejected:    n("queue_rejected_total", "Requests the queue refused at a bound.", "queue"),
		qQueueWait:   n("queue_wait_seconds", "Time from arrival to dispatch.", "queue"),
		qServiceTime: n("queue_service_time_seconds", "Time from dispatch to REPLY (tracked requests).", "queue"),
	}}
}

// Describe implements prometheus.Collector.
func (c *EMQPCollector) Describe(ch chan<- *prometheus.Desc) {
	d := &c.d
	for _, desc := range []*prometheus.Desc{d.requests, d.dispatched, d.redelivered, d.replies, d.published,
		d.heartbeats, d.dropped, d.removed, d.jobManagers, d.schedulers, d.freeSlots, d.inFlight, d.waiting,
		d.qWaiting, d.qInFlight, d.qWorkers, d.qSubmitted, d.qCompleted, d.qRejected, d.qQueueWait, d.qServiceTime} {
		ch <- desc
	}
}

// Collect implements prometheus.Collector.
func (c *EMQPCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Status()
	d := &c.d
	metric := func(desc *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, t, v, labels...)
	}
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		metric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		metric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter(d.requests, st.Requests)
	counter(d.dispatched, st.Dispatched)
	counter(d.redelivered, st.Redelivered)
	counter(d.replies, st.Replies)
	counter(d.published, st.Published)
	counter(d.heartbeats, st.Heartbeats)
	for _, r := range emqp.DropReasons() {
		counter(d.dropped, st.DroppedBy(r), r.String())
	}
	for _, r := range emqp.RemoveReasons() {
		counter(d.removed, st.RemovedBy(r), r.String())
	}
	gauge(d.jobManagers, float64(st.Stats.Workers))
	gauge(d.schedulers, float64(st.Stats.Schedulers))
	gauge(d.freeSlots, float64(st.FreeSlots))
	gauge(d.inFlight, float64(st.InFlight))
	gauge(d.waiting, float64(st.Waiting))
	for i, q := range st.Queues {
		if i == MaxEMQPQueues {
			break
		}
		gauge(d.qWaiting, float64(q.Waiting), q.Name)
		gauge(d.qInFlight, float64(q.InFlight), q.Name)
		gauge(d.qWorkers, float64(q.Workers), q.Name)
		counter(d.qSubmitted, q.Submitted, q.Name)
		counter(d.qCompleted, q.Completed, q.Name)
		counter(d.qRejected, q.Rejected, q.Name)
		qw, stime := histOf(q.QueueWait), histOf(q.ServiceTime)
		ch <- constHistogram(d.qQueueWait, &qw, q.Name)
		ch <- constHistogram(d.qServiceTime, &stime, q.Name)
	}
}

// AddEMQP adds the metrics of an eMQP server to /metrics, and its fronts to
// the security report (/api/v1/status and mdbroker_auth_*). It may be
// called after Start.
func (s *Server) AddEMQP(src EMQPSource) error {
	if sec, ok := src.(EMQPSecuritySource); ok {
		s.AddEMQPSecurity(sec)
	}
	return s.registry.Register(NewEMQPCollector(src))
}
