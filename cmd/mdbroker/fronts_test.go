package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	mdworker "github.com/majordomo-go/majordomo/worker"
)

// python is Debian's interpreter, where python3-zmq installs.
const python = "/usr/bin/python3"

// keyring is a broker certificate, an allow-list with one admitted peer
// ("peer") and an unknown one, saved as mdbroker and mdcli read them.
type keyring struct {
	dir, serverSecret, serverPublic, allow string
	peer, stranger                         *auth.Cert
	peerSecret                             string // The admitted peer's secret certificate file.
}

func newKeyring(t *testing.T) *keyring {
	t.Helper()
	k := &keyring{dir: t.TempDir()}
	k.allow = filepath.Join(k.dir, "allow")
	if err := os.Mkdir(k.allow, 0o755); err != nil {
		t.Fatal(err)
	}
	cert := func(name string) *auth.Cert {
		c, err := auth.NewCert("name", name)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	server := cert("broker")
	if err := server.Save(filepath.Join(k.dir, "broker")); err != nil {
		t.Fatal(err)
	}
	k.serverSecret, k.serverPublic = filepath.Join(k.dir, "broker_secret"), filepath.Join(k.dir, "broker")
	k.peer, k.stranger = cert("peer"), cert("stranger")
	if err := k.peer.Save(filepath.Join(k.dir, "peer")); err != nil {
		t.Fatal(err)
	}
	k.peerSecret = filepath.Join(k.dir, "peer_secret")
	if err := k.peer.SavePublic(filepath.Join(k.allow, "peer")); err != nil {
		t.Fatal(err)
	}
	return k
}

// pyEnv is the environment that makes the pyzmq peers CURVE clients with c
// (nil: plaintext).
func (k *keyring) pyEnv(t *testing.T, c *auth.Cert) []string {
	if c == nil {
		return nil
	}
	server, err := auth.LoadPublicKey(k.serverPublic)
	if err != nil {
		t.Fatal(err)
	}
	sk, _ := c.Secret()
	return []string{"EMQP_CURVE_SERVER_KEY=" + server.String(), "EMQP_CURVE_PUBLIC=" + c.Public.String(), "EMQP_CURVE_SECRET=" + sk.String()}
}

// pyInform runs a pyzmq job manager's INFORM against backend and reports
// whether it was acknowledged within wait.
func pyInform(t *testing.T, env []string, backend, queue string, wait time.Duration) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	script, err := filepath.Abs(filepath.Join("..", "..", "emqp", "testdata", "eventmq_peers.py"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, python, script, "inform", backend, queue, fmt.Sprint(wait.Seconds()))
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pyzmq peer: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var r struct{ Ack bool }
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("pyzmq peer: %v\n%s", err, out)
	}
	return r.Ack
}

// emqpEndpoints starts mdbroker with the eMQP fronts on wildcard ports and
// the HTTP server, and returns it with the bound backend and HTTP address.
func startEMQPBroker(t *testing.T, args ...string) (p *proc, backend, http string) {
	t.Helper()
	if err := exec.Command(python, "-c", "import zmq; assert zmq.has('curve')").Run(); err != nil {
		t.Fatalf("%s with a CURVE-capable zmq module is required (apt-get install python3-zmq): %v", python, err)
	}
	p = startProc(t, nil, append([]string{"--endpoint", "tcp://127.0.0.1:*", "--http", "127.0.0.1:0",
		"--emqp-frontend", "tcp://127.0.0.1:*", "--emqp-backend", "tcp://127.0.0.1:*",
		"--emqp-admin", "tcp://127.0.0.1:*", "--emqp-pub-in", "tcp://127.0.0.1:*", "--emqp-pub-out", "tcp://127.0.0.1:*",
		"--emqp-heartbeat", "200ms", "--emqp-heartbeat-timeout", "2s"}, args...)...)
	backend = p.waitLog(`emqp router started".*backend=(tcp://[0-9.:]+)`)[1]
	http = p.waitLog(`http server listening" addr=([0-9.:]+)`)[1]
	return p, backend, http
}

