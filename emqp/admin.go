package emqp

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/majordomo-go/majordomo/emqp/wire"
)

// Older emq-cli versions send STATUS with one of these sub-commands
// instead of ROUTER_SHOW_WORKERS and ROUTER_SHOW_SCHEDULERS.
const (
	statusShowManagers   = "show_managers"
	statusShowSchedulers = "show_schedulers"
)

// admin handles a command from emq-cli. Every answer is REPLY [JSON],
// which emq-cli pretty-prints.
func (s *Server) admin(id []byte, m *wire.Message) {
	if !s.mayCall(ServiceAdmin) {
		s.refuse(sockAdmin, m.Command.String(), ServiceAdmin, id)
		return
	}
	var body any
	switch m.Command {
	case wire.Hello:
		// emq-cli says HELLO on connecting and reads no answer: answering
		// would hand its next command this reply instead of its own.
		s.stats.AdminCommands++
		return
	case wire.Status:
		switch string(m.Arg(0)) {
		case statusShowManagers:
			body = s.workersJSON()
		case statusShowSchedulers:
			body = s.schedulersJSON()
		default:
			body = s.statusJSON()
		}
	case wire.ShowWorkers:
		body = s.workersJSON()
	case wire.ShowSchedulers:
		body = s.schedulersJSON()
	case wire.Disconnect:
		s.stats.AdminCommands++
		s.sendCmd(s.socks[sockAdmin], id, wire.Ack, m.MsgID)
		if s.cfg.IgnoreAdminDisconnect {
			s.log.Warn("emqp: administrative DISCONNECT ignored (IgnoreAdminDisconnect)", "peer", printable(id))
			return
		}
		s.log.Warn("emqp: administrative DISCONNECT: shutting down", "peer", printable(id))
		s.adminStop = true
		return
	default:
		s.drop(DropUnexpected, "unexpected admin command", "command", m.Command.String())
		return
	}
	b, err := json.Marshal(body)
	if err != nil {
		s.log.Error("emqp: admin reply", "error", err.Error())
		return
	}
	s.stats.AdminCommands++
	s.sendCmd(s.socks[sockAdmin], id, wire.Reply, b)
}

// inflightAges returns, per queue, the number of requests in flight and
// their summed and largest ages.
func (s *Server) inflightAges() map[string]*ageSum {
	out := map[string]*ageSum{}
	add := func(j *job) {
		a := out[j.queue]
		if a == nil {
			a = &ageSum{}
			out[j.queue] = a
		}
		age := s.now.Sub(j.sentAt)
		a.n++
		a.sum += age
		a.max = max(a.max, age)
	}
	for _, w := range s.workers {
		for _, j := range w.held {
			add(j)
		}
	}
	return out
}

type ageSum struct {
	n        int
	sum, max time.Duration
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

// statusJSON is the STATUS answer: EventMQ's fields first (the ones
// emq-cli shows), then more of ours. Latencies are in milliseconds.
func (s *Server) statusJSON() map[string]any {
	inflight := map[string]int{}
	latency := map[string]int64{}
	maxLatency := map[string]int64{}
	for q, a := range s.inflightAges() {
		inflight[q] = a.n
		latency[q] = ms(a.sum / time.Duration(a.n))
		maxLatency[q] = ms(a.max)
	}
	waiting := map[string]int{}
	rejected := map[string]uint64{}
	expired := map[string]uint64{}
	redelivered := map[string]uint64{}
	completed := map[string]uint64{}
	wait := map[string]map[string]int64{}
	service := map[string]map[string]int64{}
	s.pool.Range(func(q *queue) bool {
		n := q.Name()
		waiting[n] = q.Len()
		st, o := q.Stats(), &q.Outcomes
		rejected[n], expired[n], redelivered[n], completed[n] = st.Rejected, st.Expired, st.Requeued, o.Completed
		if st.QueueWait.Count > 0 {
			wait[n] = quantiles(&st.QueueWait)
		}
		if o.ServiceTime.Count > 0 {
			service[n] = quantiles(&o.ServiceTime)
		}
		return true
	})
	byWorker := map[string]uint64{}
	for _, w := range s.workers {
		byWorker[printable(w.id)] = w.processed
	}
	dropped := map[string]uint64{}
	for _, r := range DropReasons() {
		if n := s.stats.Dropped[r]; n > 0 {
			dropped[r.String()] = n
		}
	}
	st := s.snapshot()
	return map[string]any{
		"inflight_messages_by_queue":    inflight,
		"latency_messages_by_queue":     latency,
		"max_latency_messages_by_queue": maxLatency,
		"waiting_messages_by_queue":     waiting,
		"processed_messages_by_queue":   s.processed,
		"processed_messages_by_worker":  byWorker,
		"rejected_messages_by_queue":    rejected,
		"expired_messages_by_queue":     expired,
		"redelivered_messages_by_queue": redelivered,
		"completed_messages_by_queue":   completed,
		"queue_wait_ms_by_queue":        wait,
		"service_time_ms_by_queue":      service,
		"dropped_messages_by_reason":    dropped,
		"connected_workers":             st.Workers,
		"connected_schedulers":          st.Schedulers,
		"free_slots":                    st.FreeSlots,
		"requests":                      st.Requests,
		"uptime_seconds":                int64(s.now.Sub(s.startedAt).Seconds()),
		"router":                        "mdbroker (Majordomo for Go)",
	}
}

func quantiles(h interface {
	Quantile(float64) time.Duration
	Mean() time.Duration
}) map[string]int64 {
	return map[string]int64{
		"mean": ms(h.Mean()), "p50": ms(h.Quantile(0.5)), "p90": ms(h.Quantile(0.9)),
		"p99": ms(h.Quantile(0.99)), "max": ms(h.Quantile(1)),
	}
}

// monotonic renders a time as EventMQ's "hb" field: seconds on the
// router's monotonic clock, here since the router started.
func (s *Server) monotonic(t time.Time) float64 {
	return t.Sub(s.startedAt).Seconds()
}

// workersJSON is the ROUTER_SHOW_WORKERS answer, shaped as EventMQ's:
// connected_workers by identity with queues, hb and available_slots, and
// connected_queues with [weight, identity] pairs, heaviest first.
func (s *Server) workersJSON() map[string]any {
	workers := map[string]any{}
	queues := map[string][][2]any{}
	keys := make([]string, 0, len(s.workers))
	for k := range s.workers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		w := s.workers[k]
		id := printable(w.id)
		qs := make([][2]any, len(w.queues))
		for i, q := range w.queues {
			qs[i] = [2]any{q.Weight, q.Name}
			queues[q.Name] = append(queues[q.Name], [2]any{q.Weight, id})
		}
		workers[id] = map[string]any{
			"queues":          qs,
			"hb":              s.monotonic(w.live.LastHeard),
			"available_slots": w.w.Slots(),
			"inflight":        w.inFlight(),
			"processed":       w.processed,
			"leaving":         w.leaving,
			"last_seen_ms":    ms(s.now.Sub(w.live.LastHeard)),
			"since":           w.since.UTC().Format(time.RFC3339),
		}
	}
	for _, list := range queues {
		slices.SortStableFunc(list, func(a, b [2]any) int { return b[0].(int) - a[0].(int) })
	}
	return map[string]any{"connected_workers": workers, "connected_queues": queues}
}

