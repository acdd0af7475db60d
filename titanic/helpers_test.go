package titanic_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/leakcheck"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	"github.com/majordomo-go/majordomo/titanic"
	"github.com/majordomo-go/majordomo/worker"
)

// TestMain fails the run if any goroutine of this project outlives the
// tests: every test must clean up after itself.
func TestMain(m *testing.M) {
	leakcheck.Main(m, "majordomo/client.", "majordomo/worker.", "majordomo/broker.", "majordomo/titanic.")
}

// testHeartbeat is short so that tests run quickly, but not so short that a
// loaded machine running the race detector misses heartbeats.
const testHeartbeat = 100 * time.Millisecond

func startBroker(t testing.TB) string {
	t.Helper()
	return startBrokerHB(t, testHeartbeat)
}

// startBrokerHB starts a broker with the given heartbeat interval; its
// workers must use the same.
func startBrokerHB(t testing.TB, heartbeat time.Duration) string {
	t.Helper()
	return harness.StartBroker(t, func(c *broker.Config) { c.HeartbeatInterval = heartbeat }).Endpoint
}

// testConfig is a Config for tests: short heartbeats and timeouts.
func testConfig(endpoint, dir string) titanic.Config {
	return titanic.Config{
		Broker:         endpoint,
		Dir:            dir,
		Heartbeat:      testHeartbeat,
		AttemptTimeout: 2 * time.Second,
		RetryMin:       20 * time.Millisecond,
		RetryMax:       200 * time.Millisecond,
		ProbeMax:       100 * time.Millisecond,
		RequestWorkers: 16,
		QueryWorkers:   4,
		MaxInFlight:    16,
		ShutdownGrace:  time.Second,
		Logger:         testutil.Logger(),
	}
}

// server is a running Titanic server that a test can stop and restart.
type server struct {
	t    testing.TB
	cfg  titanic.Config
	srv  *titanic.Server
	done chan error
}

func startTitanic(t testing.TB, cfg titanic.Config) *server {
	t.Helper()
	s := &server{t: t, cfg: cfg}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.t.Helper()
	srv, err := titanic.New(s.cfg)
	if err != nil {
		s.t.Fatalf("titanic.New: %v", err)
	}
	s.srv = srv
	s.done = make(chan error, 1)
	go func() { s.done <- srv.Run(context.Background()) }()
}

func (s *server) stop() {
	if s.srv == nil {
		return
	}
	s.srv.Close()
	if err := <-s.done; err != nil {
		s.t.Errorf("titanic Run: %v", err)
	}
	s.srv = nil
}

func (s *server) restart() {
	s.t.Helper()
	s.stop()
	s.start()
}

func runWorker(t testing.TB, endpoint, service string, h worker.HandlerFunc, opts ...worker.Option) (stop func()) {
	t.Helper()
	_, stop = harness.StartWorker(t, endpoint, service, h, append([]worker.Option{worker.WithHeartbeat(testHeartbeat)}, opts...)...)
	return stop
}

func echo(ctx context.Context, req *worker.Request) ([][]byte, error) { return req.Body, nil }

func connect(t testing.TB, endpoint string) *client.Client {
	t.Helper()
	return harness.Connect(t, endpoint, client.WithTimeout(2*time.Second))
}

// call sends one raw request and returns the reply frames as strings.
func call(t testing.TB, c *client.Client, service string, body ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := c.Request(ctx, service, testutil.Frames(body...)...)
	if err != nil {
		t.Fatalf("%s %q: %v", service, body, err)
	}
	return testutil.Strs(rep)
}

// submit stores a request and returns its UUID.
func submit(t testing.TB, c *client.Client, service string, body ...string) string {
	t.Helper()
	rep := call(t, c, titanic.ServiceRequest, append([]string{service}, body...)...)
	if len(rep) != 2 || rep[0] != "200" || !isHex32(rep[1]) {
		t.Fatalf("titanic.request: got %q, want 200 and a 32-hex-digit UUID", rep)
	}
	return rep[1]
}

func isHex32(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// awaitReply polls titanic.reply until it answers 200 and returns the reply.
func awaitReply(t testing.TB, c *client.Client, uuid string, d time.Duration) []string {
	t.Helper()
	var rep []string
	testutil.Eventually(t, d, "reply to "+uuid, func() bool {
		rep = call(t, c, titanic.ServiceReply, uuid)
		switch rep[0] {
		case "200":
			return true
		case "300":
			return false
		}
		t.Fatalf("titanic.reply %s: %q", uuid, rep)
		return false
	})
	return rep[1:]
}
