package mech

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Interop with libzmq 4.3 through pyzmq: a small ZMTP driver (greeting and
// framing from frames_test.go) runs our handshakes against a pyzmq DEALER or
// ROUTER, then exchanges messages both ways.

// python is Debian's interpreter, where python3-zmq installs; a python3 on
// PATH (pyenv, virtualenv) often lacks pyzmq.
const python = "/usr/bin/python3"

var pyOnce struct {
	sync.Once
	err error
	out string
}

// requirePyzmq skips without pyzmq, except under CI (env CI set) where a
// skip would hide a broken setup: there it fails.
func requirePyzmq(t *testing.T) {
	t.Helper()
	pyOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, python, "-c", "import zmq; print(zmq.zmq_version())").CombinedOutput()
		pyOnce.out, pyOnce.err = strings.TrimSpace(string(out)), err
	})
	if pyOnce.err != nil {
		msg := fmt.Sprintf("interop needs %s with pyzmq (apt-get install python3-zmq): %v %s", python, pyOnce.err, pyOnce.out)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

type pyPeer struct {
	t     *testing.T
	lines chan string
	all   *strings.Builder
	mu    sync.Mutex
}

// startPy runs testdata/pypeer.py with cfg; it is killed and reaped at cleanup.
func startPy(t *testing.T, cfg map[string]any) *pyPeer {
	t.Helper()
	requirePyzmq(t)
	js, _ := json.Marshal(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, python, "testdata/pypeer.py", string(js))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &pyPeer{t: t, lines: make(chan string, 100), all: &strings.Builder{}}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.all.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-readDone
		cmd.Wait()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("python stdout:\n%s\npython stderr:\n%s", p.all.String(), stderr.String())
			p.mu.Unlock()
		}
	})
	return p
}

// expect returns the first line starting with prefix; other lines are skipped.
func (p *pyPeer) expect(prefix string) string {
	p.t.Helper()
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("python exited before %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return strings.TrimSpace(strings.TrimPrefix(l, prefix))
			}
		case <-timer.C:
			p.t.Fatalf("no %q from python", prefix)
		}
	}
}

// greeting builds a 23/ZMTP greeting announcing ZMTP 3.1.
func greeting(mech string, asServer bool) []byte {
	g := make([]byte, 64)
	g[0], g[9] = 0xff, 0x7f
	g[10], g[11] = 3, 1
	copy(g[12:32], mech)
	if asServer {
		g[32] = 1
	}
	return g
}

// exchangeGreeting sends ours before reading the peer's and checks the
// mechanism matches (23/ZMTP: otherwise close).
func exchangeGreeting(t *testing.T, c net.Conn, mech string, asServer bool) {
	t.Helper()
	if _, err := c.Write(greeting(mech, asServer)); err != nil {
		t.Fatal(err)
	}
	var g [64]byte
	if _, err := io.ReadFull(c, g[:]); err != nil {
		t.Fatal(err)
	}
	if g[0] != 0xff || g[9]&1 != 1 || g[10] < 3 {
		t.Fatalf("peer greeting %x", g[:12])
	}
	if got := strings.TrimRight(string(g[12:32]), "\x00"); got != mech {
		t.Fatalf("peer mechanism %q", got)
	}
}

func pyKeys(t *testing.T) keys {
	p := startPy(t, map[string]any{"mode": "keygen"})
	f := strings.Fields(p.expect("KEYS"))
	pub, _ := hex.DecodeString(f[0])
	sec, _ := hex.DecodeString(f[1])
	if len(pub) != 32 || len(sec) != 32 {
		t.Fatalf("pyzmq keys %q", f)
	}
	// zmq_curve_keypair and CurvePublic must agree.
	if derived, err := CurvePublic(sec); err != nil || !bytes.Equal(derived, pub) {
		t.Fatalf("CurvePublic(pyzmq secret) = %x, pyzmq public %x", derived, pub)
	}
	return keys{pub, sec}
}

