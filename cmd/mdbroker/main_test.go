package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/testutil/dealer"
	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/majordomo-go/majordomo/mdp"
)

func TestBadFlagsExitTwoWithOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"--heartbeat=abc"},
		{"--liveness=0"},
		{"--liveness=-3"},
		{"--max-queue=0"},
		{"--endpoint=udp://x"},
		{"--log-level=loud"},
		{"--no-such-flag"},
		{"stray"},
	} {
		var stderr bytes.Buffer
		code := run(args, &stderr)
		out := strings.TrimSpace(stderr.String())
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, out)
		}
		if out == "" || strings.Contains(out, "\n") {
			t.Errorf("%v: want one line of error, got %q", args, out)
		}
		name := strings.TrimLeft(strings.SplitN(args[0], "=", 2)[0], "-")
		if !strings.Contains(out, name) {
			t.Errorf("%v: error %q does not name %q", args, out, name)
		}
	}
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"--help"}, &stderr); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	if !strings.Contains(stderr.String(), "-heartbeat") {
		t.Fatalf("usage lacks flags: %s", stderr.String())
	}
}

// TestSignalShutdown runs the real binary, registers a worker, sends
// SIGTERM and checks for DISCONNECT and exit status 0.
func TestSignalShutdown(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "mdbroker")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	sock := filepath.Join(t.TempDir(), "broker.ipc")
	ep := "ipc://" + sock
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--endpoint", ep, "--heartbeat", "100ms")
	logs := &testutil.SyncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	w := dealer.Dial(t, ep, transport.Options{})
	ready, _ := mdp.Encode(&mdp.Message{Version: mdp.V1, Role: mdp.RoleWorker, Command: mdp.Ready, Service: []byte("echo")})
	if err := w.Send(ready, false); err != nil {
		t.Fatal(err)
	}
	if !testutil.Poll(10*time.Second, func() bool { return strings.Contains(logs.String(), "worker registered") }) {
		t.Fatalf("worker never registered; logs:\n%s", logs.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	gotDisconnect := false
	deadline := time.Now().Add(10 * time.Second)
	for !gotDisconnect && time.Now().Before(deadline) {
		ok, err := w.WaitReadable(100 * time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		f, _, err := w.Recv(0, true)
		if err != nil {
			t.Fatal(err)
		}
		m, err := mdp.DecodeFromBroker(f)
		gotDisconnect = err == nil && m.Command == mdp.Disconnect
	}
	if !gotDisconnect {
		t.Fatalf("no DISCONNECT on shutdown; logs:\n%s", logs.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v; logs:\n%s", err, logs.String())
	}
}

// TestReloadReadsInjectedEnvironment: SIGHUP reads the environment runWith
// was given, not the process's: a setting that came from it is unchanged
// by a reload. The signals go to this test process, which runWith has
// asked for them (signal.Notify) before the broker starts.
func TestReloadReadsInjectedEnvironment(t *testing.T) {
	ep := "ipc://" + filepath.Join(t.TempDir(), "broker.ipc")
	logs := &testutil.SyncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- runWith(nil, []string{"MDBROKER_ENDPOINT=" + ep, "MDBROKER_MAX_QUEUE=7"}, logs, logs)
	}()
	waitFor := func(sub string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(logs.String(), sub) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in logs:\n%s", sub, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("broker started")
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("configuration reloaded")
	if !strings.Contains(logs.String(), "configuration reloaded: nothing changed") {
		t.Errorf("reload changed something:\n%s", logs.String())
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d; logs:\n%s", code, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("runWith did not return after SIGTERM; logs:\n%s", logs.String())
	}
}
