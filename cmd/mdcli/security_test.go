package main

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	"github.com/majordomo-go/majordomo/worker"
)

// keygen runs "mdcli keygen" and returns the public key it printed.
func keygen(t *testing.T, path string, args ...string) string {
	t.Helper()
	r := mdcli(context.Background(), "", "", append(append([]string{"keygen"}, args...), path)...)
	if r.code != exitOK {
		t.Fatalf("keygen: %v", r)
	}
	return strings.TrimSpace(r.stdout)
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alice")
	key := keygen(t, path, "--meta", "email=alice@example.com")
	pub, err := auth.LoadCert(path)
	if err != nil {
		t.Fatal(err)
	}
	if pub.Public.String() != key || pub.Name() != "alice" || pub.Meta("email") != "alice@example.com" {
		t.Fatalf("public cert %v %q %q", pub.Public, pub.Name(), pub.Meta("email"))
	}
	st, err := os.Stat(path + auth.SecretSuffix)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", st.Mode(), err)
	}
	if _, err := auth.LoadSecretCert(path + auth.SecretSuffix); err != nil {
		t.Fatal(err)
	}
	// Never overwrite a certificate.
	before, _ := os.ReadFile(path + auth.SecretSuffix)
	r := mdcli(context.Background(), "", "", "keygen", path)
	after, _ := os.ReadFile(path + auth.SecretSuffix)
	if r.code != exitFail || !strings.Contains(r.stderr, "exists") || string(before) != string(after) {
		t.Fatalf("second keygen: %v", r)
	}
	for _, args := range [][]string{{"keygen"}, {"keygen", "a", "b"}, {"keygen", "--meta", "novalue", "x"}} {
		if r := mdcli(context.Background(), "", "", args...); r.code != exitUsage {
			t.Errorf("%q: %v", args, r)
		}
	}
}

