package mech

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

type outcome struct {
	res Result
	err error
}

// runPair runs both handshakes over a net.Pipe. A side that fails closes
// its end, as the engine would, so the other side never hangs. After a
// success the returned frame conns carry the session.
func runPair(t *testing.T, ccfg, scfg *Config, wrapC, wrapS func(Conn) Conn) (c, s outcome, cf, sf *frameConn) {
	t.Helper()
	cf, sf = pipePair(t)
	var wg sync.WaitGroup
	run := func(f *frameConn, cfg *Config, wrap func(Conn) Conn, out *outcome) {
		defer wg.Done()
		var conn Conn = f
		if wrap != nil {
			conn = wrap(f)
		}
		out.res, out.err = Handshake(conn, cfg)
		if out.err != nil {
			f.flush() // an ERROR, if any, must reach the peer
			f.c.Close()
			return
		}
		if err := f.flush(); err != nil {
			out.err = err
		}
	}
	wg.Add(2)
	go run(cf, ccfg, wrapC, &c)
	go run(sf, scfg, wrapS, &s)
	wg.Wait()
	return c, s, cf, sf
}

// authFunc adapts a function to Authenticator and counts calls.
type authFunc struct {
	calls atomic.Int32
	last  atomic.Pointer[AuthRequest]
	fn    func(*AuthRequest) AuthResult
}

func (a *authFunc) Authenticate(r *AuthRequest) AuthResult {
	a.calls.Add(1)
	a.last.Store(r)
	return a.fn(r)
}

func allow(userID string) *authFunc {
	return &authFunc{fn: func(*AuthRequest) AuthResult {
		return AuthResult{Status: 200, Text: "OK", UserID: userID, Metadata: Metadata{{"X-Role", []byte("ops")}}}
	}}
}

func deny(status int) *authFunc {
	return &authFunc{fn: func(*AuthRequest) AuthResult { return AuthResult{Status: status, Text: "no way"} }}
}

func localMD(sockType, id string) Metadata {
	return Metadata{{PropSocketType, []byte(sockType)}, {PropIdentity, []byte(id)}}
}

type keys struct{ pub, sec []byte }

func mustKeys(t testing.TB) keys {
	t.Helper()
	p, s, err := CurveKeypair()
	if err != nil {
		t.Fatal(err)
	}
	return keys{p, s}
}

func configs(t *testing.T, mech string) (client, server *Config) {
	t.Helper()
	client = &Config{Mechanism: mech, Local: localMD("DEALER", "worker-1")}
	server = &Config{Mechanism: mech, Server: true, Local: localMD("ROUTER", ""), PeerAddress: "127.0.0.1", Domain: "global"}
	switch mech {
	case Plain:
		client.Username, client.Password = "admin", "secret"
	case Curve:
		sk, ck := mustKeys(t), mustKeys(t)
		server.PublicKey, server.SecretKey = sk.pub, sk.sec
		client.PublicKey, client.SecretKey, client.ServerKey = ck.pub, ck.sec, sk.pub
	}
	return client, server
}

