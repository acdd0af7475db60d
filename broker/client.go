package broker

import (
	"errors"
	"strings"
	"time"

	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
)

var timeZero time.Time

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
	if !b.mayCall(m.Service) { // Security.Authorizer (auth.go).
		b.refuseRequest(sender, m)
		return
	}
	svc := b.service(string(m.Service), false)
	if svc == nil {
		b.drop(DropTooManyServices, "service limit reached", "service", string(m.Service))
		return
	}
	svc.counters.requests++
	r := &request{
		client:    sender,
		version:   m.Version,
		delimited: m.Delimited,
		service:   svc,
		body:      m.Body,
		queuedAt:  b.now,
	}
	for _, f := range m.Body {
		r.size += int64(len(f))
	}
	if svc.idle.len() > 0 && svc.queued == 0 && !b.draining {
		if !b.accept(r) {
			b.dropFor(svc, DropClientInFlight, "client has too many requests in flight", "client", printable(sender))
			return
		}
		b.deliver(svc.idle.popFront(), r)
		return
	}
	// 7/MDP: "The broker SHOULD queue client requests for which no service
	// has been registered" — within bounds, so that no client can exhaust
	// the broker's memory.
	if svc.queued >= b.cfg.MaxQueue {
		b.dropFor(svc, DropQueueFull, "service queue full", "service", svc.name)
		return
	}
	if b.queuedBytes+r.size > b.cfg.MaxQueuedBytes {
		b.dropFor(svc, DropQueueBytes, "queued bytes limit reached", "service", svc.name)
		return
	}
	if !b.accept(r) {
		b.dropFor(svc, DropClientInFlight, "client has too many requests in flight", "client", printable(sender))
		return
	}
	svc.enqueue(r, false)
	b.queuedBytes += r.size
	b.dispatch(svc)
}

// replyToClient sends a PARTIAL or FINAL for r to its client in the client's
// own protocol version; for a 0.1 client FINAL is the REPLY.
// A reply that cannot be sent is counted for r's service.
func (b *Broker) replyToClient(r *request, cmd mdp.Command, service []byte, body [][]byte) bool {
	msg := mdp.Message{Version: r.version, Role: mdp.RoleClient, Command: cmd,
		Service: service, Body: body, Delimited: r.delimited}
	ok, why := b.sendClient(r.client, &msg)
	if !ok {
		r.service.counters.droppedBy[why]++
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

// service finds or creates a service, or returns nil when MaxServices would
// be exceeded. A worker's READY may evict a service that has no workers, so
// that clients asking for thousands of made-up names cannot lock real
// workers out; the evicted service's queued requests are dropped and
// counted.
func (b *Broker) service(name string, forWorker bool) *service {
	if s := b.services[name]; s != nil {
		return s
	}
	if len(b.services) >= b.cfg.MaxServices && !(forWorker && b.evictService()) {
		return nil
	}
	s := newService(name)
	b.services[name] = s
	return s
}

// evictService forgets one service without workers, preferring one with
// nothing queued, and reports whether it found one.
func (b *Broker) evictService() bool {
	var victim *service
	for _, s := range b.services {
		if s.workers > 0 {
			continue
		}
		victim = s
		if s.queued == 0 {
			break
		}
	}
	if victim == nil {
		return false
	}
	for victim.queued > 0 {
		r := victim.dequeue()
		b.queuedBytes -= r.size
		b.stats.Dropped[DropTooManyServices]++
		b.release(r)
	}
	delete(b.services, victim.name)
	return true
}

// houseInterval is how often timers are checked: often enough that expiry
// and purging are accurate to a fraction of the heartbeat interval.
func (b *Broker) houseInterval() time.Duration {
	d := b.cfg.HeartbeatInterval / 4
	if d > 250*time.Millisecond {
		d = 250 * time.Millisecond
	}
	return d
}

// housekeep runs the timers: heartbeats, purging dead workers, expiring
// queued requests and forgetting unused services.
func (b *Broker) housekeep() {
	b.nextHouse = b.now.Add(b.houseInterval())
	if !b.now.Before(b.nextBeat) {
		b.nextBeat = b.now.Add(b.cfg.HeartbeatInterval)
		b.heartbeat()
	}
	b.purge()
	cutoff := b.now.Add(-b.cfg.RequestTimeout)
	for name, svc := range b.services {
		svc.expire(cutoff, func(r *request) {
			b.queuedBytes -= r.size
			b.stats.Dropped[DropExpired]++
			svc.counters.droppedBy[DropExpired]++
			b.release(r)
			b.expiredLog[name]++
		})
		if svc.workers > 0 || svc.queued > 0 {
			svc.emptySince = timeZero
			continue
		}
		if svc.emptySince.IsZero() {
			svc.emptySince = b.now
		} else if b.now.Sub(svc.emptySince) >= b.cfg.ServiceTTL {
			delete(b.services, name)
		}
	}
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
