package emqp

import (
	"bytes"
	"errors"
	"slices"

	"github.com/majordomo-go/majordomo/emqp/wire"
	"github.com/majordomo-go/majordomo/internal/dispatch"
	"github.com/majordomo-go/majordomo/internal/transport"
)

// frontend handles a message from a client or a scheduler; frames is the
// whole message, identity first, for forwarding.
func (s *Server) frontend(id []byte, frames [][]byte, m *wire.Message) {
	sc := s.schedulers[string(id)]
	if sc != nil {
		switch m.Command {
		case wire.Kbye, wire.Kbai, wire.Disconnect:
			s.removeScheduler(sc, RemovedKbye)
			return
		}
		sc.live.Heard(s.now)
	}
	switch m.Command {
	case wire.Request:
		s.request(id, m, sc != nil)
	case wire.Heartbeat:
		// From a scheduler, done above; from anyone else, harmless.
	case wire.Inform:
		if !s.mayRegister(ServiceScheduler) {
			s.refuse(sockFront, "INFORM", ServiceScheduler, id)
			return
		}
		s.informScheduler(id, sc, m)
	case wire.Schedule, wire.Unschedule, wire.Publish:
		s.frontendCall(id, frames, m)
	case wire.Kbye, wire.Kbai, wire.Disconnect:
		// EventMQ's router shuts itself down on a frontend DISCONNECT from
		// anyone; here only emq-cli on the admin socket can do that.
		s.drop(DropUnexpected, "goodbye from an unregistered frontend peer", "command", m.Command.String())
	default:
		s.drop(DropUnexpected, "unexpected frontend command", "command", m.Command.String(), "peer", printable(id))
	}
}

// frontendCall handles SCHEDULE, UNSCHEDULE and PUBLISH, which the policy
// sees as calls: of the queue named, or of ServicePublish.
func (s *Server) frontendCall(id []byte, frames [][]byte, m *wire.Message) {
	target := ServicePublish
	if m.Command != wire.Publish {
		target = string(m.Args[0])
	}
	if !s.mayCall(target) {
		s.refuse(sockFront, m.Command.String(), target, id)
		return
	}
	switch m.Command {
	case wire.Schedule:
		if s.sched != nil {
			s.scheduleBuiltin(m)
			return
		}
		s.schedule(frames)
	case wire.Unschedule:
		if s.sched != nil {
			s.unscheduleBuiltin(m)
			if len(s.schedOrder) == 0 {
				return
			}
		}
		s.unschedule(frames)
	case wire.Publish:
		s.publish(m)
	}
}

// request handles REQUEST [queue, headers, payload].
func (s *Server) request(client []byte, m *wire.Message, fromScheduler bool) {
	s.stats.Requests++
	queueArg, headers, payload := m.Args[0], m.Args[1], m.Args[2]
	q := s.route(queueArg)
	if q == nil {
		s.drop(DropTooManyQueues, "no room for the default queue")
		return
	}
	// The queue it is routed to, which the default queue is for a queue
	// nobody serves: naming a queue one may call must not reach another.
	if !s.mayCall(q.Name()) {
		s.refuse(sockFront, "REQUEST", q.Name(), client)
		return
	}
	h := wire.ParseHeaders(headers)
	j := &job{
		client:    client,
		msgid:     m.MsgID,
		queueArg:  queueArg,
		headers:   headers,
		payload:   payload,
		queue:     q.Name(),
		guarantee: h.Guarantee,
		track:     h.ReplyRequested || h.Guarantee,
		// Schedulers ask for replies but have no use for them (EventMQ's
		// scheduler has no REPLY handler), so they get only the ACK.
		forward:     h.ReplyRequested && !fromScheduler,
		maxAttempts: 1,
		queuedAt:    s.now,
	}
	if h.Guarantee {
		j.maxAttempts = s.cfg.MaxAttempts
		if h.RetryCount >= 0 {
			j.maxAttempts = 1 + h.RetryCount
		}
		if !h.ReplyRequested {
			// Only a REPLY tells the router that a job finished, so a
			// guaranteed request reaches the job manager with
			// reply-requested added; the REPLY is not forwarded.
			j.headers = wire.WithHeader(headers, wire.HeaderReplyRequested)
		}
	}
	j.size = int64(len(client) + len(m.MsgID) + len(queueArg) + len(j.headers) + len(payload))
	w, err := s.pool.Submit(q, client, j, j.size, s.now)
	switch {
	case errors.Is(err, dispatch.ErrQueueFull):
		s.drop(DropQueueFull, "queue full", "queue", q.Name())
		s.warn("requests rejected: queue full (emqp-max-queue): queue " + q.Name())
	case errors.Is(err, dispatch.ErrQueueBytes):
		s.drop(DropQueueBytes, "queued bytes limit reached", "queue", q.Name())
		s.warn("requests rejected: queued bytes limit (emqp-max-queued-bytes): queue " + q.Name())
	case err != nil:
		s.drop(DropQueueFull, "request refused", "error", err.Error())
	case w != nil:
		s.deliver(w.Peer, j)
	}
}

// route finds the queue for a REQUEST: the named one if a job manager
// serves it or requests already wait in it, else the default queue, as
// EventMQ's router sends requests for queues it does not know to
// "default".
func (s *Server) route(name []byte) *queue {
	if q := s.pool.QueueBytes(name); q != nil && (q.Members() > 0 || q.Len() > 0) {
		return q
	}
	q, err := s.pool.Ensure(s.cfg.DefaultQueue)
	if err != nil {
		if v := s.pool.EvictCandidate(); v != nil {
			s.pool.Forget(v, func(poolEntry) { s.stats.Dropped[DropTooManyQueues]++ })
			q, _ = s.pool.Ensure(s.cfg.DefaultQueue)
		}
	}
	return q
}

