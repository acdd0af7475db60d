package emqp

import (
	"errors"
	"time"

	"github.com/majordomo-go/majordomo/emqp/schedule"
	"github.com/majordomo-go/majordomo/emqp/wire"
	"github.com/majordomo-go/majordomo/internal/dispatch"
)

// schedSubmitter is the submitter lane of the built-in scheduler's runs:
// one lane, served fairly next to the clients'.
var schedSubmitter = []byte("\x00mdbroker-scheduler")

// openScheduler loads the built-in scheduler's schedules.
func (s *Server) openScheduler() error {
	var store schedule.Store = &schedule.Memory{}
	if s.cfg.SchedulerStore != "" {
		b, err := schedule.OpenBolt(s.cfg.SchedulerStore)
		if err != nil {
			return err
		}
		store = b
	}
	sched, err := schedule.New(store, time.Now())
	if sched == nil {
		store.Close()
		return err
	}
	if err != nil {
		// Unreadable records are reported; the rest run.
		s.log.Error("emqp: some stored schedules could not be loaded", "error", err.Error())
	}
	s.sched = sched
	s.log.Info("emqp: built-in scheduler", "store", s.cfg.SchedulerStore, "schedules", sched.Len())
	return nil
}

// scheduleBuiltin takes a SCHEDULE for the built-in scheduler.
func (s *Server) scheduleBuiltin(m *wire.Message) {
	spec, err := schedule.Parse(m.Args)
	var key string
	var first *schedule.Run
	if err == nil {
		key, first, err = s.sched.Schedule(spec, s.now)
	}
	if err != nil {
		s.drop(DropBadSchedule, "SCHEDULE refused", "error", err.Error())
		s.warn("SCHEDULE refused by the built-in scheduler (bad interval, cron or job)")
		return
	}
	s.stats.Scheduled++
	s.log.Info("emqp: scheduled", "key", key, "queue", spec.Queue, "interval", spec.Interval,
		"cron", spec.Cron, "run_count", spec.RunCount, "nohaste", spec.Nohaste)
	if first != nil {
		s.submitRun(*first)
	}
	// Stored at the end of the loop's turn (runSchedules).
}

// unscheduleBuiltin takes an UNSCHEDULE for the built-in scheduler.
func (s *Server) unscheduleBuiltin(m *wire.Message) {
	if len(m.Args) < 4 {
		s.drop(DropBadSchedule, "UNSCHEDULE without a job")
		return
	}
	found, err := s.sched.Unschedule(m.Args[3])
	if err != nil {
		s.drop(DropBadSchedule, "UNSCHEDULE refused", "error", err.Error())
		return
	}
	if found {
		s.stats.Unscheduled++
		s.log.Info("emqp: unscheduled", "queue", string(m.Args[0]))
	}
	// Stored at the end of the loop's turn (runSchedules).
}

// runSchedules makes the REQUESTs of the runs now due, then stores every
// change of the loop's turn in one write: the SCHEDULEs and UNSCHEDULEs of
// the batch and the runs just made. One write (and fsync) per SCHEDULE
// would hold the loop for a disk sync per message under a burst; a
// SCHEDULE gets no acknowledgement (as with emq-router), so nothing is
// promised before the turn ends.
func (s *Server) runSchedules() {
	if s.sched == nil {
		return
	}
	if next, ok := s.sched.NextDue(); ok && !next.After(s.now) {
		s.sched.Due(s.now, s.submitRun)
	}
	s.flushSchedules()
}

func (s *Server) flushSchedules() {
	if err := s.sched.Flush(); err != nil {
		s.warn("schedule store write failed; retrying: " + err.Error())
	}
}

// submitRun makes one REQUEST as EventMQ's scheduler does: the job to its
// queue with reply-requested (and guarantee, if the schedule had it).
func (s *Server) submitRun(r schedule.Run) {
	s.stats.Requests++
	headers := wire.HeaderReplyRequested
	if r.Guarantee {
		headers += "," + wire.HeaderGuarantee
	}
	s.idBuf = s.ids.Append(s.idBuf[:0])
	q := s.route([]byte(r.Queue))
	if q == nil {
		s.drop(DropTooManyQueues, "no room for the default queue")
		return
	}
	j := &job{
		msgid:       append([]byte(nil), s.idBuf...),
		queueArg:    []byte(r.Queue),
		headers:     []byte(headers),
		payload:     r.Job,
		queue:       q.Name(),
		guarantee:   r.Guarantee,
		track:       true,
		acked:       true, // No client to tell.
		maxAttempts: 1,
		queuedAt:    s.now,
	}
	if r.Guarantee {
		j.maxAttempts = s.cfg.MaxAttempts
	}
	j.size = int64(len(j.msgid) + len(j.queueArg) + len(j.headers) + len(j.payload))
	w, err := s.pool.Submit(q, schedSubmitter, j, j.size, s.now)
	switch {
	case errors.Is(err, dispatch.ErrQueueBytes):
		s.drop(DropQueueBytes, "scheduled run rejected", "queue", q.Name())
		s.warn("scheduled runs rejected: queued bytes limit: queue " + q.Name())
	case err != nil:
		s.drop(DropQueueFull, "scheduled run rejected", "queue", q.Name())
		s.warn("scheduled runs rejected: queue full: queue " + q.Name())
	case w != nil:
		s.deliver(w.Peer, j)
	}
}
