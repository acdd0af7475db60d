package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	"github.com/majordomo-go/majordomo/mdp"
	"github.com/majordomo-go/majordomo/worker"
)

const testHeartbeat = 50 * time.Millisecond

func startBroker(t *testing.T) string {
	t.Helper()
	return harness.StartBroker(t, func(c *broker.Config) { c.HeartbeatInterval = testHeartbeat }).Endpoint
}

func runWorker(t *testing.T, endpoint, service string, v mdp.Version, h worker.HandlerFunc) {
	t.Helper()
	harness.RunWorker(t, endpoint, service, h, worker.WithVersion(v), worker.WithHeartbeat(testHeartbeat))
}

type result struct {
	code           int
	stdout, stderr string
}

// mdcli runs the command in-process with MDP_BROKER set to endpoint.
func mdcli(ctx context.Context, endpoint, stdin string, args ...string) result {
	var out, errb testutil.SyncBuffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		getenv: func(k string) string {
			if k == "MDP_BROKER" {
				return endpoint
			}
			return ""
		}}
	code := c.run(ctx, args)
	return result{code, out.String(), errb.String()}
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

func TestCall(t *testing.T) {
	ep := startBroker(t)
	runWorker(t, ep, "echo", mdp.V1, func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		return req.Body, nil
	})
	runWorker(t, ep, "count", mdp.V2, func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		req.Partial([]byte("1"))
		req.Partial([]byte("2\n"))
		return [][]byte{[]byte("3")}, nil
	})
	ctx := context.Background()
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"call", "echo", "hello", "world"}, "hello\nworld\n"},
		{"", []string{"call", "echo"}, "\n"},
		{"", []string{"call", "--raw", "echo", "a", "b"}, "ab"},
		{"from stdin", []string{"call", "--stdin", "echo", "arg"}, "arg\nfrom stdin\n"},
		{"", []string{"call", "--v2", "count"}, "1\n2\n3\n"},
		{"", []string{"-b", ep, "call", "echo", "-not-a-flag"}, "-not-a-flag\n"},
		{"", []string{"call", "-b", ep, "echo", "x"}, "x\n"},
	} {
		r := mdcli(ctx, ep, tc.stdin, tc.args...)
		if r.code != exitOK || r.stdout != tc.want {
			t.Errorf("mdcli %q: %v; want stdout %q", tc.args, r, tc.want)
		}
	}
}

func TestCallTimeout(t *testing.T) {
	// Nothing listens on port 1: the broker is unreachable, exit 1.
	start := time.Now()
	r := mdcli(context.Background(), "tcp://127.0.0.1:1", "", "call", "--timeout", "50ms", "--retries", "1", "nobody")
	if r.code != exitFail || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "not answering") {
		t.Fatalf("%v", r)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("took %v", el)
	}
	t.Logf("unreachable message: %s", r.stderr)
}

func TestUsageErrors(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{
		{"call", "--nope", "echo"},
		{"call", "--timeout", "soon", "echo"},
		{"--bogus", "services"},
		{"services", "-x"},
		{"service", "--retries=many", "x"},
		{"workers", "--v3", "x"},
		{"serve", "--concurrency", "two", "svc", "--", "cat"},
	} {
		r := mdcli(ctx, "tcp://127.0.0.1:1", "", args...)
		flagName := strings.TrimLeft(strings.SplitN(args[firstFlag(args)], "=", 2)[0], "-")
		if r.code != exitUsage || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, flagName) {
			t.Errorf("mdcli %q: %v; want one line naming %q, exit 2", args, r, flagName)
		}
	}
	for _, args := range [][]string{
		{}, {"frobnicate"}, {"call"}, {"service"}, {"service", "a", "b"}, {"workers"},
		{"services", "extra"}, {"serve"}, {"serve", "svc"}, {"serve", "svc", "--"},
	} {
		r := mdcli(ctx, "tcp://127.0.0.1:1", "", args...)
		if r.code != exitUsage || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("mdcli %q: %v; want one line, exit 2", args, r)
		}
	}
}

func firstFlag(args []string) int {
	for i, a := range args {
		if strings.HasPrefix(a, "-") {
			return i
		}
	}
	return 0
}

