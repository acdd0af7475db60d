package dispatch

import "time"

// Entry is one job waiting in a queue.
type Entry[J any] struct {
	Value     J
	Size      int64     // Bytes it counts against the queue's bounds.
	At        time.Time // When it (last) entered the queue.
	Submitter string    // The submitter key it was queued under.
}

// lane holds one submitter's waiting jobs, oldest first.
type lane[J any] struct {
	key    string
	items  Deque[Entry[J]]
	inRing bool
}

// DefaultMaxIdleSubmitters is how many empty per-submitter lanes a Fair
// keeps when Limits.MaxIdleSubmitters is zero, so that submitters that come
// and go do not allocate a lane each time.
const DefaultMaxIdleSubmitters = 64

// Fair is a FIFO of jobs that is fair across submitters: each submitter
// (a client identity) has its own lane, and Pop serves the lanes
// round-robin, so that one submitter with thousands of jobs waiting cannot
// starve the others (7/MDP: "The broker SHOULD serve clients on a fair
// basis"; eMQP says the same). Within a lane jobs leave in order.
//
// Fair itself has no bounds; Pool checks them before it pushes. The zero
// value is ready to use.
type Fair[J any] struct {
	ring    Deque[*lane[J]]     // Lanes with jobs, in service order.
	lanes   map[string]*lane[J] // Lanes by submitter, with jobs or idle.
	idle    int                 // Lanes in the map without jobs.
	maxIdle int                 // 0: DefaultMaxIdleSubmitters.
	n       int
	bytes   int64
}

// Len returns the number of waiting jobs.
func (f *Fair[J]) Len() int { return f.n }

// Bytes returns the total Size of the waiting jobs.
func (f *Fair[J]) Bytes() int64 { return f.bytes }

// laneFor finds or makes the lane of a submitter, given as a []byte or,
// when that is nil, as a string. Looking a []byte up as string(b) does not
// allocate; only a submitter seen for the first time (or whose idle lane
// was dropped) costs a key and a lane.
func (f *Fair[J]) laneFor(submitter []byte, submitterStr string) *lane[J] {
	if f.lanes == nil {
		f.lanes = make(map[string]*lane[J])
	}
	var l *lane[J]
	if submitter != nil {
		l = f.lanes[string(submitter)]
	} else {
		l = f.lanes[submitterStr]
	}
	if l != nil {
		if !l.inRing {
			f.idle--
		}
		return l
	}
	key := submitterStr
	if submitter != nil {
		key = string(submitter)
	}
	l = &lane[J]{key: key}
	f.lanes[key] = l
	return l
}

func (f *Fair[J]) push(submitter []byte, submitterStr string, e Entry[J], front bool) {
	l := f.laneFor(submitter, submitterStr)
	e.Submitter = l.key
	if front {
		l.items.PushFront(e)
	} else {
		l.items.PushBack(e)
	}
	if !l.inRing {
		l.inRing = true
		if front {
			f.ring.PushFront(l)
		} else {
			f.ring.PushBack(l)
		}
	}
	f.n++
	f.bytes += e.Size
}

// Push appends a job to the lane of submitter.
func (f *Fair[J]) Push(submitter []byte, v J, size int64, at time.Time) {
	f.push(submitter, "", Entry[J]{Value: v, Size: size, At: at}, false)
}

// PushFront puts a job back at the head of its submitter's lane, and that
// lane at the head of the round-robin, so that a job coming back from a
// dead worker does not lose its place.
func (f *Fair[J]) PushFront(submitter string, v J, size int64, at time.Time) {
	f.push(nil, submitter, Entry[J]{Value: v, Size: size, At: at}, true)
}

// retire takes an emptied lane out of service, keeping it for reuse unless
// too many idle lanes are kept already.
func (f *Fair[J]) retire(l *lane[J]) {
	l.inRing = false
	limit := f.maxIdle
	if limit == 0 {
		limit = DefaultMaxIdleSubmitters
	}
	if f.idle < limit {
		f.idle++
		return
	}
	delete(f.lanes, l.key)
}

// Pop removes the next job in round-robin order over submitters.
func (f *Fair[J]) Pop() (Entry[J], bool) {
	l, ok := f.ring.PopFront()
	if !ok {
		return Entry[J]{}, false
	}
	e, _ := l.items.PopFront()
	if l.items.Len() > 0 {
		f.ring.PushBack(l)
	} else {
		f.retire(l)
	}
	f.n--
	f.bytes -= e.Size
	return e, true
}

// Expire removes every job that entered the queue before cutoff, calling fn
// for each, and returns how many it removed.
func (f *Fair[J]) Expire(cutoff time.Time, fn func(Entry[J])) int {
	return f.RemoveFunc(func(e Entry[J]) bool { return e.At.Before(cutoff) }, fn)
}

// RemoveFunc removes every job for which match returns true, calling fn
// (if not nil) for each, and returns how many it removed. Lane order is
// kept.
func (f *Fair[J]) RemoveFunc(match func(Entry[J]) bool, fn func(Entry[J])) int {
	if f.n == 0 {
		return 0
	}
	removed := 0
	lanes := f.ring.Len()
	for i := 0; i < lanes; i++ {
		l, _ := f.ring.PopFront()
		kept := l.items.Filter(func(e Entry[J]) bool {
			if !match(e) {
				return true
			}
			f.n--
			f.bytes -= e.Size
			removed++
			if fn != nil {
				fn(e)
			}
			return false
		})
		if kept > 0 {
			f.ring.PushBack(l)
		} else {
			f.retire(l)
		}
	}
	return removed
}

// Drain removes every job, oldest lane first, calling fn for each.
func (f *Fair[J]) Drain(fn func(Entry[J])) int {
	n := 0
	for {
		e, ok := f.Pop()
		if !ok {
			return n
		}
		n++
		if fn != nil {
			fn(e)
		}
	}
}
