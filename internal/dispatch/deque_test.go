package dispatch

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func dequeSlice[T any](d *Deque[T]) []T {
	out := make([]T, d.Len())
	for i := range out {
		out[i] = d.at(i)
	}
	return out
}

// TestDequeModel runs random operations against a slice model.
func TestDequeModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var d Deque[int]
	var model []int
	for step := 0; step < 20000; step++ {
		switch op := r.IntN(8); op {
		case 0, 1:
			v := r.Int()
			d.PushBack(v)
			model = append(model, v)
		case 2:
			v := r.Int()
			d.PushFront(v)
			model = append([]int{v}, model...)
		case 3:
			v, ok := d.PopFront()
			if ok != (len(model) > 0) {
				t.Fatalf("step %d: PopFront ok=%v with %d in model", step, ok, len(model))
			}
			if ok {
				if v != model[0] {
					t.Fatalf("step %d: PopFront %d, want %d", step, v, model[0])
				}
				model = model[1:]
			}
		case 4:
			v, ok := d.popBack()
			if ok != (len(model) > 0) {
				t.Fatalf("step %d: PopBack ok=%v", step, ok)
			}
			if ok {
				if v != model[len(model)-1] {
					t.Fatalf("step %d: PopBack %d, want %d", step, v, model[len(model)-1])
				}
				model = model[:len(model)-1]
			}
		case 5:
			if len(model) == 0 {
				continue
			}
			target := model[r.IntN(len(model))]
			if !d.removeFirst(func(x int) bool { return x == target }) {
				t.Fatalf("step %d: RemoveFirst missed %d", step, target)
			}
			i := slices.Index(model, target)
			model = slices.Delete(model, i, i+1)
		case 6:
			if len(model) == 0 {
				continue
			}
			target := model[r.IntN(len(model))]
			if !d.RemoveLast(func(x int) bool { return x == target }) {
				t.Fatalf("step %d: RemoveLast missed %d", step, target)
			}
			i := len(model) - 1
			for model[i] != target {
				i--
			}
			model = slices.Delete(model, i, i+1)
		case 7:
			odd := r.IntN(2)
			n := d.Filter(func(x int) bool { return x%2 == odd })
			model = slices.DeleteFunc(model, func(x int) bool { return x%2 != odd })
			if n != len(model) {
				t.Fatalf("step %d: Filter kept %d, want %d", step, n, len(model))
			}
		}
		if d.Len() != len(model) {
			t.Fatalf("step %d: Len %d, want %d", step, d.Len(), len(model))
		}
		if step%97 == 0 && !slices.Equal(dequeSlice(&d), model) {
			t.Fatalf("step %d: contents %v, want %v", step, dequeSlice(&d), model)
		}
	}
}

func TestDequeEmptyAndClear(t *testing.T) {
	var d Deque[*int]
	if _, ok := d.PopFront(); ok {
		t.Fatal("PopFront on empty")
	}
	if _, ok := d.popBack(); ok {
		t.Fatal("PopBack on empty")
	}
	if _, ok := d.front(); ok {
		t.Fatal("Front on empty")
	}
	x := 1
	for i := 0; i < 10; i++ {
		d.PushBack(&x)
	}
	capBefore := len(d.buf)
	d.clearAll()
	if d.Len() != 0 || len(d.buf) != capBefore {
		t.Fatalf("Clear: len %d cap %d (was %d)", d.Len(), len(d.buf), capBefore)
	}
	for i, p := range d.buf {
		if p != nil {
			t.Fatalf("Clear left a reference at %d", i)
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("At out of range did not panic")
		}
	}()
	d.at(0)
}

// Popped slots must not keep their values reachable.
func TestDequeReleasesReferences(t *testing.T) {
	var d Deque[*int]
	for i := 0; i < 8; i++ {
		v := i
		d.PushBack(&v)
	}
	d.PopFront()
	d.popBack()
	d.removeFirst(func(p *int) bool { return *p == 3 })
	d.Filter(func(p *int) bool { return *p != 5 })
	live := 0
	for _, p := range d.buf {
		if p != nil {
			live++
		}
	}
	if live != d.Len() {
		t.Fatalf("%d references kept for %d elements", live, d.Len())
	}
}

func TestDequeNoAllocSteadyState(t *testing.T) {
	var d Deque[int]
	for i := 0; i < 64; i++ {
		d.PushBack(i)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		v, _ := d.PopFront()
		d.PushBack(v)
		d.PushFront(v)
		d.popBack()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per cycle, want 0", allocs)
	}
}
