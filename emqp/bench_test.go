package emqp

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/emqp/wire"
	"github.com/majordomo-go/majordomo/internal/transport"
)

// BenchmarkRouterThroughput pushes fire-and-forget REQUESTs from one client
// through the router to one job manager that answers each with READY
// (64 slots of credit), over loopback TCP: the router's per-request cost,
// ACK to the client included.
func BenchmarkRouterThroughput(b *testing.B) {
	ts := startServer(b)
	jm := ts.dial(ts.ep.Backend, "bench-jm")
	c := ts.dial(ts.ep.Frontend, "bench-client")
	jm.send("INFORM", `[[10, "default"]]`, "worker")
	jm.expect("ACK")
	const window = 64
	for i := 0; i < window; i++ {
		jm.send("READY")
	}
	ts.waitFor("credit", func(s Stats) bool { return s.FreeSlots == window })
	ready := [][]byte{{}, []byte(wire.Protocol), []byte("READY"), []byte("r")}
	beat := [][]byte{{}, []byte(wire.Protocol), []byte("HEARTBEAT"), []byte("h"), []byte("0")}
	req := [][]byte{{}, []byte(wire.Protocol), []byte("REQUEST"), []byte("00000000-0000-4000-8000-000000000000"),
		[]byte("default"), {}, []byte(`["run", {"callable": "f", "path": "m", "args": [1]}]`)}
	n := b.N
	done := make(chan error, 1)
	// The job manager's socket moves to this goroutine (a channel
	// synchronises the hand-over).
	go func(sock transport.Socket) {
		got := 0
		last := time.Now()
		deadline := time.Now().Add(time.Minute)
		for got < n {
			if time.Now().After(deadline) {
				done <- errors.New("job manager: requests missing")
				return
			}
			ok, err := sock.WaitReadable(testInterval / 2)
			if err != nil {
				done <- err
				return
			}
			if time.Since(last) > testInterval/2 {
				sock.Send(beat, false)
				last = time.Now()
			}
			if !ok {
				continue
			}
			for {
				f, _, err := sock.Recv(0, true)
				if errors.Is(err, transport.ErrAgain) {
					break
				}
				if err != nil {
					done <- err
					return
				}
				if string(f[2]) == "REQUEST" {
					got++
					if err := sock.Send(ready, false); err != nil {
						done <- err
						return
					}
				}
			}
		}
		done <- nil
	}(jm.sock)
	b.ResetTimer()
	// The client keeps at most 1,000 requests unacknowledged (an ACK means
	// dispatched), well inside the queue bound, which would otherwise
	// reject the excess, as it should.
	acks := 0
	for i := 0; i < n; i++ {
		if err := c.sock.Send(req, false); err != nil {
			b.Fatal(err)
		}
		for {
			wait := i+1-acks >= 1000
			if _, _, err := c.sock.Recv(0, !wait); err != nil {
				if wait {
					b.Fatal(err)
				}
				break
			}
			acks++
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "req/s")
	st := ts.s.Stats()
	if st.Dispatched < uint64(n) || st.TotalDropped() != 0 {
		b.Fatalf("stats %+v", st)
	}
}

// BenchmarkBuiltinSchedule sends SCHEDULEs for distinct jobs, as fast as one
// client can, to the built-in scheduler with its bbolt store on disk, and
// waits until all are taken: what a burst of schedules costs the loop.
func BenchmarkBuiltinSchedule(b *testing.B) {
	store := filepath.Join(b.TempDir(), "schedules.db")
	ts := startServer(b, func(c *Config) { c.Scheduler, c.SchedulerStore = true, store })
	c := ts.client("bench-client")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.send("SCHEDULE", "default", "nohaste", "3600", fmt.Sprintf(`["run", {"callable": "f", "path": "m", "args": [%d]}]`, i), "")
	}
	ts.waitFor("every schedule taken", func(s Stats) bool { return s.Scheduled == uint64(b.N) })
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "schedules/s")
}