func TestHandshakeBothSides(t *testing.T) {
	for _, mech := range []string{Null, Plain, Curve} {
		for _, withAuth := range []bool{false, true} {
			if mech == Plain && !withAuth {
				continue // TestPlainServerWithoutAuthenticator
			}
			t.Run(fmt.Sprintf("%s/auth=%v", mech, withAuth), func(t *testing.T) {
				ccfg, scfg := configs(t, mech)
				var auth *authFunc
				if withAuth {
					auth = allow("alice")
					scfg.Auth = auth
				}
				c, s, cf, sf := runPair(t, ccfg, scfg, nil, nil)
				if c.err != nil || s.err != nil {
					t.Fatalf("client: %v, server: %v", c.err, s.err)
				}
				if v, _ := s.res.Peer.Get("socket-type"); string(v) != "DEALER" {
					t.Errorf("server saw Socket-Type %q", v)
				}
				if v, ok := s.res.Peer.Get("IDENTITY"); !ok || string(v) != "worker-1" {
					t.Errorf("server saw Identity %q %v", v, ok)
				}
				if v, _ := c.res.Peer.Get(PropSocketType); string(v) != "ROUTER" {
					t.Errorf("client saw Socket-Type %q", v)
				}
				if c.res.UserID != "" {
					t.Errorf("client UserID %q", c.res.UserID)
				}
				if withAuth {
					if n := auth.calls.Load(); n != 1 {
						t.Fatalf("authenticator called %d times", n)
					}
					req := auth.last.Load()
					if req.Mechanism != mech || req.Domain != "global" || req.Address != "127.0.0.1" {
						t.Errorf("request %+v", req)
					}
					switch mech {
					case Plain:
						if len(req.Credentials) != 2 || string(req.Credentials[0]) != "admin" || string(req.Credentials[1]) != "secret" {
							t.Errorf("PLAIN credentials %q", req.Credentials)
						}
					case Curve:
						if len(req.Credentials) != 1 || !bytes.Equal(req.Credentials[0], ccfg.PublicKey) {
							t.Errorf("CURVE credentials %x, want client key %x", req.Credentials, ccfg.PublicKey)
						}
					case Null:
						if len(req.Credentials) != 0 {
							t.Errorf("NULL credentials %q", req.Credentials)
						}
					}
					if s.res.UserID != "alice" {
						t.Errorf("UserID %q", s.res.UserID)
					}
					if v, _ := s.res.Peer.Get("user-id"); string(v) != "alice" {
						t.Errorf("User-Id property %q", v)
					}
					if v, _ := s.res.Peer.Get("x-role"); string(v) != "ops" {
						t.Errorf("auth metadata X-Role %q", v)
					}
				} else if s.res.UserID != "" {
					t.Errorf("UserID %q without authenticator", s.res.UserID)
				}
				if (mech == Curve) != (c.res.Cipher != nil) || (mech == Curve) != (s.res.Cipher != nil) {
					t.Fatalf("cipher presence: client %v server %v", c.res.Cipher, s.res.Cipher)
				}
				if mech == Curve {
					exchange(t, cf, sf, c.res.Cipher, s.res.Cipher)
				}
			})
		}
	}
}

