package zmtp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/zmtp/mech"
)

// libzmq is the oracle (issue 11, "Tests"): the engine against libzmq 4.3
// peers, through pyzmq (testdata/peer.py) and a C program compiled here
// (testdata/cpeer.c, gcc -lzmq; tests only, the product has no cgo). The
// peers exit on their own (alarm) and are killed at cleanup if still there.

// proc is a peer process whose stdout is read line by line.
type proc struct {
	t     *testing.T
	lines chan string
	stdin io.WriteCloser
	mu    sync.Mutex
	log   strings.Builder
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, name, args...)
	p := &proc{t: t, lines: make(chan string, 1000)}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.log.Write(b)
	})
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default: // Nobody listens for that many lines.
			}
		}
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		// Let it exit by itself for a while, then kill it.
		select {
		case <-readDone:
		case <-time.After(5 * time.Second):
		}
		cancel()
		<-readDone
		cmd.Wait()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s output:\n%s", filepath.Base(name), p.log.String())
			p.mu.Unlock()
		}
	})
	return p
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// expect returns the rest of the first line starting with prefix; an ERR
// line or the end of the output fails the test.
func (p *proc) expect(prefix string) string {
	p.t.Helper()
	timer := time.NewTimer(25 * time.Second)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("peer exited before %q", prefix)
			}
			if strings.HasPrefix(l, "ERR") {
				p.t.Fatalf("peer: %s", l)
			}
			if strings.HasPrefix(l, prefix) {
				return strings.TrimSpace(strings.TrimPrefix(l, prefix))
			}
		case <-timer.C:
			p.t.Fatalf("no %q from the peer", prefix)
		}
	}
}

var pyCheck struct {
	sync.Once
	err error
}

// pyPeer runs testdata/peer.py with cfg.
func pyPeer(t *testing.T, cfg map[string]any) *proc {
	t.Helper()
	pyCheck.Do(func() {
		out, err := exec.Command(python, "-c", "import zmq").CombinedOutput()
		if err != nil {
			pyCheck.err = fmt.Errorf("%v: %s", err, out)
		}
	})
	if pyCheck.err != nil {
		t.Fatalf("interop tests need %s with pyzmq (apt-get install python3-zmq): %v", python, pyCheck.err)
	}
	js, _ := json.Marshal(cfg)
	return startProc(t, python, "testdata/peer.py", string(js))
}

// cPeer compiles testdata/cpeer.c against libzmq into t.TempDir() and runs
// it with args.
func cPeer(t *testing.T, args ...string) *proc {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cpeer")
	if out, err := exec.Command("gcc", "-O1", "-Wall", "-o", bin, "testdata/cpeer.c", "-lzmq").CombinedOutput(); err != nil {
		t.Fatalf("building the C peer needs gcc and libzmq3-dev: %v\n%s", err, out)
	}
	return startProc(t, bin, args...)
}

// interopSizes are the frame sizes of issue 11: both sides of the
// short/long boundary, 64 KiB and 8 MiB.
var interopSizes = []int{0, 255, 256, 64 << 10, 8 << 20}

const interopFrames = 1000

// testMessages are what a peer in "client" mode sends: [size, body] for
// each size, then one message of n frames.
func testMessages(sizes []int, n int) [][][]byte {
	var out [][][]byte
	for _, s := range sizes {
		out = append(out, [][]byte{[]byte("size"), bytes.Repeat([]byte("x"), s)})
	}
	if n > 0 {
		m := make([][]byte, n)
		for i := range m {
			m[i] = []byte(fmt.Sprint(i))
		}
		out = append(out, m)
	}
	return out
}

// echoN receives n messages on s and sends each back unchanged (for a
// ROUTER the routing id leads, so it goes back to its sender). It returns
// them.
func echoN(t *testing.T, s *Socket, n int) [][][]byte {
	t.Helper()
	var got [][][]byte
	for i := 0; i < n; i++ {
		m := recvWait(t, s, 25*time.Second)
		got = append(got, m)
		if err := s.Send(m, false); err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
	}
	return got
}

