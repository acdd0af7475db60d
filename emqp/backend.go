package emqp

import (
	"bytes"
	"errors"

	"github.com/majordomo-go/majordomo/emqp/wire"
	"github.com/majordomo-go/majordomo/internal/dispatch"
	"github.com/majordomo-go/majordomo/internal/transport"
)

// backend handles a message from a job manager.
func (s *Server) backend(id []byte, m *wire.Message) {
	w := s.workers[string(id)]
	switch m.Command {
	case wire.Inform:
		s.inform(id, w, m)
		return
	case wire.Kbye, wire.Kbai, wire.Disconnect:
		// A clean goodbye. EventMQ's job manager then lets its running
		// jobs finish, and may still send their REPLYs.
		if w != nil && !w.leaving {
			s.leave(w)
		}
		return
	}
	if w == nil {
		// A job manager the router does not know: it talked to a router
		// that restarted, or it was dropped as silent. As EventMQ's router
		// does, ignore it: it gets no HEARTBEAT, so it reconnects and
		// INFORMs again once it misses them (HEARTBEAT_TIMEOUT ×
		// HEARTBEAT_LIVENESS). DISCONNECT would be wrong: it means "go
		// away", and a job manager that obeyed it would exit.
		s.drop(DropUnknownPeer, "command from unregistered job manager", "command", m.Command.String(), "peer", printable(id))
		s.warn("commands from unregistered job managers ignored (they reconnect after missing heartbeats)")
		return
	}
	// Any command but a goodbye counts as a heartbeat.
	w.live.Heard(s.now)
	switch m.Command {
	case wire.Heartbeat:
	case wire.Ready:
		s.ready(w)
	case wire.Reply:
		s.workerReply(w, m)
	default:
		s.drop(DropUnexpected, "unexpected job manager command", "command", m.Command.String(), "worker", w.key)
	}
}

// inform registers a job manager: INFORM [queues, "worker"].
func (s *Server) inform(id []byte, w *worker, m *wire.Message) {
	if string(m.Arg(1)) != wire.TypeWorker {
		// Schedulers belong on the frontend, where EventMQ's connect.
		s.drop(DropBadInform, "INFORM on the backend from a non-worker", "type", string(m.Arg(1)), "peer", printable(id))
		return
	}
	specs, err := wire.ParseQueues(m.Arg(0))
	if err != nil {
		// EventMQ logs and does not acknowledge an INFORM it cannot read.
		s.drop(DropBadInform, "INFORM with a bad queue list", "error", err.Error(), "peer", printable(id))
		s.log.Warn("emqp: job manager INFORM refused", "worker", printable(id), "error", err.Error())
		return
	}
	if len(specs) == 0 {
		specs = s.cfg.DefaultQueues
	}
	// An INFORM registers the job manager for every queue it lists: each
	// must be allowed, or none is (no ACK, as for an INFORM EventMQ cannot
	// read; the job manager retries).
	for _, q := range specs {
		if !s.mayRegister(q.Name) {
			s.refuse(sockBack, "INFORM", q.Name, id)
			return
		}
	}
	subs := make([]dispatch.Sub, len(specs))
	for i, q := range specs {
		subs[i] = dispatch.Sub{Queue: q.Name, Weight: q.Weight}
	}
	if w != nil {
		// The same identity announcing itself again has restarted: what it
		// held is gone.
		s.removeWorker(w, RemovedReinform)
	}
	nw := &worker{id: bytes.Clone(id), key: string(id), since: s.now, held: make(map[string]*job)}
	dw, err := s.join(nw, subs)
	if err != nil {
		s.drop(DropTooManyQueues, "INFORM names too many new queues", "peer", printable(id))
		s.log.Error("emqp: job manager refused: queue limit reached", "worker", printable(id), "max_queues", s.cfg.MaxQueues)
		return
	}
	nw.w = dw
	for _, sub := range dw.Subs() {
		nw.queues = append(nw.queues, wire.QueueSpec{Weight: sub.Weight, Name: sub.Queue})
	}
	nw.live.Heard(s.now)
	s.workers[nw.key] = nw
	s.stats.Registered++
	s.sendCmd(s.socks[sockBack], nw.id, wire.Ack, m.MsgID)
	nw.live.Sent(s.now)
	// EventMQ's job manager starts its worker processes on the first
	// HEARTBEAT it gets after the ACK, and only then sends READY: send one
	// now rather than up to an interval later.
	s.heartbeat(s.socks[sockBack], nw.id, &nw.live)
	s.log.Info("emqp: job manager registered", "worker", printable(id), "queues", nw.queues)
}

