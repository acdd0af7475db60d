package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/mdp"
	"github.com/majordomo-go/majordomo/titanic"
	"github.com/majordomo-go/majordomo/worker"
)

func startTitanic(t *testing.T, endpoint string) {
	t.Helper()
	srv, err := titanic.New(titanic.Config{Broker: endpoint, Dir: t.TempDir(), Heartbeat: testHeartbeat,
		RequestWorkers: 2, QueryWorkers: 2, MaxInFlight: 4, RetryMin: 10 * time.Millisecond,
		ProbeMax: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("titanic: %v", err)
		}
	})
}

func TestTitanic(t *testing.T) {
	ep := startBroker(t)
	startTitanic(t, ep)
	ctx := context.Background()

	r := mdcli(ctx, ep, "", "titanic", "submit", "echo", "hello", "world")
	id := strings.TrimSpace(r.stdout)
	if r.code != exitOK || len(id) != 32 || r.stderr != "" {
		t.Fatalf("submit: %v", r)
	}
	// No echo worker yet: pending, exit 3, a word on standard error.
	r = mdcli(ctx, ep, "", "titanic", "reply", id)
	if r.code != exitPending || r.stdout != "" || !strings.Contains(r.stderr, "pending") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("reply while pending: %v", r)
	}
	r = mdcli(ctx, ep, "", "titanic", "reply", "0123456789abcdef0123456789abcdef")
	if r.code != exitUnknown || r.stdout != "" || !strings.Contains(r.stderr, "unknown") {
		t.Fatalf("reply unknown: %v", r)
	}
	runWorker(t, ep, "echo", mdp.V1, func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		return req.Body, nil
	})
	testutil.Eventually(t, testutil.WaitLimit, "condition", func() bool { return mdcli(ctx, ep, "", "titanic", "reply", id).code == exitOK })
	for range 2 { // Idempotent.
		r = mdcli(ctx, ep, "", "titanic", "reply", id)
		if r.code != exitOK || r.stdout != "hello\nworld\n" {
			t.Fatalf("reply: %v", r)
		}
	}
	if r = mdcli(ctx, ep, "", "titanic", "reply", "--raw", id); r.stdout != "helloworld" {
		t.Fatalf("reply --raw: %v", r)
	}
	for range 2 { // Closing twice, or an unknown UUID, is fine.
		if r = mdcli(ctx, ep, "", "titanic", "close", id); r.code != exitOK || r.stdout != "" {
			t.Fatalf("close: %v", r)
		}
	}
	if r = mdcli(ctx, ep, "", "titanic", "reply", id); r.code != exitUnknown {
		t.Fatalf("reply after close: %v", r)
	}
	r = mdcli(ctx, ep, "from stdin", "titanic", "submit", "--stdin", "echo", "arg")
	id = strings.TrimSpace(r.stdout)
	testutil.Eventually(t, testutil.WaitLimit, "condition", func() bool { return mdcli(ctx, ep, "", "titanic", "reply", id).code == exitOK })
	if r = mdcli(ctx, ep, "", "titanic", "reply", id); r.stdout != "arg\nfrom stdin\n" {
		t.Fatalf("reply to --stdin: %v", r)
	}
}

func TestTitanicUsage(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{
		{"titanic"}, {"titanic", "frob"}, {"titanic", "submit"}, {"titanic", "reply"},
		{"titanic", "reply", "a", "b"}, {"titanic", "close"}, {"titanic", "submit", "--nope", "x"},
		{"titanic", "reply", "--timeout", "soon", "x"},
	} {
		r := mdcli(ctx, "tcp://127.0.0.1:1", "", args...)
		if r.code != exitUsage || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("mdcli %q: %v; want one line, exit 2", args, r)
		}
	}
	for _, args := range [][]string{
		{"titanic", "--help"}, {"help", "titanic"}, {"titanic", "submit", "--help"},
		{"titanic", "reply", "-h"}, {"titanic", "close", "--help"},
	} {
		r := mdcli(ctx, "tcp://127.0.0.1:1", "", args...)
		if r.code != exitOK || !strings.HasPrefix(r.stdout, "Usage: mdcli titanic") {
			t.Errorf("mdcli %q: %v", args, r)
		}
	}
	// No Titanic behind the broker address: a timeout, exit 1, one line.
	r := mdcli(ctx, "tcp://127.0.0.1:1", "", "titanic", "reply", "--timeout", "50ms", "--retries", "0", "x")
	if r.code != exitFail || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("no broker: %v", r)
	}
}
