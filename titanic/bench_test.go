package titanic_test

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/titanic"
	"github.com/majordomo-go/majordomo/worker"
)

// Benchmarks: a broker, a Titanic server with its default bbolt store (one
// file in the test's temporary directory, fdatasync on every commit, as in
// production), and many clients pipelining titanic.request, all in this
// process. Run them with a fixed count, for example
//
//	go test -run '^$' -bench Titanic -benchtime 20000x -count 5 ./titanic
//	taskset -c 0 go test -run '^$' -bench Titanic -benchtime 20000x -count 5 ./titanic
//
// TITANIC_BENCH_CLIENTS and TITANIC_BENCH_WINDOW change the load.

func benchEnv(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// pipelined sends n requests from TITANIC_BENCH_CLIENTS pipelines with
// TITANIC_BENCH_WINDOW requests in flight each, mk making request i's
// frames, and counts the replies by status frame.
func pipelined(b *testing.B, endpoint string, n int, service string, mk func(i int) [][]byte) map[string]int {
	return pipelinedCollect(b, endpoint, n, service, mk, func(client.Reply) {})
}

func benchServer(b *testing.B, ep string) *server {
	cfg := testConfig(ep, b.TempDir())
	cfg.Heartbeat = worker.DefaultHeartbeat
	cfg.RequestWorkers = benchEnv("TITANIC_BENCH_REQUEST_WORKERS", titanic.DefaultRequestWorkers)
	cfg.QueryWorkers = 64
	cfg.MaxInFlight = titanic.DefaultMaxInFlight
	cfg.MaxInFlightPerService = titanic.DefaultMaxInFlightPerService
	cfg.AttemptTimeout = 30 * time.Second
	s := startTitanic(b, cfg)
	c := connect(b, ep)
	testutil.Eventually(b, 10*time.Second, "titanic workers", func() bool {
		ok, _ := c.ServiceExists(context.Background(), titanic.ServiceRequest)
		return ok
	})
	// Wait for every titanic.request worker, or the first batches are small.
	testutil.Eventually(b, 10*time.Second, "all titanic.request workers", func() bool {
		w, err := c.Workers(context.Background(), titanic.ServiceRequest)
		return err == nil && w.Idle == cfg.RequestWorkers
	})
	return s
}

// cpuTime returns the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func report(b *testing.B, s *server, elapsed time.Duration, metric string) {
	st := s.srv.Stats()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), metric)
	b.ReportMetric(float64(st.CommittedOps)/float64(max(st.Commits, 1)), "ops/commit")
	b.ReportMetric(float64(st.CommitTime.Microseconds())/float64(max(st.Commits, 1)), "us/commit")
}

// BenchmarkTitanicSubmit: durable submissions per second. The target
// service has no worker, so nothing else competes.
func BenchmarkTitanicSubmit(b *testing.B) {
	ep := startBrokerHB(b, worker.DefaultHeartbeat)
	s := benchServer(b, ep)
	body := bytes.Repeat([]byte("x"), 100)
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	codes := pipelined(b, ep, b.N, titanic.ServiceRequest, func(int) [][]byte {
		return [][]byte{[]byte("nobody"), body}
	})
	elapsed := time.Since(start)
	cpu = cpuTime() - cpu
	b.StopTimer()
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/op")
	if codes["200"] != b.N {
		b.Fatalf("status codes %v, want %d × 200", codes, b.N)
	}
	report(b, s, elapsed, "subs/s")
}

