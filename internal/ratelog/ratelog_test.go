package ratelog

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := Limiter{Window: time.Second, Burst: 2}
	t0 := time.Unix(1000, 0)
	for i, want := range []bool{true, true, false, false} {
		if _, ok := l.Allow(t0.Add(time.Duration(i) * time.Millisecond)); ok != want {
			t.Fatalf("line %d: ok = %v, want %v", i, ok, want)
		}
	}
	// A new window: the first line reports the two held back.
	if n, ok := l.Allow(t0.Add(time.Second)); !ok || n != 2 {
		t.Fatalf("new window: %d, %v; want 2, true", n, ok)
	}
	if n, ok := l.Allow(t0.Add(time.Second + time.Millisecond)); !ok || n != 0 {
		t.Fatalf("second line of the window: %d, %v; want 0, true", n, ok)
	}
}

// One line per period, as Titanic logs store failures.
func TestLimiterOnePerPeriod(t *testing.T) {
	l := Limiter{Window: 100 * time.Millisecond, Burst: 1}
	t0 := time.Unix(1000, 0)
	if _, ok := l.Allow(t0); !ok {
		t.Fatal("first line held back")
	}
	if _, ok := l.Allow(t0.Add(99 * time.Millisecond)); ok {
		t.Fatal("second line within the period let through")
	}
	if n, ok := l.Allow(t0.Add(100 * time.Millisecond)); !ok || n != 1 {
		t.Fatalf("after the period: %d, %v; want 1, true", n, ok)
	}
}
