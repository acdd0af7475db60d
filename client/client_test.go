package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	"github.com/majordomo-go/majordomo/mdp"
	"github.com/majordomo-go/majordomo/worker"
)

func TestRequestRoundTrip(t *testing.T) {
	for _, v := range harness.Versions() {
		t.Run(v.String(), func(t *testing.T) {
			b := harness.StartBroker(t)
			harness.RunWorker(t, b.Endpoint, "echo", worker.HandlerFunc(harness.Echo), worker.WithVersion(v))
			c := harness.Connect(t, b.Endpoint, client.WithVersion(v))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			rep, err := c.Request(ctx, "echo", []byte("hello"), []byte("world"))
			if err != nil {
				t.Fatal(err)
			}
			if got := testutil.Strs(rep); !slices.Equal(got, []string{"hello", "world"}) {
				t.Fatalf("reply %q", got)
			}
			// No body: one empty frame goes out, since a REQUEST needs
			// "4 or more frames".
			rep, err = c.Request(ctx, "echo")
			if err != nil {
				t.Fatal(err)
			}
			if len(rep) != 1 || len(rep[0]) != 0 {
				t.Fatalf("reply to empty request %q", rep)
			}
		})
	}
}

func TestRequestBadArguments(t *testing.T) {
	c := harness.Connect(t, "tcp://127.0.0.1:1")
	if _, err := c.Request(context.Background(), ""); !errors.Is(err, client.ErrEmptyService) {
		t.Fatalf("empty service: %v", err)
	}
	if _, err := client.Connect("tcp://127.0.0.1:1", client.WithVersion(7)); !errors.Is(err, client.ErrInvalidOption) {
		t.Fatalf("bad version: %v", err)
	}
	if _, err := client.Connect("tcp://127.0.0.1:1", client.WithTimeout(0)); !errors.Is(err, client.ErrInvalidOption) {
		t.Fatalf("bad timeout: %v", err)
	}
}

// A request to a broker that is not there fails after 1 + retries attempts.
func TestTimeoutAfterRetries(t *testing.T) {
	c := harness.Connect(t, "tcp://127.0.0.1:1", client.WithTimeout(50*time.Millisecond), client.WithRetries(2))
	start := time.Now()
	_, err := c.Request(context.Background(), "echo", []byte("x"))
	elapsed := time.Since(start)
	if !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if elapsed < 150*time.Millisecond || elapsed > 2*time.Second {
		t.Fatalf("gave up after %v, want about 150ms", elapsed)
	}
	t.Logf("error text: %v", err)
}

// The broker is closed while a request is in flight and a new one starts on
// the same port: Lazy Pirate resends on a new socket and the reply comes.
func TestRetryAcrossBrokerRestart(t *testing.T) {
	b := harness.StartBroker(t)
	n := requestAcross(t, b, 10*time.Second, b.Restart, client.WithTimeout(300*time.Millisecond), client.WithRetries(10))
	if n < 2 {
		t.Fatalf("handler ran %d times, want a second attempt", n)
	}
}

func TestContextDeadlineAndCancel(t *testing.T) {
	b := harness.StartBroker(t)
	c := harness.Connect(t, b.Endpoint)

	// No worker: the context's deadline ends the call.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Request(ctx, "nobody", []byte("x"))
	if !errors.Is(err, client.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: err = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("deadline honoured after %v", d)
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel2()
	}()
	_, err = c.Request(ctx2, "nobody", []byte("x"))
	if !errors.Is(err, context.Canceled) || errors.Is(err, client.ErrTimeout) {
		t.Fatalf("cancel: err = %v", err)
	}

	// An already-finished context fails at once.
	if _, err := c.Request(ctx2, "nobody"); !errors.Is(err, context.Canceled) {
		t.Fatalf("dead context: err = %v", err)
	}
}