var interopSizes = []int{0, 1, 255, 256, 1000, 64 << 10}

// goClient dials a pyzmq ROUTER and exchanges messages of every size.
func goClient(t *testing.T, cfg *Config, py map[string]any, wantErr error) (Result, error) {
	py["role"], py["type"], py["count"] = "bind", "ROUTER", len(interopSizes)+1
	p := startPy(t, py)
	port := p.expect("PORT")
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	exchangeGreeting(t, conn, cfg.Mechanism, false)
	f := newFrameConn(conn)
	res, err := Handshake(f, cfg)
	if err != nil {
		if wantErr == nil || !errors.Is(err, wantErr) {
			t.Fatalf("handshake: %v (want %v)", err, wantErr)
		}
		return res, err
	}
	if wantErr != nil {
		t.Fatalf("handshake succeeded, want %v", wantErr)
	}
	if v, _ := res.Peer.Get(PropSocketType); string(v) != "ROUTER" {
		t.Fatalf("libzmq's Socket-Type %q (peer metadata %q)", v, res.Peer)
	}
	msgs := [][][]byte{{[]byte("multi"), {}, bytes.Repeat([]byte("m"), 300)}}
	for i, n := range interopSizes {
		msgs = append(msgs, [][]byte{bytes.Repeat([]byte{byte('a' + i)}, n)})
	}
	for i, m := range msgs {
		if res.Cipher != nil {
			err = f.writeSealed(res.Cipher, m)
		} else {
			err = f.writeMessage(m)
		}
		if err != nil {
			t.Fatal(err)
		}
		var got [][]byte
		if res.Cipher != nil {
			got, err = f.readSealed(res.Cipher)
		} else {
			got, err = f.readMessage()
		}
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		want := append([][]byte{[]byte("echo")}, m...)
		if len(got) != len(want) {
			t.Fatalf("message %d: %d parts back, want %d", i, len(got), len(want))
		}
		for j := range want {
			if !bytes.Equal(got[j], want[j]) {
				t.Fatalf("message %d part %d: %d bytes back, want %d", i, j, len(got[j]), len(want[j]))
			}
		}
		var props map[string]string
		if err := json.Unmarshal([]byte(p.expect("PROPS")), &props); err != nil {
			t.Fatal(err)
		}
		if props["Socket-Type"] != "DEALER" || props["routing_id"] != hex.EncodeToString([]byte("go-dealer")) {
			t.Fatalf("libzmq saw our metadata as %v", props)
		}
		if u, ok := py["want_user"]; ok && props["User-Id"] != u {
			t.Fatalf("libzmq's User-Id %q, want %q", props["User-Id"], u)
		}
	}
	p.expect("OK")
	return res, nil
}

// goServer accepts one pyzmq DEALER and echoes what it sends.
func goServer(t *testing.T, cfg *Config, py map[string]any) (*pyPeer, Result, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	py["role"], py["type"], py["endpoint"] = "connect", "DEALER", "tcp://"+ln.Addr().String()
	py["sizes"] = interopSizes
	py["routing_id"] = "py-dealer"
	p := startPy(t, py)
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(20 * time.Second))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	exchangeGreeting(t, conn, cfg.Mechanism, cfg.Mechanism != Null)
	host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
	cfg.PeerAddress = host
	f := newFrameConn(conn)
	res, err := Handshake(f, cfg)
	if ferr := f.flush(); err == nil && ferr != nil {
		t.Fatal(ferr)
	}
	if err != nil {
		return p, res, err
	}
	if v, _ := res.Peer.Get("socket-type"); string(v) != "DEALER" {
		t.Fatalf("peer Socket-Type %q", v)
	}
	if v, _ := res.Peer.Get("identity"); string(v) != "py-dealer" {
		t.Fatalf("peer Identity %q", v)
	}
	for i := 0; i < len(interopSizes)+1; i++ {
		var m [][]byte
		if res.Cipher != nil {
			m, err = f.readSealed(res.Cipher)
		} else {
			m, err = f.readMessage()
		}
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		reply := append([][]byte{[]byte("echo")}, m...)
		if res.Cipher != nil {
			err = f.writeSealed(res.Cipher, reply)
		} else {
			err = f.writeMessage(reply)
		}
		if err != nil {
			t.Fatal(err)
		}
		var props map[string]string
		if err := json.Unmarshal([]byte(p.expect("PROPS")), &props); err != nil {
			t.Fatal(err)
		}
		if props["Socket-Type"] != "ROUTER" || props["X-Test"] != "yes" {
			t.Fatalf("libzmq saw our metadata as %v", props)
		}
	}
	p.expect("OK")
	return p, res, nil
}

