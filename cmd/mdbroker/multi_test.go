package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/pgtest"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	mdworker "github.com/majordomo-go/majordomo/worker"
)

// Failure tests of issue 13 with real processes: several mdbroker
// binaries, one worker registered with all of them, clients with the list.

// startBrokers starts n mdbroker processes with args and returns them and
// their endpoints.
func startBrokers(t *testing.T, n int, args ...string) ([]*proc, []string) {
	t.Helper()
	ps := make([]*proc, n)
	eps := make([]string, n)
	for i := range ps {
		ps[i] = startProc(t, nil, append([]string{"--endpoint", "tcp://127.0.0.1:*", "--heartbeat", "100ms"}, args...)...)
		eps[i] = ps[i].waitLog(`broker started.*endpoints=\[(tcp://[0-9.:]+)\]`)[1]
	}
	return ps, eps
}

// runMultiWorker runs a worker for service on every broker of eps until the
// test ends.
func runMultiWorker(t *testing.T, eps []string, service string, concurrency int, h mdworker.HandlerFunc) *mdworker.Worker {
	t.Helper()
	return harness.RunWorker(t, eps[0], service, h, mdworker.WithBrokers(eps[1:]...), mdworker.WithConcurrency(concurrency),
		mdworker.WithHeartbeat(100*time.Millisecond), mdworker.WithReconnect(20*time.Millisecond, 500*time.Millisecond))
}

