package titanic_test

import (
	"context"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/titanic"
	"github.com/majordomo-go/majordomo/worker"
)

// TestLateReplyNotTaken: with a single lane, the late reply of a timed-out
// attempt arrives while the retry of the same request is in flight on the
// same lane; it must not be taken for the retry's reply (Lazy Pirate: the
// lane's client replaces its socket before it sends to that service again).
func TestLateReplyNotTaken(t *testing.T) {
	ep := startBroker(t)
	cfg := testConfig(ep, t.TempDir())
	cfg.MaxInFlight = 1
	cfg.AttemptTimeout = 300 * time.Millisecond
	srv := startTitanic(t, cfg)
	var calls atomic.Int32
	runWorker(t, ep, "slow", func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		switch calls.Add(1) {
		case 1:
			// Answers after the attempt timed out, while the retry waits.
			time.Sleep(450 * time.Millisecond)
			return [][]byte{[]byte("late")}, nil
		case 2:
			time.Sleep(250 * time.Millisecond)
		}
		return [][]byte{[]byte("right")}, nil
	}, worker.WithConcurrency(4))
	c := connect(t, ep)
	id := submit(t, c, "slow", "x")
	if rep := awaitReply(t, c, id, 20*time.Second); !reflect.DeepEqual(rep, []string{"right"}) {
		t.Fatalf("reply %q: a late reply was taken for the retry's", rep)
	}
	if st := srv.srv.Stats(); st.Timeouts < 1 || calls.Load() < 2 {
		t.Errorf("handler calls %d, stats %+v: want a timeout and a retry", calls.Load(), st)
	}
}

// secureBroker starts a broker whose tcp endpoint speaks CURVE only and
// admits the given certificates, and which also binds internal, an
// inproc:// endpoint, as mdbroker does for its built-in Titanic.
func secureBroker(t *testing.T, server *auth.Cert, internal string, admitted ...*auth.Cert) string {
	t.Helper()
	dir := t.TempDir()
	for _, c := range admitted {
		if err := c.PublicOnly().SavePublic(filepath.Join(dir, c.Name())); err != nil {
			t.Fatal(err)
		}
	}
	a, err := auth.NewAuthenticator(auth.Config{CurveAllowDir: dir, Logger: testutil.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Config{Endpoints: []string{"tcp://127.0.0.1:*"}, Internal: []string{internal},
		HeartbeatInterval: testHeartbeat, Logger: testutil.Logger(),
		Security: &broker.Security{CurveCert: server, Authenticator: a}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { b.Run(context.Background()); close(done) }()
	t.Cleanup(func() { b.Close(); <-done })
	return b.Endpoints()[0]
}

func mustCert(t *testing.T, name string) *auth.Cert {
	t.Helper()
	c, err := auth.NewCert("name", name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCurveAndInproc: Titanic configured with CURVE dispatches through a
// CURVE-only broker over tcp (its lanes' clients must handshake, or the
// broker never sees their requests), and, with the same configuration,
// through the broker's inproc:// endpoint, where no handshake applies.
func TestCurveAndInproc(t *testing.T) {
	srvCert, titCert, cliCert, wkCert := mustCert(t, "broker"), mustCert(t, "titanic"), mustCert(t, "client"), mustCert(t, "worker")
	internal := "inproc://titanic-test-curve"
	ep := secureBroker(t, srvCert, internal, titCert, cliCert, wkCert)
	runWorker(t, ep, "echo", echo, worker.WithCurve(srvCert.Public, wkCert))
	c, err := client.Connect(ep, client.WithLogger(testutil.Logger()), client.WithTimeout(2*time.Second),
		client.WithCurve(srvCert.Public, cliCert))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, broker := range []string{ep, internal} {
		t.Run(broker[:3], func(t *testing.T) {
			cfg := testConfig(broker, t.TempDir())
			cfg.CurveServerKey, cfg.CurveCert = srvCert.Public, titCert
			srv := startTitanic(t, cfg)
			testutil.Eventually(t, 10*time.Second, "titanic workers", func() bool {
				ok, _ := c.ServiceExists(context.Background(), titanic.ServiceRequest)
				return ok
			})
			ids := make([]string, 20)
			for i := range ids {
				ids[i] = submit(t, c, "echo", "via "+broker, string(rune('a'+i)))
			}
			for i, id := range ids {
				want := []string{"via " + broker, string(rune('a' + i))}
				if rep := awaitReply(t, c, id, 10*time.Second); !reflect.DeepEqual(rep, want) {
					t.Fatalf("reply %d: %q, want %q", i, rep, want)
				}
			}
			srv.stop() // Before the next subtest's Titanic registers its workers.
		})
	}
}
