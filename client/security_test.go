package client_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	"github.com/majordomo-go/majordomo/worker"
)

// secureBroker starts a CURVE broker admitting the given certificates, with
// policy if not empty.
func secureBroker(t *testing.T, server *auth.Cert, policy string, admitted ...*auth.Cert) *harness.Broker {
	t.Helper()
	dir := t.TempDir()
	for i, c := range admitted {
		if err := c.PublicOnly().SavePublic(filepath.Join(dir, c.Name()+string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	a, err := auth.NewAuthenticator(auth.Config{CurveAllowDir: dir, Logger: testutil.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	sec := &broker.Security{CurveCert: server, Authenticator: a}
	if policy != "" {
		path := filepath.Join(t.TempDir(), "policy")
		os.WriteFile(path, []byte(policy), 0o644)
		if sec.Authorizer, err = auth.NewAuthorizer(path, a, testutil.Logger()); err != nil {
			t.Fatal(err)
		}
	}
	return harness.StartBroker(t, func(c *broker.Config) { c.Security = sec })
}

func mustCert(t *testing.T, name string) *auth.Cert {
	t.Helper()
	c, err := auth.NewCert("name", name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCurveClient(t *testing.T) {
	server, cl, wk, stranger := mustCert(t, "broker"), mustCert(t, "client"), mustCert(t, "worker"), mustCert(t, "stranger")
	b := secureBroker(t, server, "client call echo\nworker register echo secret\n", cl, wk)
	harness.RunWorker(t, b.Endpoint, "echo", worker.HandlerFunc(harness.Echo), worker.WithCurve(server.Public, wk))
	harness.RunWorker(t, b.Endpoint, "secret", worker.HandlerFunc(harness.Echo), worker.WithCurve(server.Public, wk))
	c := harness.Connect(t, b.Endpoint, client.WithCurve(server.Public, cl), client.WithTimeout(300*time.Millisecond), client.WithRetries(1))
	harness.WaitService(t, c, "echo")
	ctx := context.Background()
	reply, err := c.Request(ctx, "echo", []byte("over curve"))
	if err != nil || string(reply[0]) != "over curve" {
		t.Fatalf("reply %q, %v", reply, err)
	}
	// A service the policy does not let this client call: the broker drops
	// the request and hides the service from mmi.service, so the client
	// reports no workers, saying why it may be.
	_, err = c.Request(ctx, "secret", []byte("x"))
	if !errors.Is(err, client.ErrNoWorkers) || !strings.Contains(err.Error(), "may not call") {
		t.Fatalf("unauthorized call: %v", err)
	}
	ok, err := c.ServiceExists(ctx, "secret")
	if err != nil || ok {
		t.Fatalf("mmi.service secret: %v %v", ok, err)
	}
	// A key the broker does not know.
	s := harness.Connect(t, b.Endpoint, client.WithCurve(server.Public, stranger), client.WithTimeout(200*time.Millisecond), client.WithRetries(1))
	if _, err := s.Request(ctx, "echo", []byte("x")); !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("unknown key: %v", err)
	}
	if b.B().AuthStats().RefusedBy(auth.RefusedUnknownKey) == 0 {
		t.Fatalf("auth stats %+v", b.B().AuthStats())
	}
	if s := b.B().Stats(); s.DroppedBy(broker.DropUnauthorizedCall) == 0 {
		t.Fatal("unauthorized call not counted")
	}
}

func TestCurveOptionErrors(t *testing.T) {
	c := mustCert(t, "c")
	for name, opt := range map[string]client.Option{
		"nil cert":    client.WithCurve(c.Public, nil),
		"public cert": client.WithCurve(c.Public, c.PublicOnly()),
		"no key":      client.WithCurve(auth.Key{}, c),
		"plain":       client.WithPlain("", "x"),
	} {
		if _, err := client.Connect("tcp://127.0.0.1:1", opt); !errors.Is(err, client.ErrInvalidOption) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
