package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	"github.com/majordomo-go/majordomo/worker"
)

// startBrokers starts n restartable in-process brokers.
func startBrokers(t *testing.T, n int) ([]*harness.Broker, []string) {
	t.Helper()
	bs := make([]*harness.Broker, n)
	eps := make([]string, n)
	for i := range bs {
		bs[i] = harness.StartBroker(t)
		eps[i] = bs[i].Endpoint
	}
	return bs, eps
}

// dispatched returns how many requests (not mmi) each broker handed to
// workers.
func dispatched(bs []*harness.Broker) []uint64 {
	out := make([]uint64, len(bs))
	for i, b := range bs {
		if b.B() != nil {
			out[i] = b.B().Stats().Dispatched
		}
	}
	return out
}

func TestWithBrokersValidates(t *testing.T) {
	for name, opts := range map[string][]client.Option{
		"empty":     {client.WithBrokers("")},
		"duplicate": {client.WithBrokers("tcp://127.0.0.1:2", "tcp://127.0.0.1:1")},
	} {
		if _, err := client.Connect("tcp://127.0.0.1:1", opts...); !errors.Is(err, client.ErrInvalidOption) {
			t.Errorf("%s: %v", name, err)
		}
	}
	many := make([]string, client.MaxBrokers)
	for i := range many {
		many[i] = fmt.Sprintf("tcp://127.0.0.1:%d", 2+i)
	}
	if _, err := client.Connect("tcp://127.0.0.1:1", client.WithBrokers(many...)); !errors.Is(err, client.ErrInvalidOption) {
		t.Errorf("%d brokers: %v", len(many)+1, err)
	}
	c := harness.Connect(t, "tcp://127.0.0.1:1", client.WithBrokers("tcp://127.0.0.1:2"))
	if got := c.Brokers(); len(got) != 2 || got[1] != "tcp://127.0.0.1:2" {
		t.Errorf("Brokers() = %q", got)
	}
	if _, err := c.RequestAt(context.Background(), "tcp://127.0.0.1:3", "echo"); !errors.Is(err, client.ErrUnknownBroker) {
		t.Errorf("RequestAt another broker: %v", err)
	}
}

