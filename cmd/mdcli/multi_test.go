package main

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/majordomo-go/majordomo/internal/testutil"
)

// -b A,B and MDP_BROKER=A,B: serve registers with both brokers, call works
// through the list, service prints one line per broker, and bad lists are
// usage errors naming the list.
func TestSeveralBrokers(t *testing.T) {
	a, b := startBroker(t), startBroker(t)
	list := a + "," + b
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		r := mdcli(ctx, "", "", "serve", "-b", list, "--heartbeat", "50ms", "upper", "--", "tr", "a-z", "A-Z")
		if r.code != exitOK {
			t.Errorf("serve: %v", r)
		}
	})
	defer func() {
		cancel()
		wg.Wait()
	}()
	// Each broker on its own sees the worker.
	for _, ep := range []string{a, b} {
		testutil.Eventually(t, testutil.WaitLimit, "condition", func() bool { return mdcli(ctx, ep, "", "service", "upper").code == exitOK })
	}
	r := mdcli(ctx, list, "", "service", "upper")
	if want := a + " 200\n" + b + " 200\n"; r.code != exitOK || r.stdout != want {
		t.Errorf("service upper: %v; want %q", r, want)
	}
	r = mdcli(ctx, "", "", "-b", list, "service", "nope")
	if want := a + " 404\n" + b + " 404\n"; r.code != exitNoWorkers || r.stdout != want {
		t.Errorf("service nope: %v; want %q", r, want)
	}
	for i := range 4 {
		r := mdcli(ctx, list, "", "call", "upper", "abc")
		if r.code != exitOK || r.stdout != "ABC\n" {
			t.Errorf("call %d through %s: %v", i, list, r)
		}
	}
	r = mdcli(ctx, list, "", "call", "--check", "nope")
	if r.code != exitNoWorkers || !strings.Contains(r.stderr, "no workers for service nope") {
		t.Errorf("call nope: %v", r)
	}
	for _, bad := range []string{a + ",", a + "," + a, ",," + b} {
		r := mdcli(ctx, bad, "", "call", "upper", "x")
		if r.code != exitFail || !strings.Contains(r.stderr, "-b ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("MDP_BROKER=%q call: %v", bad, r)
		}
		r = mdcli(ctx, "", "", "serve", "-b", bad, "x", "--", "cat")
		if r.code != exitUsage || !strings.Contains(r.stderr, "-b ") {
			t.Errorf("serve -b %q: %v", bad, r)
		}
	}
}
