package worker_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
	"github.com/majordomo-go/majordomo/worker"
)

func TestNewValidates(t *testing.T) {
	h := worker.HandlerFunc(harness.Echo)
	for name, f := range map[string]func() error{
		"empty service": func() error { _, err := worker.New("tcp://127.0.0.1:1", "", h); return err },
		"mmi service":   func() error { _, err := worker.New("tcp://127.0.0.1:1", "mmi.x", h); return err },
		"nil handler":   func() error { _, err := worker.New("tcp://127.0.0.1:1", "x", nil); return err },
		"bad liveness": func() error {
			_, err := worker.New("tcp://127.0.0.1:1", "x", h, worker.WithLiveness(0))
			return err
		},
		"bad concurrency": func() error {
			_, err := worker.New("tcp://127.0.0.1:1", "x", h, worker.WithConcurrency(0))
			return err
		},
	} {
		if err := f(); !errors.Is(err, worker.ErrInvalidOption) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The broker is killed and a new one started on the same port: the worker
// notices (heartbeat silence or DISCONNECT) and registers with the new one
// without help.
func TestReregistersAfterBrokerRestart(t *testing.T) {
	for _, v := range harness.Versions() {
		t.Run(v.String(), func(t *testing.T) {
			b := harness.StartBroker(t)
			w := harness.RunWorker(t, b.Endpoint, "echo", worker.HandlerFunc(harness.Echo), worker.WithVersion(v))
			c := harness.Connect(t, b.Endpoint, client.WithVersion(v), client.WithTimeout(200*time.Millisecond), client.WithRetries(20))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := c.Request(ctx, "echo", []byte("before")); err != nil {
				t.Fatal(err)
			}
			b.Restart()
			start := time.Now()
			harness.WaitService(t, c, "echo")
			t.Logf("worker registered with the new broker after %v", time.Since(start))
			rep, err := c.Request(ctx, "echo", []byte("after"))
			if err != nil || string(rep[0]) != "after" {
				t.Fatalf("after restart: %q, %v", rep, err)
			}
			if s := w.Stats(); s.Connects < 2 {
				t.Fatalf("stats %+v: want a second connection", s)
			}
		})
	}
}

// A handler that runs three times longer than liveness × heartbeat is not
// purged by the broker: the library heartbeats while it runs.
func TestLongHandlerKeepsHeartbeating(t *testing.T) {
	b := harness.StartBroker(t)
	expiry := harness.Heartbeat * 3
	var calls atomic.Int32
	w := harness.RunWorker(t, b.Endpoint, "slow", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		calls.Add(1)
		select {
		case <-time.After(3*expiry + 100*time.Millisecond):
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		return req.Body, nil
	}))
	c := harness.Connect(t, b.Endpoint, client.WithTimeout(5*time.Second), client.WithRetries(0))
	harness.WaitService(t, c, "slow")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	rep, err := c.Request(ctx, "slow", []byte("patience"))
	if err != nil || string(rep[0]) != "patience" {
		t.Fatalf("reply %q, %v", rep, err)
	}
	t.Logf("handler ran %v; expiry is %v", time.Since(start), expiry)
	st := b.B().Stats()
	if n := st.Removed[broker.RemovedExpired]; n != 0 {
		t.Fatalf("broker expired %d workers", n)
	}
	if st.Redelivered != 0 || calls.Load() != 1 {
		t.Fatalf("redelivered %d, handler calls %d", st.Redelivered, calls.Load())
	}
	if s := w.Stats(); s.Connects != 1 || s.Expired != 0 || s.Lost != 0 {
		t.Fatalf("worker stats %+v", s)
	}
}

func TestPanicRecovered(t *testing.T) {
	b := harness.StartBroker(t, func(cfg *broker.Config) { cfg.DisableRedelivery = true })
	w := harness.RunWorker(t, b.Endpoint, "fragile", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		if string(req.Body[0]) == "boom" {
			panic("boom")
		}
		return req.Body, nil
	}))
	c := harness.Connect(t, b.Endpoint, client.WithTimeout(200*time.Millisecond), client.WithRetries(0))
	harness.WaitService(t, c, "fragile")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Request(ctx, "fragile", []byte("boom")); !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("panicking request: %v", err)
	}
	// The worker survived and serves again (after re-registering).
	c2 := harness.Connect(t, b.Endpoint, client.WithTimeout(time.Second))
	rep, err := c2.Request(ctx, "fragile", []byte("fine"))
	if err != nil || string(rep[0]) != "fine" {
		t.Fatalf("after panic: %q, %v", rep, err)
	}
	waitStats(t, w, func(s worker.Stats) bool { return s.Panics == 1 && s.Replies == 1 })
}