// replyClient sends the router's own command (an ACK-style REPLY) to a
// client.
func (s *Server) replyClient(client []byte, c wire.Command, args ...[]byte) bool {
	err := s.sendCmd(s.socks[sockFront], client, c, args...)
	return s.clientSent(client, err)
}

// sendClient sends prepared frames to a client.
func (s *Server) sendClient(client []byte, frames [][]byte) bool {
	return s.clientSent(client, s.send(s.socks[sockFront], frames))
}

func (s *Server) clientSent(client []byte, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, transport.ErrUnroutable):
		s.drop(DropReplyUnroutable, "client gone", "client", printable(client))
	default:
		s.drop(DropReplyBlocked, "client not reading", "client", printable(client), "error", err.Error())
	}
	return false
}

// informScheduler registers a scheduler: INFORM ["", "scheduler"].
func (s *Server) informScheduler(id []byte, sc *scheduler, m *wire.Message) {
	if string(m.Arg(1)) != wire.TypeScheduler {
		s.drop(DropBadInform, "INFORM on the frontend from a non-scheduler", "type", string(m.Arg(1)), "peer", printable(id))
		return
	}
	if sc == nil {
		sc = &scheduler{id: bytes.Clone(id), key: string(id), since: s.now}
		s.schedulers[sc.key] = sc
		s.schedOrder = append(s.schedOrder, sc)
		s.stats.SchedulersJoined++
		s.log.Info("emqp: scheduler registered", "scheduler", printable(id))
	}
	sc.live.Heard(s.now)
	s.sendCmd(s.socks[sockFront], sc.id, wire.Ack, m.MsgID)
	s.heartbeat(s.socks[sockFront], sc.id, &sc.live)
}

// removeScheduler forgets a scheduler.
func (s *Server) removeScheduler(sc *scheduler, why RemoveReason) {
	if s.schedulers[sc.key] != sc {
		return
	}
	delete(s.schedulers, sc.key)
	if i := slices.Index(s.schedOrder, sc); i >= 0 {
		s.schedOrder = slices.Delete(s.schedOrder, i, i+1)
		if s.schedNext > i {
			s.schedNext--
		}
	}
	s.stats.Removed[why]++
	s.log.Info("emqp: scheduler removed", "scheduler", printable(sc.id), "reason", why.String())
}

// schedule forwards SCHEDULE, unchanged but for the envelope, to one
// scheduler, taking them in rotation.
func (s *Server) schedule(frames [][]byte) {
	for len(s.schedOrder) > 0 {
		if s.schedNext >= len(s.schedOrder) {
			s.schedNext = 0
		}
		sc := s.schedOrder[s.schedNext]
		s.schedNext++
		s.out = append(append(s.out[:0], sc.id), frames[1:]...)
		err := s.send(s.socks[sockFront], s.out)
		if err == nil {
			sc.live.Sent(s.now)
			sc.scheduled++
			s.stats.Scheduled++
			return
		}
		if errors.Is(err, transport.ErrUnroutable) {
			s.removeScheduler(sc, RemovedUnreachable)
			continue
		}
		s.drop(DropReplyBlocked, "scheduler not reading", "scheduler", printable(sc.id))
		return
	}
	s.drop(DropNoScheduler, "SCHEDULE with no scheduler connected")
	s.warn("SCHEDULE dropped: no scheduler connected")
}

// unschedule forwards UNSCHEDULE to every scheduler.
func (s *Server) unschedule(frames [][]byte) {
	if len(s.schedOrder) == 0 {
		s.drop(DropNoScheduler, "UNSCHEDULE with no scheduler connected")
		s.warn("UNSCHEDULE dropped: no scheduler connected")
		return
	}
	for _, sc := range slices.Clone(s.schedOrder) {
		s.out = append(append(s.out[:0], sc.id), frames[1:]...)
		switch err := s.send(s.socks[sockFront], s.out); {
		case err == nil:
			sc.live.Sent(s.now)
			s.stats.Unscheduled++
		case errors.Is(err, transport.ErrUnroutable):
			s.removeScheduler(sc, RemovedUnreachable)
		default:
			s.drop(DropReplyBlocked, "scheduler not reading", "scheduler", printable(sc.id))
		}
	}
}

// publishIn handles a message on the publisher socket.
func (s *Server) publishIn(m *wire.Message) {
	if m.Command != wire.Publish {
		s.drop(DropUnexpected, "unexpected command on the publish socket", "command", m.Command.String())
		return
	}
	if !s.mayCall(ServicePublish) {
		s.refuse(sockPubIn, "PUBLISH", ServicePublish, nil)
		return
	}
	s.publish(m)
}

// publish sends PUBLISH [topic, [headers,] message] to subscribers as
// [topic, message].
func (s *Server) publish(m *wire.Message) {
	if s.pubOut == nil {
		s.drop(DropNoPublisher, "PUBLISH with no emqp-pub-out socket")
		return
	}
	topic, msg := m.Args[0], m.Args[len(m.Args)-1]
	s.out = append(s.out[:0], topic, msg)
	// PUB never blocks: a slow subscriber loses messages at its high-water
	// mark, which is PUB's contract and invisible here.
	if err := s.send(s.pubOut, s.out); err != nil {
		s.drop(DropReplyBlocked, "publish failed", "error", err.Error())
		return
	}
	s.stats.Published++
}
