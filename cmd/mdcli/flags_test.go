package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/mdp"
	"github.com/majordomo-go/majordomo/worker"
)

// unreachable is an endpoint nothing listens on.
const unreachable = "tcp://127.0.0.1:1"

// requestCommands are the commands that send requests: their words, and
// the arguments after the flags.
var requestCommands = []struct{ words, args []string }{
	{[]string{"call"}, []string{"echo", "x"}},
	{[]string{"service"}, []string{"echo"}},
	{[]string{"services"}, nil},
	{[]string{"workers"}, []string{"echo"}},
	{[]string{"titanic", "submit"}, []string{"echo", "x"}},
	{[]string{"titanic", "reply"}, []string{"0123456789abcdef0123456789abcdef"}},
	{[]string{"titanic", "close"}, []string{"0123456789abcdef0123456789abcdef"}},
}

// placements puts the global flags g before the command name, after it,
// and, for titanic, between "titanic" and its command.
func placements(words, g, args []string) map[string][]string {
	cat := func(parts ...[]string) []string { return slices.Concat(parts...) }
	out := map[string][]string{
		"before": cat(g, words, args),
		"after":  cat(words, g, args),
	}
	if len(words) == 2 {
		out["between"] = cat(words[:1], g, words[1:], args)
	}
	return out
}

// Every global flag takes effect wherever it is placed, for every command
// that sends requests: -b overrides $MDP_BROKER (here a broker that serves),
// --timeout and --retries show in the error, -v shows the retry logged.
func TestGlobalFlagsAnyPlace(t *testing.T) {
	ep := startBroker(t)
	startTitanic(t, ep)
	ctx := context.Background()
	g := []string{"-b", unreachable, "-v", "--timeout", "20ms", "--retries", "1"}
	for _, cmd := range requestCommands {
		for where, args := range placements(cmd.words, g, cmd.args) {
			r := mdcli(ctx, ep, "", args...)
			if r.code != exitFail || !strings.Contains(r.stderr, "after 2 attempts of 20ms") ||
				!strings.Contains(r.stderr, "resending") {
				t.Errorf("%s %s: mdcli %q: %v", strings.Join(cmd.words, " "), where, args, r)
			}
		}
	}
}

// -b before or after the command reaches a real broker (with $MDP_BROKER
// pointing nowhere), for every command that sends requests.
func TestEndpointFlagAnyPlace(t *testing.T) {
	ep := startBroker(t)
	startTitanic(t, ep)
	runWorker(t, ep, "echo", mdp.V1, func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		return req.Body, nil
	})
	ctx := context.Background()
	testutil.Eventually(t, testutil.WaitLimit, "condition", func() bool { return mdcli(ctx, ep, "", "service", "echo").code == exitOK })
	g := []string{"-b", ep, "--timeout", "2s"}
	for _, cmd := range requestCommands {
		for where, args := range placements(cmd.words, g, cmd.args) {
			r := mdcli(ctx, unreachable, "", args...)
			// A made-up UUID is unknown to Titanic: exit 4 is its answer.
			want := exitOK
			if cmd.words[0] == "titanic" && cmd.words[1] == "reply" {
				want = exitUnknown
			}
			if r.code != want {
				t.Errorf("%s %s: mdcli %q: %v; want exit %d", strings.Join(cmd.words, " "), where, args, r, want)
			}
		}
	}
}

