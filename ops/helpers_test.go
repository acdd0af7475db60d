package ops

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/testutil/dealer"
	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
)

// TestMain fails the package if a test leaves goroutines behind.
func TestMain(m *testing.M) {
	base := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		http.DefaultClient.CloseIdleConnections()
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > base {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			fmt.Fprintf(os.Stderr, "goroutine leak: %d before tests, %d after\n%s\n", base, n, buf)
			code = 1
		}
	}
	os.Exit(code)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startBroker runs a broker on an ephemeral loopback port until the test
// ends.
func startBroker(t *testing.T, cfg broker.Config) *broker.Broker {
	t.Helper()
	cfg.Endpoints = []string{"tcp://127.0.0.1:*"}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 100 * time.Millisecond
	}
	if cfg.HeartbeatLiveness == 0 {
		// The fake workers here never re-register: a stall of the loaded
		// machine longer than 3 intervals must not purge them mid-test.
		cfg.HeartbeatLiveness = 20
	}
	cfg.Logger = quiet
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(context.Background()) }()
	testutil.Eventually(t, testutil.WaitLimit, "the broker to start", func() bool { return !b.Status().Now.IsZero() })
	t.Cleanup(func() {
		b.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return b
}

// fakeWorker is an 18/MDP worker on its own goroutine: it heartbeats and
// answers each request with its body after delay, or holds requests for
// ever if hold is set.
type fakeWorker struct {
	served atomic.Uint64
	stop   context.CancelFunc
	done   chan struct{}
}

func startWorker(t *testing.T, ep, service string, delay time.Duration, hold bool) *fakeWorker {
	t.Helper()
	s := dealer.Dial(t, ep, transport.Options{})
	send := func(m *mdp.Message) {
		f, err := mdp.Encode(m)
		if err == nil {
			err = s.Send(f, false)
		}
		if err != nil {
			t.Errorf("worker %s: send: %v", service, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &fakeWorker{stop: cancel, done: make(chan struct{})}
	send(&mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Ready, Service: []byte(service)})
	go func() {
		defer close(w.done)
		defer s.Close()
		beat := time.NewTicker(50 * time.Millisecond)
		defer beat.Stop()
		for {
			select {
			case <-ctx.Done():
				send(&mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Disconnect})
				return
			case <-beat.C:
				send(&mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Heartbeat})
			default:
			}
			ok, err := s.WaitReadable(10 * time.Millisecond)
			if err != nil || !ok {
				continue
			}
			f, _, err := s.Recv(0, true)
			if err != nil {
				continue
			}
			m, err := mdp.DecodeFromBroker(f)
			if err != nil || m.Command != mdp.Request || hold {
				continue
			}
			if delay > 0 {
				time.Sleep(delay)
			}
			send(&mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Final, Client: m.Client, Body: m.Body})
			w.served.Add(1)
		}
	}()
	t.Cleanup(w.close)
	return w
}

func (w *fakeWorker) close() {
	w.stop()
	<-w.done
}

// fakeClient is an 18/MDP client on its own goroutine.
type fakeClient struct {
	s  *dealer.Socket
	mu sync.Mutex
}

func newClient(t *testing.T, ep string) *fakeClient {
	t.Helper()
	c := &fakeClient{s: dealer.Dial(t, ep, transport.Options{})}
	t.Cleanup(c.close)
	return c
}

func (c *fakeClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s != nil {
		c.s.Close()
		c.s = nil
	}
}

// send sends one request and does not wait. It may be called from any
// goroutine.
func (c *fakeClient) send(t *testing.T, service string, body string) bool {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s == nil {
		return false // Closed: the test is over.
	}
	f, _ := mdp.Encode(&mdp.Message{Version: mdp.V2, Role: mdp.RoleClient, Command: mdp.Request,
		Service: []byte(service), Body: [][]byte{[]byte(body)}})
	if err := c.s.Send(f, false); err != nil {
		t.Errorf("client send: %v", err)
		return false
	}
	return true
}

// call sends a request and waits up to d for its FINAL.
func (c *fakeClient) call(t *testing.T, service string, body string, d time.Duration) bool {
	t.Helper()
	if !c.send(t, service, body) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for deadline := time.Now().Add(d); c.s != nil && time.Now().Before(deadline); {
		ok, err := c.s.WaitReadable(time.Until(deadline))
		if err != nil || !ok {
			continue
		}
		f, _, err := c.s.Recv(0, true)
		if err != nil {
			continue
		}
		if m, err := mdp.DecodeFromBroker(f); err == nil && m.Command == mdp.Final && string(m.Service) == service {
			return true
		}
	}
	return false
}

// traffic runs one client per service calling it in a loop until stop is
// called, which returns how many calls succeeded per service.
func traffic(t *testing.T, ep string, services []string, pause time.Duration) (stop func() map[string]int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := make(map[string]int)
	for _, svc := range services {
		c := newClient(t, ep)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if c.call(t, svc, "x", 2*time.Second) {
					mu.Lock()
					counts[svc]++
					mu.Unlock()
				}
				time.Sleep(pause) // Pacing: the load the page is to show.
			}
		}()
	}
	var once sync.Once
	stop = func() map[string]int {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
		mu.Lock()
		defer mu.Unlock()
		return counts
	}
	// Registered after the clients' cleanups, so it runs before them if
	// the test ends early.
	t.Cleanup(func() { stop() })
	return stop
}

// waitStatus polls b until cond holds.
func waitStatus(t *testing.T, b *broker.Broker, what string, cond func(broker.Status) bool) broker.Status {
	t.Helper()
	var st broker.Status
	if !testutil.Poll(10*time.Second, func() bool { st = b.Status(); return cond(st) }) {
		t.Fatalf("timed out waiting for %s; status %+v", what, st.Stats)
	}
	return st
}