func TestHandlerErrors(t *testing.T) {
	b := harness.StartBroker(t, func(cfg *broker.Config) { cfg.DisableRedelivery = true })
	w := harness.RunWorker(t, b.Endpoint, "picky", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		switch string(req.Body[0]) {
		case "fail":
			return nil, errors.New("cannot")
		case "explain":
			return nil, worker.ErrorReply(errors.New("bad input"), []byte("ERR"), []byte("bad input"))
		}
		return req.Body, nil
	}))
	c := harness.Connect(t, b.Endpoint, client.WithTimeout(200*time.Millisecond), client.WithRetries(0))
	harness.WaitService(t, c, "picky")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := c.Request(ctx, "picky", []byte("explain"))
	if err != nil || len(rep) != 2 || string(rep[0]) != "ERR" {
		t.Fatalf("error reply: %q, %v", rep, err)
	}
	if _, err := c.Request(ctx, "picky", []byte("fail")); !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("failing request: %v", err)
	}
	c2 := harness.Connect(t, b.Endpoint, client.WithTimeout(time.Second))
	if rep, err := c2.Request(ctx, "picky", []byte("ok")); err != nil || string(rep[0]) != "ok" {
		t.Fatalf("after error: %q, %v", rep, err)
	}
	waitStats(t, w, func(s worker.Stats) bool { return s.Errors == 2 && s.Replies == 2 })
}

