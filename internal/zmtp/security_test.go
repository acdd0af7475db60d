package zmtp

import (
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/zmtp/mech"
)

type allowAuth struct{ uid string }

func (a allowAuth) Authenticate(r *mech.AuthRequest) mech.AuthResult {
	return mech.AuthResult{Status: 200, UserID: a.uid}
}

func TestCurveRoundTrip(t *testing.T) {
	spub, ssec, _ := mech.CurveKeypair()
	cpub, csec, _ := mech.CurveKeypair()
	ctx := NewContext()
	ctx.SetAuthenticator(allowAuth{"cu"})
	r := newSock(t, ctx, Router, Options{Security: &Security{Mechanism: mech.Curve, Server: true, SecretKey: ssec}})
	ep := bind(t, r, "tcp://127.0.0.1:*")
	d := newSock(t, ctx, Dealer, Options{Security: &Security{Mechanism: mech.Curve, PublicKey: cpub, SecretKey: csec, ServerKey: spub}})
	d.Connect(ep)
	d.Send([][]byte{[]byte("a"), make([]byte, 70000)}, false)
	m := recvWait(t, r, 5*time.Second)
	if len(m) != 3 || r.UserID() != "cu" {
		t.Fatalf("%d frames, uid %q; stats %+v", len(m), r.UserID(), r.Stats())
	}
	r.Send([][]byte{m[0], []byte("b")}, false)
	m = recvWait(t, d, 5*time.Second)
	if string(m[0]) != "b" {
		t.Fatal(m)
	}
}

func TestMechanismMismatchReported(t *testing.T) {
	_, ssec, _ := mech.CurveKeypair()
	ctx := NewContext()
	got := make(chan string, 1)
	r, err := ctx.NewSocket(Router, Options{Security: &Security{Mechanism: mech.Curve, Server: true, SecretKey: ssec,
		MechanismMismatch: func(addr, peer string) { got <- addr + " " + peer }}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ep := bind(t, r, "tcp://127.0.0.1:*")
	d := newSock(t, ctx, Dealer, Options{})
	d.Connect(ep)
	select {
	case s := <-got:
		if s != "127.0.0.1 NULL" {
			t.Fatalf("reported %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("mismatch not reported; stats %+v", r.Stats())
	}
}