// join adds a job manager to the pool, evicting queues without job
// managers if the queue limit is in the way.
func (s *Server) join(w *worker, subs []dispatch.Sub) (*dispatch.Worker[*job, *worker], error) {
	for {
		dw, err := s.pool.Join(w, subs)
		if !errors.Is(err, dispatch.ErrTooManyQueues) {
			return dw, err
		}
		victim := s.pool.EvictCandidate()
		if victim == nil {
			return nil, err
		}
		s.pool.Forget(victim, func(poolEntry) { s.stats.Dropped[DropTooManyQueues]++ })
	}
}

// ready takes one READY: one more free slot.
func (s *Server) ready(w *worker) {
	if w.leaving {
		return
	}
	s.pool.Credit(w.w, 1)
	s.feed(w)
}

// feed hands waiting requests to w while it has free slots.
func (s *Server) feed(w *worker) {
	for {
		e, _, ok := s.pool.Next(w.w, s.now)
		if !ok {
			return
		}
		s.deliver(w, e.Value)
	}
}

// dispatchQueue hands requests waiting in q to ready job managers.
func (s *Server) dispatchQueue(q *queue) {
	for {
		dw, e, ok := s.pool.Dispatch(q, s.now)
		if !ok {
			return
		}
		s.deliver(dw.Peer, e.Value)
	}
}

// deliver sends j to w, whose slot the pool has taken for it, forwarding
// the client's frames unchanged (same msgid).
func (s *Server) deliver(w *worker, j *job) {
	s.out = append(s.out[:0], w.id, nil, protocolFrame, requestFrame, j.msgid, j.queueArg, j.headers, j.payload)
	if err := s.send(s.socks[sockBack], s.out); err != nil {
		// The job manager is gone or not reading. The job goes back to the
		// head of its queue without counting as an attempt, and the job
		// manager is removed (which redelivers what it held).
		q := s.requeue(j)
		if errors.Is(err, transport.ErrUnroutable) {
			s.removeWorker(w, RemovedUnreachable)
		} else {
			s.warn("job manager not reading; request put back: worker " + w.key)
			s.pool.SetSlots(w.w, 0)
		}
		if q != nil {
			s.dispatchQueue(q)
		}
		return
	}
	w.live.Sent(s.now)
	j.attempts++
	if j.attempts > 1 {
		s.stats.Redelivered++
	}
	j.sentAt = s.now
	s.stats.Dispatched++
	w.processed++
	if n, ok := s.processed[j.queue]; ok || len(s.processed) < s.cfg.MaxQueues {
		s.processed[j.queue] = n + 1
	}
	if j.track {
		if _, dup := w.held[string(j.msgid)]; dup {
			// Its REPLY could not be told apart: it is sent, not tracked.
			s.drop(DropDuplicateMsgID, "msgid already in flight on this job manager", "msgid", string(j.msgid))
		} else {
			w.held[string(j.msgid)] = j
		}
	}
	if !j.acked {
		// EventMQ answers the client REPLY [its msgid] once the request is
		// on its way to a job manager.
		j.acked = true
		if s.replyClient(j.client, wire.Reply, j.msgid) {
			s.stats.Acks++
		}
	}
}

// requeue puts a job back at the head of its queue, ignoring the bounds,
// and returns the queue. The queue may have been forgotten meanwhile.
func (s *Server) requeue(j *job) *queue {
	q, err := s.pool.Ensure(j.queue)
	if err != nil {
		q, err = s.pool.Ensure(s.cfg.DefaultQueue)
		if err != nil {
			// Both forgotten and no room: evict an idle queue.
			if v := s.pool.EvictCandidate(); v != nil {
				s.pool.Forget(v, func(poolEntry) { s.stats.Dropped[DropTooManyQueues]++ })
			}
			q, _ = s.pool.Ensure(s.cfg.DefaultQueue)
		}
	}
	if q == nil {
		s.stats.Dropped[DropTooManyQueues]++
		return nil
	}
	j.queue = q.Name()
	s.pool.Requeue(q, string(j.client), j, j.size, s.now)
	return q
}