// Requests from one client go to every broker of its list.
func TestSpreadsOverBrokers(t *testing.T) {
	bs, eps := startBrokers(t, 3)
	harness.RunWorker(t, eps[0], "echo", worker.HandlerFunc(harness.Echo), worker.WithBrokers(eps[1:]...))
	c := harness.Connect(t, eps[0], client.WithBrokers(eps[1:]...), client.WithTimeout(time.Second))
	for _, a := range waitEverywhere(t, c, "echo") {
		if !a.Exists || a.Err != nil {
			t.Fatalf("%+v", a)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 30
	for i := range n {
		msg := fmt.Sprint(i)
		rep, err := c.Request(ctx, "echo", []byte(msg))
		if err != nil || string(rep[0]) != msg {
			t.Fatalf("request %d: %q, %v", i, rep, err)
		}
	}
	d := dispatched(bs)
	t.Logf("requests per broker: %v", d)
	for i, n := range d {
		if n == 0 {
			t.Errorf("broker %d got no request: %v", i, d)
		}
	}
}

// waitEverywhere waits until every broker reports a worker for service.
func waitEverywhere(t *testing.T, c *client.Client, service string) []client.BrokerAnswer {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		as := c.ServiceByBroker(ctx, service)
		cancel()
		all := true
		for _, a := range as {
			all = all && a.Exists
		}
		if all || time.Now().After(deadline) {
			return as
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A broker that has no worker for the service is passed over: the call
// moves to one that has, without using a retry, and fails with
// ErrNoWorkers only when no broker has one. ServiceByBroker tells them
// apart.
func TestMovesPastBrokerWithoutWorkers(t *testing.T) {
	for _, check := range []bool{false, true} {
		t.Run(fmt.Sprint("check=", check), func(t *testing.T) {
			_, eps := startBrokers(t, 2)
			harness.RunWorker(t, eps[1], "echo", worker.HandlerFunc(harness.Echo))
			opts := []client.Option{client.WithBrokers(eps[1]), client.WithTimeout(300 * time.Millisecond), client.WithRetries(0)}
			if check {
				opts = append(opts, client.WithServiceCheck())
			}
			c := harness.Connect(t, eps[0], opts...)
			harness.WaitService(t, harness.Connect(t, eps[1]), "echo")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			as := c.ServiceByBroker(ctx, "echo")
			if len(as) != 2 || as[0].Exists || as[0].Err != nil || !as[1].Exists || as[1].Err != nil {
				t.Fatalf("ServiceByBroker: %+v", as)
			}
			for i := range 4 {
				msg := fmt.Sprint(i)
				rep, err := c.Request(ctx, "echo", []byte(msg))
				if err != nil || string(rep[0]) != msg {
					t.Fatalf("request %d: %q, %v", i, rep, err)
				}
			}
			start := time.Now()
			_, err := c.Request(ctx, "nosuch")
			if !errors.Is(err, client.ErrNoWorkers) {
				t.Fatalf("unserved service: %v", err)
			}
			t.Logf("ErrNoWorkers from two brokers after %v", time.Since(start))
			if _, err := c.RequestAt(ctx, eps[0], "echo"); !errors.Is(err, client.ErrNoWorkers) {
				t.Fatalf("RequestAt the broker without workers: %v", err)
			}
		})
	}
}

// Brokers stopped one after the other under load from several goroutines:
// every request gets its reply, none takes longer than twice the timeout,
// and a broker that comes back is used again.
func TestFailoverWhenBrokerStops(t *testing.T) {
	bs, eps := startBrokers(t, 3)
	harness.RunWorker(t, eps[0], "echo", worker.HandlerFunc(harness.Echo), worker.WithBrokers(eps[1:]...), worker.WithConcurrency(2))
	const timeout = 500 * time.Millisecond
	c := harness.Connect(t, eps[0], client.WithBrokers(eps[1:]...), client.WithTimeout(timeout))
	waitEverywhere(t, c, "echo")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var sent, ok atomic.Int64
	var maxLat atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 4 {
		svc := "echo"
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
				rep, err := c.Request(ctx, svc, []byte(msg))
				lat := time.Since(t0)
				for {
					m := maxLat.Load()
					if int64(lat) <= m || maxLat.CompareAndSwap(m, int64(lat)) {
						break
					}
				}
				if err == nil && string(rep[0]) != msg {
					err = fmt.Errorf("reply %q to %q", rep, msg)
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				ok.Add(1)
			}
		})
	}
	waitCount := func(n int64) {
		t.Helper()
		for target := ok.Load() + n; ok.Load() < target; {
			if ctx.Err() != nil {
				t.Fatalf("only %d replies", ok.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitCount(100)
	bs[0].Stop()
	waitCount(100)
	bs[1].Stop()
	waitCount(100)
	bs[0].Restart()
	// The client's socket reconnects by itself (the transport's reconnect
	// interval), then the broker is used again.
	testutil.Eventually(t, testutil.WaitLimit, "the restarted broker used again", func() bool { return dispatched(bs)[0] > 0 })
	waitCount(100)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("sent %d, replied %d, max latency %v", sent.Load(), ok.Load(), time.Duration(maxLat.Load()))
	if m := time.Duration(maxLat.Load()); m > 2*timeout {
		t.Errorf("max latency %v, more than twice the timeout %v", m, timeout)
	}
	if dispatched(bs)[0] == 0 {
		t.Errorf("restarted broker 0 got no request")
	}
}

// With every broker gone a request fails with ErrTimeout after its retries,
// each one spent on a move.
func TestAllBrokersGone(t *testing.T) {
	bs, eps := startBrokers(t, 2)
	harness.RunWorker(t, eps[0], "echo", worker.HandlerFunc(harness.Echo), worker.WithBrokers(eps[1]))
	const timeout = 200 * time.Millisecond
	c := harness.Connect(t, eps[0], client.WithBrokers(eps[1]), client.WithTimeout(timeout), client.WithRetries(2))
	waitEverywhere(t, c, "echo")
	bs[0].Stop()
	bs[1].Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Request(ctx, "echo", []byte("x"))
	if !errors.Is(err, client.ErrTimeout) || ctx.Err() != nil {
		t.Fatalf("want ErrTimeout before the context ends, got %v", err)
	}
	t.Logf("failed after %v: %v", time.Since(start), err)
}