// roundTrips sends each message on s (a DEALER) and checks the echo.
func roundTrips(t *testing.T, s *Socket, msgs [][][]byte) {
	t.Helper()
	for i, m := range msgs {
		if err := s.Send(m, false); err != nil {
			t.Fatal(err)
		}
		r := recvWait(t, s, 25*time.Second)
		if len(r) != len(m) {
			t.Fatalf("message %d: %d frames back, sent %d", i, len(r), len(m))
		}
		for j := range m {
			if !bytes.Equal(r[j], m[j]) {
				t.Fatalf("message %d frame %d: %d bytes back, sent %d", i, j, len(r[j]), len(m[j]))
			}
		}
	}
}

func TestInteropRouterWithLibzmqDealer(t *testing.T) {
	ctx := NewContext()
	r := newSock(t, ctx, Router, Options{RouterMandatory: true})
	ep := bind(t, r, "tcp://127.0.0.1:*")
	py := pyPeer(t, map[string]any{"type": "DEALER", "connect": ep, "identity": "py-dealer",
		"mode": "client", "sizes": interopSizes, "frames": interopFrames})
	want := testMessages(interopSizes, interopFrames)
	got := echoN(t, r, len(want))
	for i, m := range got {
		if string(m[0]) != "py-dealer" || len(m) != len(want[i])+1 || !bytes.Equal(m[len(m)-1], want[i][len(want[i])-1]) {
			t.Fatalf("message %d: id %q, %d frames", i, m[0], len(m))
		}
	}
	py.expect("OK")
}

func TestInteropRouterWithLibzmqReq(t *testing.T) {
	ctx := NewContext()
	r := newSock(t, ctx, Router, Options{RouterMandatory: true})
	ep := bind(t, r, "tcp://127.0.0.1:*")
	c := cPeer(t, "req", ep)
	want := testMessages(interopSizes, interopFrames)
	got := echoN(t, r, len(want))
	for i, m := range got {
		// A REQ puts an empty delimiter after the routing id; a generated
		// id is libzmq's form: a zero octet and four more.
		if len(m) != len(want[i])+2 || len(m[0]) != 5 || m[0][0] != 0 || len(m[1]) != 0 ||
			!bytes.Equal(m[len(m)-1], want[i][len(want[i])-1]) {
			t.Fatalf("message %d: id %x, %d frames", i, m[0], len(m))
		}
	}
	c.expect("OK")
}

func TestInteropDealerWithLibzmqRouter(t *testing.T) {
	want := testMessages(interopSizes, interopFrames)
	py := pyPeer(t, map[string]any{"type": "ROUTER", "bind": "tcp://127.0.0.1:*", "mode": "echo", "count": len(want)})
	ep := py.expect("ENDPOINT")
	ctx := NewContext()
	d := newSock(t, ctx, Dealer, Options{Identity: []byte("go-dealer")})
	if err := d.Connect(ep); err != nil {
		t.Fatal(err)
	}
	roundTrips(t, d, want)
	py.expect("OK")
}

// Unix sockets, by path and in the abstract namespace, both ways.
func TestInteropIPC(t *testing.T) {
	msgs := testMessages([]int{0, 256, 64 << 10}, 100)
	for _, ep := range []string{
		"ipc://" + filepath.Join(t.TempDir(), "r.sock"),
		fmt.Sprintf("ipc://@zmtp-interop-%d", time.Now().UnixNano()),
	} {
		t.Run("our ROUTER "+ep[:7], func(t *testing.T) {
			r := newSock(t, NewContext(), Router, Options{})
			bind(t, r, ep)
			py := pyPeer(t, map[string]any{"type": "DEALER", "connect": ep, "identity": "ipc",
				"mode": "client", "sizes": []int{0, 256, 64 << 10}, "frames": 100})
			if m := echoN(t, r, len(msgs)); string(m[0][0]) != "ipc" {
				t.Fatalf("id %q", m[0][0])
			}
			py.expect("OK")
		})
	}
	for _, ep := range []string{
		"ipc://" + filepath.Join(t.TempDir(), "d.sock"),
		fmt.Sprintf("ipc://@zmtp-interop-d-%d", time.Now().UnixNano()),
	} {
		t.Run("our DEALER "+ep[:7], func(t *testing.T) {
			py := pyPeer(t, map[string]any{"type": "ROUTER", "bind": ep, "mode": "echo", "count": len(msgs)})
			py.expect("ENDPOINT")
			d := newSock(t, NewContext(), Dealer, Options{})
			if err := d.Connect(ep); err != nil {
				t.Fatal(err)
			}
			roundTrips(t, d, msgs)
			py.expect("OK")
		})
	}
}

