package loop

import (
	"context"
	"errors"
	"testing"
	"time"
)

// runLoop is a minimal loop over l: it runs calls until stopped.
func runLoop(l *Life, wake chan struct{}) {
	defer l.End()
	for {
		select {
		case <-l.Stopping():
			return
		case fn := <-l.Calls():
			fn()
		case <-wake:
		}
	}
}

func newLife() (*Life, chan struct{}) {
	wake := make(chan struct{}, 1)
	return New(func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}), wake
}

func TestLifecycle(t *testing.T) {
	l, wake := newLife()
	if l.Call(func() {}) {
		t.Fatal("Call ran before Begin")
	}
	if err := l.Begin(); err != nil {
		t.Fatal(err)
	}
	if err := l.Begin(); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Begin: %v", err)
	}
	go runLoop(l, wake)
	n := 0
	for i := 0; i < 100; i++ {
		if !l.Call(func() { n++ }) {
			t.Fatal("Call failed on a running loop")
		}
	}
	if n != 100 {
		t.Fatalf("ran %d calls", n)
	}
	released := false
	l.Stop(func() { released = true })
	l.Stop(func() { released = true })
	if released || !l.Finished() || l.Call(func() {}) {
		t.Fatal("Stop of a running loop released, or left it callable")
	}
}

func TestStopBeforeBegin(t *testing.T) {
	l, _ := newLife()
	released := 0
	l.Stop(func() { released++ })
	l.Stop(func() { released++ })
	if released != 1 {
		t.Fatalf("released %d times", released)
	}
	if err := l.Begin(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Begin after Stop: %v", err)
	}
}

func TestDrain(t *testing.T) {
	l, wake := newLife()
	l.Begin()
	go runLoop(l, wake)
	pending, paused := 3, false
	stopped := false
	go func() {
		for i := 0; i < 3; i++ {
			// Work that ends over time is what Drain waits for: the
			// sleep stands for a request still being served.
			time.Sleep(20 * time.Millisecond)
			l.Call(func() { pending-- })
		}
	}()
	err := Drain(context.Background(), l, func() { paused = true }, func() int { return pending },
		func() { stopped = true; l.Stop(nil) })
	if err != nil || !paused || !stopped || pending != 0 {
		t.Fatalf("err %v paused %v stopped %v pending %d", err, paused, stopped, pending)
	}

	l2, wake2 := newLife()
	l2.Begin()
	go runLoop(l2, wake2)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = Drain(ctx, l2, func() {}, func() int { return 1 }, func() { l2.Stop(nil) })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("drain past its deadline: %v", err)
	}
}
