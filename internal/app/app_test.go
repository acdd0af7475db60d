package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/config"
	"github.com/majordomo-go/majordomo/internal/testutil"
)

// waitLog waits for a log line matching re.
func waitLog(t *testing.T, logs *testutil.SyncBuffer, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m string
	if !testutil.Poll(10*time.Second, func() bool { m = rx.FindString(logs.String()); return m != "" }) {
		t.Fatalf("no log line matching %q; logs:\n%s", re, logs.String())
	}
	return m
}

func load(t *testing.T, args ...string) *config.Loaded {
	t.Helper()
	l, err := config.Load(args, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// freePort returns a TCP port nothing listens on at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// running is an App whose Run goroutine the test ends.
type running struct {
	a       *App
	logs    *testutil.SyncBuffer
	signals chan os.Signal
	cancel  context.CancelFunc
	done    chan error
}

func start(t *testing.T, l *config.Loaded, reload func() (*config.Loaded, error)) *running {
	t.Helper()
	r := &running{logs: &testutil.SyncBuffer{}, signals: make(chan os.Signal, 4), done: make(chan error, 1)}
	a, err := New(Options{Loaded: l, Log: r.logs, Signals: r.signals, Reload: reload})
	if err != nil {
		t.Fatal(err)
	}
	r.a = a
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		r.wait(t)
	})
	waitLog(t, r.logs, "broker started")
	return r
}

// wait returns Run's result, failing the test if it does not come.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // For the cleanup.
		return err
	case <-time.After(15 * time.Second):
		t.Fatalf("Run did not return; logs:\n%s", r.logs.String())
	}
	return nil
}

// TestSecurityErrors: every problem with the security settings is one line
// naming the flag or the file, and a configuration error (exit status 2).
func TestSecurityErrors(t *testing.T) {
	dir := t.TempDir()
	server, err := auth.NewCert("name", "broker")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "broker")
	if err := server.Save(key); err != nil {
		t.Fatal(err)
	}
	secret := key + auth.SecretSuffix
	allow := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	policy := write("policy", "client call *\n", 0o644)
	malformed := write("malformed", "curve\n    public-key = \"short\"\n", 0o600)
	badPolicy := write("bad-policy", "client fly *\n", 0o644)
	ep := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--curve-secret-key", filepath.Join(dir, "missing")}, "missing"},
		{[]string{"--curve-secret-key", malformed}, "malformed:2"},
		{[]string{"--curve-secret-key", key}, "no secret-key"},
		{[]string{"--curve-secret-key", secret, "--curve-allow", filepath.Join(dir, "nodir")}, "nodir"},
		{[]string{"--curve-secret-key", secret, "--curve-allow", allow, "--policy", badPolicy}, "bad-policy:1"},
		{[]string{"--curve-allow", allow}, "--curve-allow needs --curve-secret-key"},
		{[]string{"--policy", policy}, "--policy needs authenticated peers"},
		{[]string{"--plain-endpoint", "tcp://127.0.0.1:*"}, "--plain-endpoint needs --curve-secret-key"},
	} {
		_, err := New(Options{Loaded: load(t, append(tc.args, "--endpoint", ep)...), Log: &testutil.SyncBuffer{}})
		if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v; want one line with %q wrapping ErrConfig", tc.args, err, tc.want)
		}
	}
	if err := os.Chmod(secret, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Loaded: load(t, "--endpoint", ep, "--curve-secret-key", secret), Log: &testutil.SyncBuffer{}})
	if !errors.Is(err, auth.ErrPermissions) || !errors.Is(err, ErrConfig) {
		t.Fatalf("group-readable secret key: %v", err)
	}
}