func dealerLocal() Metadata { return localMD("DEALER", "go-dealer") }
func routerLocal() Metadata {
	return Metadata{{PropSocketType, []byte("ROUTER")}, {PropIdentity, nil}, {"X-Test", []byte("yes")}}
}

func TestInteropNull(t *testing.T) {
	t.Run("client", func(t *testing.T) {
		goClient(t, &Config{Mechanism: Null, Local: dealerLocal()}, map[string]any{"mech": "NULL"}, nil)
	})
	t.Run("client-refused", func(t *testing.T) {
		_, err := goClient(t, &Config{Mechanism: Null, Local: dealerLocal()},
			map[string]any{"mech": "NULL", "zap": map[string]any{"deny": []string{"127.0.0.1"}}}, ErrPeerError)
		var pe *PeerError
		if !errors.As(err, &pe) || pe.Reason != "400" {
			t.Fatalf("%v", err)
		}
	})
	t.Run("server", func(t *testing.T) {
		goServer(t, &Config{Mechanism: Null, Server: true, Local: routerLocal()}, map[string]any{"mech": "NULL"})
	})
	t.Run("server-refuses", func(t *testing.T) {
		p, _, err := goServer(t, &Config{Mechanism: Null, Server: true, Local: routerLocal(), Domain: "global", Auth: deny(400)},
			map[string]any{"mech": "NULL", "expect_failure": true})
		if !errors.Is(err, ErrRefused) {
			t.Fatal(err)
		}
		if ev := p.expect("EVENT"); ev != "HANDSHAKE_FAILED_AUTH 400" {
			t.Fatalf("libzmq event %q", ev)
		}
	})
}

func TestInteropPlain(t *testing.T) {
	zap := map[string]any{"passwords": map[string]string{"admin": "secret"}}
	t.Run("client", func(t *testing.T) {
		goClient(t, &Config{Mechanism: Plain, Username: "admin", Password: "secret", Local: dealerLocal()},
			map[string]any{"mech": "PLAIN", "server": true, "zap": zap, "want_user": "admin"}, nil)
	})
	t.Run("client-refused", func(t *testing.T) {
		_, err := goClient(t, &Config{Mechanism: Plain, Username: "admin", Password: "wrong", Local: dealerLocal()},
			map[string]any{"mech": "PLAIN", "server": true, "zap": zap}, ErrPeerError)
		var pe *PeerError
		if !errors.As(err, &pe) || pe.Reason != "400" || pe.Status() != 400 {
			t.Fatalf("%v", err)
		}
	})
	t.Run("server", func(t *testing.T) {
		auth := &authFunc{fn: func(r *AuthRequest) AuthResult {
			if string(r.Credentials[0]) == "admin" && string(r.Credentials[1]) == "secret" && r.Address == "127.0.0.1" {
				return AuthResult{Status: 200, UserID: "admin"}
			}
			return AuthResult{Status: 400}
		}}
		_, res, err := goServer(t, &Config{Mechanism: Plain, Server: true, Local: routerLocal(), Auth: auth},
			map[string]any{"mech": "PLAIN", "user": "admin", "password": "secret"})
		if err != nil || res.UserID != "admin" {
			t.Fatalf("%v, UserID %q", err, res.UserID)
		}
	})
	t.Run("server-refuses", func(t *testing.T) {
		p, _, err := goServer(t, &Config{Mechanism: Plain, Server: true, Local: routerLocal(), Auth: deny(400)},
			map[string]any{"mech": "PLAIN", "user": "admin", "password": "bad", "expect_failure": true})
		if !errors.Is(err, ErrRefused) {
			t.Fatal(err)
		}
		if ev := p.expect("EVENT"); ev != "HANDSHAKE_FAILED_AUTH 400" {
			t.Fatalf("libzmq event %q", ev)
		}
	})
}

