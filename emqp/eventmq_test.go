package emqp

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/testutil"
)

// TestRealEventMQ runs EventMQ's own code against the server: its job
// manager (bin/emq-jobmanager), scheduler (bin/emq-scheduler), emq-cli, and
// clients written with eventmq.sender and eventmq.client.messages. EventMQ
// is not packaged for Debian and is not vendored here, so the test needs
// EVENTMQ_SRC, a checkout of https://github.com/eventmq/eventmq (0.3.13),
// and its dependencies from Debian (python3-zmq python3-six
// python3-croniter python3-psutil python3-future python3-monotonic):
//
//	EVENTMQ_SRC=/path/to/eventmq go test -run TestRealEventMQ ./emqp
//
// Without EVENTMQ_SRC it is skipped; TestPythonEventMQPeers, which frames
// messages as EventMQ does, always runs.
func TestRealEventMQ(t *testing.T) {
	src := os.Getenv("EVENTMQ_SRC")
	if src == "" {
		t.Skip("EVENTMQ_SRC not set: the path of an EventMQ checkout (see the comment)")
	}
	here, err := filepath.Abs(filepath.Join("testdata", "eventmq_real"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(python, "-c", "import sys; sys.path[:0] = sys.argv[1:]; import eventmq.jobmanager, eventmq.scheduler", src).CombinedOutput(); err != nil {
		t.Fatalf("EventMQ from %s does not import (its Debian dependencies are listed in the comment): %v\n%s", src, err, out)
	}
	// EventMQ's own heartbeat settings: its peers do not follow ours.
	ts := startServer(t, func(c *Config) { c.HeartbeatInterval, c.HeartbeatTimeout = 3*time.Second, 5*time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := append(os.Environ(), "PYTHONPATH="+src+":"+here,
		"EVENTMQ_CONFIG_FILE="+filepath.Join(t.TempDir(), "none.conf"),
		"EVENTMQ_SCHEDULER_ADDR="+ts.ep.Frontend,
		// No redis here: the scheduler keeps its schedules in memory.
		"EVENTMQ_REDIS_STARTUP_ERROR_HARD_KILL=False")
	// start runs a program in a process group of its own, so that the job
	// manager's worker processes stop with it.
	start := func(args ...string) (*exec.Cmd, *testutil.SyncBuffer) {
		cmd := exec.Command(python, args...)
		cmd.Env, cmd.Dir = env, here
		out := &testutil.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		})
		return cmd, out
	}
	peer := func(args ...string) map[string]any {
		t.Helper()
		cmd := exec.CommandContext(ctx, python, append([]string{filepath.Join(here, "peer.py")}, args...)...)
		cmd.Env, cmd.Dir = env, here
		b, err := cmd.CombinedOutput()
		lines := splitLines(b)
		var m map[string]any
		if err != nil || len(lines) == 0 || json.Unmarshal(lines[len(lines)-1], &m) != nil {
			t.Fatalf("peer.py %v: %v\n%s", args, err, b)
		}
		return m
	}

	_, jmOut := start(filepath.Join(src, "bin", "emq-jobmanager"), "--broker-addr", ts.ep.Backend, "--queues", "default", "--jobs", "2")
	if !testutil.Poll(20*time.Second, func() bool { return ts.s.Status().Stats.Workers == 1 }) {
		t.Fatalf("EventMQ's job manager did not register:\n%s", jmOut.Bytes())
	}

	const jobs = 8
	got := peer("jobs", ts.ep.Frontend, "8")
	if got["acks"] != float64(jobs) {
		t.Errorf("acks %v, want %d", got["acks"], jobs)
	}
	vals, _ := got["values"].([]any)
	for i, v := range vals {
		if v != float64(1000+i) {
			t.Errorf("results %v, want 1000..%d", vals, 1000+jobs-1)
			break
		}
	}
	if len(vals) != jobs {
		t.Errorf("%d results, want %d", len(vals), jobs)
	}

	_, schedOut := start(filepath.Join(src, "bin", "emq-scheduler"))
	if !testutil.Poll(20*time.Second, func() bool { return ts.s.Status().Stats.Schedulers == 1 }) {
		t.Fatalf("EventMQ's scheduler did not register:\n%s", schedOut.Bytes())
	}
	base := ts.s.Status().Stats.Dispatched
	peer("schedule", ts.ep.Frontend)
	// The scheduler sends emqjobs.add every second; two runs dispatched
	// show the whole path: client, router, scheduler, router, job manager.
	if !testutil.Poll(20*time.Second, func() bool { return ts.s.Status().Stats.Dispatched >= base+2 }) {
		t.Fatalf("scheduled job not run: %+v\n%s", ts.s.Status().Stats, schedOut.Bytes())
	}
	peer("unschedule", ts.ep.Frontend)
	if !testutil.Poll(10*time.Second, func() bool { return ts.s.Status().Stats.Unscheduled == 1 }) {
		t.Fatalf("UNSCHEDULE not forwarded: %+v", ts.s.Status().Stats)
	}

	pub := peer("pubsub", ts.ep.PubIn, ts.ep.PubOut)
	if pub["topic"] != "topic" || pub["message"] != `["update", "1"]` {
		t.Errorf("published %v", pub)
	}

	cli := exec.CommandContext(ctx, python, filepath.Join(src, "bin", "emq-cli"), "--addr", ts.ep.Admin)
	cli.Env, cli.Stdin = env, strings.NewReader("status\nshow_workers\nquit\n")
	out, err := cli.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "connected_workers") || !strings.Contains(string(out), "processed_messages_by_queue") {
		t.Errorf("emq-cli: %v\n%s", err, out)
	}
}