// A cancelled request's late reply must not be taken for the next
// request's reply.
func TestLateReplyNotMisattributed(t *testing.T) {
	b := harness.StartBroker(t)
	harness.RunWorker(t, b.Endpoint, "slow", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		if string(req.Body[0]) == "first" {
			time.Sleep(200 * time.Millisecond)
		}
		return req.Body, nil
	}))
	c := harness.Connect(t, b.Endpoint)
	harness.WaitService(t, c, "slow")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Request(ctx, "slow", []byte("first")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	for _, body := range []string{"second", "third"} {
		rep, err := c.Request(ctx2, "slow", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if string(rep[0]) != body {
			t.Fatalf("got reply %q for request %q", rep[0], body)
		}
	}
}

// Many goroutines on one client, several services: every caller gets its
// own reply.
func TestConcurrentCallers(t *testing.T) {
	b := harness.StartBroker(t)
	services := []string{"a", "b", "c"}
	for _, s := range services {
		harness.RunWorker(t, b.Endpoint, s, worker.HandlerFunc(harness.Echo), worker.WithConcurrency(2))
	}
	c := harness.Connect(t, b.Endpoint)
	for _, s := range services {
		harness.WaitService(t, c, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 30 {
		wg.Go(func() {
			for i := range 20 {
				svc := services[(g+i)%len(services)]
				body := fmt.Sprintf("%d/%d", g, i)
				rep, err := c.Request(ctx, svc, []byte(body))
				if err != nil {
					errs <- err
					return
				}
				if string(rep[0]) != body {
					errs <- fmt.Errorf("caller %s got %q", body, rep[0])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestStream(t *testing.T) {
	b := harness.StartBroker(t)
	stream := worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		for i := range 3 {
			if err := req.Partial([]byte(fmt.Sprintf("part %d", i))); err != nil {
				if errors.Is(err, worker.ErrPartialUnsupported) {
					break
				}
				return nil, err
			}
		}
		return [][]byte{[]byte("done")}, nil
	})
	harness.RunWorker(t, b.Endpoint, "stream", stream, worker.WithVersion(mdp.V2))
	harness.RunWorker(t, b.Endpoint, "stream1", stream, worker.WithVersion(mdp.V1))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	c2 := harness.Connect(t, b.Endpoint, client.WithVersion(mdp.V2))
	harness.WaitService(t, c2, "stream")
	var got []string
	for body, err := range c2.Stream(ctx, "stream", []byte("go")) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(body[0]))
	}
	want := []string{"part 0", "part 1", "part 2", "done"}
	if !slices.Equal(got, want) {
		t.Fatalf("stream %q, want %q", got, want)
	}

	// Request skips the PARTIALs.
	rep, err := c2.Request(ctx, "stream")
	if err != nil || string(rep[0]) != "done" {
		t.Fatalf("Request on stream: %q %v", rep, err)
	}

	// Breaking out early abandons the stream; the client stays usable.
	for range c2.Stream(ctx, "stream") {
		break
	}
	rep, err = c2.Request(ctx, "stream")
	if err != nil || string(rep[0]) != "done" {
		t.Fatalf("Request after abandoned stream: %q %v", rep, err)
	}

	// Under 7/MDP a stream is the single REPLY.
	c1 := harness.Connect(t, b.Endpoint)
	harness.WaitService(t, c1, "stream1")
	got = got[:0]
	for body, err := range c1.Stream(ctx, "stream1") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(body[0]))
	}
	if !slices.Equal(got, []string{"done"}) {
		t.Fatalf("0.1 stream %q", got)
	}
}

func TestMMI(t *testing.T) {
	b := harness.StartBroker(t)
	block := make(chan struct{})
	harness.RunWorker(t, b.Endpoint, "echo", worker.HandlerFunc(harness.Echo))
	harness.RunWorker(t, b.Endpoint, "busy", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		select {
		case <-block:
		case <-ctx.Done():
		}
		return req.Body, nil
	}), worker.WithConcurrency(2))
	defer close(block)
	for _, v := range harness.Versions() {
		c := harness.Connect(t, b.Endpoint, client.WithVersion(v))
		harness.WaitService(t, c, "echo")
		harness.WaitService(t, c, "busy")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()

		if ok, err := c.ServiceExists(ctx, "echo"); err != nil || !ok {
			t.Fatalf("%s ServiceExists(echo) = %v, %v", v, ok, err)
		}
		if ok, err := c.ServiceExists(ctx, "missing"); err != nil || ok {
			t.Fatalf("%s ServiceExists(missing) = %v, %v", v, ok, err)
		}
		names, err := c.Services(ctx)
		if err != nil || !slices.Equal(names, []string{"busy", "echo"}) {
			t.Fatalf("%s Services = %q, %v", v, names, err)
		}
		if _, err := c.Workers(ctx, "missing"); !errors.Is(err, client.ErrUnknownService) {
			t.Fatalf("%s Workers(missing): %v", v, err)
		}
		// An unknown mmi service is "501".
		rep, err := c.Request(ctx, "mmi.nonesuch")
		if err != nil || string(rep[0]) != "501" {
			t.Fatalf("%s mmi.nonesuch = %q, %v", v, rep, err)
		}
	}
	// One busy worker of two, then one queued request.
	p, err := harness.Connect(t, b.Endpoint).Pipeline(0)
	if err != nil {
		t.Fatal(err)
	}
	c := harness.Connect(t, b.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 3 {
		if err := p.Send(ctx, "busy", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	want := client.WorkerCounts{Idle: 0, Busy: 2, Queued: 1}
	var got client.WorkerCounts
	testutil.Eventually(t, testutil.WaitLimit, "two busy workers and one queued request", func() bool {
		if got, err = c.Workers(ctx, "busy"); err != nil {
			t.Fatal(err)
		}
		return got == want
	})
	if got != want {
		t.Fatalf("Workers(busy) = %+v, want %+v", got, want)
	}
}

func TestClose(t *testing.T) {
	b := harness.StartBroker(t)
	c, err := client.Connect(b.Endpoint, client.WithLogger(testutil.Logger()))
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		_, err := c.Request(context.Background(), "nobody", []byte("x"))
		res <- err
	}()
	// Close while the request waits in the broker's queue.
	b.WaitStats("the request queued", func(s broker.Stats) bool { return s.Queued == 1 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-res; !errors.Is(err, client.ErrClosed) {
		t.Fatalf("in-flight request after Close: %v", err)
	}
	if _, err := c.Request(context.Background(), "echo"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Request after Close: %v", err)
	}
	if _, err := c.Pipeline(0); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Pipeline after Close: %v", err)
	}
	c.Close() // Twice is fine.
}

// The broker's own limits must not get in the way of the 10,000 test.
func bigQueue(cfg *broker.Config) { cfg.MaxQueue = 20000 }
