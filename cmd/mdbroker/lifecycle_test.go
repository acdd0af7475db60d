package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/testutil/dealer"
	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

// maxProcsSet records the procs runWith applied, instead of changing the
// test process's GOMAXPROCS.
var maxProcsSet atomic.Int64

func TestMain(m *testing.M) {
	setMaxProcs = func(n int) int { maxProcsSet.Store(int64(n)); return 0 }
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds mdbroker once for the package's tests.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "mdbroker-test")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "mdbroker")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is a running mdbroker.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	logs *testutil.SyncBuffer
	done chan error
}

func startProc(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{t: t, cmd: cmd, logs: &testutil.SyncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	p.waitLog("broker started")
	return p
}

// waitLog waits for a log line matching re and returns its submatches.
func (p *proc) waitLog(re string) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := rx.FindStringSubmatch(p.logs.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no log line matching %q; logs:\n%s", re, p.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// wait waits up to d for the process to exit and returns its exit code.
func (p *proc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // For the cleanup.
		if err == nil {
			return 0
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		p.t.Fatalf("wait: %v", err)
	case <-time.After(d):
		p.t.Fatalf("still running after %v; logs:\n%s", d, p.logs.String())
	}
	return -1
}

// rawPeer is a DEALER speaking MDP frame by frame.
type rawPeer struct {
	t *testing.T
	s *dealer.Socket
}

func newRawPeer(t *testing.T, ep string) *rawPeer {
	t.Helper()
	return &rawPeer{t: t, s: dealer.Dial(t, ep, transport.Options{})}
}

func (p *rawPeer) send(m *mdp.Message) {
	p.t.Helper()
	f, err := mdp.Encode(m)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.s.Send(f, false); err != nil {
		p.t.Fatal(err)
	}
}

// recv waits up to d for a message from the broker that is not a
// HEARTBEAT.
func (p *rawPeer) recv(d time.Duration) *mdp.Message {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ok, err := p.s.WaitReadable(time.Until(deadline))
		if err != nil {
			p.t.Fatal(err)
		}
		if !ok {
			continue
		}
		f, _, err := p.s.Recv(0, true)
		if err != nil {
			continue
		}
		m, err := mdp.DecodeFromBroker(f)
		if err != nil {
			p.t.Fatalf("bad message from broker: %v", err)
		}
		if m.Command != mdp.Heartbeat {
			return &m
		}
	}
	return nil
}

// worker registers a 0.2 worker for service.
func worker(t *testing.T, ep, service string) *rawPeer {
	w := newRawPeer(t, ep)
	w.send(&mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Ready, Service: []byte(service)})
	return w
}

func request(t *testing.T, ep, service string) *rawPeer {
	c := newRawPeer(t, ep)
	c.send(&mdp.Message{Version: mdp.V2, Role: mdp.RoleClient, Command: mdp.Request, Service: []byte(service),
		Body: [][]byte{[]byte("work")}})
	return c
}

func ipcEndpoint(t *testing.T) string {
	return "ipc://" + filepath.Join(t.TempDir(), "broker.ipc")
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestPrintConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mdbroker.toml")
	os.WriteFile(file, []byte("max-queue = 7\nliveness = 4\n"), 0o600)
	var stdout, stderr bytes.Buffer
	code := runWith([]string{"--config", file, "--liveness", "5", "--print-config"},
		[]string{"MDBROKER_MAX_QUEUE=8", "MDBROKER_HTTP=127.0.0.1:9999"}, &stdout, &stderr)
	if code != 0 || stderr.Len() != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"max-queue = 8  # env MDBROKER_MAX_QUEUE", "liveness = 5  # flag --liveness",
		`http = "127.0.0.1:9999"  # env MDBROKER_HTTP`, `heartbeat = "2.5s"  # default`} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("missing %q in:\n%s", want, stdout.String())
		}
	}
}

func TestConfigErrorsOneLineEach(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mdbroker.toml")
	os.WriteFile(file, []byte("max_queue = 7\nliveness = 0\n"), 0o600)
	var stdout, stderr bytes.Buffer
	code := runWith([]string{"--config", file}, []string{"MDBROKER_HEARTBEAT=soon"}, &stdout, &stderr)
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if code != 2 || len(lines) != 3 {
		t.Fatalf("exit %d, %d lines:\n%s", code, len(lines), stderr.String())
	}
	for i, want := range []string{`unknown key "max_queue" (did you mean "max-queue"?)`, "liveness: must be positive",
		"MDBROKER_HEARTBEAT"} {
		if !strings.HasPrefix(lines[i], "mdbroker: ") || !strings.Contains(lines[i], want) {
			t.Errorf("line %d: %q, want %q", i, lines[i], want)
		}
	}
}

