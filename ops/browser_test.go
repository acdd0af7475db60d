package ops

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/internal/testutil/dealer"
	"github.com/majordomo-go/majordomo/internal/transport"
)

// chromiumPath is Debian's chromium, which CI installs (apt-get install
// chromium). The browser test fails, rather than skips, without it.
const chromiumPath = "/usr/bin/chromium"

// renderedService is one row of the services table as the page shows it.
type renderedService struct {
	Name     string `json:"name"`
	Workers  string `json:"workers"`
	Sub      string `json:"sub"`
	Queued   string `json:"queued"`
	Requests string `json:"requests"`
	Badge    string `json:"badge"`
}

// renderedPage is what the test reads back from the page.
type renderedPage struct {
	Services   []renderedService `json:"services"`
	WorkerRows int               `json:"workerRows"`
	// MDP is the "mdp" row of the fronts table: open, accepted and failed
	// handshakes, as shown.
	MDP        []string `json:"mdp"`
	KPIWorkers string   `json:"kpiWorkers"`
	KPIQueued  string   `json:"kpiQueued"`
}

// TestBrowserStatusPage loads the status page in headless Chromium against
// a broker with a few services and live traffic, checks that the services
// and counts it shows match broker.Status, and saves a screenshot to
// $MDP_ARTIFACTS (default ops/testdata/out). With MDP_UPDATE_DOCS=1 it also
// writes docs/status-page.png, the README's screenshot.
func TestBrowserStatusPage(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser test needs Debian's chromium at %s (apt-get install -y chromium): %v", chromiumPath, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	b := startBroker(t, broker.Config{RequestTimeout: 5 * time.Minute})
	ep := b.Endpoints()[0]
	for _, w := range []struct {
		service string
		n       int
		delay   time.Duration
		hold    bool
	}{
		{"echo", 3, 0, false},
		{"inventory.lookup", 2, 2 * time.Millisecond, false},
		{"payments.authorize", 2, 15 * time.Millisecond, false},
		{"reports.render", 1, 0, true}, // Holds its request: busy, and one queued behind it.
	} {
		for i := 0; i < w.n; i++ {
			startWorker(t, ep, w.service, w.delay, w.hold)
		}
	}
	waitStatus(t, b, "8 workers", func(st broker.Status) bool { return st.Stats.Workers == 8 })
	c := newClient(t, ep)
	c.send(t, "reports.render", "monthly")
	c.send(t, "reports.render", "weekly")
	c.send(t, "geo.resolve", "nobody serves this")
	waitStatus(t, b, "busy and queued", func(st broker.Status) bool { return st.BusyWorkers == 1 && st.Queued == 2 })

	srv, err := New(Options{Broker: b, MetricsMaxServices: 10, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())

	profile := t.TempDir()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1440, 1000),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-crash-reporter", true),
	)
	defer func() {
		cancelAlloc()
		checkNoChromium(t, profile)
	}()
	browser, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	defer func() {
		// Close the browser gracefully, so that it reaps its children.
		if err := chromedp.Cancel(browser); err != nil {
			t.Logf("closing chromium: %v", err)
		}
		cancelBrowser()
	}()

	// Traffic in phases while the page polls fast, so that its charts have
	// a shape: echo and payments, then inventory joins, then payments stops.
	// With MDP_UPDATE_DOCS=1 the phases are longer, for the README's copy.
	phase := 8
	if os.Getenv("MDP_UPDATE_DOCS") == "1" {
		phase = 45
	}
	stopEcho := traffic(t, ep, []string{"echo", "echo"}, time.Millisecond)
	stopPayments := traffic(t, ep, []string{"payments.authorize"}, 5*time.Millisecond)
	url := fmt.Sprintf("http://%s/?interval=250", addr)
	if err := chromedp.Do(browser,
		chromedp.EmulateViewport(1440, 1000),
		chromedp.Navigate(url),
	); err != nil {
		t.Fatalf("load %s: %v", url, err)
	}
	if _, err := chromedp.Run(browser, chromedp.Poll[bool](
		`!!document.querySelector('#services tbody tr[data-service="echo"]')`,
		chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatalf("the services table did not render: %v", err)
	}
	waitPolls(t, browser, phase)
	stopInventory := traffic(t, ep, []string{"inventory.lookup"}, time.Millisecond)
	raw := dealer.Dial(t, ep, transport.Options{})
	raw.Send([][]byte{[]byte("not MDP")}, false) // A malformed message, dropped and counted.
	waitPolls(t, browser, phase)
	stopPayments()
	waitPolls(t, browser, phase/2)
	raw.Close()
	png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	saveScreenshot(t, png)

	// Quiesce, then compare what the page shows with the broker's state.
	if echo, inv := stopEcho(), stopInventory(); echo["echo"] == 0 || inv["inventory.lookup"] == 0 {
		t.Fatalf("traffic did not flow: %v %v", echo, inv)
	}
	sendGarbage(t, ep) // A failed handshake, for the fronts table.
	stoppedAt := time.Now()
	for {
		updated, err := chromedp.Run(browser, chromedp.Evaluate[string](`document.body.dataset.updated || ""`))
		if err != nil {
			t.Fatal(err)
		}
		if at, err := time.Parse(time.RFC3339Nano, updated); err == nil && at.After(stoppedAt) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the page did not update after traffic stopped (last %q)", updated)
		}
		time.Sleep(50 * time.Millisecond)
	}
	page, err := chromedp.Run(browser, chromedp.Evaluate[renderedPage](`({
		services: Array.from(document.querySelectorAll('#services tbody tr')).map(tr => ({
			name: tr.dataset.service,
			workers: tr.querySelector('[data-col=workers] .n').textContent,
			sub: tr.querySelector('[data-col=workers] .sub').textContent,
			queued: tr.querySelector('[data-col=queued]').textContent,
			requests: tr.querySelector('[data-col=requests]').textContent,
			badge: (tr.querySelector('.badge') || {}).textContent || '',
		})),
		workerRows: document.querySelectorAll('#workers tbody tr').length,
		mdp: ['open', 'accepted', 'handshake_failed'].map(c =>
			(document.querySelector('#fronts tr[data-front="mdp"] [data-col=' + c + ']') || {}).textContent || ''),
		kpiWorkers: document.getElementById('k-workers').textContent,
		kpiQueued: document.getElementById('k-queued').textContent,
	})`))
	if err != nil {
		t.Fatal(err)
	}
	rows, workerRows, kpiWorkers, kpiQueued := page.Services, page.WorkerRows, page.KPIWorkers, page.KPIQueued
	st := b.Status()
	if len(rows) != len(st.Services) {
		t.Fatalf("page shows %d services, broker has %d: %+v", len(rows), len(st.Services), rows)
	}
	num := func(s string) int {
		n, err := strconv.Atoi(strings.ReplaceAll(s, ",", ""))
		if err != nil {
			t.Errorf("not a number: %q", s)
		}
		return n
	}
	for i, r := range rows {
		want := st.Services[i] // Both sorted by name.
		busy := 0
		if strings.HasSuffix(r.Sub, " busy") {
			busy = num(strings.TrimSuffix(r.Sub, " busy"))
		}
		if r.Name != want.Name || num(r.Workers) != want.Workers || busy != want.Busy ||
			num(r.Queued) != want.Queued || num(r.Requests) != int(want.Requests) {
			t.Errorf("row %d shows %+v; broker has %s: %d workers, %d busy, %d queued, %d requests",
				i, r, want.Name, want.Workers, want.Busy, want.Queued, want.Requests)
		}
		if (want.Workers == 0) != (r.Badge != "") {
			t.Errorf("%s: badge %q with %d workers", r.Name, r.Badge, want.Workers)
		}
	}
	cs := b.ConnStats()[0]
	if len(page.MDP) != 3 || num(page.MDP[0]) != cs.Open || num(page.MDP[1]) != int(cs.Accepted) ||
		num(page.MDP[2]) != int(cs.HandshakeFailed) || cs.HandshakeFailed != 1 {
		t.Errorf("fronts table, mdp: open, accepted, failed handshakes %q; broker: %d, %d, %d",
			page.MDP, cs.Open, cs.Accepted, cs.HandshakeFailed)
	}
	if workerRows != len(st.Workers) || num(kpiWorkers) != st.Stats.Workers || num(kpiQueued) != st.Queued {
		t.Errorf("page: %d worker rows, %s workers, %s queued; broker: %d, %d, %d",
			workerRows, kpiWorkers, kpiQueued, len(st.Workers), st.Stats.Workers, st.Queued)
	}
}