// workerReply handles REPLY [result, msgid] from a job manager.
func (s *Server) workerReply(w *worker, m *wire.Message) {
	if len(m.Args) != 2 {
		s.drop(DropUnexpected, "job manager REPLY without a result", "worker", w.key)
		return
	}
	orig := m.Args[1]
	j := w.held[string(orig)]
	if j == nil {
		s.drop(DropReplyUnknown, "REPLY for no request this job manager holds", "worker", w.key, "msgid", string(orig))
		return
	}
	delete(w.held, string(orig))
	s.stats.Replies++
	if q := s.pool.Queue(j.queue); q != nil {
		q.Outcomes.Completed++
		q.Outcomes.ServiceTime.Observe(s.now.Sub(j.sentAt))
	}
	if j.forward {
		// The job manager's REPLY, unchanged but for the envelope.
		s.out = append(s.out[:0], j.client, nil, protocolFrame, replyFrame, m.MsgID, m.Args[0], orig)
		if s.sendClient(j.client, s.out) {
			s.stats.RepliesForwarded++
		}
	}
	if w.leaving && w.inFlight() == 0 {
		s.forget(w, RemovedKbye)
	}
}

// leave handles a job manager's KBYE: no more requests for it; it may
// still deliver the replies it owes for Config.LeaveGrace.
func (s *Server) leave(w *worker) {
	w.leaving = true
	w.leftAt = s.now
	s.pool.Leave(w.w)
	if len(w.held) == 0 {
		s.forget(w, RemovedKbye)
		return
	}
	s.log.Info("emqp: job manager leaving", "worker", printable(w.id), "owed_replies", len(w.held))
}

// removeWorker removes a job manager and deals with what it held:
// guaranteed requests are redelivered within their attempts, others are
// counted as lost.
func (s *Server) removeWorker(w *worker, why RemoveReason) {
	if s.workers[w.key] != w {
		return
	}
	s.pool.Leave(w.w)
	touched := map[*queue]bool{}
	for key, j := range w.held {
		delete(w.held, key)
		if why == RemovedShutdown {
			// Nothing will take it: the router is stopping (Shutdown
			// waits for replies first; Close does not).
			s.stats.Dropped[DropShutdown]++
			if q := s.pool.Queue(j.queue); q != nil {
				q.Outcomes.Dropped++
			}
			continue
		}
		if !j.guarantee {
			s.stats.Dropped[DropWorkerLost]++
			if q := s.pool.Queue(j.queue); q != nil {
				q.Outcomes.Dropped++
			}
			s.warn("reply-requested request lost with its job manager (no guarantee header): queue " + j.queue)
			continue
		}
		switch (dispatch.Redelivery{MaxAttempts: j.maxAttempts}).Decide(j.attempts) {
		case dispatch.Redeliver:
			if q := s.requeue(j); q != nil {
				touched[q] = true
			}
		default:
			s.stats.Dropped[DropAttemptsExhausted]++
			if q := s.pool.Queue(j.queue); q != nil {
				q.Outcomes.Dropped++
			}
			s.log.Warn("emqp: guaranteed request dropped after repeated job manager failures",
				"queue", j.queue, "msgid", string(j.msgid), "attempts", j.attempts)
		}
	}
	s.forget(w, why)
	for q := range touched {
		s.dispatchQueue(q)
	}
}

// forget deletes a job manager that holds nothing the router still tracks.
func (s *Server) forget(w *worker, why RemoveReason) {
	if s.workers[w.key] != w {
		return
	}
	s.pool.Leave(w.w)
	delete(s.workers, w.key)
	s.stats.Removed[why]++
	s.log.Info("emqp: job manager removed", "worker", printable(w.id), "reason", why.String())
}

// Frames shared by every message the router builds; never written to.
var (
	protocolFrame = []byte(wire.Protocol)
	requestFrame  = []byte(wire.Request.String())
	replyFrame    = []byte(wire.Reply.String())
)
