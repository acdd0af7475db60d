package schedule

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// Run is one due run of a schedule: a REQUEST to send.
type Run struct {
	Key       string
	Queue     string
	Job       []byte
	Guarantee bool
}

type entry struct {
	rec    Record
	timing Timing
	next   time.Time
}

// Scheduler keeps the schedules and says which runs are due. It does no
// I/O but through its Store, and belongs to one goroutine.
type Scheduler struct {
	store   Store
	entries map[string]*entry
	put     map[string]bool // Keys to write at the next Flush.
	del     map[string]bool // Keys to delete at the next Flush.
	runs    uint64
}

// New returns a scheduler with the schedules in store. Runs missed while
// nothing was running are skipped, as cron skips them: each schedule
// resumes at its first run time after now, on its own grid. Records that
// cannot be read are reported in the error, and the rest are loaded.
func New(store Store, now time.Time) (*Scheduler, error) {
	if store == nil {
		store = &Memory{}
	}
	s := &Scheduler{store: store, entries: map[string]*entry{}, put: map[string]bool{}, del: map[string]bool{}}
	recs, err := store.Load()
	var bad []error
	if err != nil {
		if recs == nil {
			return nil, err
		}
		bad = append(bad, err)
	}
	for _, r := range recs {
		spec := r.Spec()
		tm, err := NewTiming(&spec, r.Anchor)
		if err != nil {
			bad = append(bad, fmt.Errorf("schedule %s: %w", r.Key, err))
			continue
		}
		s.entries[r.Key] = &entry{rec: r, timing: tm, next: tm.After(now)}
	}
	return s, errors.Join(bad...)
}

// Len returns the number of schedules.
func (s *Scheduler) Len() int { return len(s.entries) }

// Runs returns how many runs have been due since New.
func (s *Scheduler) Runs() uint64 { return s.runs }

// Schedule adds spec, or replaces the schedule with the same key, as
// EventMQ's scheduler does. Unless spec says nohaste, the first run is
// due at once and returned. The change is stored at the next Flush.
func (s *Scheduler) Schedule(spec Spec, now time.Time) (key string, first *Run, err error) {
	key, err = Key(spec.Job)
	if err != nil {
		return "", nil, err
	}
	tm, err := NewTiming(&spec, now)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrSpec, err)
	}
	e := &entry{timing: tm, next: tm.After(now), rec: Record{
		Key: key, Queue: spec.Queue, Headers: spec.Headers, Interval: -1, Cron: spec.Cron,
		Job: string(spec.Job), Remaining: spec.RunCount, Nohaste: spec.Nohaste,
		Guarantee: spec.Guarantee, Anchor: now, Created: now,
	}}
	if spec.Interval > 0 {
		e.rec.Interval = int64(spec.Interval / time.Second)
	}
	if !spec.Nohaste && e.rec.Remaining != 0 {
		first = s.fire(e)
	}
	if e.rec.Remaining == 0 {
		// run_count used up (or 0): nothing left to schedule.
		s.forget(key)
		return key, first, nil
	}
	s.entries[key] = e
	s.put[key] = true
	delete(s.del, key)
	return key, first, nil
}

// Unschedule removes the schedule of job, reporting whether there was
// one.
func (s *Scheduler) Unschedule(job []byte) (bool, error) {
	key, err := Key(job)
	if err != nil {
		return false, err
	}
	_, ok := s.entries[key]
	s.forget(key)
	return ok, nil
}

func (s *Scheduler) forget(key string) {
	delete(s.entries, key)
	delete(s.put, key)
	s.del[key] = true
}

func (s *Scheduler) fire(e *entry) *Run {
	s.runs++
	if e.rec.Remaining > 0 {
		e.rec.Remaining--
		s.put[e.rec.Key] = true
	}
	return &Run{Key: e.rec.Key, Queue: e.rec.Queue, Job: []byte(e.rec.Job), Guarantee: e.rec.Guarantee}
}

// Due calls fn for every run due at now, in the order of their run times,
// and moves each schedule to its next run time after now (a late loop
// does not run a schedule twice). A schedule whose runs are used up is
// removed.
func (s *Scheduler) Due(now time.Time, fn func(Run)) {
	var due []*entry
	for _, e := range s.entries {
		if !e.next.After(now) {
			due = append(due, e)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		if !due[i].next.Equal(due[j].next) {
			return due[i].next.Before(due[j].next)
		}
		return due[i].rec.Key < due[j].rec.Key
	})
	for _, e := range due {
		if e.rec.Remaining != 0 {
			fn(*s.fire(e))
		}
		if e.rec.Remaining == 0 {
			s.forget(e.rec.Key)
			continue
		}
		e.next = e.timing.After(now)
	}
}

// NextDue returns the earliest run time, and false when there is no
// schedule.
func (s *Scheduler) NextDue() (time.Time, bool) {
	var next time.Time
	for _, e := range s.entries {
		if next.IsZero() || e.next.Before(next) {
			next = e.next
		}
	}
	return next, !next.IsZero()
}

// Flush stores the changes since the last Flush in one transaction. On
// error the changes are kept for the next Flush.
func (s *Scheduler) Flush() error {
	if len(s.put) == 0 && len(s.del) == 0 {
		return nil
	}
	put := make([]Record, 0, len(s.put))
	for k := range s.put {
		if e := s.entries[k]; e != nil {
			put = append(put, e.rec)
		}
	}
	del := make([]string, 0, len(s.del))
	for k := range s.del {
		del = append(del, k)
	}
	if err := s.store.Apply(put, del); err != nil {
		return err
	}
	clear(s.put)
	clear(s.del)
	return nil
}

// Info describes one schedule for operators.
type Info struct {
	Key       string
	Queue     string
	Interval  time.Duration // 0 for a cron schedule.
	Cron      string
	Remaining int // Forever, or runs left.
	Next      time.Time
	Created   time.Time
}

// List returns every schedule, sorted by next run time.
func (s *Scheduler) List() []Info {
	out := make([]Info, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, Info{Key: e.rec.Key, Queue: e.rec.Queue, Interval: e.timing.Interval,
			Cron: e.rec.Cron, Remaining: e.rec.Remaining, Next: e.next, Created: e.rec.Created})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Next.Equal(out[j].Next) {
			return out[i].Next.Before(out[j].Next)
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// Close flushes and closes the store.
func (s *Scheduler) Close() error {
	return errors.Join(s.Flush(), s.store.Close())
}