// curveSetup makes, with "mdcli keygen", certificates for the broker, a
// client and a worker, and starts a CURVE broker that admits the client and
// the worker, and a CURVE echo worker.
func curveSetup(t *testing.T) (ep, dir string) {
	t.Helper()
	dir = t.TempDir()
	allow := filepath.Join(dir, "allow")
	os.Mkdir(allow, 0o755)
	for _, name := range []string{"broker", "client", "worker"} {
		keygen(t, filepath.Join(dir, name))
		if name != "broker" {
			data, _ := os.ReadFile(filepath.Join(dir, name))
			os.WriteFile(filepath.Join(allow, name), data, 0o644)
		}
	}
	server, err := auth.LoadSecretCert(filepath.Join(dir, "broker_secret"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewAuthenticator(auth.Config{CurveAllowDir: allow, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Config{Endpoints: []string{"tcp://127.0.0.1:*"},
		HeartbeatInterval: testHeartbeat, Logger: slog.New(slog.DiscardHandler),
		Security: &broker.Security{CurveCert: server, Authenticator: a}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { b.Run(context.Background()); close(done) }()
	t.Cleanup(func() { b.Close(); <-done })
	ep = b.Endpoints()[0]
	wcert, err := auth.LoadSecretCert(filepath.Join(dir, "worker_secret"))
	if err != nil {
		t.Fatal(err)
	}
	harness.RunWorker(t, ep, "echo", worker.HandlerFunc(harness.Echo), worker.WithHeartbeat(testHeartbeat), worker.WithCurve(server.Public, wcert))
	return ep, dir
}

func TestCallWithCurveFlags(t *testing.T) {
	ep, dir := curveSetup(t)
	ctx := context.Background()
	flags := []string{"--curve-server-key", filepath.Join(dir, "broker"), "--curve-cert", filepath.Join(dir, "client_secret")}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := mdcli(ctx, ep, "", append(append([]string{"service"}, flags...), "echo")...)
		if r.code == exitOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo never appeared: %v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := mdcli(ctx, ep, "", append(append([]string{"call"}, flags...), "echo", "secure")...)
	if r.code != exitOK || r.stdout != "secure\n" {
		t.Fatalf("call: %v", r)
	}
	// The server key as Z85 text works too.
	key, _ := auth.LoadPublicKey(filepath.Join(dir, "broker"))
	r = mdcli(ctx, ep, "", "call", "--curve-server-key", key.String(), "--curve-cert", filepath.Join(dir, "client_secret"), "echo", "z85")
	if r.code != exitOK || r.stdout != "z85\n" {
		t.Fatalf("call with Z85 key: %v", r)
	}
	// Without CURVE the broker never answers.
	r = mdcli(ctx, ep, "", "call", "--timeout", "100ms", "--retries", "0", "echo", "x")
	if r.code != exitFail {
		t.Fatalf("call without CURVE: %v", r)
	}
	// Bad flag combinations and unsafe files are one-line errors.
	os.Chmod(filepath.Join(dir, "client_secret"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"call", "--curve-server-key", key.String(), "echo"}, "needs --curve-cert"},
		{[]string{"call", "--curve-cert", filepath.Join(dir, "client_secret"), "echo"}, "needs --curve-server-key"},
		{[]string{"call", "--curve-server-key", "nonsense", "--curve-cert", filepath.Join(dir, "worker_secret"), "echo"}, "neither"},
		{[]string{"call", "--curve-server-key", key.String(), "--curve-cert", filepath.Join(dir, "client_secret"), "echo"}, "chmod 600"},
		{[]string{"call", "--curve-server-key", key.String(), "--curve-cert", filepath.Join(dir, "client"), "echo"}, "client_secret"},
	} {
		r := mdcli(ctx, ep, "", tc.args...)
		if r.code != exitFail || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: %v; want one line with %q", tc.args, r, tc.want)
		}
	}
}

// TestPyzmqCurveClient: a pyzmq (Debian python3-zmq) REQ client, loading
// certificates made by "mdcli keygen" with zmq.auth, talks MDP to the
// broker over CURVE; with a key the broker does not know it gets nothing.
func TestPyzmqCurveClient(t *testing.T) {
	py := pythonWithZMQ(t)
	ep, dir := curveSetup(t)
	keygen(t, filepath.Join(dir, "stranger"))
	script := `
import sys, zmq, zmq.auth
ep, server, mine = sys.argv[1:4]
server_public, _ = zmq.auth.load_certificate(server)
public, secret = zmq.auth.load_certificate(mine)
ctx = zmq.Context()
s = ctx.socket(zmq.REQ)
s.curve_serverkey = server_public
s.curve_publickey = public
s.curve_secretkey = secret
s.linger = 0
s.connect(ep)
for attempt in range(50):
    s.send_multipart([b"MDPC01", b"mmi.service", b"echo"])
    if not s.poll(2000):
        print("timeout"); sys.exit(0)
    if s.recv_multipart()[2] == b"200":
        break
    import time; time.sleep(0.05)
s.send_multipart([b"MDPC01", b"echo", b"from python"])
if s.poll(2000):
    print(s.recv_multipart()[2].decode())
else:
    print("timeout")
`
	run := func(cert string) string {
		out, err := exec.Command(py, "-c", script, ep, filepath.Join(dir, "broker"), filepath.Join(dir, cert)).CombinedOutput()
		if err != nil {
			t.Fatalf("python: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := run("client_secret"); got != "from python" {
		t.Fatalf("pyzmq client got %q", got)
	}
	if got := run("stranger_secret"); got != "timeout" {
		t.Fatalf("pyzmq client with unknown key got %q", got)
	}
}

func pythonWithZMQ(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("MDP_TEST_PYTHON"), "/usr/bin/python3", "python3"} {
		if p != "" && exec.Command(p, "-c", "import zmq, zmq.auth").Run() == nil {
			return p
		}
	}
	t.Fatal("no python3 with pyzmq (install Debian python3-zmq, or set MDP_TEST_PYTHON)")
	return ""
}
