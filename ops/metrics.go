package ops

import "github.com/prometheus/client_golang/prometheus"

// descs are the descriptors of every metric the Collector emits. Names and
// help texts are the reference for the README's metrics list.
type descs struct {
	requests, mmiRequests, dispatched, redelivered, replies, partials *prometheus.Desc
	registrations, heartbeats, dropped, removed                       *prometheus.Desc
	workers, services, queued, queuedBytes, startTime, aggregated     *prometheus.Desc
	connections                                                       *prometheus.Desc

	svcRequests, svcReplies, svcPartials, svcExpired, svcRedelivered, svcDropped *prometheus.Desc
	svcWorkers, svcQueued, svcQueuedBytes, svcQueueWait, svcServiceTime          *prometheus.Desc
}

func newDescs() descs {
	g := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("mdbroker_"+name, help, labels, nil)
	}
	s := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("mdbroker_service_"+name, help, append([]string{"service"}, labels...), nil)
	}
	return descs{
		requests:      g("requests_total", "Client requests accepted, MMI included."),
		mmiRequests:   g("mmi_requests_total", "Client requests answered by the broker itself (mmi.*)."),
		dispatched:    g("dispatched_total", "Requests sent to workers, redeliveries included."),
		redelivered:   g("redelivered_total", "Requests handed to a second or later worker after a worker died holding them."),
		replies:       g("replies_total", "Final replies delivered to clients, MMI included."),
		partials:      g("partials_total", "PARTIAL replies delivered to 18/MDP clients."),
		registrations: g("worker_registrations_total", "Workers registered (READY accepted)."),
		heartbeats:    g("heartbeats_sent_total", "HEARTBEATs sent to workers."),
		dropped:       g("dropped_messages_total", "Messages dropped, by reason; class groups the reasons (malformed, protocol, limit, delivery).", "reason", "class"),
		removed:       g("workers_removed_total", "Workers removed, by reason (disconnect, expired heartbeats, protocol error, ...).", "reason"),
		workers:       g("workers", "Registered workers, by state (idle or busy).", "state"),
		services:      g("services", "Services the broker knows (with workers or queued requests, or recently used)."),
		connections:   g("connections", "Peer connections (clients and workers) to the broker's MDP endpoints, past their handshake."),
		queued:        g("queued_requests", "Requests waiting for a worker, over all services."),
		queuedBytes:   g("queued_bytes", "Body bytes of the requests waiting for a worker."),
		startTime:     g("start_time_seconds", "When the broker started serving, in seconds since the Unix epoch."),
		aggregated:    g("services_aggregated", `Services summed under service="_other" in the mdbroker_service_* metrics.`),

		svcRequests:    s("requests_total", "Requests accepted for the service."),
		svcReplies:     s("replies_total", "Final replies delivered for the service."),
		svcPartials:    s("partials_total", "PARTIAL replies delivered for the service."),
		svcExpired:     s("expired_total", "Requests that expired waiting in the service's queue."),
		svcRedelivered: s("redelivered_total", "Requests of the service handed to a second or later worker."),
		svcDropped:     s("dropped_total", "Requests of the service dropped, by reason (expiry is mdbroker_service_expired_total); a reason appears once it has happened.", "reason"),
		svcWorkers:     s("workers", "Workers of the service, by state (idle or busy).", "state"),
		svcQueued:      s("queued_requests", "Requests waiting for a worker of the service."),
		svcQueuedBytes: s("queued_bytes", "Body bytes of the requests waiting for a worker of the service."),
		svcQueueWait:   s("queue_wait_seconds", "Time from a request's arrival to its dispatch to a worker."),
		svcServiceTime: s("time_seconds", "Time from a request's dispatch to its final reply."),
	}
}

func (d *descs) all() []*prometheus.Desc {
	return []*prometheus.Desc{
		d.requests, d.mmiRequests, d.dispatched, d.redelivered, d.replies, d.partials,
		d.registrations, d.heartbeats, d.dropped, d.removed,
		d.workers, d.services, d.queued, d.queuedBytes, d.startTime, d.aggregated, d.connections,
		d.svcRequests, d.svcReplies, d.svcPartials, d.svcExpired, d.svcRedelivered, d.svcDropped,
		d.svcWorkers, d.svcQueued, d.svcQueuedBytes, d.svcQueueWait, d.svcServiceTime,
	}
}
