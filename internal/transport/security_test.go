package transport

import (
	"bytes"
	"testing"
	"time"
)

// stubAuth admits CURVE keys in allow and PLAIN user "u" with password
// "p", with User-Id "curve:<first byte>" or "plain:u".
type stubAuth struct{ allow [][]byte }

func (a stubAuth) Authenticate(r *AuthRequest) AuthResult {
	switch r.Mechanism {
	case "CURVE":
		for _, k := range a.allow {
			if bytes.Equal(k, r.Credentials[0]) {
				return AuthResult{Status: 200, UserID: "curve:" + string('a'+r.Credentials[0][0]%26)}
			}
		}
	case "PLAIN":
		if string(r.Credentials[0]) == "u" && string(r.Credentials[1]) == "p" {
			return AuthResult{Status: 200, UserID: "plain:u"}
		}
	}
	return AuthResult{Status: 400, Text: "text"}
}

// zapStub installs stubAuth as zc's authenticator.
func zapStub(t *testing.T, zc Context, allow [][]byte) {
	t.Helper()
	zc.SetAuthenticator(stubAuth{allow})
}

func TestCurveAndPlainWithZAP(t *testing.T) {
	serverPub, serverSec, err := CurveKeypair()
	if err != nil {
		t.Fatal(err)
	}
	goodPub, goodSec, _ := CurveKeypair()
	badPub, badSec, _ := CurveKeypair()
	if derived, err := CurvePublic(goodSec); err != nil || derived != goodPub {
		t.Fatalf("CurvePublic: %v", err)
	}
	forEach(t, func(t *testing.T, newCtx func() (Context, error)) {
		zc, err := newCtx()
		if err != nil {
			t.Fatal(err)
		}
		var socks []Socket
		t.Cleanup(func() {
			for _, s := range socks {
				s.Close()
			}
			zc.Term()
		})
		zapStub(t, zc, [][]byte{goodPub[:]})
		r, err := zc.NewSocket(Router, Options{UserID: true, Security: &Security{
			Mechanism: Curve, Server: true, SecretKey: serverSec[:], ZAPDomain: "test"}})
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, r)
		curveEP, err := r.Bind("tcp://127.0.0.1:*")
		if err != nil {
			t.Fatal(err)
		}
		// A second endpoint of the same socket speaks PLAIN.
		if err := r.SetSecurity(&Security{Mechanism: Plain, Server: true, ZAPDomain: "test"}); err != nil {
			t.Fatal(err)
		}
		plainEP, err := r.Bind("tcp://127.0.0.1:*")
		if err != nil {
			t.Fatal(err)
		}
		dial := func(ep string, sec *Security) Socket {
			d, err := zc.NewSocket(Dealer, Options{Security: sec})
			if err != nil {
				t.Fatal(err)
			}
			socks = append(socks, d)
			if err := d.Connect(ep); err != nil {
				t.Fatal(err)
			}
			d.Send([][]byte{[]byte("hello")}, false)
			return d
		}
		dial(curveEP, &Security{Mechanism: Curve, PublicKey: badPub[:], SecretKey: badSec[:], ServerKey: serverPub[:]})
		dial(plainEP, &Security{Mechanism: Plain, Username: "u", Password: "wrong"})
		dial(curveEP, nil) // NULL against a CURVE server.
		dial(curveEP, &Security{Mechanism: Curve, PublicKey: goodPub[:], SecretKey: goodSec[:], ServerKey: serverPub[:]})
		dial(plainEP, &Security{Mechanism: Plain, Username: "u", Password: "p"})

		got := map[string]bool{}
		deadline := time.Now().Add(5 * time.Second)
		for len(got) < 2 && time.Now().Before(deadline) {
			ok, err := r.WaitReadable(100 * time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				continue
			}
			f, _, err := r.Recv(0, true)
			if err != nil {
				t.Fatal(err)
			}
			if len(f) != 2 || string(f[1]) != "hello" {
				t.Fatalf("got %q", f)
			}
			got[r.UserID()] = true
		}
		want := "curve:" + string('a'+goodPub[0]%26)
		if !got[want] || !got["plain:u"] || len(got) != 2 {
			t.Fatalf("user ids %v, want %q and plain:u only", got, want)
		}
		// The refused peers never get through.
		if ok, _ := r.WaitReadable(300 * time.Millisecond); ok {
			f, _, _ := r.Recv(0, true)
			t.Fatalf("unexpected message %q from %q", f, r.UserID())
		}
	})
}

func TestUserIDOffAndNull(t *testing.T) {
	forEach(t, func(t *testing.T, newCtx func() (Context, error)) {
		_, r, d := pair(t, newCtx)
		d.Send([][]byte{[]byte("x")}, false)
		if _, _, err := r.Recv(0, false); err != nil {
			t.Fatal(err)
		}
		if r.UserID() != "" {
			t.Fatalf("UserID %q without security", r.UserID())
		}
	})
}

func TestSecurityValidation(t *testing.T) {
	forEach(t, func(t *testing.T, newCtx func() (Context, error)) {
		zc, err := newCtx()
		if err != nil {
			t.Fatal(err)
		}
		defer zc.Term()
		for _, sec := range []*Security{
			{Mechanism: Curve, Server: true, SecretKey: []byte("short")},
			{Mechanism: Curve, SecretKey: make([]byte, 32), PublicKey: make([]byte, 32)}, // no server key
			{Mechanism: Plain},
			{Mechanism: Mechanism(9)},
		} {
			s, err := zc.NewSocket(Dealer, Options{Security: sec})
			if err == nil {
				s.Close()
				t.Fatalf("%+v accepted", sec)
			}
		}
	})
}

// BenchmarkCurveEcho is a raw DEALER->ROUTER echo with 100 messages in
// flight, without and with CURVE: the transport's own cost of encryption
// (each round trip is encrypted and decrypted twice), with no broker.
func BenchmarkCurveEcho(b *testing.B) {
	for _, curve := range []bool{false, true} {
		b.Run(map[bool]string{false: "null", true: "curve"}[curve], func(b *testing.B) {
			benchCurveEcho(b, curve)
		})
	}
}

func benchCurveEcho(b *testing.B, curve bool) {
	var rsec, dsec *Security
	if curve {
		sp, ss, _ := CurveKeypair()
		cp, cs, _ := CurveKeypair()
		// No authenticator: every key is admitted, which is all a
		// throughput test needs.
		rsec = &Security{Mechanism: Curve, Server: true, SecretKey: ss[:]}
		dsec = &Security{Mechanism: Curve, PublicKey: cp[:], SecretKey: cs[:], ServerKey: sp[:]}
	}
	pingPong(b, NewContext, false, 100, rsec, dsec)
}
