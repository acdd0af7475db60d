package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/majordomo-go/majordomo/internal/bench"
)

// TestSmoke runs the tool's core for about two seconds with tiny settings
// (in-process broker, workers and clients, and the raw echo) and checks that
// it measured replies and printed sane JSON. It asserts nothing about speed:
// throughput is measured by bench/run.sh, never by go test.
func TestSmoke(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"--json", "--raw", "--workers", "2", "--services", "2", "--clients", "2",
		"--window", "4", "--size", "64", "--frames", "2", "--duration", "800ms", "--warmup", "100ms"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, errb.String())
	}
	var res bench.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if len(res.Phases) != 2 || res.Phase("raw") == nil || res.Phase("broker") == nil {
		t.Fatalf("phases %+v, want raw and broker", res.Phases)
	}
	for _, p := range res.Phases {
		if p.Requests == 0 || p.RPS <= 0 || p.Seconds <= 0 {
			t.Errorf("%s: %d requests in %.2fs (%.0f/s): want some", p.Name, p.Requests, p.Seconds, p.RPS)
		}
		if p.Errors != 0 {
			t.Errorf("%s: %d errors", p.Name, p.Errors)
		}
		l := p.Latency
		if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
			t.Errorf("%s: latency percentiles not ordered: %+v", p.Name, l)
		}
		if len(p.CPU) == 0 || p.CPU[0].Name != "mdbench" || p.CPU[0].PID == 0 {
			t.Errorf("%s: cpu %+v: want this process first", p.Name, p.CPU)
		}
	}
	if res.BrokerOverRaw == nil || res.BrokerOverRaw.Throughput <= 0 {
		t.Errorf("broker_over_raw = %+v", res.BrokerOverRaw)
	}
	if res.Config.Workers != 2 || res.Config.Frames != 2 {
		t.Errorf("config not echoed: %+v", res.Config)
	}
}

// TestSyncText runs the synchronous path (window 1, client.Request) and the
// text report.
func TestSyncText(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"--window", "1", "--workers", "1", "--duration", "500ms", "--warmup", "100ms"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, errb.String())
	}
	for _, want := range []string{"broker: broker (in process)", "req/s", "latency us: p50", "cpu per request:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--window", "0"},
		{"--size", "4"},
		{"--workers", "2", "--services", "3"},
		{"--peers", "elsewhere"},
		{"--perf-record", "x"},
		{"--titanic"}, // Needs a broker that runs Titanic: spawned or external.
		{"--titanic", "--raw", "-b", "tcp://127.0.0.1:1"},
		{"extra"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%q: exit status %d, want 2 (stderr %q)", args, code, errb.String())
		}
	}
}

// TestCurveSmoke: --curve runs the broker with CURVE and the raw echo plain,
// and both phases carry traffic.
func TestCurveSmoke(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"--json", "--raw", "--curve", "--window", "4", "--duration", "500ms", "--warmup", "100ms"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, errb.String())
	}
	var res bench.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if !res.Config.Curve || res.Phase("broker") == nil || res.Phase("broker").Requests == 0 || res.Phase("raw").Requests == 0 {
		t.Fatalf("result %+v", res)
	}
	var errb2 bytes.Buffer
	if code := run([]string{"-b", "tcp://127.0.0.1:1", "--curve"}, &out, &errb2); code != 2 {
		t.Fatalf("--curve with -b and no keys: exit %d (%s)", code, errb2.String())
	}
}

// TestTitanicSpawn: --titanic against a spawned mdbroker (built here) that
// runs Titanic in a temporary directory: every reply is a stored request.
func TestTitanicSpawn(t *testing.T) {
	if testing.Short() {
		t.Skip("builds mdbroker")
	}
	bin := filepath.Join(t.TempDir(), "mdbroker")
	if out, err := exec.Command("go", "build", "-o", bin, "../mdbroker").CombinedOutput(); err != nil {
		t.Fatalf("go build mdbroker: %v\n%s", err, out)
	}
	for _, window := range []string{"1", "16"} {
		var out, errb bytes.Buffer
		code := run([]string{"--json", "--titanic", "--spawn-broker", bin, "--clients", "2", "--window", window,
			"--duration", "500ms", "--warmup", "200ms"}, &out, &errb)
		if code != 0 {
			t.Fatalf("window %s: exit status %d; stderr:\n%s", window, code, errb.String())
		}
		var res bench.Result
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out.String())
		}
		p := res.Phase("broker")
		if !res.Config.Titanic || p == nil || p.Requests == 0 || p.Errors != 0 {
			t.Fatalf("window %s: result %+v", window, res)
		}
		if l := p.Latency; !(l.P50 > 0 && l.P50 <= l.Max) {
			t.Errorf("window %s: latency %+v", window, l)
		}
		if len(p.CPU) < 2 || p.CPU[1].Name != "broker" || p.CPU[1].USPerReq <= 0 {
			t.Errorf("window %s: cpu %+v: want the broker's", window, p.CPU)
		}
	}
}
