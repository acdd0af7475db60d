package main

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/pgtest"
)

// TestBadPostgresStore: an unreachable database is one line naming it,
// without its password, and exit status 1.
func TestBadPostgresStore(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"-b", "tcp://127.0.0.1:1", "--store", "postgres://u:s3cret@127.0.0.1:1/db?connect_timeout=2"},
		func(string) string { return "" }, &stderr, nil)
	out := stderr.String()
	if code != 1 || strings.Count(out, "\n") != 1 || !strings.Contains(out, "127.0.0.1:1") || strings.Contains(out, "s3cret") {
		t.Errorf("exit %d, stderr %q; want exit 1, one line naming the server without the password", code, out)
	}
}

// TestPostgresLeaseTakeover: two brokers, a real mdtitanic child on each,
// one PostgreSQL database, the "count" worker on both brokers. Clients
// submit through broker 1 only, so Titanic A holds every lease; A is killed
// with SIGKILL mid-load, nothing is restarted, and every request A
// acknowledged gets its stored reply through broker 2, from B, once A's
// leases run out.
func TestPostgresLeaseTakeover(t *testing.T) {
	total := 300
	if n, err := strconv.Atoi(os.Getenv("TITANIC_TAKEOVER_N")); err == nil && n > 0 {
		total = n
	}
	url := pgtest.Start(t).NewDatabase()
	ep1, ep2 := startBroker(t), startBroker(t)
	const ttl = time.Second
	pgArgs := func(ep string) []string {
		return []string{"-b", ep, "--store", url, "--lease-ttl", ttl.String(), "--heartbeat", testHeartbeat.String(),
			"--log-level", "warn", "--retry-min", "20ms", "--shutdown-grace", "1s", "--attempt-timeout", "30s",
			"--request-workers", "32", "--max-in-flight", "16"}
	}

	var served runs
	for _, ep := range []string{ep1, ep2} {
		runCountWorker(t, ep, 4, &served)
	}

	probe1, probe2 := connect(t, ep1, time.Second, 3), connect(t, ep2, time.Second, 3)
	a := startChild(t, "", pgArgs(ep1)...)
	b := startChild(t, "", pgArgs(ep2)...)
	waitTitanic(t, probe1, a)
	waitTitanic(t, probe2, b)

	clients := make([]*client.Client, 8)
	for i := range clients {
		clients[i] = connect(t, ep1, 2*time.Second, 0)
	}
	ld := startLoad(t, clients)
	ld.waitAcked(t, total, a)
	a.kill() // Mid-load: clients still submitting, workers still serving.
	killed := time.Now()
	ld.stop()
	served.mu.Lock()
	servedAtKill := len(served.n)
	served.mu.Unlock()

	acked, ids := ld.acked, ld.ids()
	for i := range clients {
		clients[i] = connect(t, ep2, 2*time.Second, 3)
	}
	replies := collectReplies(t, clients, acked, ids)
	allAnswered := time.Since(killed)
	if t.Failed() {
		t.Fatalf("mdtitanic B stderr:\n%s", b.stderr)
	}
	served.mu.Lock()
	var dups int
	for _, id := range ids {
		rep := replies[id]
		n := served.n[id]
		// The stored reply is the worker's answer to this request, from one
		// of its invocations. More than one invocation is at-least-once
		// delivery: A died between sending it and storing its reply.
		if len(rep) != 2 || rep[0] != id {
			t.Errorf("request %s: reply %q is not the worker's answer to it", id, rep)
			continue
		}
		if k, err := strconv.Atoi(rep[1]); err != nil || k < 1 || k > n {
			t.Errorf("request %s: stored reply from invocation %s of %d", id, rep[1], n)
		}
		if n > 1 {
			dups++
		}
	}
	served.mu.Unlock()

	// The database agrees: nothing acknowledged is pending, and every row
	// has at most one reply (one column: a stored reply is never replaced,
	// which the repeated titanic.reply above relies on).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, pending int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE replied_at IS NULL) FROM titanic_request`).Scan(&rows, &pending); err != nil {
		t.Fatal(err)
	}
	if rows < len(ids) {
		t.Errorf("%d rows in the database, %d acknowledged", rows, len(ids))
	}
	t.Logf("A killed after %d acknowledged (%d served by then); B answered all through broker 2 %v after the kill (lease TTL %v); "+
		"%d ran twice (in flight at A when it died); %d rows, %d still pending (unacknowledged, being served)",
		len(ids), servedAtKill, allAnswered.Round(time.Millisecond), ttl, dups, rows, pending)
	if code := b.stop(10 * time.Second); code != 0 {
		t.Errorf("B: exit %d after SIGTERM; stderr:\n%s", code, b.stderr)
	}
}
