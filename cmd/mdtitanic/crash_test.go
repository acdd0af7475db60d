package main

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/client"
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
	conns := make([]*client.Client, clients)
	for i := range conns {
		conns[i] = connect(t, ep, 2*time.Second, 0) // A lost submission is simply unacknowledged.
	}
	start := time.Now()
	ld := startLoad(t, conns)
	ld.waitAcked(t, total, ch)
	// Kill 1: mid-load, clients still submitting, the worker still serving.
	ch.kill()
	loadTime := time.Since(start)
	ld.stop()
	served.mu.Lock()
	servedAtKill := len(served.n)
	served.mu.Unlock()
	nAcked := ld.count()
	t.Logf("kill 1 after %v: %d acknowledged (%.0f/s), %d sent, %d served by the worker",
		loadTime, nAcked, float64(nAcked)/loadTime.Seconds(), ld.sent.Load(), servedAtKill)

	// Restart; kill 2 while it re-dispatches; restart again.
	ch = startChild(t, "", args...)
	waitTitanic(t, probe, ch)
	time.Sleep(20 * time.Millisecond)
	ch.kill()
	ch = startChild(t, "", args...)
	waitTitanic(t, probe, ch)

	// Every acknowledged request's reply becomes available; none is lost.
	acked, ids := ld.acked, ld.ids()
	replies := collectReplies(t, conns[:16], acked, ids)
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
