package broker

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
)

// pki is a throw-away certificate store for one test: the broker's
// certificate, an allow-list directory and the peers' certificates.
type pki struct {
	t      testing.TB
	server *auth.Cert
	allow  string
	certs  map[string]*auth.Cert
}

func newPKI(t testing.TB, admitted ...string) *pki {
	t.Helper()
	p := &pki{t: t, allow: filepath.Join(t.TempDir(), "allow"), certs: map[string]*auth.Cert{}}
	if err := os.Mkdir(p.allow, 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	if p.server, err = auth.NewCert("name", "broker"); err != nil {
		t.Fatal(err)
	}
	for _, name := range admitted {
		p.admit(p.cert(name))
	}
	return p
}

// cert returns the certificate called name, making it on first use.
func (p *pki) cert(name string) *auth.Cert {
	if c := p.certs[name]; c != nil {
		return c
	}
	c, err := auth.NewCert("name", name)
	if err != nil {
		p.t.Fatal(err)
	}
	p.certs[name] = c
	return c
}

// admit puts c's public certificate in the allow-list directory.
func (p *pki) admit(c *auth.Cert) {
	if err := c.PublicOnly().SavePublic(filepath.Join(p.allow, c.Name())); err != nil {
		p.t.Fatal(err)
	}
}

// security returns a broker Security with the allow-list and, if policy is
// not empty, that policy.
func (p *pki) security(policy string) *Security {
	p.t.Helper()
	a, err := auth.NewAuthenticator(auth.Config{CurveAllowDir: p.allow, Logger: quietLogger()})
	if err != nil {
		p.t.Fatal(err)
	}
	s := &Security{CurveCert: p.server, Authenticator: a}
	if policy != "" {
		path := filepath.Join(p.t.TempDir(), "policy")
		if err := os.WriteFile(path, []byte(policy), 0o644); err != nil {
			p.t.Fatal(err)
		}
		z, err := auth.NewAuthorizer(path, a, quietLogger())
		if err != nil {
			p.t.Fatal(err)
		}
		s.Authorizer = z
	}
	return s
}

// curve is the transport security of a peer with certificate c.
func (p *pki) curve(c *auth.Cert) *transport.Security {
	sec, _ := c.Secret()
	return &transport.Security{Mechanism: transport.Curve, PublicKey: c.Public[:], SecretKey: sec[:],
		ServerKey: p.server.Public[:]}
}

func quietLogger() *slog.Logger { return fastConfig().Logger }

func hasService(b *testBroker, name string) bool {
	for _, s := range b.Status().Services {
		if s.Name == name {
			return true
		}
	}
	return false
}

// newSecurePeer is newPeer with a security mechanism.
func newSecurePeer(t *testing.T, ep string, sec *transport.Security) *peer {
	t.Helper()
	ctx, err := transport.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	s, err := ctx.NewSocket(transport.Dealer, transport.Options{Security: sec})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(ep); err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, ctx: ctx, sock: s}
	t.Cleanup(p.close)
	return p
}

// secureConfig is fastConfig with a heartbeat slow enough that the raw
// peers of these tests, which do not heartbeat, stay registered.
func secureConfig(sec *Security) Config {
	cfg := tcpConfig()
	cfg.HeartbeatInterval = time.Second
	cfg.Security = sec
	return cfg
}

func secureBroker(t *testing.T, sec *Security) *testBroker {
	return startBroker(t, secureConfig(sec))
}

func TestCurveAllowedPeersWork(t *testing.T) {
	p := newPKI(t, "client", "worker")
	b := secureBroker(t, p.security(""))
	w := newSecurePeer(t, b.ep, p.curve(p.cert("worker")))
	w.register(b, mdp.V1, "echo")
	c := newSecurePeer(t, b.ep, p.curve(p.cert("client")))
	echo(c, w, mdp.V1, "echo", "hello")
	if s := b.AuthStats(); s.Accepted < 2 || s.TotalRefused() != 0 {
		t.Fatalf("auth stats %+v", s)
	}
}

func TestCurveUnknownKeyNeverGetsIn(t *testing.T) {
	p := newPKI(t, "client", "worker")
	b := secureBroker(t, p.security(""))
	w := newSecurePeer(t, b.ep, p.curve(p.cert("worker")))
	w.register(b, mdp.V1, "echo")

	// An unknown key, a peer without CURVE, and a peer that has the wrong
	// server key: none completes the handshake.
	intruder := newSecurePeer(t, b.ep, p.curve(p.cert("intruder")))
	intruder.request(mdp.V1, "echo", "let me in")
	plain := newPeer(t, b.ep)
	plain.request(mdp.V1, "echo", "me too")
	wrongServer := p.curve(p.cert("client"))
	other, _ := auth.NewCert()
	wrongServer.ServerKey = other.Public[:]
	confused := newSecurePeer(t, b.ep, wrongServer)
	confused.request(mdp.V1, "echo", "and me")

	// Meanwhile an admitted client is served, repeatedly.
	c := newSecurePeer(t, b.ep, p.curve(p.cert("client")))
	for i := 0; i < 3; i++ {
		echo(c, w, mdp.V1, "echo", "ok")
	}
	testutil.Eventually(t, testutil.WaitLimit, "the intruder's refusal counted", func() bool {
		return b.AuthStats().RefusedBy(auth.RefusedUnknownKey) > 0
	})
	w.expectNothing()
	intruder.expectNoneQueued()
	if s := b.Stats(); s.Requests-s.MMIRequests != 3 {
		t.Fatalf("broker saw %d requests, want the 3 admitted ones", s.Requests-s.MMIRequests)
	}
}