func TestInteropCurve(t *testing.T) {
	for _, source := range []string{"pyzmq", "go"} {
		t.Run(source, func(t *testing.T) {
			var server, client keys
			if source == "pyzmq" {
				server, client = pyKeys(t), pyKeys(t)
			} else {
				server, client = mustKeys(t), mustKeys(t)
			}
			ccfg := func() *Config {
				return &Config{Mechanism: Curve, PublicKey: client.pub, SecretKey: client.sec, ServerKey: server.pub, Local: dealerLocal()}
			}
			pyServer := map[string]any{"mech": "CURVE", "server": true, "public": hex.EncodeToString(server.pub), "secret": hex.EncodeToString(server.sec)}
			t.Run("client", func(t *testing.T) {
				goClient(t, ccfg(), pyServer, nil)
			})
			t.Run("client-zap", func(t *testing.T) {
				py := map[string]any{}
				for k, v := range pyServer {
					py[k] = v
				}
				py["zap"] = map[string]any{}
				goClient(t, ccfg(), py, nil)
			})
			t.Run("client-refused", func(t *testing.T) {
				py := map[string]any{}
				for k, v := range pyServer {
					py[k] = v
				}
				py["zap"] = map[string]any{"deny": []string{"127.0.0.1"}}
				_, err := goClient(t, ccfg(), py, ErrPeerError)
				var pe *PeerError
				if !errors.As(err, &pe) || pe.Reason != "400" {
					t.Fatalf("%v", err)
				}
			})
			t.Run("client-wrong-server-key", func(t *testing.T) {
				cfg := ccfg()
				cfg.ServerKey = mustKeys(t).pub
				// libzmq cannot open HELLO and closes without a word.
				goClient(t, cfg, pyServer, io.EOF)
			})
			pyClient := map[string]any{"mech": "CURVE", "server_key": hex.EncodeToString(server.pub),
				"public": hex.EncodeToString(client.pub), "secret": hex.EncodeToString(client.sec)}
			t.Run("server", func(t *testing.T) {
				auth := allow("curve-user")
				_, res, err := goServer(t, &Config{Mechanism: Curve, Server: true, PublicKey: server.pub, SecretKey: server.sec,
					Local: routerLocal(), Auth: auth}, pyClient)
				if err != nil || res.UserID != "curve-user" {
					t.Fatalf("%v, UserID %q", err, res.UserID)
				}
				if req := auth.last.Load(); !bytes.Equal(req.Credentials[0], client.pub) {
					t.Fatalf("client key %x, want %x", req.Credentials[0], client.pub)
				}
			})
			t.Run("server-refuses", func(t *testing.T) {
				py := map[string]any{"expect_failure": true}
				for k, v := range pyClient {
					py[k] = v
				}
				p, _, err := goServer(t, &Config{Mechanism: Curve, Server: true, PublicKey: server.pub, SecretKey: server.sec,
					Local: routerLocal(), Auth: deny(500)}, py)
				if !errors.Is(err, ErrRefused) {
					t.Fatal(err)
				}
				if ev := p.expect("EVENT"); ev != "HANDSHAKE_FAILED_AUTH 500" {
					t.Fatalf("libzmq event %q", ev)
				}
			})
		})
	}
}