// The CURVE flags reach the client wherever they are placed: one without
// the other is the one-line error that names the missing one.
func TestCurveFlagsAnyPlace(t *testing.T) {
	dir := t.TempDir()
	keygen(t, filepath.Join(dir, "me"))
	key, err := auth.LoadPublicKey(filepath.Join(dir, "me"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	serve := struct{ words, args []string }{[]string{"serve"}, []string{"svc", "--", "cat"}}
	for _, cmd := range append(slices.Clone(requestCommands), serve) {
		for _, tc := range []struct {
			g    []string
			want string
		}{
			{[]string{"--curve-server-key", key.String()}, "needs --curve-cert"},
			{[]string{"--curve-cert", filepath.Join(dir, "me_secret")}, "needs --curve-server-key"},
		} {
			for where, args := range placements(cmd.words, tc.g, cmd.args) {
				r := mdcli(ctx, unreachable, "", args...)
				if r.code != exitFail || !strings.Contains(r.stderr, tc.want) {
					t.Errorf("%s %s: mdcli %q: %v; want %q", strings.Join(cmd.words, " "), where, args, r, tc.want)
				}
			}
		}
	}
}

// The command line: CURVE flags before the command, against a
// CURVE broker, for the request commands and serve.
func TestCurveFlagsBeforeCommand(t *testing.T) {
	ep, dir := curveSetup(t)
	ctx := context.Background()
	cl := []string{"-b", ep, "--curve-server-key", filepath.Join(dir, "broker"), "--curve-cert", filepath.Join(dir, "client_secret")}
	testutil.Eventually(t, testutil.WaitLimit, "condition", func() bool {
		return mdcli(ctx, unreachable, "", slices.Concat(cl, []string{"service", "echo"})...).code == exitOK
	})
	r := mdcli(ctx, unreachable, "", slices.Concat(cl, []string{"call", "echo", "hi"})...)
	if r.code != exitOK || r.stdout != "hi\n" {
		t.Fatalf("call: %v", r)
	}
	for _, args := range [][]string{{"services"}, {"workers", "echo"}} {
		if r := mdcli(ctx, unreachable, "", slices.Concat(cl, args)...); r.code != exitOK {
			t.Errorf("%q: %v", args, r)
		}
	}
	// serve, with the worker's certificate before and after "serve".
	wk := []string{"-b", ep, "--curve-server-key", filepath.Join(dir, "broker"), "--curve-cert", filepath.Join(dir, "worker_secret")}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for i, args := range [][]string{
		slices.Concat(wk, []string{"serve", "--heartbeat", "50ms", "upper1", "--", "tr", "a-z", "A-Z"}),
		slices.Concat([]string{"serve"}, wk, []string{"--heartbeat", "50ms", "upper2", "--", "tr", "a-z", "A-Z"}),
	} {
		wg.Go(func() {
			if r := mdcli(sctx, unreachable, "", args...); r.code != exitOK {
				t.Errorf("serve %d: %v", i, r)
			}
		})
	}
	for _, svc := range []string{"upper1", "upper2"} {
		testutil.Eventually(t, testutil.WaitLimit, "condition", func() bool {
			return mdcli(ctx, unreachable, "", slices.Concat(cl, []string{"service", svc})...).code == exitOK
		})
		r := mdcli(ctx, unreachable, "", slices.Concat([]string{"call"}, cl, []string{svc, "hi"})...)
		if r.code != exitOK || r.stdout != "HI\n" {
			t.Errorf("call %s: %v", svc, r)
		}
	}
}

// serve and keygen accept the global flags before and after their name.
func TestServeAndKeygenGlobalFlags(t *testing.T) {
	ep := startBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	g := []string{"-b", ep, "-v", "--timeout", "1s", "--retries", "2"}
	for i, args := range [][]string{
		slices.Concat(g, []string{"serve", "--heartbeat", "50ms", "s1", "--", "cat"}),
		slices.Concat([]string{"serve"}, g, []string{"--heartbeat", "50ms", "s2", "--", "cat"}),
	} {
		wg.Go(func() {
			if r := mdcli(ctx, unreachable, "", args...); r.code != exitOK {
				t.Errorf("serve %d: %v", i, r)
			}
		})
	}
	for _, svc := range []string{"s1", "s2"} {
		testutil.Eventually(t, testutil.WaitLimit, "condition", func() bool { return mdcli(ctx, ep, "", "service", svc).code == exitOK })
		if r := mdcli(ctx, ep, "", "call", svc, "x"); r.code != exitOK || r.stdout != "x\n" {
			t.Errorf("call %s: %v", svc, r)
		}
	}
	dir := t.TempDir()
	kg := slices.Concat(g, []string{"--curve-server-key", "ignored"})
	for i, args := range [][]string{
		slices.Concat(kg, []string{"keygen", filepath.Join(dir, "a")}),
		slices.Concat([]string{"keygen"}, kg, []string{filepath.Join(dir, "b")}),
	} {
		r := mdcli(ctx, unreachable, "", args...)
		if r.code != exitOK {
			t.Errorf("keygen %d: %v", i, r)
		}
	}
	for _, f := range []string{"a", "a_secret", "b", "b_secret"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestHelpMentionsGlobalFlags(t *testing.T) {
	r := mdcli(context.Background(), unreachable, "", "--help")
	for _, want := range []string{"before or after the command name", "--curve-server-key", "--timeout", "--retries", "-v", "-b ENDPOINT"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("mdcli --help lacks %q:\n%s", want, r.stdout)
		}
	}
}

// No worker for the service: exit 3 and "no workers for service X" within
// twice the timeout, one copy left queued; --check sends nothing. An
// unreachable broker stays exit 1.
func TestNoWorkersExitStatus(t *testing.T) {
	ep := startBroker(t)
	ctx := context.Background()
	start := time.Now()
	r := mdcli(ctx, ep, "", "call", "--timeout", "200ms", "nosuch", "hello")
	elapsed := time.Since(start)
	if r.code != exitNoWorkers || r.stderr != "mdcli call: no workers for service nosuch\n" {
		t.Fatalf("call nosuch: %v", r)
	}
	t.Logf("mdcli call nosuch: exit 3 after %v (timeout 200ms)", elapsed)
	if elapsed >= 400*time.Millisecond {
		t.Fatalf("exit 3 after %v, want under 400ms", elapsed)
	}
	if r := mdcli(ctx, ep, "", "workers", "nosuch"); r.stdout != "idle=0 busy=0 queued=1\n" {
		t.Fatalf("after call nosuch: %v; want one queued copy", r)
	}
	start = time.Now()
	r = mdcli(ctx, ep, "", "call", "--check", "other")
	if r.code != exitNoWorkers || r.stderr != "mdcli call: no workers for service other\n" {
		t.Fatalf("call --check other: %v", r)
	}
	t.Logf("mdcli call --check other: exit 3 after %v", time.Since(start))
	if r := mdcli(ctx, ep, "", "workers", "other"); r.code != exitNoWorkers {
		t.Fatalf("after call --check: %v; want nothing queued (404)", r)
	}
	// No Titanic server: 3, except reply, where 3 is pending.
	for _, tc := range []struct {
		args []string
		code int
		svc  string
	}{
		{[]string{"titanic", "submit", "echo", "x"}, exitNoWorkers, "titanic.request"},
		{[]string{"titanic", "reply", "0123456789abcdef0123456789abcdef"}, exitTitanicNoWorkers, "titanic.reply"},
		{[]string{"titanic", "close", "0123456789abcdef0123456789abcdef"}, exitNoWorkers, "titanic.close"},
	} {
		r := mdcli(ctx, ep, "", append([]string{"--timeout", "100ms"}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, "no workers for service "+tc.svc) ||
			strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: %v; want exit %d naming %s", tc.args, r, tc.code, tc.svc)
		}
	}
	r = mdcli(ctx, unreachable, "", "call", "--timeout", "30ms", "--retries", "0", "nosuch")
	if r.code != exitFail {
		t.Fatalf("unreachable broker: %v; want exit 1", r)
	}
}

// The slow worker: a command slower than three timeouts runs once
// and mdcli prints its one reply.
func TestSlowCommandRunsOnce(t *testing.T) {
	ep := startBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	runs := filepath.Join(t.TempDir(), "runs")
	wg.Go(func() {
		r := mdcli(ctx, ep, "", "serve", "--heartbeat", "50ms", "--concurrency", "2", "slow", "--",
			"sh", "-c", "echo run >> "+runs+"; sleep 0.5; cat")
		if r.code != exitOK {
			t.Errorf("serve: %v", r)
		}
	})
	testutil.Eventually(t, testutil.WaitLimit, "condition", func() bool { return mdcli(ctx, ep, "", "service", "slow").code == exitOK })
	start := time.Now()
	r := mdcli(ctx, ep, "", "call", "--timeout", "100ms", "slow", "once")
	t.Logf("mdcli call slow (0.5 s command, --timeout 100ms): %v after %v", r.code, time.Since(start))
	if r.code != exitOK || r.stdout != "once\n" {
		t.Fatalf("call slow: %v", r)
	}
	data, err := os.ReadFile(runs)
	if err != nil || string(data) != "run\n" {
		t.Fatalf("command ran %q (%v), want once", data, err)
	}
	if r := mdcli(ctx, ep, "", "workers", "slow"); r.stdout != "idle=2 busy=0 queued=0\n" {
		t.Fatalf("after the call: %v; want nothing queued or running", r)
	}
}