// waitPolls waits until the page has rendered n more snapshots.
func waitPolls(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	from, err := chromedp.Run(ctx, chromedp.Evaluate[int](`Number(document.body.dataset.polls || 0)`))
	if err != nil {
		t.Fatal(err)
	}
	expr := fmt.Sprintf(`Number(document.body.dataset.polls || 0) >= %d`, from+n)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatalf("waiting for %d polls: %v", n, err)
	}
}

// saveScreenshot writes png to the artifacts directory and, if asked, to
// the README's copy.
func saveScreenshot(t *testing.T, png []byte) {
	t.Helper()
	dir := os.Getenv("MDP_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("testdata", "out")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	paths := []string{filepath.Join(dir, "status-page.png")}
	if os.Getenv("MDP_UPDATE_DOCS") == "1" {
		paths = append(paths, filepath.Join("..", "docs", "status-page.png"))
	}
	for _, p := range paths {
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		abs, _ := filepath.Abs(p)
		t.Logf("screenshot: %s (%d bytes)", abs, len(png))
	}
}

// checkNoChromium fails the test if a Chromium process using profile is
// still running, and ends it: those processes are this test's own.
func checkNoChromium(t *testing.T, profile string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := chromiumPIDs(profile)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("chromium processes left running: %v; killing them", pids)
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func chromiumPIDs(profile string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmd), profile) {
			pids = append(pids, pid)
		}
	}
	return pids
}
