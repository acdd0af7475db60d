package dispatch

// Deque is a growable ring buffer: O(1) push and pop at both ends and no
// allocation once it has grown to its working size. The zero value is an
// empty deque ready to use. Capacities are powers of two, so indexing is a
// mask rather than a division.
type Deque[T any] struct {
	buf  []T
	head int
	size int
}

// Len returns the number of elements.
func (d *Deque[T]) Len() int { return d.size }

func (d *Deque[T]) mask() int { return len(d.buf) - 1 }

func (d *Deque[T]) grow() {
	if d.size < len(d.buf) {
		return
	}
	n := len(d.buf) * 2
	if n == 0 {
		n = 4
	}
	nb := make([]T, n)
	for i := 0; i < d.size; i++ {
		nb[i] = d.buf[(d.head+i)&d.mask()]
	}
	d.buf, d.head = nb, 0
}

// PushBack appends v.
func (d *Deque[T]) PushBack(v T) {
	d.grow()
	d.buf[(d.head+d.size)&d.mask()] = v
	d.size++
}

// PushFront prepends v.
func (d *Deque[T]) PushFront(v T) {
	d.grow()
	d.head = (d.head - 1) & d.mask()
	d.buf[d.head] = v
	d.size++
}

// PopFront removes and returns the first element; ok is false when the
// deque is empty.
func (d *Deque[T]) PopFront() (v T, ok bool) {
	if d.size == 0 {
		return v, false
	}
	var zero T
	v = d.buf[d.head]
	d.buf[d.head] = zero // Let the GC have what it pointed to.
	d.head = (d.head + 1) & d.mask()
	d.size--
	return v, true
}

// Filter keeps, in order, the elements for which keep returns true and
// returns how many are left.
func (d *Deque[T]) Filter(keep func(T) bool) int {
	n := d.size
	out := 0
	var zero T
	for i := 0; i < n; i++ {
		v := d.buf[(d.head+i)&d.mask()]
		if keep(v) {
			d.buf[(d.head+out)&d.mask()] = v
			out++
		}
	}
	for i := out; i < n; i++ {
		d.buf[(d.head+i)&d.mask()] = zero
	}
	d.size = out
	return out
}

// removeAt deletes the i-th element, moving the shorter side.
func (d *Deque[T]) removeAt(i int) {
	var zero T
	m := d.mask()
	if i < d.size/2 {
		for j := i; j > 0; j-- {
			d.buf[(d.head+j)&m] = d.buf[(d.head+j-1)&m]
		}
		d.buf[d.head] = zero
		d.head = (d.head + 1) & m
	} else {
		for j := i; j < d.size-1; j++ {
			d.buf[(d.head+j)&m] = d.buf[(d.head+j+1)&m]
		}
		d.buf[(d.head+d.size-1)&m] = zero
	}
	d.size--
}

// RemoveLast deletes the last element matching match, searching from the
// back, and reports whether it found one. Use it when the element is likely
// near the back (a worker that was just made ready).
func (d *Deque[T]) RemoveLast(match func(T) bool) bool {
	for i := d.size - 1; i >= 0; i-- {
		if match(d.buf[(d.head+i)&d.mask()]) {
			d.removeAt(i)
			return true
		}
	}
	return false
}