const testPolicy = `
# The worker "wa" may serve a only, "wb" may serve b; the client may call a.
wa      register  a
wb      register  b
client  call      a
admin   call      *
`

func TestWorkerMayNotRegisterOtherService(t *testing.T) {
	p := newPKI(t, "wa", "client")
	b := secureBroker(t, p.security(testPolicy))
	w := newSecurePeer(t, b.ep, p.curve(p.cert("wa")))
	w.ready(mdp.V1, "b")
	w.expectDisconnect(2 * time.Second)
	s := b.Stats()
	if s.RemovedBy(RemovedUnauthorized) != 1 || s.DroppedBy(DropUnauthorizedReady) != 1 || s.Workers != 0 {
		t.Fatalf("stats %+v", s)
	}
	if hasService(b, "b") {
		t.Fatal("refused READY created the service")
	}
	// On a new socket, as 7/MDP requires after DISCONNECT, "a" is fine.
	w2 := newSecurePeer(t, b.ep, p.curve(p.cert("wa")))
	w2.register(b, mdp.V2, "a")
	w2.expectNothing()
}

func TestClientMayNotCallOtherService(t *testing.T) {
	p := newPKI(t, "wa", "wb", "client", "admin")
	b := secureBroker(t, p.security(testPolicy))
	wa := newSecurePeer(t, b.ep, p.curve(p.cert("wa")))
	wa.register(b, mdp.V1, "a")
	wb := newSecurePeer(t, b.ep, p.curve(p.cert("wb")))
	wb.register(b, mdp.V1, "b")

	c := newSecurePeer(t, b.ep, p.curve(p.cert("client")))
	c.request(mdp.V1, "b", "secret")
	waitFor(t, b, "the refused call counted", func(s Stats) bool { return s.DroppedBy(DropUnauthorizedCall) == 1 })
	c.expectNothing()
	wb.expectNothing()
	if s := b.Stats(); s.DroppedBy(DropUnauthorizedCall) != 1 {
		t.Fatalf("stats %+v", s)
	}
	// The same client may call a, and an admin may call b.
	echo(c, wa, mdp.V1, "a", "fine")
	admin := newSecurePeer(t, b.ep, p.curve(p.cert("admin")))
	admin.request(mdp.V2, "b", "x")
	client, _ := wb.getRequest(2 * time.Second)
	wb.reply(mdp.V1, mdp.Final, client, "y")
	admin.getReply(2*time.Second, mdp.V2, mdp.Final)
	if !hasService(b, "b") {
		t.Fatal("service b missing")
	}
}

func TestMMIRespectsPolicy(t *testing.T) {
	p := newPKI(t, "wa", "wb", "client", "admin")
	b := secureBroker(t, p.security(testPolicy))
	for _, w := range []string{"wa", "wb"} {
		newSecurePeer(t, b.ep, p.curve(p.cert(w))).ready(mdp.V1, w[1:])
	}
	waitWorkers(t, b, 2)
	ask := func(who, service string, body ...string) []string {
		c := newSecurePeer(t, b.ep, p.curve(p.cert(who)))
		c.request(mdp.V1, service, body...)
		_, got := c.getReply(2*time.Second, mdp.V1, mdp.Final)
		return got
	}
	if got := ask("client", "mmi.services", ""); !eq(got, "200", "a") {
		t.Fatalf("client sees %q", got)
	}
	if got := ask("admin", "mmi.services", ""); !eq(got, "200", "a", "b") {
		t.Fatalf("admin sees %q", got)
	}
	if got := ask("client", "mmi.service", "b"); !eq(got, "404") {
		t.Fatalf("mmi.service b for client: %q", got)
	}
	if got := ask("client", "mmi.service", "a"); !eq(got, "200") {
		t.Fatalf("mmi.service a for client: %q", got)
	}
	if got := ask("client", "mmi.workers", "b"); !eq(got, "404") {
		t.Fatalf("mmi.workers b for client: %q", got)
	}
	// A worker sees the service it may register.
	if got := ask("wb", "mmi.service", "b"); !eq(got, "200") {
		t.Fatalf("mmi.service b for its worker: %q", got)
	}
}

