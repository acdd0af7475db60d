package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// startRelay runs the relay on a loopback port until the test ends.
func startRelay(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// startWorkers connects n echo workers and waits for their hellos to be sent.
func startWorkers(t *testing.T, addr string, n int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- runWorkers(ctx, addr, n, func() { close(ready) }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("workers: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("workers: %v", err)
	}
}

func TestRelayPipelined(t *testing.T) {
	for _, tc := range []struct {
		name                string
		workers, window, sz int
	}{
		{"queue", 2, 50, 100},        // more in flight than workers: requests wait in the relay's queue.
		{"sync", 1, 1, 8},            // one at a time.
		{"large", 1, 2, 3 * readBuf}, // frames larger than a reader's first buffer.
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startRelay(t)
			startWorkers(t, addr, tc.workers)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := runClient(ctx, addr, clientConfig{Window: tc.window, Size: tc.sz,
				Warmup: 20 * time.Millisecond, Duration: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests == 0 || res.BadReplies != 0 {
				t.Fatalf("%d requests measured, %d bad replies", res.Requests, res.BadReplies)
			}
			if res.Elapsed < 100*time.Millisecond || res.RelayCPU < 0 {
				t.Fatalf("elapsed %v, relay CPU %v", res.Elapsed, res.RelayCPU)
			}
		})
	}
}

// rawFrame is a frame with an arbitrary length field.
func rawFrame(length uint32, payload ...byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, length), payload...)
}

func TestRelayRefusesBadInput(t *testing.T) {
	addr := startRelay(t)
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"oversized length", rawFrame(maxFrame + 1)},
		{"huge length", rawFrame(0xffffffff)},
		{"empty frame", rawFrame(0)},
		{"request before hello", frame(nil, typeRequest, 1, 2, 3)},
		{"unknown type", frame(nil, 'x')},
		{"long hello", frame(nil, typeHelloClient, 0)},
		{"worker reply unasked", append(frame(nil, typeHelloWorker), frame(nil, typeRequest, 0, 0, 0, 1, 'b')...)},
		{"worker reply too short", append(frame(nil, typeHelloWorker), frame(nil, typeRequest, 0)...)},
		{"second hello", append(frame(nil, typeHelloClient), frame(nil, typeHelloWorker)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.in); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := io.Copy(io.Discard, c)
			if err != nil || n != 0 {
				t.Fatalf("read %d bytes, %v; want the relay to close the connection", n, err)
			}
		})
	}
	// The relay still answers a well-behaved client.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(append(frame(nil, typeHelloClient), frame(nil, typeCPU)...))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [4]byte
	p, err := readFrame(c, hdr[:], nil)
	if err != nil || len(p) != 9 || p[0] != typeCPU {
		t.Fatalf("CPU answer %q, %v", p, err)
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-workers", "0"},
		{"-window", "0"},
		{"-size", "0"},
		{"-duration", "0s"},
		{"extra"},
		{"workers", "-n", "0", "-addr", "x"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, strings.NewReader(""), &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if lines := strings.Count(errb.String(), "\n"); lines != 1 {
			t.Errorf("%q: stderr %q, want one line", args, errb.String())
		}
	}
}