// statusSecurity reads the security section of /api/v1/status.
func statusSecurity(t *testing.T, http string) (plaintext []string, fronts map[string]map[string]any) {
	t.Helper()
	code, body := httpGet(t, "http://"+http+"/api/v1/status")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var r struct {
		Security struct {
			Plaintext []string         `json:"plaintext_endpoints"`
			Fronts    []map[string]any `json:"fronts"`
		} `json:"security"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	fronts = map[string]map[string]any{}
	for _, f := range r.Security.Fronts {
		fronts[f["front"].(string)] = f
	}
	return r.Security.Plaintext, fronts
}

// TestEMQPFrontsUnderCurve is the reproduction: with a CURVE key
// and the eMQP fronts, a plaintext pyzmq job manager's INFORM is not
// acknowledged, one with an unknown key neither (and is counted as refused
// under the backend front, in the status API and /metrics), one with an
// admitted key is; every eMQP front speaks CURVE and the only plaintext
// listener is the HTTP server, which is warned about.
func TestEMQPFrontsUnderCurve(t *testing.T) {
	k := newKeyring(t)
	p, backend, http := startEMQPBroker(t, "--curve-secret-key", k.serverSecret, "--curve-allow", k.allow)
	if pyInform(t, nil, backend, "default", 1500*time.Millisecond) {
		t.Fatalf("plaintext job manager acknowledged; logs:\n%s", p.logs.String())
	}
	if pyInform(t, k.pyEnv(t, k.stranger), backend, "default", 1500*time.Millisecond) {
		t.Fatal("unknown key acknowledged")
	}
	if !pyInform(t, k.pyEnv(t, k.peer), backend, "default", 5*time.Second) {
		t.Fatalf("admitted key not acknowledged; logs:\n%s", p.logs.String())
	}
	plaintext, fronts := statusSecurity(t, http)
	if len(plaintext) != 1 || !strings.HasPrefix(plaintext[0], "http://") {
		t.Fatalf("plaintext endpoints %v, want only the HTTP server", plaintext)
	}
	for _, name := range []string{"mdp", "emqp-frontend", "emqp-backend", "emqp-admin", "emqp-pub-in", "emqp-pub-out"} {
		eps, _ := fronts[name]["endpoints"].([]any)
		if len(eps) != 1 || eps[0].(map[string]any)["mechanism"] != "CURVE" {
			t.Errorf("front %s: %v", name, fronts[name])
		}
	}
	refused := fronts["emqp-backend"]["refused"].(map[string]any)
	if refused["unknown_key"] != float64(1) || fronts["emqp-backend"]["accepted"] != float64(1) {
		t.Fatalf("emqp-backend front %v", fronts["emqp-backend"])
	}
	_, metrics := httpGet(t, "http://"+http+"/metrics")
	if !strings.Contains(metrics, `mdbroker_auth_refused_total{front="emqp-backend",reason="unknown_key"} 1`) {
		t.Fatalf("no refusal metric for the backend:\n%s", grepLines(metrics, "mdbroker_auth_"))
	}
	p.waitLog(`level=WARN msg="plaintext endpoint: the HTTP operations server`)
	if strings.Contains(p.logs.String(), "front=emqp") && strings.Contains(p.logs.String(), "plaintext endpoint: neither") {
		t.Fatalf("an eMQP front warned as plaintext:\n%s", p.logs.String())
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d; logs:\n%s", code, p.logs.String())
	}
}

// TestEMQPSecurityNone: emqp-security = "none" serves the plaintext job
// manager, warns at start naming each plaintext eMQP endpoint, and the
// status API lists them; the MDP endpoint still speaks CURVE.
func TestEMQPSecurityNone(t *testing.T) {
	k := newKeyring(t)
	p, backend, http := startEMQPBroker(t, "--curve-secret-key", k.serverSecret, "--curve-allow", k.allow,
		"--emqp-security", "none")
	if !pyInform(t, nil, backend, "default", 5*time.Second) {
		t.Fatalf("plaintext job manager not served; logs:\n%s", p.logs.String())
	}
	p.waitLog(`level=WARN msg="plaintext endpoint: neither authenticated nor encrypted" front=emqp-backend endpoint=` + backend)
	for _, front := range []string{"emqp-frontend", "emqp-admin", "emqp-pub-in", "emqp-pub-out"} {
		p.waitLog(`plaintext endpoint: neither authenticated nor encrypted" front=` + front + ` `)
	}
	plaintext, fronts := statusSecurity(t, http)
	if len(plaintext) != 6 || !contains(plaintext, backend) {
		t.Fatalf("plaintext endpoints %v, want the five eMQP fronts and the HTTP server", plaintext)
	}
	if eps := fronts["mdp"]["endpoints"].([]any); eps[0].(map[string]any)["mechanism"] != "CURVE" {
		t.Fatalf("mdp front %v", fronts["mdp"])
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d; logs:\n%s", code, p.logs.String())
	}
}

// TestEMQPSecurityBadValue: a bad emqp-security is one line naming it.
func TestEMQPSecurityBadValue(t *testing.T) {
	var stderr strings.Builder
	code := runWith([]string{"--emqp-security", "plain"}, nil, &stderr, &stderr)
	if out := strings.TrimSpace(stderr.String()); code != 2 || strings.Contains(out, "\n") || !strings.Contains(out, "emqp-security") {
		t.Fatalf("exit %d, %q", code, out)
	}
}

// TestTitanicUnderCurve: mdbroker --titanic-dir with CURVE on; "mdcli
// titanic submit" and "reply" with CURVE flags round-trip through it to a
// CURVE worker, and Titanic opened no port of its own.
func TestTitanicUnderCurve(t *testing.T) {
	k := newKeyring(t)
	p := startProc(t, nil, "--endpoint", "tcp://127.0.0.1:*", "--titanic-dir", t.TempDir(), "--heartbeat", "100ms",
		"--curve-secret-key", k.serverSecret, "--curve-allow", k.allow)
	p.waitLog("titanic started")
	ep := p.waitLog(`broker started.*endpoints=\[(tcp://[0-9.:]+)\]`)[1]
	if strings.Contains(p.logs.String(), "plaintext endpoint") {
		t.Fatalf("plaintext endpoint with Titanic on:\n%s", p.logs.String())
	}
	server, err := auth.LoadPublicKey(k.serverPublic)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	harness.RunWorker(t, ep, "echo", mdworker.HandlerFunc(harness.Echo), mdworker.WithHeartbeat(100*time.Millisecond), mdworker.WithCurve(server, k.peer))

	mdcli := mdcliBinary(t)
	curve := []string{"-b", ep, "--curve-server-key", k.serverPublic, "--curve-cert", k.peerSecret, "--timeout", "2s"}
	out, err := exec.CommandContext(ctx, mdcli, append(append([]string{"titanic", "submit"}, curve...), "echo", "durable")...).CombinedOutput()
	if err != nil {
		t.Fatalf("submit: %v\n%s\nlogs:\n%s", err, out, p.logs.String())
	}
	id := strings.TrimSpace(string(out))
	for {
		cmd := exec.CommandContext(ctx, mdcli, append(append([]string{"titanic", "reply"}, curve...), id)...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err == nil {
			if got := strings.TrimSpace(stdout.String()); got != "durable" {
				t.Fatalf("reply %q", got)
			}
			break
		}
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || ctx.Err() != nil {
			t.Fatalf("reply: %v %s; logs:\n%s", err, stderr.String(), p.logs.String())
		}
		time.Sleep(50 * time.Millisecond) // 300 pending: ask again, as a client of Titanic does.
	}
	// Without a key the same client is never answered.
	cmd := exec.CommandContext(ctx, mdcli, "titanic", "reply", "-b", ep, "--timeout", "300ms", "--retries", "0", id)
	if err := cmd.Run(); err == nil {
		t.Fatal("plaintext client answered by a CURVE broker")
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d; logs:\n%s", code, p.logs.String())
	}
}

var mdcliPath string

// mdcliBinary builds mdcli once, next to the mdbroker test binary.
func mdcliBinary(t *testing.T) string {
	t.Helper()
	binary(t) // Makes binDir.
	if mdcliPath == "" {
		path := filepath.Join(binDir, "mdcli")
		if out, err := exec.Command("go", "build", "-o", path, "../mdcli").CombinedOutput(); err != nil {
			t.Fatalf("build mdcli: %v\n%s", err, out)
		}
		mdcliPath = path
	}
	return mdcliPath
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
