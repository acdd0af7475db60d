package ops

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/internal/testutil"
)

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, string(body)
}

// blockingSource answers Status only when released.
type blockingSource struct {
	release chan struct{}
	once    sync.Once
}

func (b *blockingSource) Status() broker.Status {
	<-b.release
	return broker.Status{Now: time.Now()}
}

func (b *blockingSource) unblock() { b.once.Do(func() { close(b.release) }) }

func TestHealthAndReady(t *testing.T) {
	b := startBroker(t, broker.Config{})
	s, base := startServer(t, b, 10)
	if code, _, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _, body := get(t, base+"/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("/readyz: %d %q", code, body)
	}
	s.SetDraining(true)
	if code, _, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "draining") {
		t.Errorf("/readyz while draining: %d %q", code, body)
	}
	s.SetDraining(false)
	b.Close()
	if code, _, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "not running") {
		t.Errorf("/readyz after Close: %d %q", code, body)
	}
	if code, _, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz after Close: %d", code)
	}
}

// TestReadyTimeout: an event loop that does not answer within the deadline
// makes /readyz fail fast, and probes do not pile up behind it.
func TestReadyTimeout(t *testing.T) {
	src := &blockingSource{release: make(chan struct{})}
	defer src.unblock()
	_, base := startServer(t, src, 10)
	start := time.Now()
	code, _, body := get(t, base+"/readyz")
	if code != 503 || !strings.Contains(body, "did not answer within 200ms") {
		t.Errorf("stuck loop: %d %q", code, body)
	}
	if took := time.Since(start); took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("probe took %v", took)
	}
	start = time.Now()
	code, _, body = get(t, base+"/readyz")
	if code != 503 || !strings.Contains(body, "earlier probe") || time.Since(start) > 150*time.Millisecond {
		t.Errorf("second probe: %d %q after %v", code, body, time.Since(start))
	}
	src.unblock()
	testutil.Eventually(t, testutil.WaitLimit, "/readyz to recover", func() bool {
		code, _, _ := get(t, base+"/readyz")
		return code == 200
	})
}