// TestReloadOnSIGHUP changes the config file under a running broker.
func TestReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mdbroker.toml")
	ep := ipcEndpoint(t)
	write := func(text string) {
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf("endpoint = [%q]\nmax-queue = 10\nlog-level = \"info\"\nheartbeat = \"100ms\"\n", ep))
	p := startProc(t, []string{"MDBROKER_CONFIG=" + file})
	p.waitLog("configuration loaded")

	write(fmt.Sprintf("endpoint = [%q, \"tcp://127.0.0.1:*\"]\nmax-queue = 20\nlog-level = \"debug\"\nheartbeat = \"100ms\"\n"+
		"drain-timeout = \"3s\"\nlog-json = true\n", ep))
	p.signal(syscall.SIGHUP)
	line := p.waitLog(`msg="configuration reloaded".*`)[0]
	for _, want := range []string{"max-queue: 10 -> 20", "log-level: info -> debug", "drain-timeout: 10s -> 3s",
		"needs_restart=\"[endpoint log-json]\""} {
		if !strings.Contains(line, want) {
			t.Errorf("reload log %q lacks %q", line, want)
		}
	}
	p.waitLog(`level=WARN msg="setting not applied: it needs a restart" setting=endpoint`)
	// The new log level is in force: a malformed message is logged at debug.
	raw := newRawPeer(t, ep)
	raw.s.Send([][]byte{[]byte("junk")}, false)
	p.waitLog(`level=DEBUG msg="malformed message"`)

	// A bad file changes nothing and the broker keeps running.
	write("max-qeue = 5\n")
	p.signal(syscall.SIGHUP)
	p.waitLog(`level=ERROR msg="reload failed; configuration unchanged" error=".*unknown key \\"max-qeue\\" \(did you mean \\"max-queue\\"\?\)"`)
	w := worker(t, ep, "echo")
	p.waitLog("worker registered")
	p.signal(syscall.SIGTERM)
	if m := w.recv(5 * time.Second); m == nil || m.Command != mdp.Disconnect {
		t.Errorf("no DISCONNECT after SIGTERM: %+v", m)
	}
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d; logs:\n%s", code, p.logs.String())
	}
}

// The raw workers below do not heartbeat, so these tests use a 1s heartbeat
// (3s liveness) to keep them registered while they matter.

// TestDrainOnSIGTERM: an in-flight request finishes after SIGTERM, /readyz
// reports draining meanwhile, then workers get DISCONNECT and the process
// exits 0 with its HTTP server closed.
func TestDrainOnSIGTERM(t *testing.T) {
	ep := ipcEndpoint(t)
	p := startProc(t, nil, "--endpoint", ep, "--heartbeat", "1s", "--http", "127.0.0.1:0", "--drain-timeout", "20s")
	addr := p.waitLog(`msg="http server listening" addr=(\S+)`)[1]
	base := "http://" + addr
	w := worker(t, ep, "echo")
	p.waitLog("worker registered")
	c := request(t, ep, "echo")
	req := w.recv(5 * time.Second)
	if req == nil || req.Command != mdp.Request {
		t.Fatalf("worker got %+v", req)
	}
	if code, body := httpGet(t, base+"/metrics"); code != 200 || !strings.Contains(body, `mdbroker_service_workers{service="echo",state="busy"} 1`) {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if code, _ := httpGet(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz before SIGTERM: %d", code)
	}

	p.signal(syscall.SIGTERM)
	p.waitLog("draining")
	if code, body := httpGet(t, base+"/readyz"); code != 503 || !strings.Contains(body, "draining") {
		t.Errorf("/readyz while draining: %d %q", code, body)
	}
	time.Sleep(300 * time.Millisecond) // The request is still in flight.
	w.send(&mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Final, Client: req.Client, Body: [][]byte{[]byte("done")}})
	if m := c.recv(5 * time.Second); m == nil || m.Command != mdp.Final || string(m.Body[0]) != "done" {
		t.Fatalf("client got %+v", m)
	}
	if m := w.recv(5 * time.Second); m == nil || m.Command != mdp.Disconnect {
		t.Fatalf("worker got %+v, want DISCONNECT", m)
	}
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d; logs:\n%s", code, p.logs.String())
	}
	if strings.Contains(p.logs.String(), "drain timeout expired") {
		t.Errorf("the drain should have completed:\n%s", p.logs.String())
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Errorf("HTTP server still up after exit")
	}
}

