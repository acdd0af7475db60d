package dispatch

// Methods that only the tests need: they inspect the pool's state or drive
// a Deque from both ends, which the protocols never do.

// budgetUsed returns the bytes currently charged to the budget.
func (b *Budget) budgetUsed() int64 {
	if b == nil {
		return 0
	}
	return b.used
}

// serves reports whether the worker is subscribed to q.
func (w *Worker[J, P]) serves(q *Queue[J, P]) bool {
	for _, m := range w.subs {
		if m.q == q {
			return true
		}
	}
	return false
}

// remove removes from q the waiting jobs for which match returns true,
// calling fn for each, and returns how many it removed.
func (p *Pool[J, P]) remove(q *Queue[J, P], match func(Entry[J]) bool, fn func(Entry[J])) int {
	return q.fair.RemoveFunc(match, func(e Entry[J]) {
		p.cfg.Budget.add(-e.Size)
		if fn != nil {
			fn(e)
		}
	})
}

// popBack removes and returns the last element; ok is false when the deque
// is empty.
func (d *Deque[T]) popBack() (v T, ok bool) {
	if d.size == 0 {
		return v, false
	}
	var zero T
	i := (d.head + d.size - 1) & d.mask()
	v = d.buf[i]
	d.buf[i] = zero
	d.size--
	return v, true
}

// at returns the i-th element from the front. It panics if i is out of
// range, like a slice index.
func (d *Deque[T]) at(i int) T {
	if i < 0 || i >= d.size {
		panic("dispatch: Deque index out of range")
	}
	return d.buf[(d.head+i)&d.mask()]
}

// removeFirst deletes the first element matching match, searching from the
// front, and reports whether it found one.
func (d *Deque[T]) removeFirst(match func(T) bool) bool {
	for i := 0; i < d.size; i++ {
		if match(d.buf[(d.head+i)&d.mask()]) {
			d.removeAt(i)
			return true
		}
	}
	return false
}

// clearAll removes every element, keeping the capacity.
func (d *Deque[T]) clearAll() {
	var zero T
	for i := 0; i < d.size; i++ {
		d.buf[(d.head+i)&d.mask()] = zero
	}
	d.head, d.size = 0, 0
}

// submitters returns how many submitters have jobs waiting.
func (f *Fair[J]) submitters() int { return f.ring.Len() }

// peek returns the job Pop would return, without removing it.
func (f *Fair[J]) peek() (Entry[J], bool) {
	l, ok := f.ring.front()
	if !ok {
		return Entry[J]{}, false
	}
	return l.items.front()
}

// front returns the first element without removing it.
func (d *Deque[T]) front() (v T, ok bool) {
	if d.size == 0 {
		return v, false
	}
	return d.buf[d.head], true
}
