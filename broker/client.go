package broker

import (
	"errors"
	"strings"

	"github.com/majordomo-go/majordomo/internal/dispatch"
	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
)

// clientRequest handles a REQUEST from a 0.1 or 0.2 client.
func (b *Broker) clientRequest(sender []byte, m *mdp.Message) {
	b.stats.Requests++
	if len(m.Service) >= 4 && string(m.Service[:4]) == "mmi." {
		// 8/MMI: "An MMI broker implementation MUST handle all services
		// that start with "mmi." internally."
		b.stats.MMIRequests++
		b.mmi(sender, m)
		return
	}
	if !b.mayCall(m.Service) || !b.mayCallThrough(m) { // Security.Authorizer (auth.go).
		b.refuseRequest(sender, m)
		return
	}
	svc := b.service(m.Service, false)
	if svc == nil {
		b.drop(DropTooManyServices, "service limit reached", "service", string(m.Service))
		return
	}
	r := &request{
		client:    sender,
		version:   m.Version,
		delimited: m.Delimited,
		service:   svc,
		body:      m.Body,
	}
	for _, f := range m.Body {
		r.size += int64(len(f))
	}
	if !b.accept(r) {
		// The queue's bounds refuse a request before the client's
		// in-flight limit does, so that a full queue is reported as such.
		if err := b.pool.Reject(svc.q, r.size); err != nil {
			b.refused(svc, err)
			return
		}
		b.dropFor(svc, DropClientInFlight, "client has too many requests in flight", "client", printable(sender))
		return
	}
	// The pool hands the request to the least recently used idle worker
	// when nothing is queued, or queues it behind the client's earlier ones
	// (7/MDP: "The broker SHOULD queue client requests for which no service
	// has been registered") — within bounds, so that no client can exhaust
	// the broker's memory.
	dw, err := b.pool.Submit(svc.q, sender, r, r.size, b.now)
	switch {
	case err != nil:
		b.release(r)
		b.refused(svc, err)
	case dw != nil:
		b.deliver(dw.Peer, r)
	}
}

// refused counts a request the pool would not queue.
func (b *Broker) refused(svc *service, err error) {
	if errors.Is(err, dispatch.ErrQueueFull) {
		b.dropFor(svc, DropQueueFull, "service queue full", "service", svc.name())
		return
	}
	b.dropFor(svc, DropQueueBytes, "queued bytes limit reached", "service", svc.name())
}

// replyToClient sends a PARTIAL or FINAL for r to its client in the client's
// own protocol version; for a 0.1 client FINAL is the REPLY.
// A reply that cannot be sent is counted for r's service.
func (b *Broker) replyToClient(r *request, cmd mdp.Command, service []byte, body [][]byte) bool {
	msg := mdp.Message{Version: r.version, Role: mdp.RoleClient, Command: cmd,
		Service: service, Body: body, Delimited: r.delimited}
	ok, why := b.sendClient(r.client, &msg)
	if !ok {
		r.service.count(why)
	}
	return ok
}

// sendClient sends msg to a client without blocking; on failure it counts
// the drop broker-wide and says why.
func (b *Broker) sendClient(id []byte, msg *mdp.Message) (bool, DropReason) {
	err := b.sendTo(id, msg)
	var why DropReason
	switch {
	case err == nil:
		return true, 0
	case errors.Is(err, transport.ErrUnroutable):
		why = DropReplyUnroutable
		b.drop(why, "client gone", "client", printable(id))
	case errors.Is(err, transport.ErrAgain):
		why = DropReplyBlocked
		b.drop(why, "client not reading", "client", printable(id))
	default:
		why = DropReplyBlocked
		b.log.Error("reply not sent", "client", printable(id), "error", err.Error())
		b.drop(why, "reply not sent", "client", printable(id))
	}
	return false, why
}

// housekeep runs the timers: heartbeats, purging dead workers, expiring
// queued requests and forgetting unused services.
func (b *Broker) housekeep() {
	if b.beat.Due(b.now) {
		b.heartbeat()
	}
	b.purge()
	b.pool.Expire(b.now.Add(-b.cfg.RequestTimeout), func(q *queue, e entry) {
		b.stats.Dropped[DropExpired]++
		e.Value.service.count(DropExpired)
		b.release(e.Value)
		b.expiredLog[q.Name()]++
	})
	// A service with neither workers nor queued requests for ServiceTTL is
	// forgotten, so that names clients made up do not pile up.
	b.pool.Sweep(b.now, b.cfg.ServiceTTL, nil)
	// One line per service per tick rather than one per request, so that a
	// flood of expiries cannot flood the log.
	for name, n := range b.expiredLog {
		b.log.Warn("requests expired with no worker", "service", name, "count", n,
			"timeout", b.cfg.RequestTimeout)
		delete(b.expiredLog, name)
	}
}

// printable renders a peer identity for logs: libzmq's generated identities
// are 5 binary bytes.
func printable(id []byte) string {
	for _, c := range id {
		if c < 0x20 || c > 0x7e {
			const hex = "0123456789abcdef"
			var sb strings.Builder
			sb.WriteString("0x")
			for _, c := range id {
				sb.WriteByte(hex[c>>4])
				sb.WriteByte(hex[c&15])
			}
			return sb.String()
		}
	}
	return string(id)
}