// WithConcurrency(4): four slow requests are served at once.
func TestConcurrency(t *testing.T) {
	b := harness.StartBroker(t)
	const d = 300 * time.Millisecond
	harness.RunWorker(t, b.Endpoint, "slow", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		time.Sleep(d)
		return req.Body, nil
	}), worker.WithConcurrency(4))
	c := harness.Connect(t, b.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := c.Workers(ctx, "slow")
		if err == nil && n.Idle == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers: %+v %v", n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p, err := c.Pipeline(0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range 4 {
		if err := p.Send(ctx, "slow", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		if _, err := p.Recv(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el > 3*d {
		t.Fatalf("4 requests took %v with concurrency 4 (each %v)", el, d)
	}
}

func TestPartialRules(t *testing.T) {
	b := harness.StartBroker(t)
	errs := make(chan error, 4)
	var saved atomic.Pointer[worker.Request]
	h := worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		errs <- req.Partial([]byte("p"))
		saved.Store(req)
		return req.Body, nil
	})
	harness.RunWorker(t, b.Endpoint, "v1", h)
	c := harness.Connect(t, b.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Request(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; !errors.Is(err, worker.ErrPartialUnsupported) {
		t.Fatalf("Partial under 0.1: %v", err)
	}
	harness.RunWorker(t, b.Endpoint, "v2", h, worker.WithVersion(mdp.V2))
	c2 := harness.Connect(t, b.Endpoint, client.WithVersion(mdp.V2))
	if _, err := c2.Request(ctx, "v2"); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatalf("Partial under 0.2: %v", err)
	}
	if err := saved.Load().Partial([]byte("late")); !errors.Is(err, worker.ErrRequestDone) {
		t.Fatalf("Partial after return: %v", err)
	}
}

// waitStats waits for the worker's counters to satisfy ok: a counter is
// bumped just after the socket accepts a message, so a client may see the
// reply a moment before the count.
func waitStats(t *testing.T, w *worker.Worker, ok func(worker.Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !ok(w.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", w.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeBroker is a bare ROUTER socket that a test drives by hand, to see
// exactly what the worker puts on the wire.
type fakeBroker struct {
	t        *testing.T
	zctx     transport.Context
	sock     transport.Socket
	endpoint string
}

func newFakeBroker(t *testing.T) *fakeBroker {
	zctx, err := transport.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	sock, err := zctx.NewSocket(transport.Router, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ep, err := sock.Bind("tcp://127.0.0.1:*")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeBroker{t: t, zctx: zctx, sock: sock, endpoint: ep}
	t.Cleanup(func() {
		sock.Close()
		zctx.Term()
	})
	return f
}

// recv returns the next message (sender identity and decoded command), or
// fails the test after timeout.
func (f *fakeBroker) recv(timeout time.Duration) ([]byte, mdp.Message) {
	f.t.Helper()
	ok, err := f.sock.WaitReadable(timeout)
	if err != nil || !ok {
		f.t.Fatalf("fake broker: nothing received within %v (%v)", timeout, err)
	}
	frames, _, err := f.sock.Recv(0, false)
	if err != nil {
		f.t.Fatal(err)
	}
	m, err := mdp.DecodeToBroker(frames[1:])
	if err != nil {
		f.t.Fatalf("fake broker: bad message %q: %v", frames, err)
	}
	return frames[0], m
}

// expect skips heartbeats until a command of kind cmd arrives.
func (f *fakeBroker) expect(cmd mdp.Command, timeout time.Duration) []byte {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		id, m := f.recv(time.Until(deadline))
		if m.Command == cmd {
			return id
		}
		if m.Command != mdp.Heartbeat {
			f.t.Fatalf("fake broker: got %s, want %s", m.Command, cmd)
		}
	}
}

func (f *fakeBroker) send(id []byte, m mdp.Message) {
	f.t.Helper()
	frames, err := mdp.Append([][]byte{id}, &m)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.sock.Send(frames, false); err != nil {
		f.t.Fatal(err)
	}
}

// DISCONNECT from the broker: the worker reconnects on a new socket (a new
// identity) and sends READY again. On shutdown it sends DISCONNECT.
func TestObeysDisconnectAndSaysGoodbye(t *testing.T) {
	for _, v := range harness.Versions() {
		t.Run(v.String(), func(t *testing.T) {
			f := newFakeBroker(t)
			w, err := worker.New(f.endpoint, "svc", worker.HandlerFunc(harness.Echo), worker.WithVersion(v),
				worker.WithHeartbeat(harness.Heartbeat), worker.WithLogger(testutil.Logger()))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			defer func() {
				cancel()
				<-done
			}()

			id1, m := f.recv(2 * time.Second)
			if m.Command != mdp.Ready || string(m.Service) != "svc" || m.Version != v {
				t.Fatalf("first message %+v", m)
			}
			// Heartbeats flow both ways meanwhile.
			f.send(id1, mdp.Message{Version: v, Role: mdp.RoleWorker, Command: mdp.Heartbeat})
			f.expect(mdp.Heartbeat, time.Second)
			f.send(id1, mdp.Message{Version: v, Role: mdp.RoleWorker, Command: mdp.Disconnect})
			id2 := f.expect(mdp.Ready, 2*time.Second)
			if bytes.Equal(id1, id2) {
				t.Fatal("READY again on the same socket; 7/MDP wants a new one")
			}
			// A request on the new connection is served.
			f.send(id2, mdp.Message{Version: v, Role: mdp.RoleWorker, Command: mdp.Request,
				Client: []byte("C1"), Body: testutil.Frames("ping")})
			for {
				_, m = f.recv(2 * time.Second)
				if m.Command != mdp.Heartbeat {
					break
				}
			}
			if m.Command != mdp.Final || string(m.Client) != "C1" || string(m.Body[0]) != "ping" {
				t.Fatalf("reply %+v", m)
			}
			cancel()
			if id := f.expect(mdp.Disconnect, 2*time.Second); !bytes.Equal(id, id2) {
				t.Fatal("DISCONNECT from an unexpected socket")
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			done <- nil
			if s := w.Stats(); s.Disconnects != 1 || s.Connects != 2 || s.Replies != 1 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// A silent broker is declared dead after liveness × heartbeat; the worker
// tries again on a new socket, and a handler running at that moment sees its
// context cancelled with ErrConnectionLost.
func TestSilentBrokerDetected(t *testing.T) {
	f := newFakeBroker(t)
	causes := make(chan error, 1)
	w, err := worker.New(f.endpoint, "svc", worker.HandlerFunc(func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return nil, ctx.Err()
	}), worker.WithHeartbeat(harness.Heartbeat), worker.WithLiveness(3), worker.WithLogger(testutil.Logger()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	id1 := f.expect(mdp.Ready, 2*time.Second)
	f.send(id1, mdp.Message{Version: mdp.V1, Role: mdp.RoleWorker, Command: mdp.Request,
		Client: []byte("C1"), Body: testutil.Frames("x")})
	start := time.Now()
	id2 := f.expect(mdp.Ready, 3*time.Second)
	el := time.Since(start)
	if bytes.Equal(id1, id2) {
		t.Fatal("same socket")
	}
	if el < 3*harness.Heartbeat-20*time.Millisecond {
		t.Fatalf("declared dead after %v, before liveness × heartbeat", el)
	}
	if err := <-causes; !errors.Is(err, worker.ErrConnectionLost) {
		t.Fatalf("handler context cause: %v", err)
	}
	if s := w.Stats(); s.Expired < 1 || s.Lost != 1 {
		t.Fatalf("stats %+v", s)
	}
	t.Logf("silent broker detected after %v", el)
}

func TestRunTwice(t *testing.T) {
	w, err := worker.New("tcp://127.0.0.1:1", "svc", worker.HandlerFunc(harness.Echo), worker.WithLogger(testutil.Logger()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	if err := w.Run(ctx); !errors.Is(err, worker.ErrRunning) {
		t.Fatalf("second Run: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
