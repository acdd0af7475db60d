package interop_test

import (
	"fmt"
	"syscall"
	"testing"
)

// startPyBroker runs py/pybroker.py (a plain 7/MDP broker) on a free
// 127.0.0.1 port and returns it with its endpoint. The port is picked here
// and handed over, as an operator would; if another process grabs it in
// between, a new one is tried.
func startPyBroker(t *testing.T) (*pyProc, string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		ep := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
		p := startPy(t, "pybroker", "pybroker.py", ep, "--heartbeat-ms", heartbeatMS, "--alarm", "30")
		// The first line says whether it bound; waitEvents fails the test
		// if the process dies without one.
		switch ev := p.waitEvents("", 1)[0]; ev.Event {
		case "bound":
			if ev.Endpoint != ep {
				t.Fatalf("pybroker bound %s, asked %s", ev.Endpoint, ep)
			}
			return p, ep
		case "bind_failed":
			if attempt == 3 {
				t.Fatalf("pybroker could not bind: %s", ev.raw)
			}
			p.wait()
		default:
			t.Fatalf("pybroker: unexpected first event %s", ev.raw)
		}
	}
}

// TestPyBroker proves py/pybroker.py is a working 7/MDP broker, so that it
// can serve as the independent peer for the project's Go client and worker
// libraries: the Python 0.1 clients (REQ and DEALER) and worker talk through
// it, MMI answers, and an mmi.* worker is refused.
func TestPyBroker(t *testing.T) {
	pb, ep := startPyBroker(t)

	w := startWorker(t, "worker", ep, "--version", "1", "--service", "echo")
	w.waitEvent("ready")

	const n = 20
	evs := runClient(t, "req-client", ep, "--version", "1", "--socket", "req",
		"--service", "echo", "--count", fmt.Sprint(n), "--prefix", "p", "--expect-echo")
	for i, r := range replies(t, "req-client", evs, n) {
		if !eq(r.Final, []string{fmt.Sprintf("p-%d", i)}) {
			t.Fatalf("reply %d = %q", i, r.Final)
		}
	}
	evs = runClient(t, "dealer-client", ep, "--version", "1", "--socket", "dealer",
		"--service", "echo", "--count", "5", "--prefix", "q", "--expect-echo", "--linger-ms", "50")
	replies(t, "dealer-client", evs, 5)

	evs = runClient(t, "mmi-client", ep, "--version", "1", "--requests", mmiQueries(t,
		[2]string{"mmi.service", "echo"},
		[2]string{"mmi.service", "nope"},
		[2]string{"mmi.nope", "x"}))
	want := [][]string{{"200"}, {"404"}, {"501"}}
	for i, r := range replies(t, "mmi-client", evs, len(want)) {
		if !eq(r.Final, want[i]) {
			t.Errorf("%s %q -> %q, want %q", r.Service, r.Request, r.Final, want[i])
		}
	}

	refused := startWorker(t, "mmi-worker", ep, "--version", "1", "--service", "mmi.x",
		"--expect-disconnect-ms", "3000")
	refused.mustSucceed()

	// The worker's heartbeats and the broker's keep each other alive.
	if hb := w.waitEvents("heartbeat", 3); len(hb) < 3 {
		t.Fatalf("worker saw %d broker heartbeats", len(hb))
	}

	w.signal(syscall.SIGTERM)
	w.mustSucceed()
	pb.signal(syscall.SIGTERM)
	pb.mustSucceed()
	exit := pb.waitEvent("exit")
	t.Logf("pybroker: %s", exit.raw)
	if exit.Requests != n+5+len(want) {
		t.Errorf("pybroker counted %d requests, want %d", exit.Requests, n+5+len(want))
	}
}
