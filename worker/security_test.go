package worker_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	"github.com/majordomo-go/majordomo/worker"
)

// TestCurveWorkerPolicy: a worker allowed to serve "a" only is refused "b"
// (DISCONNECT, and it keeps retrying with backoff) and serves "a".
func TestCurveWorkerPolicy(t *testing.T) {
	mk := func(name string) *auth.Cert {
		c, err := auth.NewCert("name", name)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	server, wk, cl := mk("broker"), mk("wa"), mk("client")
	dir := t.TempDir()
	wk.PublicOnly().SavePublic(filepath.Join(dir, "wa"))
	cl.PublicOnly().SavePublic(filepath.Join(dir, "client"))
	a, err := auth.NewAuthenticator(auth.Config{CurveAllowDir: dir, Logger: testutil.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(t.TempDir(), "policy")
	os.WriteFile(pol, []byte("wa register a\nclient call *\n"), 0o644)
	z, err := auth.NewAuthorizer(pol, a, testutil.Logger())
	if err != nil {
		t.Fatal(err)
	}
	b := harness.StartBroker(t, func(c *broker.Config) {
		c.Security = &broker.Security{CurveCert: server, Authenticator: a, Authorizer: z}
	})
	wb := harness.RunWorker(t, b.Endpoint, "b", worker.HandlerFunc(harness.Echo), worker.WithCurve(server.Public, wk))
	harness.RunWorker(t, b.Endpoint, "a", worker.HandlerFunc(harness.Echo), worker.WithCurve(server.Public, wk))
	c := harness.Connect(t, b.Endpoint, client.WithCurve(server.Public, cl))
	harness.WaitService(t, c, "a")
	reply, err := c.Request(context.Background(), "a", []byte("hi"))
	if err != nil || string(reply[0]) != "hi" {
		t.Fatalf("a: %q %v", reply, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for wb.Stats().Disconnects < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if wb.Stats().Disconnects < 2 {
		t.Fatalf("refused worker stats %+v", wb.Stats())
	}
	if s := b.B().Stats(); s.RemovedBy(broker.RemovedUnauthorized) < 2 {
		t.Fatalf("refusals counted: %+v", s)
	}
	if ok, _ := c.ServiceExists(context.Background(), "b"); ok {
		t.Fatal("b has a worker")
	}
}