func TestStatusAPI(t *testing.T) {
	b := startBroker(t, broker.Config{RequestTimeout: time.Minute})
	ep := b.Endpoints()[0]
	startWorker(t, ep, "echo", 0, false)
	startWorker(t, ep, "echo", 0, false)
	startWorker(t, ep, "stuck", 0, true)
	waitStatus(t, b, "3 workers", func(st broker.Status) bool { return st.Stats.Workers == 3 })
	c := newClient(t, ep)
	for i := 0; i < 4; i++ {
		if !c.call(t, "echo", "hi", 5*time.Second) {
			t.Fatal("no reply")
		}
	}
	c.send(t, "stuck", "held")    // Taken by the worker, which never answers.
	c.send(t, "stuck", "waiting") // Queued behind it.
	c.send(t, "ghost", "nobody")  // Never served.
	st := waitStatus(t, b, "busy and queued", func(st broker.Status) bool { return st.BusyWorkers == 1 && st.Queued == 2 })

	_, base := startServer(t, b, 10)
	fetch := func() StatusResponse {
		t.Helper()
		code, hdr, body := get(t, base+"/api/v1/status")
		if code != 200 || hdr.Get("Content-Type") != "application/json" || hdr.Get("Cache-Control") != "no-store" {
			t.Fatalf("status: %d %v", code, hdr)
		}
		var r StatusResponse
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := fetch()
	if !r.Running || r.Draining || r.UptimeSeconds <= 0 || len(r.Endpoints) != 1 || r.Endpoints[0] != ep {
		t.Errorf("header: %+v", r)
	}
	if r.Rates != nil {
		t.Errorf("rates on the first snapshot: %+v", r.Rates)
	}
	if r.Totals.Workers != 3 || r.Totals.BusyWorkers != 1 || r.Totals.Queued != 2 || r.Totals.Requests != st.Requests {
		t.Errorf("totals %+v", r.Totals)
	}
	if len(r.Services) != len(st.Services) {
		t.Fatalf("services %+v", r.Services)
	}
	for i, s := range r.Services {
		want := st.Services[i]
		if s.Name != want.Name || s.Workers != want.Workers || s.Idle != want.Idle || s.Busy != want.Busy ||
			s.Queued != want.Queued || s.Requests != want.Requests || s.Registered != want.Registered {
			t.Errorf("service %+v, want %+v", s, want)
		}
	}
	echo := r.Services[0]
	if echo.Name != "echo" || echo.Replies != 4 || echo.ServiceTime.Count != 4 || echo.ServiceTime.P99Seconds <= 0 {
		t.Errorf("echo %+v", echo)
	}
	if len(r.Workers) != 3 || r.Workers[2].Service != "stuck" || !r.Workers[2].Busy || r.Workers[0].AgeSeconds <= 0 ||
		r.Workers[0].Protocol != "MDP/0.2" || r.Workers[0].Identity == "" {
		t.Errorf("workers %+v", r.Workers)
	}
	if len(r.Dropped) != len(broker.DropReasons()) || len(r.Removed) != len(broker.RemoveReasons()) {
		t.Errorf("reasons %v %v", r.Dropped, r.Removed)
	}

	// A second snapshot later has rates: rates need a window of at least
	// 0.2 s between snapshots, so this sleep is what is under test.
	time.Sleep(250 * time.Millisecond)
	for i := 0; i < 3; i++ {
		c.call(t, "echo", "hi", 5*time.Second)
	}
	r = fetch()
	if r.Rates == nil || r.Rates.WindowSeconds < 0.2 || r.Rates.Requests <= 0 {
		t.Fatalf("rates %+v", r.Rates)
	}
	if e := r.Services[0]; e.Rates == nil || e.Rates.Replies <= 0 || e.Rates.Requests != e.Rates.Replies {
		t.Errorf("echo rates %+v", e.Rates)
	}
}

// TestRates checks the rate arithmetic with scripted snapshots.
func TestRates(t *testing.T) {
	var rt rateTracker
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	snap := func(at time.Duration, requests, svc uint64) *StatusResponse {
		st := broker.Status{Now: t0.Add(at), Started: t0,
			Services: []broker.ServiceStatus{{Name: "a", Requests: svc}}}
		st.Requests = requests
		return newStatusResponse(&st, &rt, false)
	}
	if r := snap(0, 0, 0); r.Rates != nil {
		t.Fatal("rates from one sample")
	}
	if r := snap(100*time.Millisecond, 5, 5); r.Rates != nil {
		t.Fatal("rates over 100ms")
	}
	r := snap(500*time.Millisecond, 50, 10)
	if r.Rates == nil || r.Rates.WindowSeconds != 0.5 || r.Rates.Requests != 100 || r.Services[0].Rates.Requests != 20 {
		t.Fatalf("half-second window: %+v %+v", r.Rates, r.Services[0].Rates)
	}
	// From here on the window is the newest sample at least a second old.
	r = snap(1500*time.Millisecond, 250, 30)
	if r.Rates.WindowSeconds != 1 || r.Rates.Requests != 200 {
		t.Fatalf("1s window: %+v", r.Rates)
	}
	// A service counter that went down (forgotten, back) counts from zero.
	r = snap(2600*time.Millisecond, 300, 4)
	if got := r.Services[0].Rates.Requests; got < 3.6 || got > 3.7 {
		t.Fatalf("reset service rate %v", got)
	}
	if len(rt.samples) > maxSamples {
		t.Fatalf("%d samples kept", len(rt.samples))
	}
}

func TestStatusPageAssets(t *testing.T) {
	b := startBroker(t, broker.Config{})
	_, base := startServer(t, b, 10)
	code, hdr, body := get(t, base+"/")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, `<script src="/static/app.js"`) || !strings.Contains(body, `id="services"`) {
		t.Fatalf("/: %d %v\n%s", code, hdr, body)
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("the page refers to another origin")
	}
	for path, ctype := range map[string]string{"/static/app.js": "text/javascript", "/static/style.css": "text/css"} {
		code, hdr, body := get(t, base+path)
		if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), ctype) || len(body) < 1000 {
			t.Errorf("%s: %d %s %d bytes", path, code, hdr.Get("Content-Type"), len(body))
		}
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
			t.Errorf("%s refers to another origin", path)
		}
	}
	for _, path := range []string{"/nope", "/static/nope.js", "/api/v1/nope"} {
		if code, _, _ := get(t, base+path); code != 404 {
			t.Errorf("%s: %d", path, code)
		}
	}
	res, err := http.Post(base+"/api/v1/status", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", res.StatusCode)
	}
}

func TestServerLifecycle(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without a broker")
	}
	b := startBroker(t, broker.Config{})
	s, err := New(Options{Broker: b, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown before Start: %v", err)
	}
	addr, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start("127.0.0.1:0"); err == nil {
		t.Error("second Start")
	}
	other, _ := New(Options{Broker: b, Logger: quiet})
	if _, err := other.Start(addr.String()); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("port in use: %v", err)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	http.DefaultClient.CloseIdleConnections()
	if _, err := http.Get("http://" + addr.String() + "/healthz"); err == nil {
		t.Error("server still answers after Shutdown")
	}
}
