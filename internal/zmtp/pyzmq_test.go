package zmtp

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// python is Debian's interpreter, where python3-zmq installs pyzmq.
const python = "/usr/bin/python3"

// runPy starts a pyzmq script and returns a function that waits for it
// and returns its output.
func runPy(t *testing.T, script string, args ...string) func() string {
	t.Helper()
	if err := exec.Command(python, "-c", "import zmq").Run(); err != nil {
		t.Fatalf("interop tests need %s with pyzmq (apt-get install python3-zmq): %v", python, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, python, append([]string{"-c", script}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	var result string
	go func() {
		cmd.Wait()
		result = out.String()
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() string { <-done; return result }
}

const pyDealerClient = `
import sys, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
s.setsockopt(zmq.IDENTITY, b"py")
s.setsockopt(zmq.RCVTIMEO, 10000)
s.connect(sys.argv[1])
for size in (0, 255, 256, 65536, 8<<20):
    s.send_multipart([b"hello", b"x"*size])
    m = s.recv_multipart()
    assert m == [b"echo", b"hello", b"x"*size], [len(f) for f in m]
s.send_multipart([b"%d" % i for i in range(1000)])
m = s.recv_multipart()
assert len(m) == 1001, len(m)
print("ok")
`

func TestPyzmqDealerToOurRouter(t *testing.T) {
	ctx := NewContext()
	r := newSock(t, ctx, Router, Options{RouterMandatory: true})
	ep := bind(t, r, "tcp://127.0.0.1:*")
	wait := runPy(t, pyDealerClient, ep)
	for i := 0; i < 6; i++ {
		m := recvWait(t, r, 20*time.Second)
		if string(m[0]) != "py" {
			t.Fatalf("identity %q", m[0])
		}
		out := append([][]byte{m[0], []byte("echo")}, m[1:]...)
		if err := r.Send(out, false); err != nil {
			t.Fatal(err)
		}
	}
	if out := wait(); !strings.Contains(out, "ok") {
		t.Fatalf("python: %s", out)
	}
}

const pyRouterEcho = `
import sys, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.ROUTER)
s.setsockopt(zmq.RCVTIMEO, 10000)
port = s.bind_to_random_port("tcp://127.0.0.1")
print(port, flush=True)
for i in range(3):
    m = s.recv_multipart()
    s.send_multipart(m[:1] + [b"echo"] + m[1:])
print("ok")
`

func TestOurDealerToPyzmqRouter(t *testing.T) {
	ctx := NewContext()
	d := newSock(t, ctx, Dealer, Options{Identity: []byte("go")})
	cmd := exec.Command(python, "-c", pyRouterEcho)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	var port [16]byte
	n, _ := stdout.Read(port[:])
	if err := d.Connect("tcp://127.0.0.1:" + strings.TrimSpace(string(port[:n]))); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{0, 300, 1 << 20} {
		body := bytes.Repeat([]byte("y"), size)
		if err := d.Send([][]byte{[]byte("hi"), body}, false); err != nil {
			t.Fatal(err)
		}
		m := recvWait(t, d, 10*time.Second)
		if len(m) != 3 || string(m[0]) != "echo" || !bytes.Equal(m[2], body) {
			t.Fatalf("reply %d frames", len(m))
		}
	}
}