// pyKeypair is a CURVE key pair made by pyzmq's zmq.curve_keypair().
func pyKeypair(t *testing.T) (pub, sec []byte) {
	f := strings.Fields(pyPeer(t, map[string]any{"mode": "keygen"}).expect("KEYS"))
	pub, _ = hex.DecodeString(f[0])
	sec, _ = hex.DecodeString(f[1])
	if len(pub) != 32 || len(sec) != 32 {
		t.Fatalf("pyzmq keys %q", f)
	}
	return pub, sec
}

// authFunc adapts a function to mech.Authenticator.
type authFunc func(*mech.AuthRequest) mech.AuthResult

func (f authFunc) Authenticate(r *mech.AuthRequest) mech.AuthResult { return f(r) }

// curveKeys are the key pairs of one CURVE interop run.
type curveKeys struct {
	serverPub, serverSec, clientPub, clientSec []byte
}

// securityInterop runs mechanism mechName both ways against libzmq: our
// ROUTER as the server of a pyzmq DEALER, and our DEALER as the client of
// a pyzmq ROUTER; then the refusals both ways, counted in Stats.
func securityInterop(t *testing.T, mechName string, k curveKeys) {
	msgs := testMessages([]int{0, 256, 64 << 10}, 100)
	const user, pass = "alice", "secret"
	hx := hex.EncodeToString
	// Our server's Authenticator: PLAIN alice/secret, CURVE the client key.
	ourAuth := authFunc(func(r *mech.AuthRequest) mech.AuthResult {
		switch r.Mechanism {
		case mech.Plain:
			if string(r.Credentials[0]) == user && string(r.Credentials[1]) == pass {
				return mech.AuthResult{Status: 200, UserID: user}
			}
		case mech.Curve:
			if bytes.Equal(r.Credentials[0], k.clientPub) {
				return mech.AuthResult{Status: 200, UserID: "curve-client"}
			}
		}
		return mech.AuthResult{Status: 400, Text: "no"}
	})
	serverSec := &Security{Mechanism: mechName, Server: mechName != mech.Null, Auth: ourAuth}
	pyClient := map[string]any{"type": "DEALER", "mech": mechName, "identity": "c"}
	clientSec := &Security{Mechanism: mechName}
	pyServer := map[string]any{"type": "ROUTER", "bind": "tcp://127.0.0.1:*", "mech": mechName, "server": true}
	wantUID := ""
	switch mechName {
	case mech.Plain:
		serverSec.Domain = "test"
		pyClient["user"], pyClient["password"] = user, pass
		clientSec.Username, clientSec.Password = user, pass
		pyServer["zap"] = map[string]any{"passwords": map[string]string{user: pass}}
		wantUID = user
	case mech.Curve:
		serverSec.SecretKey = k.serverSec
		pyClient["server_key"], pyClient["public"], pyClient["secret"] = hx(k.serverPub), hx(k.clientPub), hx(k.clientSec)
		clientSec.PublicKey, clientSec.SecretKey, clientSec.ServerKey = k.clientPub, k.clientSec, k.serverPub
		pyServer["public"], pyServer["secret"] = hx(k.serverPub), hx(k.serverSec)
		pyServer["zap"] = map[string]any{}
		wantUID = "curve-client"
	}

	t.Run("our server", func(t *testing.T) {
		r := newSock(t, NewContext(), Router, Options{Security: serverSec})
		ep := bind(t, r, "tcp://127.0.0.1:*")
		cfg := clone(pyClient)
		cfg["connect"], cfg["mode"], cfg["sizes"], cfg["frames"] = ep, "client", []int{0, 256, 64 << 10}, 100
		py := pyPeer(t, cfg)
		for i := range msgs {
			m := recvWait(t, r, 25*time.Second)
			if r.UserID() != wantUID {
				t.Fatalf("message %d: User-Id %q, want %q", i, r.UserID(), wantUID)
			}
			if err := r.Send(m, false); err != nil {
				t.Fatal(err)
			}
		}
		py.expect("OK")
	})
	t.Run("our client", func(t *testing.T) {
		cfg := clone(pyServer)
		cfg["mode"], cfg["count"] = "echo", len(msgs)
		py := pyPeer(t, cfg)
		d := newSock(t, NewContext(), Dealer, Options{Security: clientSec})
		if err := d.Connect(py.expect("ENDPOINT")); err != nil {
			t.Fatal(err)
		}
		roundTrips(t, d, msgs)
		py.expect("OK")
	})
	if mechName == mech.Null {
		return
	}
	t.Run("our server refuses", func(t *testing.T) {
		r := newSock(t, NewContext(), Router, Options{Security: serverSec})
		ep := bind(t, r, "tcp://127.0.0.1:*")
		cfg := clone(pyClient)
		cfg["connect"], cfg["mode"] = ep, "refused"
		if mechName == mech.Plain {
			cfg["password"] = "wrong"
		} else {
			// A client key our Authenticator does not know.
			cfg["public"], cfg["secret"] = hx(k.serverPub), hx(k.serverSec)
		}
		py := pyPeer(t, cfg)
		if ev := py.expect("EVENT HANDSHAKE_FAILED_"); !strings.HasPrefix(ev, "AUTH 400") {
			t.Fatalf("libzmq client saw %q, want HANDSHAKE_FAILED_AUTH 400", ev)
		}
		testutil.Eventually(t, 10*time.Second, "refusal counted", func() bool { return r.Stats().AuthRefused >= 1 })
		if s := r.Stats(); s.Active != 0 {
			t.Fatalf("refused client connected: %+v", s)
		}
	})
	t.Run("libzmq server refuses", func(t *testing.T) {
		cfg := clone(pyServer)
		cfg["mode"] = "refused"
		if mechName == mech.Plain {
			cfg["zap"] = map[string]any{"passwords": map[string]string{user: "other"}}
		} else {
			// An allow-list directory without our client's certificate.
			cfg["zap"] = map[string]any{"allow": t.TempDir()}
		}
		py := pyPeer(t, cfg)
		d := newSock(t, NewContext(), Dealer, Options{Security: clientSec})
		if err := d.Connect(py.expect("ENDPOINT")); err != nil {
			t.Fatal(err)
		}
		py.expect("EVENT HANDSHAKE_FAILED_AUTH")
		testutil.Eventually(t, 10*time.Second, "refusal counted", func() bool { return d.Stats().PeerRefused >= 1 })
		if s := d.Stats(); s.Active != 0 || s.AuthRefused != 0 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func clone(m map[string]any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func TestInteropSecurity(t *testing.T) {
	t.Run("NULL", func(t *testing.T) { securityInterop(t, mech.Null, curveKeys{}) })
	t.Run("PLAIN", func(t *testing.T) { securityInterop(t, mech.Plain, curveKeys{}) })
	t.Run("CURVE pyzmq keys", func(t *testing.T) {
		var k curveKeys
		k.serverPub, k.serverSec = pyKeypair(t)
		k.clientPub, k.clientSec = pyKeypair(t)
		securityInterop(t, mech.Curve, k)
	})
}

// SecurityInteropForTest lets the external test package (which may import
// auth, and so mdcli keygen's certificates) run the CURVE interop.
func SecurityInteropForTest(t *testing.T, serverPub, serverSec, clientPub, clientSec []byte) {
	securityInterop(t, mech.Curve, curveKeys{serverPub, serverSec, clientPub, clientSec})
}

// A libzmq peer that heartbeats (ZMQ_HEARTBEAT_IVL 100 ms) with a short
// ZMQ_HEARTBEAT_TIMEOUT (300 ms) stays connected to our ROUTER through
// five timeouts: only our PONGs keep it up (we send nothing else).
func TestInteropLibzmqHeartbeatsUs(t *testing.T) {
	r := newSock(t, NewContext(), Router, Options{})
	ep := bind(t, r, "tcp://127.0.0.1:*")
	c := cPeer(t, "hb", ep, "100", "300", "1500")
	if n := c.expect("DISCONNECTS"); n != "0" {
		t.Fatalf("libzmq disconnected %s times: our PONGs did not reach it", n)
	}
	// Checked while the peer is still connected (it exits after OK).
	if s := r.Stats(); s.Accepted != 1 || s.Disconnected != 0 {
		t.Fatalf("stats %+v", s)
	}
	echoN(t, r, 1)
	c.expect("OK")
}

// Our HeartbeatInterval against a libzmq ROUTER that has no heartbeat
// options: libzmq answers our PINGs, so our 300 ms timeout never fires in
// five of them. The negative control is TestHeartbeatTimeoutCloses.
func TestInteropWeHeartbeatLibzmq(t *testing.T) {
	py := pyPeer(t, map[string]any{"type": "ROUTER", "bind": "tcp://127.0.0.1:*", "mode": "echo", "count": 1})
	ep := py.expect("ENDPOINT")
	d := newSock(t, NewContext(), Dealer, Options{HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: 300 * time.Millisecond})
	if err := d.Connect(ep); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "connection", func() bool { return d.Connections() == 1 })
	// Fifteen PONGs span 1.5 s, five of our 300 ms timeouts: each PONG
	// is libzmq answering a PING of ours.
	testutil.Eventually(t, 10*time.Second, "15 PONGs", func() bool { return d.Stats().Pongs >= 15 })
	if s := d.Stats(); s.Disconnected != 0 || s.Active != 1 {
		t.Fatalf("our heartbeat dropped libzmq: %+v", s)
	}
	roundTrips(t, d, [][][]byte{{[]byte("alive")}})
	py.expect("OK")
}

// Our PUB to a libzmq SUB (which sends its subscription in the form
// libzmq 4.3 uses) and our SUB to a libzmq XPUB (which reports the
// subscription we sent as it understood it).
func TestInteropPubSub(t *testing.T) {
	hx := func(s string) string { return hex.EncodeToString([]byte(s)) }
	t.Run("our PUB", func(t *testing.T) {
		p := newSock(t, NewContext(), Pub, Options{})
		ep := bind(t, p, "tcp://127.0.0.1:*")
		py := pyPeer(t, map[string]any{"type": "SUB", "connect": ep, "mode": "sub", "count": 5,
			"subscribe": []string{hx("a")}})
		var got []string
		deadline := time.After(20 * time.Second)
		for done := false; !done; {
			p.Send([][]byte{[]byte("a1"), []byte("x")}, true)
			p.Send([][]byte{[]byte("b1"), []byte("x")}, true)
			select {
			case l, ok := <-py.lines:
				if !ok || strings.HasPrefix(l, "ERR") {
					t.Fatalf("SUB peer: %q", l)
				}
				if g, ok := strings.CutPrefix(l, "GOT "); ok {
					got = append(got, g)
				}
				done = l == "OK"
			case <-time.After(10 * time.Millisecond):
			case <-deadline:
				t.Fatalf("libzmq SUB got %q", got)
			}
		}
		for _, g := range got {
			if g != hx("a1") {
				t.Fatalf("libzmq SUB got %q", got)
			}
		}
	})
	t.Run("our SUB", func(t *testing.T) {
		py := pyPeer(t, map[string]any{"type": "XPUB", "bind": "tcp://127.0.0.1:*", "mode": "xpub",
			"publish": []string{hx("a1"), hx("b1")}})
		s := newSock(t, NewContext(), Sub, Options{})
		if err := s.Connect(py.expect("ENDPOINT")); err != nil {
			t.Fatal(err)
		}
		if err := s.Subscribe([]byte("a")); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			if m := recvWait(t, s, 20*time.Second); len(m) != 2 || string(m[0]) != "a1" {
				t.Fatalf("our SUB got %q", m)
			}
		}
		if sub := py.expect("SUB"); sub != "01"+hx("a") {
			t.Fatalf("libzmq XPUB saw subscription %s", sub)
		}
		py.stdin.Close()
		py.expect("OK")
	})
}
