package emqp

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/internal/testutil"
)

// curveKeys are a peer's CURVE keys for the pyzmq peers' environment.
type curveKeys struct{ server, public, secret string }

func (k *curveKeys) env() []string {
	if k == nil {
		return nil
	}
	return []string{"EMQP_CURVE_SERVER_KEY=" + k.server, "EMQP_CURVE_PUBLIC=" + k.public, "EMQP_CURVE_SECRET=" + k.secret}
}

// runPyAs runs one pyzmq peer (testdata/eventmq_peers.py) with keys (nil:
// plaintext) and returns its JSON result.
func runPyAs(t *testing.T, ctx context.Context, keys *curveKeys, args ...string) map[string]any {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("testdata", "eventmq_peers.py"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, python, append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), keys.env()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	lines := splitLines(out)
	var m map[string]any
	if len(lines) == 0 || json.Unmarshal(lines[len(lines)-1], &m) != nil {
		t.Fatalf("%v: no JSON result:\n%s", args, out)
	}
	return m
}

// securityFixture is a server certificate, two admitted peers ("jobs" and
// "client", by certificate name) and one unknown key.
type securityFixture struct {
	server                 *auth.Cert
	jobs, client, stranger *curveKeys
	allowDir, policy       string
}

func newSecurityFixture(t *testing.T, policy string) *securityFixture {
	t.Helper()
	if err := exec.Command(python, "-c", "import zmq; assert zmq.has('curve')").Run(); err != nil {
		t.Fatalf("%s with a CURVE-capable zmq module is required (apt-get install python3-zmq): %v", python, err)
	}
	dir := t.TempDir()
	f := &securityFixture{allowDir: filepath.Join(dir, "allow"), policy: filepath.Join(dir, "policy")}
	if err := os.Mkdir(f.allowDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.server, err = auth.NewCert("name", "router"); err != nil {
		t.Fatal(err)
	}
	peer := func(name string, admitted bool) *curveKeys {
		c, err := auth.NewCert("name", name)
		if err != nil {
			t.Fatal(err)
		}
		if admitted {
			if err := c.SavePublic(filepath.Join(f.allowDir, name)); err != nil {
				t.Fatal(err)
			}
		}
		sk, _ := c.Secret()
		return &curveKeys{server: f.server.Public.String(), public: c.Public.String(), secret: sk.String()}
	}
	f.jobs, f.client, f.stranger = peer("jobs", true), peer("client", true), peer("stranger", false)
	if err := os.WriteFile(f.policy, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestCurveOnEveryFront: with CURVE on, every front (PUB included) speaks
// it; a plaintext pyzmq job manager and one with an unknown key get no
// ACK, both counted as refused under its front (reasons mechanism and
// unknown_key); an admitted one gets
// its ACK and runs an admitted client's jobs; and the policy refuses an
// INFORM for a queue the identity may not register, counted under the
// backend.
func TestCurveOnEveryFront(t *testing.T) {
	f := newSecurityFixture(t, "jobs register default\nclient call default\n")
	a, err := auth.NewAuthenticator(auth.Config{CurveAllowDir: f.allowDir, Logger: testutil.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	z, err := auth.NewAuthorizer(f.policy, a, testutil.Logger())
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, func(c *Config) {
		c.HeartbeatInterval, c.HeartbeatTimeout = 200*time.Millisecond, 2*time.Second
		c.Security = &auth.ServerSecurity{Cert: f.server, Authenticator: a}
		c.Authorizer = z
	})
	ls := ts.s.Listeners()
	if len(ls) != 5 {
		t.Fatalf("listeners %+v, want the five fronts", ls)
	}
	for _, l := range ls {
		if l.Mechanism != auth.MechanismCurve || l.Plaintext() {
			t.Errorf("front %s at %s speaks %s", l.Front, l.Endpoint, l.Mechanism)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if r := runPyAs(t, ctx, nil, "inform", ts.ep.Backend, "default", "1.5"); r["ack"] != false {
		t.Fatalf("plaintext job manager: %v", r)
	}
	if n := a.Stats().Front(FrontBackend).RefusedBy(auth.RefusedMechanism); n == 0 {
		t.Fatalf("plaintext job manager not counted under %s: %+v", FrontBackend, a.Stats().Fronts)
	}
	if r := runPyAs(t, ctx, f.stranger, "inform", ts.ep.Backend, "default", "1.5"); r["ack"] != false {
		t.Fatalf("unknown key: %v", r)
	}
	if n := a.Stats().Front(FrontBackend).RefusedBy(auth.RefusedUnknownKey); n == 0 {
		t.Fatalf("unknown key not counted under %s: %+v", FrontBackend, a.Stats().Fronts)
	}
	if r := runPyAs(t, ctx, f.jobs, "inform", ts.ep.Backend, "secret", "1.5"); r["ack"] != false {
		t.Fatalf("INFORM for a queue the policy does not allow: %v", r)
	}
	st := ts.s.Stats()
	if st.UnauthorizedOn(FrontBackend) != 1 || st.DroppedBy(DropUnauthorized) != 1 || st.Registered != 0 {
		t.Fatalf("policy refusal not counted: unauthorized %v, stats %+v", st.Unauthorized, st)
	}

	const jobs = 10
	done := make(chan map[string]any, 1)
	go func() { done <- runPyAs(t, ctx, f.jobs, "jobmanager", ts.ep.Backend, "2", "10", "0.2") }()
	ts.waitFor("job manager ready", func(s Stats) bool { return s.Workers == 1 && s.FreeSlots == 2 })
	if cl := runPyAs(t, ctx, f.client, "client", ts.ep.Frontend, "10"); cl["ok"] != true || cl["acks"] != float64(jobs) {
		t.Fatalf("admitted client: %v", cl)
	}
	if jm := <-done; jm["handled"] != float64(jobs) {
		t.Fatalf("admitted job manager: %v", jm)
	}
	// The jobs client may call "default" but not register it.
	if r := runPyAs(t, ctx, f.client, "inform", ts.ep.Backend, "default", "1.5"); r["ack"] != false {
		t.Fatalf("INFORM by an identity that may only call: %v", r)
	}
	fs := a.Stats().Front(FrontBackend)
	if fs.Accepted < 3 || fs.TotalRefused() != 2 { // The plaintext peer and the unknown key.
		t.Fatalf("backend handshakes %+v", fs)
	}
	if n := ts.s.Stats().UnauthorizedOn(FrontBackend); n != 2 {
		t.Fatalf("backend policy refusals %d, want 2", n)
	}
}

// TestPlaintextFrontsStillFiltered: with Plaintext (mdbroker's
// emqp-security = "none") the fronts speak NULL, and the Authenticator's
// address lists still apply to them.
func TestPlaintextFrontsStillFiltered(t *testing.T) {
	f := newSecurityFixture(t, "")
	a, err := auth.NewAuthenticator(auth.Config{CurveAllowDir: f.allowDir, DenyIPs: []string{"127.0.0.0/8"}, Logger: testutil.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, func(c *Config) {
		c.Security = &auth.ServerSecurity{Cert: f.server, Authenticator: a, Plaintext: true}
	})
	for _, l := range ts.s.Listeners() {
		if !l.Plaintext() {
			t.Errorf("front %s speaks %s, want NULL", l.Front, l.Mechanism)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if r := runPyAs(t, ctx, nil, "inform", ts.ep.Backend, "default", "1.5"); r["ack"] != false {
		t.Fatalf("denied address served: %v", r)
	}
	if n := a.Stats().Front(FrontBackend).RefusedBy(auth.RefusedAddressDenied); n == 0 {
		t.Fatalf("denied address not counted: %+v", a.Stats().Fronts)
	}
}

// TestPolicyNeedsAuthentication: a policy with NULL fronts is a
// configuration error naming the setting.
func TestPolicyNeedsAuthentication(t *testing.T) {
	f := newSecurityFixture(t, "")
	a, err := auth.NewAuthenticator(auth.Config{CurveAllowDir: f.allowDir, Logger: testutil.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	z := auth.NewAuthorizerFrom(&auth.Policy{}, a)
	_, err = New(Config{Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*", Logger: testutil.Logger(),
		Security: &auth.ServerSecurity{Cert: f.server, Authenticator: a, Plaintext: true}, Authorizer: z})
	if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "policy") {
		t.Fatalf("err %v", err)
	}
}