// exchange sends messages of several sizes both ways through the ciphers.
func exchange(t *testing.T, cf, sf *frameConn, cc, sc Cipher) {
	t.Helper()
	msgs := [][][]byte{
		{[]byte("hello")},
		{{}, bytes.Repeat([]byte("a"), 255), bytes.Repeat([]byte("b"), 256)},
		{bytes.Repeat([]byte("c"), 64<<10)},
		{bytes.Repeat([]byte("d"), maxScratch+1)},
	}
	errc := make(chan error, 1)
	go func() {
		for _, m := range msgs {
			got, err := sf.readSealed(sc)
			if err != nil {
				errc <- fmt.Errorf("server read: %w", err)
				return
			}
			if err := sf.writeSealed(sc, got); err != nil {
				errc <- fmt.Errorf("server write: %w", err)
				return
			}
			_ = m
		}
		errc <- nil
	}()
	for _, m := range msgs {
		if err := cf.writeSealed(cc, m); err != nil {
			t.Fatalf("client write: %v", err)
		}
		got, err := cf.readSealed(cc)
		if err != nil {
			t.Fatalf("client read: %v", err)
		}
		if len(got) != len(m) {
			t.Fatalf("echo of %d parts has %d", len(m), len(got))
		}
		for i := range m {
			if !bytes.Equal(got[i], m[i]) {
				t.Fatalf("part %d: %d bytes back, sent %d", i, len(got[i]), len(m[i]))
			}
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestRefusals(t *testing.T) {
	for _, mech := range []string{Null, Plain, Curve} {
		for _, status := range []int{300, 400, 500} {
			t.Run(fmt.Sprintf("%s/%d", mech, status), func(t *testing.T) {
				ccfg, scfg := configs(t, mech)
				auth := deny(status)
				scfg.Auth = auth
				c, s, _, _ := runPair(t, ccfg, scfg, nil, nil)
				var refused *RefusedError
				if !errors.As(s.err, &refused) || !errors.Is(s.err, ErrRefused) || refused.Status != status || refused.Text != "no way" {
					t.Fatalf("server error %v", s.err)
				}
				if status == 300 {
					// 27/ZAP temporary failure: no ERROR, the client sees the close.
					if refused.SentError || !errors.Is(c.err, io.EOF) {
						t.Fatalf("300: SentError %v, client error %v", refused.SentError, c.err)
					}
					return
				}
				var pe *PeerError
				if !errors.As(c.err, &pe) || !errors.Is(c.err, ErrPeerError) {
					t.Fatalf("client error %v", c.err)
				}
				if pe.Reason != fmt.Sprint(status) || pe.Status() != status || !refused.SentError {
					t.Fatalf("reason %q status %d sent %v", pe.Reason, pe.Status(), refused.SentError)
				}
			})
		}
	}
}

func TestNullAuthOnlyWithDomain(t *testing.T) {
	ccfg, scfg := configs(t, Null)
	scfg.Domain = ""
	auth := deny(400)
	scfg.Auth = auth
	c, s, _, _ := runPair(t, ccfg, scfg, nil, nil)
	if c.err != nil || s.err != nil || auth.calls.Load() != 0 {
		t.Fatalf("client %v server %v calls %d", c.err, s.err, auth.calls.Load())
	}
}

func TestCurveAuthWithoutDomain(t *testing.T) {
	ccfg, scfg := configs(t, Curve)
	scfg.Domain = ""
	auth := deny(400)
	scfg.Auth = auth
	_, s, _, _ := runPair(t, ccfg, scfg, nil, nil)
	if !errors.Is(s.err, ErrRefused) || auth.calls.Load() != 1 {
		t.Fatalf("server %v calls %d", s.err, auth.calls.Load())
	}
}

func TestPlainServerWithoutAuthenticator(t *testing.T) {
	ccfg, scfg := configs(t, Plain)
	c, s, _, _ := runPair(t, ccfg, scfg, nil, nil)
	if !errors.Is(s.err, ErrNoAuthenticator) || !errors.Is(c.err, io.EOF) {
		t.Fatalf("client %v server %v", c.err, s.err)
	}
}

func TestCurveWrongServerKey(t *testing.T) {
	ccfg, scfg := configs(t, Curve)
	ccfg.ServerKey = mustKeys(t).pub
	c, s, _, _ := runPair(t, ccfg, scfg, nil, nil)
	if !errors.Is(s.err, ErrCrypto) || !errors.Is(c.err, io.EOF) {
		t.Fatalf("client %v server %v", c.err, s.err)
	}
}

func TestCurveServerPublicKeyMismatch(t *testing.T) {
	ccfg, scfg := configs(t, Curve)
	scfg.PublicKey = mustKeys(t).pub // not the public key of SecretKey: the vouch names S
	_, s, _, _ := runPair(t, ccfg, scfg, nil, nil)
	if !errors.Is(s.err, ErrCrypto) {
		t.Fatalf("server %v", s.err)
	}
	ccfg, scfg = configs(t, Curve)
	scfg.PublicKey = nil // derived from SecretKey
	c, s, _, _ := runPair(t, ccfg, scfg, nil, nil)
	if c.err != nil || s.err != nil {
		t.Fatalf("derived key: client %v server %v", c.err, s.err)
	}
}

// TestTamperedHandshake alters one byte or the size of each handshake
// command in flight; every change must fail the receiving side with a
// typed error and never succeed.
func TestTamperedHandshake(t *testing.T) {
	type tc struct {
		mech, cmd string
		toServer  bool
		edit      func([]byte) []byte
		want      error
	}
	flip := func(i int) func([]byte) []byte {
		return func(b []byte) []byte {
			b = append([]byte(nil), b...)
			b[(i+len(b))%len(b)] ^= 0x40
			return b
		}
	}
	trunc := func(b []byte) []byte { return b[:len(b)-1] }
	grow := func(b []byte) []byte { return append(append([]byte(nil), b...), 0) }
	cases := []tc{
		{Curve, "HELLO", true, flip(-1), ErrCrypto},
		{Curve, "HELLO", true, flip(helloClientKey), ErrCrypto},
		{Curve, "HELLO", true, flip(0), ErrMalformed},
		{Curve, "HELLO", true, trunc, ErrMalformed},
		{Curve, "HELLO", true, grow, ErrMalformed},
		{Curve, "WELCOME", false, flip(3), ErrCrypto},
		{Curve, "WELCOME", false, flip(-1), ErrCrypto},
		{Curve, "WELCOME", false, trunc, ErrMalformed},
		{Curve, "WELCOME", false, grow, ErrMalformed},
		{Curve, "INITIATE", true, flip(5), ErrCrypto},          // cookie nonce
		{Curve, "INITIATE", true, flip(40), ErrCrypto},         // cookie box
		{Curve, "INITIATE", true, flip(-1), ErrCrypto},         // initiate box
		{Curve, "INITIATE", true, flip(cookieSize), ErrCrypto}, // nonce raised: still increasing, but sealed under the old one
		{Curve, "INITIATE", true, func(b []byte) []byte { return b[:initiateMin-1] }, ErrMalformed},
		{Curve, "READY", false, flip(-1), ErrCrypto},
		{Curve, "READY", false, flip(7), ErrCrypto},
		{Curve, "READY", false, func(b []byte) []byte { return b[:readyMinData-1] }, ErrMalformed},
		{Plain, "HELLO", true, trunc, ErrMalformed},
		{Plain, "HELLO", true, grow, ErrMalformed},
		{Plain, "HELLO", true, func([]byte) []byte { return nil }, ErrMalformed},
		{Plain, "HELLO", true, func([]byte) []byte { return []byte{9, 'a'} }, ErrMalformed},
		{Plain, "WELCOME", false, grow, ErrMalformed},
		{Plain, "INITIATE", true, trunc, ErrMalformed},
		{Plain, "READY", false, grow, ErrMalformed},
		{Null, "READY", true, trunc, ErrMalformed},
		{Null, "READY", false, grow, ErrMalformed},
	}
	for _, k := range cases {
		t.Run(k.mech+"/"+k.cmd, func(t *testing.T) {
			ccfg, scfg := configs(t, k.mech)
			scfg.Auth = allow("u")
			hook := func(c Conn) Conn {
				return &hookConn{Conn: c, onWrite: func(name string, data []byte) (string, []byte) {
					if name == k.cmd {
						return name, k.edit(data)
					}
					return name, data
				}}
			}
			var wc, ws func(Conn) Conn
			if k.toServer {
				wc = hook
			} else {
				ws = hook
			}
			c, s, _, _ := runPair(t, ccfg, scfg, wc, ws)
			victim := c.err
			if k.toServer {
				victim = s.err
			}
			if !errors.Is(victim, k.want) {
				t.Fatalf("got %v, want %v (client %v, server %v)", victim, k.want, c.err, s.err)
			}
		})
	}
}

// TestCurveNonceOrderInHandshake: an INITIATE whose short nonce does not
// exceed HELLO's is refused although correctly sealed (26/CurveZMQ: the
// server SHALL verify incrementing short nonces).
func TestCurveNonceOrderInHandshake(t *testing.T) {
	for _, n := range [][2]uint64{{5, 5}, {5, 4}, {5, 6}} {
		ccfg, scfg := configs(t, Curve)
		cf, sf := pipePair(t)
		done := make(chan error, 1)
		go func() {
			_, err := Handshake(sf, scfg)
			sf.flush()
			sf.c.Close()
			done <- err
		}()
		_, cerr := curveClientNonces(cf, ccfg, n[0], n[1])
		serr := <-done
		if n[1] > n[0] {
			if cerr != nil || serr != nil {
				t.Errorf("nonces %v: client %v server %v", n, cerr, serr)
			}
		} else if !errors.Is(serr, ErrNonce) {
			t.Errorf("nonces %v: server %v", n, serr)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]*Config{
		"mechanism":   {Mechanism: "GSSAPI"},
		"plain-user":  {Mechanism: Plain, Username: strings.Repeat("u", 256)},
		"curve-keys":  {Mechanism: Curve, PublicKey: make([]byte, 31), SecretKey: make([]byte, 32), ServerKey: make([]byte, 32)},
		"curve-srv":   {Mechanism: Curve, Server: true, SecretKey: make([]byte, 33)},
		"local-empty": {Mechanism: Null, Local: Metadata{{"", nil}}},
		"local-long":  {Mechanism: Null, Local: Metadata{{strings.Repeat("n", 256), nil}}},
	}
	for name, cfg := range cases {
		conn := &scriptConn{}
		_, err := Handshake(conn, cfg)
		want := ErrConfig
		if name == "mechanism" {
			want = ErrMechanism
		}
		if !errors.Is(err, want) || len(conn.written) != 0 {
			t.Errorf("%s: %v, wrote %d", name, err, len(conn.written))
		}
	}
	if _, err := Handshake(&scriptConn{}, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("nil config: %v", err)
	}
}

func TestInvalidAuthStatus(t *testing.T) {
	ccfg, scfg := configs(t, Plain)
	scfg.Auth = deny(401)
	c, s, _, _ := runPair(t, ccfg, scfg, nil, nil)
	if !errors.Is(s.err, ErrAuthenticator) || !errors.Is(c.err, io.EOF) {
		t.Fatalf("client %v server %v", c.err, s.err)
	}
}

func TestPeerErrorParsing(t *testing.T) {
	for _, k := range []struct {
		data   []byte
		reason string
		ok     bool
	}{
		{[]byte{0}, "", true},
		{[]byte{3, '4', '0', '0'}, "400", true},
		{[]byte{3, '4', '0', '0', 'x'}, "400", true}, // libzmq tolerates trailing bytes
		{nil, "", false},
		{[]byte{4, '4', '0', '0'}, "", false},
	} {
		for _, mech := range []string{Null, Plain, Curve} {
			ccfg, _ := configs(t, mech)
			conn := &scriptConn{in: []command{{"ERROR", k.data}}}
			_, err := Handshake(conn, ccfg)
			var pe *PeerError
			if k.ok != errors.As(err, &pe) || (k.ok && pe.Reason != k.reason) || (!k.ok && !errors.Is(err, ErrMalformed)) {
				t.Errorf("%s %q: %v", mech, k.data, err)
			}
		}
	}
}

func TestUnexpectedCommand(t *testing.T) {
	for _, mech := range []string{Null, Plain, Curve} {
		for _, server := range []bool{false, true} {
			ccfg, scfg := configs(t, mech)
			cfg := ccfg
			if server {
				cfg = scfg
				cfg.Auth = allow("")
			}
			conn := &scriptConn{in: []command{{"PING", []byte{0, 1}}}}
			if _, err := Handshake(conn, cfg); !errors.Is(err, ErrUnexpected) {
				t.Errorf("%s server=%v: %v", mech, server, err)
			}
		}
	}
}

func TestParseCommandAndPlainErrorForms(t *testing.T) {
	for _, k := range []struct {
		body       string
		name, data string
		ok         bool
	}{
		{"\x05READY\x00", "READY", "\x00", true},
		{"\x05ERROR\x03400", "ERROR", "\x03400", true},
		{"\x5eRROR\x03400", "ERROR", "\x03400", true}, // libzmq 4.3 PLAIN
		{"\x07WELCOME", "WELCOME", "", true},
		{"", "", "", false},
		{"\x00", "", "", false},
		{"\x00abc", "", "", false},
		{"\x09SHORT", "", "", false},
	} {
		name, data, err := ParseCommand([]byte(k.body))
		if k.ok != (err == nil) || name != k.name || string(data) != k.data || (!k.ok && !errors.Is(err, ErrMalformed)) {
			t.Errorf("%q: %q %q %v", k.body, name, data, err)
		}
	}
	// Without RawCommandWriter a PLAIN refusal uses the 23/ZMTP form.
	_, scfg := configs(t, Plain)
	scfg.Auth = deny(400)
	conn := &scriptConn{in: []command{{"HELLO", []byte("\x01u\x01p")}}}
	if _, err := Handshake(conn, scfg); !errors.Is(err, ErrRefused) || len(conn.written) != 1 ||
		conn.written[0].name != "ERROR" || string(conn.written[0].data) != "\x03400" {
		t.Fatalf("%v %q", err, conn.written)
	}
}
