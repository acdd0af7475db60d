package main

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/titanic"
)

// TestCrashSafety runs mdtitanic as a real child process, loads it with
// thousands of submissions from many clients while a worker serves them,
// kills it with SIGKILL mid-load, restarts it, kills it again while it
// re-dispatches, restarts it again, and checks:
//
//  1. Every request answered 200 + UUID is still there: titanic.reply never
//     says 400 for it, and eventually gives its reply.
//  2. The reply is the worker's answer to that request.
//  3. Nothing is dispatched again once its reply is stored. The worker
//     numbers its invocations per request and echoes the number; the
//     stored reply must carry the number of the last invocation. Titanic
//     never replaces a stored reply, so an invocation after the store would
//     leave the stored number behind the count.
//
// What "dispatched twice" may legitimately mean: delivery to workers is
// at-least-once, exactly-once after the reply is stored. A kill that lands
// after a request was sent to the worker and before its reply's commit
// returned (the request in flight, or the reply received and waiting in the
// group commit) loses that reply: after restart the request is still
// pending and is sent again, so the worker runs twice for it. That is the
// only source of duplicates here (the attempt timeout is far longer than
// the worker takes), and the test reports how many it saw.
func TestCrashSafety(t *testing.T) {
	total := 3000 // Acknowledged submissions before the first kill.
	if n, err := strconv.Atoi(os.Getenv("TITANIC_CRASH_N")); err == nil && n > 0 {
		total = n
	}
	ep := startBroker(t)
	dir := t.TempDir()
	args := childArgs(ep, dir, "--attempt-timeout", "30s", "--request-workers", "64",
		"--max-in-flight", "32", "--query-workers", "16")

	// The worker: counts invocations per request id (its first frame).
	var served runs
	runCountWorker(t, ep, 8, &served)

	probe := connect(t, ep, time.Second, 3)
	ch := startChild(t, "", args...)
	waitTitanic(t, probe, ch)

	// Load: many clients, each submitting one request after another.
	const clients = 24
	var (
		ackMu   sync.Mutex
		acked   = make(map[string]string) // request id -> UUID
		nextID  atomic.Int64
		sent    atomic.Int64
		loadCtx context.Context
	)
	loadCtx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	conns := make([]*client.Client, clients)
	for i := range conns {
		conns[i] = connect(t, ep, 2*time.Second, 0) // A lost submission is simply unacknowledged.
	}
	start := time.Now()
	for _, c := range conns {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				id := "r" + strconv.FormatInt(nextID.Add(1), 10)
				sent.Add(1)
				rep, err := c.Request(loadCtx, titanic.ServiceRequest, []byte("count"), []byte(id))
				if err != nil {
					continue // Killed mid-request: unacknowledged, maybe stored.
				}
				if len(rep) == 2 && string(rep[0]) == "200" {
					ackMu.Lock()
					acked[id] = string(rep[1])
					ackMu.Unlock()
				} else {
					t.Errorf("titanic.request: %q", rep)
				}
			}
		})
	}
	ackCount := func() int { ackMu.Lock(); defer ackMu.Unlock(); return len(acked) }
	for ackCount() < total {
		if ch.exited() {
			t.Fatalf("mdtitanic exited: %v\n%s", ch.err, ch.stderr)
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("only %d submissions acknowledged in 60s", ackCount())
		}
		time.Sleep(time.Millisecond)
	}
	// Kill 1: mid-load, clients still submitting, the worker still serving.
	ch.kill()
	loadTime := time.Since(start)
	stopLoad()
	wg.Wait()
	served.mu.Lock()
	servedAtKill := len(served.n)
	served.mu.Unlock()
	nAcked := ackCount()
	t.Logf("kill 1 after %v: %d acknowledged (%.0f/s), %d sent, %d served by the worker",
		loadTime, nAcked, float64(nAcked)/loadTime.Seconds(), sent.Load(), servedAtKill)

	// Restart; kill 2 while it re-dispatches; restart again.
	ch = startChild(t, "", args...)
	waitTitanic(t, probe, ch)
	time.Sleep(20 * time.Millisecond)
	ch.kill()
	ch = startChild(t, "", args...)
	waitTitanic(t, probe, ch)

	// Every acknowledged request's reply becomes available; none is lost.
	ackMu.Lock()
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	ackMu.Unlock()
	replies := make(map[string][]string, len(ids))
	var repMu sync.Mutex
	deadline := time.Now().Add(60 * time.Second)
	for i, c := range conns[:16] {
		wg.Go(func() {
			for j := i; j < len(ids); j += 16 {
				id := ids[j]
				uuid := acked[id]
				for {
					rep, err := c.Request(context.Background(), titanic.ServiceReply, []byte(uuid))
					if err != nil && !errors.Is(err, client.ErrTimeout) {
						t.Errorf("titanic.reply: %v", err)
						return
					}
					if err == nil {
						switch string(rep[0]) {
						case "200":
							repMu.Lock()
							replies[id] = strs(rep[1:])
							repMu.Unlock()
						case "300":
						default:
							t.Errorf("request %s (UUID %s), acknowledged before the kill: titanic.reply says %q", id, uuid, rep)
							return
						}
						if string(rep[0]) == "200" {
							break
						}
					}
					if time.Now().After(deadline) {
						t.Errorf("request %s (UUID %s): no reply within 60s", id, uuid)
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.Fatalf("mdtitanic stderr:\n%s", ch.stderr)
	}
	// Let anything that would be dispatched again happen, then compare.
	time.Sleep(300 * time.Millisecond)
	served.mu.Lock()
	defer served.mu.Unlock()
	var dups, unacked int
	for _, id := range ids {
		rep := replies[id]
		n := served.n[id]
		if len(rep) != 2 || rep[0] != id {
			t.Errorf("request %s: reply %q is not the worker's answer to it", id, rep)
			continue
		}
		if rep[1] != strconv.Itoa(n) {
			t.Errorf("request %s: stored reply is from invocation %s, but the worker ran %d times: dispatched again after its reply was stored",
				id, rep[1], n)
		}
		if n > 1 {
			dups++
		}
	}
	for id := range served.n {
		if _, ok := acked[id]; !ok {
			unacked++
		}
	}
	t.Logf("%d acknowledged requests all answered; %d ran twice or more (killed between dispatch and the reply's commit); "+
		"%d unacknowledged submissions were stored and served too", len(ids), dups, unacked)
	if code := ch.stop(10 * time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM; stderr:\n%s", code, ch.stderr)
	}
}

func strs(fs [][]byte) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = string(f)
	}
	return out
}