// TestSecureBrokerServes: New loads keys, allow-list and policy, Run
// serves CURVE clients the policy admits, and a done context drains and
// ends Run cleanly.
func TestSecureBrokerServes(t *testing.T) {
	dir, allow := t.TempDir(), t.TempDir()
	server, err := auth.NewCert("name", "broker")
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Save(filepath.Join(dir, "broker")); err != nil {
		t.Fatal(err)
	}
	cl, err := auth.NewCert("name", "client")
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.PublicOnly().SavePublic(filepath.Join(allow, "client")); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy")
	if err := os.WriteFile(policy, []byte("client call *\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ep := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	r := start(t, load(t, "--endpoint", ep, "--heartbeat", "100ms", "--curve-secret-key", filepath.Join(dir, "broker_secret"),
		"--curve-allow", allow, "--policy", policy), nil)
	c, err := client.Connect(ep, client.WithCurve(server.Public, cl), client.WithTimeout(5*time.Second), client.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reply, err := c.Request(context.Background(), "mmi.service", []byte("x"))
	if err != nil || len(reply) != 1 || string(reply[0]) != "404" {
		t.Fatalf("mmi.service: %q %v", reply, err)
	}
	r.cancel()
	if err := r.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	waitLog(t, r.logs, `msg="shutting down: draining in-flight requests" signal="context done"`)
}

// TestFailedNewReleases: when a later part cannot start, New releases what
// it had started: here the broker's endpoint and the eMQP fronts, when
// Titanic's store cannot be opened.
func TestFailedNewReleases(t *testing.T) {
	ep, front, back := freePort(t), freePort(t), freePort(t)
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{Loaded: load(t, "--endpoint", fmt.Sprintf("tcp://127.0.0.1:%d", ep),
		"--emqp-frontend", fmt.Sprintf("tcp://127.0.0.1:%d", front), "--emqp-backend", fmt.Sprintf("tcp://127.0.0.1:%d", back),
		"--titanic-dir", notDir), Log: &testutil.SyncBuffer{}})
	if err == nil {
		t.Fatal("Titanic started with a file for its directory")
	}
	for _, port := range []int{ep, front, back} {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Errorf("port %d still held after New failed: %v", port, err)
			continue
		}
		ln.Close()
	}
	// An HTTP address in use is a failure to start, not a configuration
	// error, and also releases the broker's endpoint.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, err = New(Options{Loaded: load(t, "--endpoint", fmt.Sprintf("tcp://127.0.0.1:%d", ep), "--http", busy.Addr().String()), Log: &testutil.SyncBuffer{}})
	if err == nil || errors.Is(err, ErrConfig) || !strings.HasPrefix(err.Error(), "http: ") {
		t.Fatalf("busy http: %v", err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ep))
	if err != nil {
		t.Fatalf("endpoint still held: %v", err)
	}
	ln.Close()
}

// TestLibraryErrorsNameSettings: a value only the eMQP library checks is
// reported under the setting's name, as a configuration error.
func TestLibraryErrorsNameSettings(t *testing.T) {
	_, err := New(Options{Loaded: load(t, "--endpoint", fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)),
		"--emqp-frontend", "tcp://127.0.0.1:*", "--emqp-backend", "tcp://127.0.0.1:*",
		"--emqp-heartbeat", "1s", "--emqp-heartbeat-timeout", "1s"), Log: &testutil.SyncBuffer{}})
	if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "emqp-heartbeat-timeout=1s") {
		t.Fatalf("%v; want a configuration error naming emqp-heartbeat-timeout", err)
	}
}

// TestSIGHUPReload: SIGHUP applies what may change and keeps the rest; a
// bad configuration changes nothing; SIGTERM then drains and Run returns
// nil.
func TestSIGHUPReload(t *testing.T) {
	ep := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	args := []string{"--endpoint", ep, "--heartbeat", "100ms"}
	var mu sync.Mutex
	next := append([]string(nil), args...)
	reload := func() (*config.Loaded, error) {
		mu.Lock()
		defer mu.Unlock()
		return config.Load(next, nil)
	}
	r := start(t, load(t, args...), reload)

	mu.Lock()
	next = []string{"--endpoint", ep, "--endpoint", "tcp://127.0.0.1:*", "--heartbeat", "100ms", "--max-queue", "5",
		"--log-level", "debug", "--drain-timeout", "3s"}
	mu.Unlock()
	r.signals <- syscall.SIGHUP
	line := waitLog(t, r.logs, `msg="configuration reloaded".*`)
	for _, want := range []string{"max-queue: 10000 -> 5", "log-level: info -> debug", "drain-timeout: 10s -> 3s", `needs_restart=[endpoint]`} {
		if !strings.Contains(line, want) {
			t.Errorf("reload log %q lacks %q", line, want)
		}
	}
	if r.a.cfg.DrainTimeout != 3*time.Second || r.a.cfg.MaxQueue != 5 || len(r.a.cfg.Endpoints) != 1 {
		t.Errorf("running configuration after reload: %+v", r.a.cfg)
	}
	if got := r.a.b.Endpoints(); len(got) != 1 {
		t.Errorf("broker endpoints after reload: %q", got)
	}

	mu.Lock()
	next = []string{"--max-queue", "0"}
	mu.Unlock()
	r.signals <- syscall.SIGHUP
	waitLog(t, r.logs, `level=ERROR msg="reload failed; configuration unchanged" error=.*max-queue`)

	r.signals <- syscall.SIGTERM
	if err := r.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	waitLog(t, r.logs, `drain_timeout=3s`)
}
