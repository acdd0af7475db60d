package main

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/transport"
)

// TestEMQPFronts runs the real binary with the eMQP fronts on: a job
// manager's INFORM is acknowledged, a client's REQUEST reaches it, and the
// broker still drains and exits 0 on SIGTERM.
func TestEMQPFronts(t *testing.T) {
	dir := t.TempDir()
	front, back := "ipc://"+filepath.Join(dir, "front"), "ipc://"+filepath.Join(dir, "back")
	p := startProc(t, nil, "--endpoint", ipcEndpoint(t), "--emqp-frontend", front, "--emqp-backend", back,
		"--emqp-heartbeat", "200ms", "--emqp-heartbeat-timeout", "2s")

	zctx, err := transport.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	defer zctx.Term()
	dial := func(ep string) transport.Socket {
		s, err := zctx.NewSocket(transport.Dealer, transport.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Connect(ep); err != nil {
			t.Fatal(err)
		}
		return s
	}
	recv := func(s transport.Socket, cmd string) [][]byte {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			ok, err := s.WaitReadable(100 * time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				continue
			}
			f, _, err := s.Recv(0, true)
			if err != nil {
				t.Fatal(err)
			}
			if len(f) >= 4 && string(f[1]) == "eMQP/1.0" && string(f[2]) == cmd {
				return f
			}
		}
		t.Fatalf("no %s; logs:\n%s", cmd, p.logs.String())
		return nil
	}
	str := func(ss ...string) [][]byte {
		out := make([][]byte, len(ss))
		for i, s := range ss {
			out[i] = []byte(s)
		}
		return out
	}
	jm := dial(back)
	defer jm.Close()
	jm.Send(str("", "eMQP/1.0", "INFORM", "m1", `[[10, "default"]]`, "worker"), false)
	if ack := recv(jm, "ACK"); string(ack[4]) != "m1" {
		t.Fatalf("ACK for %q", ack[4])
	}
	jm.Send(str("", "eMQP/1.0", "READY", "m2"), false)
	c := dial(front)
	defer c.Close()
	c.Send(str("", "eMQP/1.0", "REQUEST", "r1", "default", "", `["run", {"x": 1}]`), false)
	if req := recv(jm, "REQUEST"); string(req[3]) != "r1" || string(req[6]) != `["run", {"x": 1}]` {
		t.Fatalf("job manager got %q", req)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d; logs:\n%s", code, p.logs.String())
	}
}