func TestReloadAdmitsNewKeyWithoutDroppingPeers(t *testing.T) {
	p := newPKI(t, "client", "worker")
	b := secureBroker(t, p.security(""))
	w := newSecurePeer(t, b.ep, p.curve(p.cert("worker")))
	w.register(b, mdp.V1, "echo")
	c := newSecurePeer(t, b.ep, p.curve(p.cert("client")))
	echo(c, w, mdp.V1, "echo", "x")
	late := newSecurePeer(t, b.ep, p.curve(p.cert("late")))
	late.request(mdp.V1, "echo", "x")
	testutil.Eventually(t, testutil.WaitLimit, "the late key's refusal counted", func() bool {
		return b.AuthStats().RefusedBy(auth.RefusedUnknownKey) > 0
	})
	w.expectNothing()

	p.admit(p.cert("late"))
	if err := b.ReloadSecurity(); err != nil {
		t.Fatal(err)
	}
	// A refused client does not retry the handshake on the same socket
	// (26/CurveZMQ: the client "SHALL NOT try to reconnect using the same
	// credentials"); a new socket, as Lazy Pirate opens, is admitted.
	late = newSecurePeer(t, b.ep, p.curve(p.cert("late")))
	late.request(mdp.V1, "echo", "x")
	client, _ := w.getRequest(5 * time.Second)
	w.reply(mdp.V1, mdp.Final, client, "welcome")
	late.getReply(2*time.Second, mdp.V1, mdp.Final)
	// The peers connected before the reload were not disturbed.
	echo(c, w, mdp.V1, "echo", "x")
	s := b.Stats()
	if s.Registered != 1 || s.Workers != 1 || s.Removed != ([numRemoveReasons]uint64{}) {
		t.Fatalf("stats after reload %+v", s)
	}
	if a := b.AuthStats(); a.Reloads != 1 || a.Keys != 3 {
		t.Fatalf("auth stats %+v", a)
	}
}

func TestPlainEndpoints(t *testing.T) {
	p := newPKI(t, "worker")
	pw := filepath.Join(t.TempDir(), "passwords")
	os.WriteFile(pw, []byte("ops=right\n"), 0o600)
	a, err := auth.NewAuthenticator(auth.Config{CurveAllowDir: p.allow, PasswordFile: pw, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, secureConfig(&Security{CurveCert: p.server, Authenticator: a,
		PlainEndpoints: []string{"tcp://127.0.0.1:*"}}))
	eps := b.Endpoints()
	if len(eps) != 2 {
		t.Fatalf("endpoints %v", eps)
	}
	w := newSecurePeer(t, eps[0], p.curve(p.cert("worker")))
	w.register(b, mdp.V1, "echo")

	wrong := newSecurePeer(t, eps[1], &transport.Security{Mechanism: transport.Plain, Username: "ops", Password: "wrong"})
	wrong.request(mdp.V1, "echo", "x")
	// CURVE credentials on the PLAIN endpoint fail too.
	mismatch := newSecurePeer(t, eps[1], p.curve(p.cert("worker")))
	mismatch.request(mdp.V1, "echo", "x")
	testutil.Eventually(t, testutil.WaitLimit, "the wrong password refused", func() bool {
		return b.AuthStats().RefusedBy(auth.RefusedBadPassword) > 0
	})
	w.expectNothing()

	right := newSecurePeer(t, eps[1], &transport.Security{Mechanism: transport.Plain, Username: "ops", Password: "right"})
	echo(right, w, mdp.V1, "echo", "x")
}

func TestSecurityConfigErrors(t *testing.T) {
	p := newPKI(t)
	a, _ := auth.NewAuthenticator(auth.Config{CurveAllowDir: p.allow, Logger: quietLogger()})
	plainOnly, _ := auth.NewAuthenticator(auth.Config{DenyIPs: []string{"10.0.0.1"}, Logger: quietLogger()})
	for name, sec := range map[string]*Security{
		"no authenticator":     {CurveCert: p.server},
		"public cert":          {CurveCert: p.server.PublicOnly(), Authenticator: a},
		"plain without pw":     {CurveCert: p.server, Authenticator: a, PlainEndpoints: []string{"tcp://127.0.0.1:*"}},
		"policy without ident": {Authenticator: plainOnly, Authorizer: auth.NewAuthorizerFrom(&auth.Policy{}, nil)},
	} {
		cfg := tcpConfig()
		cfg.Security = sec
		b, err := New(cfg)
		if err == nil {
			b.Close()
			t.Errorf("%s: accepted", name)
			continue
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.HasPrefix(ce.Field, "Security") || !strings.Contains(err.Error(), "Security") {
			t.Errorf("%s: %v; want a ConfigError naming a Security field", name, err)
		}
	}
}

// TestIPFilterOnNullEndpoints: without CURVE, an Authenticator with IP
// lists still filters peers by address.
func TestIPFilterOnNullEndpoints(t *testing.T) {
	a, err := auth.NewAuthenticator(auth.Config{DenyIPs: []string{"127.0.0.1"}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := tcpConfig()
	cfg.Security = &Security{Authenticator: a}
	b := startBroker(t, cfg)
	c := newPeer(t, b.ep)
	c.request(mdp.V1, "mmi.service", "echo")
	testutil.Eventually(t, testutil.WaitLimit, "the denied address refused", func() bool {
		return a.Stats().RefusedBy(auth.RefusedAddressDenied) > 0
	})
	c.expectNoneQueued()
	_ = context.Background
}
