package dispatch

import (
	"testing"
	"time"
)

func TestHeartbeatsPeriodic(t *testing.T) {
	h := Heartbeats{Interval: 3 * time.Second, Timeout: 5 * time.Second}
	if h.Tick() != 250*time.Millisecond {
		t.Fatalf("Tick %v", h.Tick())
	}
	var l Liveness
	if !h.Due(&l, t0) {
		t.Fatal("a peer never beaten is due")
	}
	l.Beat(t0)
	// Periodic: other traffic does not postpone the heartbeat.
	l.Sent(t0.Add(2 * time.Second))
	if h.Due(&l, t0.Add(2*time.Second)) {
		t.Fatal("due early")
	}
	if !h.Due(&l, t0.Add(2750*time.Millisecond)) {
		t.Fatal("not due within one tick of the interval")
	}
	l.Heard(t0)
	if h.Dead(&l, t0.Add(4999*time.Millisecond)) || !h.Dead(&l, t0.Add(5*time.Second)) {
		t.Fatal("Dead at the timeout")
	}
	if !l.LastSent.Equal(t0.Add(2*time.Second)) || !l.LastBeat.Equal(t0) {
		t.Fatal("Beat/Sent bookkeeping")
	}
}

func TestHeartbeatsSendsCount(t *testing.T) {
	h := Heartbeats{Interval: 100 * time.Millisecond, Timeout: 300 * time.Millisecond, SendsCount: true}
	if h.Tick() != 25*time.Millisecond {
		t.Fatalf("Tick %v", h.Tick())
	}
	var l Liveness
	l.Beat(t0)
	l.Sent(t0.Add(90 * time.Millisecond)) // A request counts as a heartbeat.
	if h.Due(&l, t0.Add(120*time.Millisecond)) {
		t.Fatal("idle-only beat due although the peer was sent something")
	}
	if !h.Due(&l, t0.Add(165*time.Millisecond)) {
		t.Fatal("idle-only beat not due")
	}
}

func TestTicker(t *testing.T) {
	tk := Ticker{Period: time.Second}
	tk.Start(t0)
	if tk.Due(t0.Add(999 * time.Millisecond)) {
		t.Fatal("early")
	}
	if tk.Until(t0.Add(400*time.Millisecond)) != 600*time.Millisecond {
		t.Fatal("Until")
	}
	// Late by several periods: fires once, next period from now.
	if !tk.Due(t0.Add(5 * time.Second)) {
		t.Fatal("not due")
	}
	if tk.Due(t0.Add(5*time.Second)) || tk.Until(t0.Add(7*time.Second)) != 0 {
		t.Fatal("fired twice, or Until negative")
	}
}

func TestRedelivery(t *testing.T) {
	for _, tc := range []struct {
		r        Redelivery
		attempts int
		want     Verdict
	}{
		{Redelivery{MaxAttempts: 3}, 1, Redeliver},
		{Redelivery{MaxAttempts: 3}, 2, Redeliver},
		{Redelivery{MaxAttempts: 3}, 3, DropExhausted},
		{Redelivery{MaxAttempts: 0}, 1, DropExhausted},
		{Redelivery{MaxAttempts: 3, Disabled: true}, 1, DropDisabled},
	} {
		if got := tc.r.Decide(tc.attempts); got != tc.want {
			t.Errorf("%+v.Decide(%d) = %v, want %v", tc.r, tc.attempts, got, tc.want)
		}
	}
	for v, name := range map[Verdict]string{Redeliver: "redeliver", DropDisabled: "worker_lost", DropExhausted: "attempts_exhausted", 9: "unknown"} {
		if v.String() != name {
			t.Errorf("%d: %q", v, v.String())
		}
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	if h.Mean() != 0 || h.Quantile(0.5) != 0 {
		t.Fatal("empty histogram")
	}
	for i := 0; i < 100; i++ {
		h.Observe(time.Duration(i+1) * time.Millisecond)
	}
	h.Observe(-time.Second) // Clock skew counts as zero.
	h.Observe(2 * time.Minute)
	if h.Count != 102 || h.Max != 2*time.Minute {
		t.Fatalf("Count %d Max %v", h.Count, h.Max)
	}
	if h.Counts[0] != 1 || h.Counts[len(LatencyBuckets)] != 1 {
		t.Fatalf("edge buckets %v", h.Counts)
	}
	if m := h.Mean(); m < 1*time.Second || m > 2*time.Second {
		t.Fatalf("Mean %v", m)
	}
	if q := h.Quantile(0.5); q < 25*time.Millisecond || q > 100*time.Millisecond {
		t.Fatalf("median %v", q)
	}
	if q := h.Quantile(1); q != 2*time.Minute {
		t.Fatalf("max quantile %v", q)
	}
	c := h.Clone()
	h.Observe(time.Millisecond)
	if c.Count == h.Count || &c.Counts[0] == &h.Counts[0] {
		t.Fatal("Clone shares state")
	}
}
