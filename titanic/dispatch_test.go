package titanic

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"
)

func testServer(t *testing.T, tweak func(*Config)) *Server {
	t.Helper()
	cfg := Config{Broker: "tcp://127.0.0.1:1", Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxInFlight: 8, MaxInFlightPerService: 3}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestDispatchFairness: lanes go round-robin over services, at most
// MaxInFlightPerService each, MaxInFlight in all.
func TestDispatchFairness(t *testing.T) {
	s := testServer(t, nil)
	d := s.disp
	d.noMMI = true
	var g idGen
	for i := range 5 {
		for _, svc := range []string{"a", "b", "c"} {
			d.add(g.next(time.Now()), svc, [][]byte{[]byte(fmt.Sprint(i))})
		}
	}
	d.handleEvents()
	d.dispatch()
	if d.inflight != 8 || len(d.jobs) != 8 {
		t.Fatalf("in flight %d, jobs %d; want 8", d.inflight, len(d.jobs))
	}
	per := map[string]int{}
	var order []string
	for range 8 {
		j := <-d.jobs
		per[j.service]++
		order = append(order, j.service)
	}
	if per["a"] != 3 || per["b"] != 3 || per["c"] != 2 {
		t.Errorf("per service %v, want at most 3 each", per)
	}
	if fmt.Sprint(order[:6]) != "[a b c a b c]" {
		t.Errorf("order %v: want round-robin", order)
	}
}

// TestDispatchForgets: requests cancelled while their service has no
// worker leave nothing behind in memory.
func TestDispatchForgets(t *testing.T) {
	s := testServer(t, nil)
	d := s.disp
	var g idGen
	var ids []ID
	for i := range 500 {
		id := g.next(time.Now())
		ids = append(ids, id)
		d.add(id, fmt.Sprintf("svc%d", i%50), [][]byte{{}})
	}
	d.handleEvents()
	if len(d.services) != 50 || len(d.items) != 500 || len(d.probes) != 50 {
		t.Fatalf("services %d items %d probes %d", len(d.services), len(d.items), len(d.probes))
	}
	for len(d.probes) > 0 {
		d.post(event{kind: evProbe, service: <-d.probes}) // 404: no workers.
	}
	d.handleEvents()
	d.cancel(ids...)
	d.handleEvents()
	if len(d.services) != 0 || len(d.items) != 0 {
		t.Errorf("after cancelling everything: %d services, %d items remembered", len(d.services), len(d.items))
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, time.Second
	for n, want := range map[int]time.Duration{1: lo, 2: 2 * lo, 3: 4 * lo, 10: hi} {
		for range 20 {
			if got := backoff(n, lo, hi); got < want*8/10 || got > want*12/10 {
				t.Errorf("backoff(%d) = %v, want %v ± 20%%", n, got, want)
			}
		}
	}
}