// TestDrainTimeout: a worker that never answers is disconnected when the
// grace period ends.
func TestDrainTimeout(t *testing.T) {
	ep := ipcEndpoint(t)
	p := startProc(t, nil, "--endpoint", ep, "--heartbeat", "1s", "--drain-timeout", "300ms")
	w := worker(t, ep, "stuck")
	p.waitLog("worker registered")
	request(t, ep, "stuck")
	if m := w.recv(5 * time.Second); m == nil || m.Command != mdp.Request {
		t.Fatalf("worker got %+v", m)
	}
	start := time.Now()
	p.signal(syscall.SIGTERM)
	if m := w.recv(5 * time.Second); m == nil || m.Command != mdp.Disconnect {
		t.Fatalf("worker got %+v, want DISCONNECT", m)
	}
	if code := p.wait(5 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("exit after %v, want the 300ms grace period", took)
	}
	p.waitLog("drain timeout expired")
}

// TestSecondSignalExitsAtOnce: a second SIGINT does not wait for the grace
// period.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	ep := ipcEndpoint(t)
	p := startProc(t, nil, "--endpoint", ep, "--heartbeat", "1s", "--drain-timeout", "1m")
	w := worker(t, ep, "stuck")
	p.waitLog("worker registered")
	request(t, ep, "stuck")
	if m := w.recv(5 * time.Second); m == nil || m.Command != mdp.Request {
		t.Fatalf("worker got %+v", m)
	}
	p.signal(syscall.SIGINT)
	p.waitLog("draining")
	time.Sleep(200 * time.Millisecond)
	if m := w.recv(10 * time.Millisecond); m != nil {
		t.Fatalf("worker got %+v while draining", m)
	}
	start := time.Now()
	p.signal(syscall.SIGINT)
	if code := p.wait(3 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("second signal took %v", took)
	}
	p.waitLog("second signal: stopping now")
	if m := w.recv(2 * time.Second); m == nil || m.Command != mdp.Disconnect {
		t.Fatalf("worker got %+v, want DISCONNECT", m)
	}
}

// TestHTTPPortInUse: a busy --http address is a start-up failure.
func TestHTTPPortInUse(t *testing.T) {
	p := startProc(t, nil, "--endpoint", ipcEndpoint(t), "--http", "127.0.0.1:0")
	addr := p.waitLog(`msg="http server listening" addr=(\S+)`)[1]
	cmd := exec.CommandContext(context.Background(), binary(t), "--endpoint", ipcEndpoint(t), "--http", addr)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "mdbroker: http:") || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("second broker: %v\n%s", err, out)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestSystemdUnit checks that deploy/mdbroker.service starts mdbroker with
// arguments it accepts, against the sample config, and reloads and stops
// it with the signals mdbroker handles.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile("../../deploy/mdbroker.service")
	if err != nil {
		t.Fatal(err)
	}
	var execStart string
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			execStart = v
		}
	}
	fields := strings.Fields(execStart)
	if len(fields) < 3 || filepath.Base(fields[0]) != "mdbroker" {
		t.Fatalf("ExecStart=%q", execStart)
	}
	args := fields[1:]
	for i, a := range args {
		if a == "/etc/mdbroker/mdbroker.toml" {
			args[i] = "../../deploy/mdbroker.toml"
		}
	}
	var stdout, stderr bytes.Buffer
	if code := runWith(append(args, "--print-config"), nil, &stdout, &stderr); code != 0 {
		t.Fatalf("ExecStart arguments: exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"ExecReload=/bin/kill -HUP $MAINPID", "KillSignal=SIGTERM", "KillMode=mixed"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %s", want)
		}
	}
}

// procs is applied before the broker starts (here it then fails on a
// missing certificate, exit 2).
func TestProcsApplied(t *testing.T) {
	maxProcsSet.Store(0)
	var stdout, stderr bytes.Buffer
	missing := filepath.Join(t.TempDir(), "none.key_secret")
	code := runWith([]string{"--procs", "3", "--endpoint", "tcp://127.0.0.1:0", "--curve-secret-key", missing}, nil, &stdout, &stderr)
	if code != 2 || maxProcsSet.Load() != 3 {
		t.Fatalf("exit %d, procs set %d: %s", code, maxProcsSet.Load(), stderr.String())
	}
}
