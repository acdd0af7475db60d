package ops

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/internal/testutil/dealer"
	"github.com/majordomo-go/majordomo/internal/transport"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches /metrics from a started server and parses it.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("/metrics: %s", res.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// find returns the metric of family name whose labels include want, or nil.
func find(fams map[string]*dto.MetricFamily, name string, want ...string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || l.GetName() == want[i] && l.GetValue() == want[i+1]
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	m := find(fams, name, labels...)
	if m == nil {
		t.Fatalf("no %s%v", name, labels)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	t.Fatalf("%s: unexpected type", name)
	return 0
}

// labelValues returns the distinct values of label in family name.
func labelValues(fams map[string]*dto.MetricFamily, name, label string) map[string]bool {
	out := make(map[string]bool)
	if f := fams[name]; f != nil {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == label {
					out[l.GetValue()] = true
				}
			}
		}
	}
	return out
}

func startServer(t *testing.T, src Source, maxServices int) (*Server, string) {
	t.Helper()
	s, err := New(Options{Broker: src, MetricsMaxServices: maxServices, Logger: quiet, ReadyTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Not t.Context(): it is cancelled before cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		http.DefaultClient.CloseIdleConnections()
	})
	return s, "http://" + addr.String()
}

// TestMetricsAfterTraffic drives real traffic through a broker and checks
// metric names, labels and values in the scraped text.
func TestMetricsAfterTraffic(t *testing.T) {
	b := startBroker(t, broker.Config{})
	ep := b.Endpoints()[0]
	startWorker(t, ep, "echo", 0, false)
	startWorker(t, ep, "echo", 0, false)
	startWorker(t, ep, "slow", 20*time.Millisecond, false)
	gone := startWorker(t, ep, "gone", 0, false)
	waitStatus(t, b, "4 workers", func(st broker.Status) bool { return st.Stats.Workers == 4 })
	gone.close() // DISCONNECT: removed, reason disconnect.

	c := newClient(t, ep)
	for i := 0; i < 5; i++ {
		if !c.call(t, "echo", "hi", 5*time.Second) {
			t.Fatal("echo: no reply")
		}
	}
	for i := 0; i < 3; i++ {
		if !c.call(t, "slow", "hi", 5*time.Second) {
			t.Fatal("slow: no reply")
		}
	}
	c.send(t, "nobody", "q1")
	c.send(t, "nobody", "q2")
	raw := dealer.Dial(t, ep, transport.Options{})
	raw.Send([][]byte{[]byte("garbage")}, false) // Malformed: bad header.
	waitStatus(t, b, "queued and dropped", func(st broker.Status) bool {
		return st.Queued == 2 && st.DroppedBy(broker.DropHeader) == 1 && st.RemovedBy(broker.RemovedDisconnect) == 1
	})
	raw.Close()

	_, base := startServer(t, b, 100)
	fams := scrape(t, base)
	check := func(want float64, name string, labels ...string) {
		t.Helper()
		if got := value(t, fams, name, labels...); got != want {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	check(5, "mdbroker_service_requests_total", "service", "echo")
	check(5, "mdbroker_service_replies_total", "service", "echo")
	check(3, "mdbroker_service_replies_total", "service", "slow")
	check(2, "mdbroker_service_workers", "service", "echo", "state", "idle")
	check(0, "mdbroker_service_workers", "service", "echo", "state", "busy")
	check(0, "mdbroker_service_requests_total", "service", "gone")
	// "nobody" never had a worker: it is summed under _other.
	check(2, "mdbroker_service_requests_total", "service", OtherService)
	check(2, "mdbroker_service_queued_requests", "service", OtherService)
	check(4, "mdbroker_service_queued_bytes", "service", OtherService)
	check(1, "mdbroker_services_aggregated")
	check(2, "mdbroker_queued_requests")
	check(3, "mdbroker_workers", "state", "idle")
	if got := value(t, fams, "mdbroker_connections"); got < 3 {
		t.Errorf("mdbroker_connections = %v, want at least the 3 idle workers' connections", got)
	}
	check(1, "mdbroker_dropped_messages_total", "reason", "header", "class", "malformed")
	check(0, "mdbroker_dropped_messages_total", "reason", "queue_full", "class", "limit")
	check(1, "mdbroker_workers_removed_total", "reason", "disconnect")
	check(0, "mdbroker_workers_removed_total", "reason", "expired")
	check(4, "mdbroker_worker_registrations_total")
	check(10, "mdbroker_requests_total")
	check(8, "mdbroker_replies_total")
	if svc := labelValues(fams, "mdbroker_service_requests_total", "service"); svc["nobody"] || len(svc) != 4 {
		t.Errorf("service labels %v, want echo, slow, gone and _other", svc)
	}
	if got := labelValues(fams, "mdbroker_dropped_messages_total", "reason"); len(got) != len(broker.DropReasons()) {
		t.Errorf("drop reasons %v", got)
	}
	if got := labelValues(fams, "mdbroker_workers_removed_total", "reason"); len(got) != len(broker.RemoveReasons()) {
		t.Errorf("remove reasons %v", got)
	}

	// Histograms: cumulative buckets, +Inf is the count.
	h := find(fams, "mdbroker_service_time_seconds", "service", "slow").GetHistogram()
	if h.GetSampleCount() != 3 || h.GetSampleSum() < 0.06 {
		t.Errorf("slow service time: count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
	}
	if len(h.Bucket) != len(broker.LatencyBuckets)+1 || !math.IsInf(h.Bucket[len(h.Bucket)-1].GetUpperBound(), 1) {
		t.Errorf("%d buckets, want %d and +Inf", len(h.Bucket), len(broker.LatencyBuckets)+1)
	}
	var prev uint64
	for _, bk := range h.Bucket {
		if bk.GetCumulativeCount() < prev {
			t.Errorf("buckets not cumulative: %v", h.Bucket)
		}
		prev = bk.GetCumulativeCount()
		if bk.GetUpperBound() <= 0.01 && bk.GetCumulativeCount() != 0 {
			t.Errorf("a 20ms handler observed at <= %vs", bk.GetUpperBound())
		}
	}
	if prev != 3 {
		t.Errorf("last bucket %d, want 3", prev)
	}
	if qw := find(fams, "mdbroker_service_queue_wait_seconds", "service", "echo").GetHistogram(); qw.GetSampleCount() != 5 {
		t.Errorf("echo queue wait count %d", qw.GetSampleCount())
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds", "mdbroker_start_time_seconds"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	for name := range fams {
		if !strings.HasPrefix(name, "mdbroker_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("unexpected family %s", name)
		}
	}
	// The names and help texts follow Prometheus conventions.
	problems, err := testutil.CollectAndLint(NewCollector(b, 100))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
}

// TestCardinalityCap floods the broker with made-up service names and
// checks that the label set stays at the cap plus _other.
func TestCardinalityCap(t *testing.T) {
	b := startBroker(t, broker.Config{RequestTimeout: time.Minute})
	ep := b.Endpoints()[0]
	for i := 0; i < 5; i++ {
		startWorker(t, ep, fmt.Sprintf("svc%d", i), 0, false)
	}
	waitStatus(t, b, "5 workers", func(st broker.Status) bool { return st.Stats.Workers == 5 })
	c := newClient(t, ep)
	for i := 0; i < 500; i++ {
		c.send(t, fmt.Sprintf("random-%04d", i), "x")
	}
	waitStatus(t, b, "500 queued", func(st broker.Status) bool { return st.Queued == 500 })

	s, base := startServer(t, b, 3)
	fams := scrape(t, base)
	want := map[string]bool{"svc0": true, "svc1": true, "svc2": true, OtherService: true}
	for _, name := range []string{"mdbroker_service_requests_total", "mdbroker_service_workers", "mdbroker_service_time_seconds"} {
		if got := labelValues(fams, name, "service"); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s services %v, want %v", name, got, want)
		}
	}
	if got := value(t, fams, "mdbroker_service_queued_requests", "service", OtherService); got != 500 {
		t.Errorf("_other queued %v", got)
	}
	if got := value(t, fams, "mdbroker_service_workers", "service", OtherService, "state", "idle"); got != 2 {
		t.Errorf("_other idle workers %v", got)
	}
	if got := value(t, fams, "mdbroker_services_aggregated"); got != 502 {
		t.Errorf("aggregated %v", got)
	}
	// Requests to an aggregated service count under _other, never less.
	other := value(t, fams, "mdbroker_service_requests_total", "service", OtherService)
	for i := 0; i < 3; i++ {
		if !c.call(t, "svc4", "x", 5*time.Second) {
			t.Fatal("svc4: no reply")
		}
	}
	fams = scrape(t, base)
	if got := value(t, fams, "mdbroker_service_requests_total", "service", OtherService); got != other+3 {
		t.Errorf("_other requests %v, want %v", got, other+3)
	}
	// Lowering the cap moves svc1 and svc2 to _other without a drop in it.
	s.SetMetricsMaxServices(1)
	fams = scrape(t, base)
	if got := labelValues(fams, "mdbroker_service_requests_total", "service"); len(got) != 2 || !got["svc0"] {
		t.Errorf("after lowering the cap: %v", got)
	}
	if got := value(t, fams, "mdbroker_service_requests_total", "service", OtherService); got != other+3 {
		t.Errorf("_other requests %v after demotion, want %v", got, other+3)
	}
}

// fakeSource serves scripted statuses.
type fakeSource struct{ st broker.Status }

func (f *fakeSource) Status() broker.Status { return f.st }

func svcStatus(name string, registered bool, requests uint64) broker.ServiceStatus {
	return broker.ServiceStatus{Name: name, Registered: registered, Requests: requests, Replies: requests,
		ServiceTime: broker.Histogram{Counts: make([]uint64, len(broker.LatencyBuckets)+1)}}
}

// TestOtherIsMonotonic checks the _other bookkeeping step by step: members
// that leave keep what they added, promotions and re-incarnations do not
// make it go down.
func TestOtherIsMonotonic(t *testing.T) {
	src := &fakeSource{}
	col := NewCollector(src, 1)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	other := func() float64 {
		t.Helper()
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]*dto.MetricFamily{}
		for _, f := range fams {
			m[f.GetName()] = f
		}
		return value(t, m, "mdbroker_service_requests_total", "service", OtherService)
	}
	steps := []struct {
		services []broker.ServiceStatus
		want     float64
	}{
		{[]broker.ServiceStatus{svcStatus("a", true, 10), svcStatus("x", false, 5), svcStatus("y", false, 7)}, 12},
		{[]broker.ServiceStatus{svcStatus("a", true, 11), svcStatus("x", false, 6), svcStatus("y", false, 7)}, 13},
		// y forgotten: what it added stays.
		{[]broker.ServiceStatus{svcStatus("a", true, 11), svcStatus("x", false, 8)}, 15},
		// a forgotten, x gets a worker and takes the free label: _other
		// keeps the 9 requests x had when it left.
		{[]broker.ServiceStatus{svcStatus("x", true, 9)}, 16},
		// y comes back from zero.
		{[]broker.ServiceStatus{svcStatus("x", true, 10), svcStatus("y", false, 2)}, 18},
		// y forgotten and back between scrapes with fewer requests: a new incarnation.
		{[]broker.ServiceStatus{svcStatus("x", true, 10), svcStatus("y", false, 1)}, 19},
		{[]broker.ServiceStatus{svcStatus("x", true, 10), svcStatus("y", false, 4)}, 22},
	}
	for i, s := range steps {
		src.st = broker.Status{Now: time.Now(), Services: s.services}
		if got := other(); got != s.want {
			t.Fatalf("step %d: _other = %v, want %v", i, got, s.want)
		}
	}
	// The histogram under _other follows the same rules and stays valid.
	if n := testutil.CollectAndCount(col, "mdbroker_service_time_seconds"); n != 2 {
		t.Errorf("%d service time series, want 2", n)
	}
}

func TestQuantile(t *testing.T) {
	h := broker.Histogram{Counts: make([]uint64, len(broker.LatencyBuckets)+1)}
	if Quantile(h, 0.5) != 0 {
		t.Error("empty histogram")
	}
	// 100 observations in (1ms, 2.5ms]: the median is interpolated halfway.
	h.Counts[5], h.Count = 100, 100
	if got := Quantile(h, 0.5); got != 1750*time.Microsecond {
		t.Errorf("p50 = %v", got)
	}
	h.Counts[len(h.Counts)-1], h.Count = 100, 200
	if got := Quantile(h, 0.99); got != time.Minute {
		t.Errorf("p99 in overflow = %v, want the largest bound", got)
	}
	l := latencyOf(broker.Histogram{Counts: h.Counts, Count: 200, Sum: 200 * time.Millisecond})
	if math.Abs(l.MeanSeconds-0.001) > 1e-9 || l.P50Seconds != 0.0025 {
		t.Errorf("latency %+v", l)
	}
}

// TestServiceDropsByReason: a labelled service's drops carry their reason.
func TestServiceDropsByReason(t *testing.T) {
	b := startBroker(t, broker.Config{MaxQueue: 1})
	ep := b.Endpoints()[0]
	startWorker(t, ep, "busy", 0, true) // Holds the first request for ever.
	waitStatus(t, b, "worker", func(st broker.Status) bool { return st.Stats.Workers == 1 })
	c := newClient(t, ep)
	c.send(t, "busy", "held")
	c.send(t, "busy", "queued")
	c.send(t, "busy", "over the bound")
	waitStatus(t, b, "queue full", func(st broker.Status) bool { return st.DroppedBy(broker.DropQueueFull) == 1 })
	_, base := startServer(t, b, 100)
	fams := scrape(t, base)
	if got := value(t, fams, "mdbroker_service_dropped_total", "service", "busy", "reason", "queue_full"); got != 1 {
		t.Fatalf(`mdbroker_service_dropped_total{service="busy",reason="queue_full"} = %v, want 1`, got)
	}
}