func connectList(t *testing.T, eps []string, opts ...client.Option) *client.Client {
	t.Helper()
	opts = append([]client.Option{client.WithBrokers(eps[1:]...), client.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	c, err := client.Connect(eps[0], opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitAll waits until every broker of c has a worker for service.
func waitAll(t *testing.T, c *client.Client, service string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		as := c.ServiceByBroker(ctx, service)
		cancel()
		all := true
		for _, a := range as {
			all = all && a.Exists
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %s not on every broker: %+v", service, as)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKillOneOfThreeBrokers: three brokers, a worker on all of them, six
// clients with the list sending without pause. One broker is killed with
// SIGKILL under load: every request gets its reply or its error within
// twice the client timeout, and replies keep flowing through the two
// others.
func TestKillOneOfThreeBrokers(t *testing.T) {
	ps, eps := startBrokers(t, 3)
	runMultiWorker(t, eps, "echo", 4, func(ctx context.Context, r *mdworker.Request) ([][]byte, error) {
		return r.Body, nil
	})
	const timeout = time.Second
	waitAll(t, connectList(t, eps), "echo")

	var (
		sent, replied, errored atomic.Int64
		maxLat, maxLatKill     atomic.Int64 // Overall; of requests in flight within a timeout of the kill.
		killedAt               atomic.Int64 // UnixNano; 0 before the kill.
		afterKill              atomic.Int64 // Replies to requests sent after the kill.
		errMu                  sync.Mutex
		errs                   []error
	)
	setMax := func(v *atomic.Int64, x int64) {
		for m := v.Load(); x > m && !v.CompareAndSwap(m, x); m = v.Load() {
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 6 {
		c := connectList(t, eps, client.WithTimeout(timeout))
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				msg := fmt.Sprintf("%d/%d", g, i)
				sent.Add(1)
				t0 := time.Now()
				rep, err := c.Request(context.Background(), "echo", []byte(msg))
				t1 := time.Now()
				lat := int64(t1.Sub(t0))
				setMax(&maxLat, lat)
				if k := killedAt.Load(); k != 0 && t0.UnixNano() < k+int64(timeout) && t1.UnixNano() > k-int64(timeout) {
					setMax(&maxLatKill, lat)
				}
				if err == nil && (len(rep) != 1 || string(rep[0]) != msg) {
					err = fmt.Errorf("reply %q to %q", rep, msg)
				}
				if err != nil {
					errored.Add(1)
					errMu.Lock()
					errs = append(errs, err)
					errMu.Unlock()
					continue
				}
				replied.Add(1)
				if k := killedAt.Load(); k != 0 && t0.UnixNano() > k {
					afterKill.Add(1)
				}
			}
		})
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("%s: not within 20s (sent %d, replied %d, errored %d)", what, sent.Load(), replied.Load(), errored.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitUntil("500 replies before the kill", func() bool { return replied.Load() >= 500 })
	if err := ps[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt.Store(time.Now().UnixNano())
	waitUntil("1000 replies after the kill", func() bool { return afterKill.Load() >= 1000 })
	// Past twice the timeout after the kill, so that every request in
	// flight at the kill has ended.
	time.Sleep(2 * timeout)
	close(stop)
	wg.Wait()
	t.Logf("sent %d, replied %d, errored %d; max latency %v overall, %v within a timeout (%v) of the kill; %d replies to requests sent after it",
		sent.Load(), replied.Load(), errored.Load(), time.Duration(maxLat.Load()).Round(time.Microsecond),
		time.Duration(maxLatKill.Load()).Round(time.Microsecond), timeout, afterKill.Load())
	for _, err := range errs {
		t.Errorf("request failed: %v", err)
	}
	if m := time.Duration(maxLat.Load()); m > 2*timeout {
		t.Errorf("a request took %v, more than twice the timeout (%v)", m, timeout)
	}
	if sent.Load() != replied.Load()+errored.Load() {
		t.Errorf("sent %d != replied %d + errored %d", sent.Load(), replied.Load(), errored.Load())
	}
}

// TestTitanicBrokerKilledWithLease: three brokers with their built-in
// Titanic on one PostgreSQL database. Requests are accepted through broker
// 0 (which leases them to itself) and through the list, while no worker
// serves their service, so they are all pending; broker 0 is killed with
// SIGKILL while submissions go on, nothing is restarted, a worker comes,
// and every accepted request gets exactly one stored reply through the
// other brokers. Then the database server itself is killed: the brokers go
// on serving plain requests, Titanic answers 500, and it recovers when the
// server is back.
func TestTitanicBrokerKilledWithLease(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDatabase()
	const ttl = time.Second
	ps, eps := startBrokers(t, 3, "--titanic-store", url, "--titanic-lease-ttl", ttl.String())
	for _, p := range ps {
		p.waitLog(`titanic started.*store="?postgres://`)
	}
	echo := func(ctx context.Context, r *mdworker.Request) ([][]byte, error) { return r.Body, nil }
	runMultiWorker(t, eps, "echo", 2, echo)
	waitAll(t, connectList(t, eps), "titanic.request")

	var (
		ackMu sync.Mutex
		acked = make(map[string]string) // request id -> UUID
		via0  atomic.Int64              // Accepted by broker 0 alone.
		next  atomic.Int64
	)
	loadCtx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	submitters := func(c *client.Client, pinned bool) {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				id := "r" + strconv.FormatInt(next.Add(1), 10)
				rep, err := c.Request(loadCtx, "titanic.request", []byte("count"), []byte(id))
				if err != nil {
					continue // Not acknowledged (broker 0 killed mid-request, or load stopped).
				}
				if len(rep) != 2 || string(rep[0]) != "200" {
					t.Errorf("titanic.request: %q", rep)
					return
				}
				ackMu.Lock()
				acked[id] = string(rep[1])
				ackMu.Unlock()
				if pinned {
					via0.Add(1)
				}
			}
		})
	}
	for range 3 {
		submitters(connectList(t, eps[:1], client.WithTimeout(time.Second), client.WithRetries(0)), true)
		submitters(connectList(t, eps, client.WithTimeout(time.Second)), false)
	}
	ackCount := func() int { ackMu.Lock(); defer ackMu.Unlock(); return len(acked) }
	deadline := time.Now().Add(30 * time.Second)
	for via0.Load() < 100 || ackCount() < 300 {
		if time.Now().After(deadline) {
			stopLoad()
			wg.Wait()
			t.Fatalf("only %d accepted (%d by broker 0) in 30s", ackCount(), via0.Load())
		}
		time.Sleep(time.Millisecond)
	}
	ps[0].cmd.Process.Signal(syscall.SIGKILL) // Submissions still going on.
	killed := time.Now()
	time.Sleep(300 * time.Millisecond)
	stopLoad()
	wg.Wait()
	byZero := via0.Load()

	// The service's worker comes only now, on the two brokers left.
	var cmu sync.Mutex
	counts := make(map[string]int)
	runMultiWorker(t, eps[1:], "count", 8, func(ctx context.Context, r *mdworker.Request) ([][]byte, error) {
		id := string(r.Body[0])
		cmu.Lock()
		counts[id]++
		cmu.Unlock()
		return [][]byte{r.Body[0]}, nil
	})
	ackMu.Lock()
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	ackMu.Unlock()
	rest := eps[1:]
	replyDeadline := time.Now().Add(40 * time.Second)
	for g := range 4 {
		c := connectList(t, rest, client.WithTimeout(time.Second))
		wg.Go(func() {
			for j := g; j < len(ids); j += 4 {
				id := ids[j]
				for {
					rep, err := c.Request(context.Background(), "titanic.reply", []byte(acked[id]))
					if err == nil && string(rep[0]) == "200" {
						if len(rep) != 2 || string(rep[1]) != id {
							t.Errorf("request %s: reply %q", id, rep)
						}
						break
					}
					if err == nil && string(rep[0]) != "300" {
						t.Errorf("request %s (UUID %s): titanic.reply says %q", id, acked[id], rep)
						return
					}
					if time.Now().After(replyDeadline) {
						t.Errorf("request %s (UUID %s): no reply within 40s (last: %q, %v)", id, acked[id], rep, err)
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	allAnswered := time.Since(killed)

	// The database: one row per accepted UUID, each with its one reply.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	uuids := make([]string, 0, len(ids))
	for _, id := range ids {
		uuids = append(uuids, acked[id])
	}
	var rows, replied int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(reply) FROM titanic_request WHERE id = ANY($1::uuid[])`, uuids).Scan(&rows, &replied); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if rows != len(ids) || replied != len(ids) {
		t.Errorf("%d accepted; the database has %d of their rows, %d with a reply", len(ids), rows, replied)
	}
	cmu.Lock()
	dups := 0
	for _, id := range ids {
		if counts[id] > 1 {
			dups++
		}
	}
	cmu.Unlock()
	t.Logf("%d accepted (%d through broker 0 alone, which was killed holding their leases); all answered through brokers 1 and 2 "+
		"%v after the kill (lease TTL %v); %d request ids ran more than once (a titanic.request moved off broker 0 as it died may have been stored there too: 9/TSP resends can store twice)", len(ids), byZero, allAnswered.Round(time.Millisecond), ttl, dups)

	// The database server dies: plain requests go on, Titanic says 500;
	// it comes back and Titanic accepts and answers again.
	c := connectList(t, rest, client.WithTimeout(time.Second))
	pg.Kill()
	for _, ep := range rest {
		if rep, err := c.RequestAt(ctx, ep, "echo", []byte("plain")); err != nil || string(rep[0]) != "plain" {
			t.Fatalf("%s: plain request with the database down: %q, %v", ep, rep, err)
		}
		rep, err := c.RequestAt(ctx, ep, "titanic.request", []byte("count"), []byte("during"))
		if err != nil || string(rep[0]) != "500" {
			t.Fatalf("%s: titanic.request with the database down: %q, %v; want 500", ep, rep, err)
		}
	}
	pg.Restart()
	for _, ep := range rest {
		var uuid string
		for uuid == "" {
			rep, err := c.RequestAt(ctx, ep, "titanic.request", []byte("count"), []byte("after "+ep))
			if err == nil && string(rep[0]) == "200" {
				uuid = string(rep[1])
			} else if ctx.Err() != nil {
				t.Fatalf("%s: titanic.request never recovered: %q, %v", ep, rep, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		for {
			rep, err := (&client.Titanic{Client: c}).Reply(ctx, uuid)
			if err == nil {
				if string(rep[0]) != "after "+ep {
					t.Fatalf("reply %q", rep)
				}
				break
			}
			if !errors.Is(err, client.ErrTitanicPending) && !errors.Is(err, client.ErrTitanicServer) || ctx.Err() != nil {
				t.Fatalf("%s: reply after recovery: %v", ep, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, p := range ps[1:] {
		p.signal(syscall.SIGTERM)
		if code := p.wait(15 * time.Second); code != 0 {
			t.Errorf("exit %d; logs:\n%s", code, p.logs.String())
		}
	}
}