// BenchmarkTitanicEndToEnd: submit → dispatched to an echo worker → reply
// stored, for b.N requests submitted as fast as Titanic takes them; the
// clock stops when the last reply is durably stored. Fetching and closing
// every reply (pipelined titanic.reply, then titanic.close) is timed
// separately as cycle/s: the whole 9/TSP round.
func BenchmarkTitanicEndToEnd(b *testing.B) {
	ep := startBrokerHB(b, worker.DefaultHeartbeat)
	runWorker(b, ep, "echo", echo, worker.WithHeartbeat(worker.DefaultHeartbeat), worker.WithConcurrency(benchEnv("TITANIC_BENCH_ECHO_WORKERS", 16)))
	s := benchServer(b, ep)
	body := bytes.Repeat([]byte("x"), 100)
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	var mu sync.Mutex
	var ids []string
	codes := pipelinedCollect(b, ep, b.N, titanic.ServiceRequest, func(int) [][]byte {
		return [][]byte{[]byte("echo"), body}
	}, func(r client.Reply) {
		if len(r.Body) == 2 {
			mu.Lock()
			ids = append(ids, string(r.Body[1]))
			mu.Unlock()
		}
	})
	if codes["200"] != b.N {
		b.Fatalf("status codes %v", codes)
	}
	testutil.Eventually(b, 120*time.Second, "all replies stored", func() bool { return s.srv.Stats().Replied == uint64(b.N) })
	elapsed := time.Since(start)
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-us/op")
	codes = pipelined(b, ep, b.N, titanic.ServiceReply, func(i int) [][]byte { return [][]byte{[]byte(ids[i])} })
	if codes["200"] != b.N {
		b.Fatalf("titanic.reply status codes %v", codes)
	}
	codes = pipelined(b, ep, b.N, titanic.ServiceClose, func(i int) [][]byte { return [][]byte{[]byte(ids[i])} })
	if codes["200"] != b.N {
		b.Fatalf("titanic.close status codes %v", codes)
	}
	cycle := time.Since(start)
	b.StopTimer()
	report(b, s, elapsed, "e2e/s")
	b.ReportMetric(float64(b.N)/cycle.Seconds(), "cycle/s")
}

// pipelinedCollect is pipelined with a callback per reply.
func pipelinedCollect(b *testing.B, endpoint string, n int, service string, mk func(i int) [][]byte, each func(client.Reply)) map[string]int {
	clients := benchEnv("TITANIC_BENCH_CLIENTS", 8)
	window := benchEnv("TITANIC_BENCH_WINDOW", 256)
	ctx := context.Background()
	var mu sync.Mutex
	codes := make(map[string]int)
	var wg sync.WaitGroup
	for k := range clients {
		share := n / clients
		if k < n%clients {
			share++
		}
		c := connect(b, endpoint)
		p, err := c.Pipeline(window)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			for i := range share {
				if err := p.Send(ctx, service, mk(k+i*clients)...); err != nil {
					b.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			for range share {
				ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				r, err := p.Recv(ctx)
				cancel()
				if err != nil {
					b.Error(err)
					return
				}
				each(r)
				mu.Lock()
				codes[string(r.Body[0])]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return codes
}

// BenchmarkTitanicBaselineEcho is the yardstick: the same clients, the same
// in-process broker, 128 echo workers answering at once, no Titanic and no
// disk. A durable submission crosses the broker exactly like one of these
// requests, so this is the most titanic.request can do here.
func BenchmarkTitanicBaselineEcho(b *testing.B) {
	ep := startBrokerHB(b, worker.DefaultHeartbeat)
	conc := benchEnv("TITANIC_BENCH_REQUEST_WORKERS", titanic.DefaultRequestWorkers)
	runWorker(b, ep, "echo", func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		return [][]byte{[]byte("200"), make([]byte, 32)}, nil
	}, worker.WithHeartbeat(worker.DefaultHeartbeat), worker.WithConcurrency(conc))
	c := connect(b, ep)
	testutil.Eventually(b, 10*time.Second, "all echo workers", func() bool {
		w, err := c.Workers(context.Background(), "echo")
		return err == nil && w.Idle == conc
	})
	body := bytes.Repeat([]byte("x"), 100)
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	codes := pipelined(b, ep, b.N, "echo", func(int) [][]byte { return [][]byte{[]byte("nobody"), body} })
	elapsed := time.Since(start)
	cpu = cpuTime() - cpu
	b.StopTimer()
	if codes["200"] != b.N {
		b.Fatalf("codes %v", codes)
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/op")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
}