// schedulersJSON is the ROUTER_SHOW_SCHEDULERS answer.
func (s *Server) schedulersJSON() map[string]any {
	out := map[string]any{}
	for _, sc := range s.schedulers {
		out[printable(sc.id)] = map[string]any{
			"hb":           s.monotonic(sc.live.LastHeard),
			"scheduled":    sc.scheduled,
			"last_seen_ms": ms(s.now.Sub(sc.live.LastHeard)),
			"since":        sc.since.UTC().Format(time.RFC3339),
		}
	}
	res := map[string]any{"connected_schedulers": out}
	if s.sched != nil {
		var list []map[string]any
		for _, in := range s.sched.List() {
			e := map[string]any{"key": in.Key, "queue": in.Queue, "remaining_runs": in.Remaining,
				"next_run": in.Next.UTC().Format(time.RFC3339), "created": in.Created.UTC().Format(time.RFC3339)}
			if in.Cron != "" {
				e["cron"] = in.Cron
			} else {
				e["interval_seconds"] = int64(in.Interval / time.Second)
			}
			list = append(list, e)
		}
		res["builtin_scheduler"] = map[string]any{"schedules": list, "runs": s.sched.Runs()}
	}
	return res
}

// status builds a Status on the loop.
func (s *Server) status() Status {
	now := time.Now()
	st := Status{Stats: s.snapshot(), Started: s.startedAt, Now: now, Endpoints: s.endpoints}
	ages := s.inflightAges()
	s.pool.Range(func(q *queue) bool {
		qs, o := q.Stats(), &q.Outcomes
		e := QueueStatus{
			Name: q.Name(), Workers: q.Members(), ReadyWorkers: q.Ready(), Waiting: q.Len(), WaitingBytes: q.Bytes(),
			Submitted: qs.Submitted, Rejected: qs.Rejected, Expired: qs.Expired, Dispatched: qs.Dispatched,
			Requeued: qs.Requeued, Completed: o.Completed, Dropped: o.Dropped,
			QueueWait: qs.QueueWait.Clone(), ServiceTime: o.ServiceTime.Clone(),
		}
		if a := ages[q.Name()]; a != nil {
			e.InFlight, e.OldestInFlight, e.MeanInFlight = a.n, a.max, a.sum/time.Duration(a.n)
		}
		st.Queues = append(st.Queues, e)
		return true
	})
	slices.SortFunc(st.Queues, func(a, b QueueStatus) int { return strings.Compare(a.Name, b.Name) })
	for _, w := range s.workers {
		st.Workers = append(st.Workers, WorkerStatus{
			Identity: printable(w.id), Queues: slices.Clone(w.queues), FreeSlots: w.w.Slots(),
			InFlight: w.inFlight(), Processed: w.processed, Since: w.since,
			LastSeen: now.Sub(w.live.LastHeard), Leaving: w.leaving,
		})
	}
	slices.SortFunc(st.Workers, func(a, b WorkerStatus) int { return strings.Compare(a.Identity, b.Identity) })
	for _, sc := range s.schedulers {
		st.Schedulers = append(st.Schedulers, SchedulerStatus{
			Identity: printable(sc.id), Since: sc.since, LastSeen: now.Sub(sc.live.LastHeard), Scheduled: sc.scheduled,
		})
	}
	slices.SortFunc(st.Schedulers, func(a, b SchedulerStatus) int { return strings.Compare(a.Identity, b.Identity) })
	if s.sched != nil {
		st.Schedules = s.sched.List()
	}
	return st
}
