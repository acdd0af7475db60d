package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/pgtest"
	"github.com/majordomo-go/majordomo/titanic"
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

	var (
		ackMu  sync.Mutex
		acked  = make(map[string]string) // request id -> UUID
		nextID atomic.Int64
	)
	loadCtx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 8 {
		c := connect(t, ep1, 2*time.Second, 0)
		wg.Go(func() {
			for loadCtx.Err() == nil {
				id := "r" + strconv.FormatInt(nextID.Add(1), 10)
				rep, err := c.Request(loadCtx, titanic.ServiceRequest, []byte("count"), []byte(id))
				if err != nil {
					continue // A killed mid-request: unacknowledged, maybe stored.
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
	start := time.Now()
	for ackCount() < total {
		if a.exited() {
			t.Fatalf("mdtitanic A exited: %v\n%s", a.err, a.stderr)
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("only %d submissions acknowledged in 60s", ackCount())
		}
		time.Sleep(time.Millisecond)
	}
	a.kill() // Mid-load: clients still submitting, workers still serving.
	killed := time.Now()
	stopLoad()
	wg.Wait()
	served.mu.Lock()
	servedAtKill := len(served.n)
	served.mu.Unlock()

	ackMu.Lock()
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	ackMu.Unlock()
	replies := make(map[string][]string, len(ids))
	var repMu sync.Mutex
	deadline := time.Now().Add(60 * time.Second)
	for i := range 8 {
		c := connect(t, ep2, 2*time.Second, 3)
		wg.Go(func() {
			for j := i; j < len(ids); j += 8 {
				id := ids[j]
				for {
					rep, err := c.Request(context.Background(), titanic.ServiceReply, []byte(acked[id]))
					if err != nil && !errors.Is(err, client.ErrTimeout) {
						t.Errorf("titanic.reply: %v", err)
						return
					}
					if err == nil && string(rep[0]) == "200" {
						repMu.Lock()
						replies[id] = strs(rep[1:])
						repMu.Unlock()
						break
					}
					if err == nil && string(rep[0]) != "300" {
						t.Errorf("request %s (UUID %s), acknowledged by A: titanic.reply through B says %q", id, acked[id], rep)
						return
					}
					if time.Now().After(deadline) {
						t.Errorf("request %s (UUID %s): no reply within 60s", id, acked[id])
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
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
