package emqp

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/testutil"
)

// python is Debian's interpreter, where python3-zmq installs.
const python = "/usr/bin/python3"

func runPy(t *testing.T, ctx context.Context, args ...string) (*exec.Cmd, func() map[string]any) {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("testdata", "eventmq_peers.py"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, python, append([]string{script}, args...)...)
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, func() map[string]any {
		t.Helper()
		err := cmd.Wait()
		b := out.Bytes()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, b)
		}
		var m map[string]any
		lines := splitLines(b)
		if len(lines) == 0 || json.Unmarshal(lines[len(lines)-1], &m) != nil {
			t.Fatalf("%v: no JSON result:\n%s", args, b)
		}
		return m
	}
}

// TestPythonEventMQPeers runs a pyzmq job manager, client and emq-cli that
// frame messages as EventMQ's code does against the server.
func TestPythonEventMQPeers(t *testing.T) {
	if err := exec.Command(python, "-c", "import zmq").Run(); err != nil {
		t.Fatalf("%s with the zmq module is required (apt-get install python3-zmq): %v", python, err)
	}
	ts := startServer(t, func(c *Config) { c.HeartbeatInterval, c.HeartbeatTimeout = 200*time.Millisecond, time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	const jobs = 10
	_, jmDone := runPy(t, ctx, "jobmanager", ts.ep.Backend, "2", "10", "0.2")
	ts.waitFor("job manager ready", func(s Stats) bool { return s.Workers == 1 && s.FreeSlots == 2 })
	_, cliDone := runPy(t, ctx, "cli", ts.ep.Admin)
	cli := cliDone()
	if keys := cli["status_keys"].([]any); !slices.Contains(keys, any("inflight_messages_by_queue")) ||
		!slices.Contains(keys, any("processed_messages_by_worker")) {
		t.Fatalf("STATUS keys %v", keys)
	}
	if w := cli["workers"].(map[string]any)["connected_workers"].(map[string]any); len(w) != 1 {
		t.Fatalf("ROUTER_SHOW_WORKERS %v", cli["workers"])
	}
	_, clientDone := runPy(t, ctx, "client", ts.ep.Frontend, "10")
	cl := clientDone()
	if cl["ok"] != true || cl["acks"] != float64(jobs) || cl["results"] != float64(jobs/2) {
		t.Fatalf("client %v", cl)
	}
	jm := jmDone()
	if jm["handled"] != float64(jobs) || jm["replies"] != float64(jobs/2) || jm["heartbeats"].(float64) < 1 {
		t.Fatalf("job manager %v", jm)
	}
	st := ts.waitFor("job manager gone", func(s Stats) bool { return s.Workers == 0 })
	if st.Removed[RemovedKbye] != 1 || st.RepliesForwarded != jobs/2 || st.Dispatched != jobs {
		t.Fatalf("stats %+v", st)
	}
}