func TestHelp(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"}, {"help", "call"}, {"call", "--help"}, {"service", "--help"},
		{"services", "--help"}, {"workers", "--help"}, {"serve", "--help"}, {"serve", "-h"},
	} {
		r := mdcli(ctx, "tcp://127.0.0.1:1", "", args...)
		if r.code != exitOK || !strings.HasPrefix(r.stdout, "Usage: mdcli") || r.stderr != "" {
			t.Errorf("mdcli %q: %v", args, r)
		}
	}
}

func TestMMICommands(t *testing.T) {
	ep := startBroker(t)
	runWorker(t, ep, "echo", mdp.V1, func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		return req.Body, nil
	})
	ctx := context.Background()
	testutil.Eventually(t, testutil.WaitLimit, "condition", func() bool { return mdcli(ctx, ep, "", "service", "echo").code == exitOK })
	check := func(want result, args ...string) {
		t.Helper()
		r := mdcli(ctx, ep, "", args...)
		if r.code != want.code || r.stdout != want.stdout {
			t.Errorf("mdcli %q: %v; want exit %d, stdout %q", args, r, want.code, want.stdout)
		}
	}
	check(result{code: exitOK, stdout: "200\n"}, "service", "echo")
	check(result{code: exitNoWorkers, stdout: "404\n"}, "service", "nope")
	check(result{code: exitOK, stdout: "echo\n"}, "services")
	check(result{code: exitOK, stdout: "idle=1 busy=0 queued=0\n"}, "workers", "echo")
	check(result{code: exitNoWorkers}, "workers", "nope")
	check(result{code: exitOK, stdout: "200\n"}, "service", "--v2", "echo")
}

func TestServe(t *testing.T) {
	for _, tool := range []string{"tr", "sh", "cat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found", tool)
		}
	}
	ep := startBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	serve := func(args ...string) {
		wg.Go(func() {
			r := mdcli(ctx, ep, "", append([]string{"serve", "--heartbeat", "50ms"}, args...)...)
			if r.code != exitOK {
				t.Errorf("serve %q: %v", args, r)
			}
		})
	}
	serve("upper", "--", "tr", "a-z", "A-Z")
	serve("--concurrency", "2", "fail", "--", "sh", "-c", "echo partial; echo oops >&2; exit 3")
	serve("--v2", "cat", "--", "cat")
	serve("env", "--", "sh", "-c", "echo $MDP_SERVICE")
	defer func() {
		cancel()
		wg.Wait()
	}()
	for _, s := range []string{"upper", "fail", "cat", "env"} {
		testutil.Eventually(t, testutil.WaitLimit, "condition", func() bool { return mdcli(ctx, ep, "", "service", s).code == exitOK })
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"call", "upper", "hello", "world"}, "HELLO\nWORLD\n"},
		{[]string{"call", "fail"}, "ERROR\nexit status 3\noops\n"},
		{[]string{"call", "--v2", "--raw", "cat", "a b"}, "a b"},
		{[]string{"call", "env"}, "env\n"},
	} {
		r := mdcli(ctx, ep, "", tc.args...)
		if r.code != exitOK || r.stdout != tc.want {
			t.Errorf("mdcli %q: %v; want %q", tc.args, r, tc.want)
		}
	}
	r := mdcli(ctx, ep, "", "workers", "fail")
	if r.stdout != "idle=2 busy=0 queued=0\n" {
		t.Errorf("workers fail: %v", r)
	}
}

// The real binary: flag errors and exit codes as a shell sees them.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := t.TempDir() + "/mdcli"
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ep := startBroker(t)
	runWorker(t, ep, "echo", mdp.V1, func(ctx context.Context, req *worker.Request) ([][]byte, error) {
		return req.Body, nil
	})
	run := func(env string, args ...string) (int, string, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"MDP_BROKER=" + env}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String(), errb.String()
	}
	if code, out, _ := run(ep, "call", "echo", "hi"); code != 0 || out != "hi\n" {
		t.Errorf("call: %d %q", code, out)
	}
	if code, _, errs := run(ep, "call", "--bad", "echo"); code != 2 || !strings.Contains(errs, "-bad") {
		t.Errorf("bad flag: %d %q", code, errs)
	}
	if code, _, errs := run("tcp://127.0.0.1:1", "call", "--timeout", "30ms", "--retries", "0", "echo"); code != 1 || strings.Count(errs, "\n") != 1 {
		t.Errorf("timeout: %d %q", code, errs)
	}
}
