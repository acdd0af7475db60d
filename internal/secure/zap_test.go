package secure

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/internal/leakcheck"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/transport"
)

func TestMain(m *testing.M) { leakcheck.Main(m, "majordomo/auth.", "majordomo/internal/secure.") }

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestHandlerOverRealSockets runs the handler in a context with a CURVE
// ROUTER: libzmq asks it about every handshake.
func TestHandlerOverRealSockets(t *testing.T) {
	dir := t.TempDir()
	server, _ := auth.NewCert()
	good, _ := auth.NewCert("name", "good")
	good.PublicOnly().SavePublic(filepath.Join(dir, "good"))
	bad, _ := auth.NewCert()
	a, err := auth.NewAuthenticator(auth.Config{CurveAllowDir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	zctx, err := transport.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	h, err := startHandler(zctx, a)
	if err != nil {
		t.Fatal(err)
	}
	// One handler per context.
	if h2, err := startHandler(zctx, a); err == nil {
		h2.stop()
		t.Fatal("second handler in one context")
	}
	ssec, _ := server.Secret()
	r, err := zctx.NewSocket(transport.Router, transport.Options{UserID: true, Linger: 0,
		Security: &transport.Security{Mechanism: transport.Curve, Server: true, SecretKey: ssec[:], ZAPDomain: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	ep, err := r.Bind("tcp://127.0.0.1:*")
	if err != nil {
		t.Fatal(err)
	}
	var socks []transport.Socket
	dial := func(c *auth.Cert) {
		sec, _ := c.Secret()
		d, err := zctx.NewSocket(transport.Dealer, transport.Options{Linger: 0, Security: &transport.Security{
			Mechanism: transport.Curve, PublicKey: c.Public[:], SecretKey: sec[:], ServerKey: server.Public[:]}})
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, d)
		d.Connect(ep)
		d.Send([][]byte{[]byte("hi")}, false)
	}
	dial(bad)
	dial(good)
	ok, err := r.WaitReadable(5 * time.Second)
	if err != nil || !ok {
		t.Fatalf("nothing from the admitted peer: %v", err)
	}
	f, _, err := r.Recv(0, true)
	if err != nil || string(f[1]) != "hi" || r.UserID() != good.Public.String() {
		t.Fatalf("got %q from %q: %v", f, r.UserID(), err)
	}
	if ok, _ := r.WaitReadable(200 * time.Millisecond); ok {
		t.Fatal("refused peer got through")
	}
	testutil.Eventually(t, testutil.WaitLimit, "the refusal counted", func() bool {
		return a.Stats().RefusedBy(auth.RefusedUnknownKey) > 0
	})
	if a.Stats().Accepted == 0 {
		t.Fatalf("stats %+v", a.Stats())
	}
	for _, s := range socks {
		s.Close()
	}
	r.Close()
	h.stop()
	h.stop() // Twice is fine.
	if err := zctx.Term(); err != nil {
		t.Fatal(err)
	}
}

// TestHandlerAnswers calls the hook directly: the status becomes a number
// and the User-Id is empty unless the answer is 200 (27/ZAP).
func TestHandlerAnswers(t *testing.T) {
	a, _ := auth.NewAuthenticator(auth.Config{CurveAllowAny: true, Logger: quiet()})
	zctx, _ := transport.NewContext()
	h, err := startHandler(zctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer zctx.Term()
	defer h.stop()
	key := make([]byte, 32)
	got := h.Authenticate(&transport.AuthRequest{Domain: "d", Address: "1.2.3.4", Mechanism: "CURVE", Credentials: [][]byte{key}})
	if got.Status != 200 || got.UserID != (auth.Key{}).String() {
		t.Fatalf("allow-any: %+v", got)
	}
	got = h.Authenticate(&transport.AuthRequest{Domain: "d", Address: "1.2.3.4", Mechanism: "PLAIN", Credentials: [][]byte{[]byte("u"), []byte("p")}})
	if got.Status == 200 || got.UserID != "" {
		t.Fatalf("PLAIN without a password file: %+v", got)
	}
}
