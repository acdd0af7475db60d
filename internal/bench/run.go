package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/majordomo-go/majordomo/broker"
)

// Phase is one measured load: the clients against the broker, or against
// the raw echo.
type Phase struct {
	Name     string      `json:"name"` // "broker" or "raw".
	Server   string      `json:"server"`
	Endpoint string      `json:"endpoint"`
	Requests uint64      `json:"requests"`
	Errors   uint64      `json:"errors"`
	Seconds  float64     `json:"seconds"`
	RPS      float64     `json:"rps"`
	Latency  Percentiles `json:"latency_us"`
	CPU      []CPUUse    `json:"cpu"`
}

// CPUUse is the CPU time one process (or, for an in-process estimate, one
// set of threads) used over the measured interval.
type CPUUse struct {
	Name     string  `json:"name"`
	Kind     string  `json:"kind"` // "process", "threads" (part of a process) or "remote" (asked with $CPU).
	PID      int     `json:"pid,omitempty"`
	Seconds  float64 `json:"seconds"`
	USPerReq float64 `json:"us_per_req"`
	// SwitchesPerReq is the context switches of the process's threads per
	// request (processes only).
	SwitchesPerReq float64 `json:"switches_per_req,omitempty"`
	Error          string  `json:"error,omitempty"`
}

// Ratio compares the broker phase with the raw phase of the same run.
type Ratio struct {
	Throughput float64 `json:"throughput"` // broker req/s ÷ raw req/s.
	P50        float64 `json:"p50"`        // broker p50 ÷ raw p50.
	P99        float64 `json:"p99"`
}

// Result is what a run measured.
type Result struct {
	Config        Config  `json:"config"`
	Host          Host    `json:"host"`
	Phases        []Phase `json:"phases"`
	BrokerOverRaw *Ratio  `json:"broker_over_raw,omitempty"`
}

// Host describes where the run happened.
type Host struct {
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Affinity   string `json:"affinity"`
	GoVersion  string `json:"go_version"`
	Time       string `json:"time"`
}

// Phase returns the phase of that name, or nil.
func (r *Result) Phase(name string) *Phase {
	for i := range r.Phases {
		if r.Phases[i].Name == name {
			return &r.Phases[i]
		}
	}
	return nil
}

// Run runs the configured load and returns what it measured. Progress
// lines go to progress (nil: none).
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cleanup, err := prepareCurve(&cfg)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	res := &Result{Config: cfg, Host: host()}
	if cfg.Raw || cfg.RawOnly {
		plain := cfg // The raw echo speaks NULL: its clients do too.
		plain.CurveServerKey, plain.CurveCert = "", ""
		ph, err := runRaw(ctx, plain, progress)
		if err != nil {
			return nil, fmt.Errorf("raw: %w", err)
		}
		res.Phases = append(res.Phases, *ph)
	}
	if !cfg.RawOnly {
		ph, err := runBroker(ctx, cfg, progress)
		if err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
		res.Phases = append(res.Phases, *ph)
	}
	if b, r := res.Phase("broker"), res.Phase("raw"); b != nil && r != nil && r.RPS > 0 && r.Latency.P50 > 0 && r.Latency.P99 > 0 {
		res.BrokerOverRaw = &Ratio{Throughput: b.RPS / r.RPS, P50: b.Latency.P50 / r.Latency.P50, P99: b.Latency.P99 / r.Latency.P99}
	}
	return res, nil
}

func host() Host {
	h := Host{NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
		Time: time.Now().UTC().Format(time.RFC3339)}
	if out, err := exec.Command("taskset", "-cp", strconv.Itoa(os.Getpid())).Output(); err == nil {
		s := string(out)
		if i := len(s) - 1; i > 0 {
			for j := i; j >= 0; j-- {
				if s[j] == ' ' {
					h.Affinity = s[j+1 : i]
					break
				}
			}
		}
	}
	return h
}

// freeEndpoint returns a TCP endpoint on loopback with a port that was free
// a moment ago, for a child process to bind.
func freeEndpoint() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return "tcp://" + l.Addr().String(), nil
}

// selfMeter measures this process.
func selfMeter() *cpuMeter {
	return &cpuMeter{name: "mdbench", pid: os.Getpid(), read: func() (time.Duration, error) { return procCPU(os.Getpid()) }}
}

func childMeter(c *child) *cpuMeter {
	pid := c.pid()
	return &cpuMeter{name: c.name, pid: pid, read: func() (time.Duration, error) { return procCPU(pid) }}
}

func runRaw(ctx context.Context, cfg Config, progress io.Writer) (*Phase, error) {
	ph := &Phase{Name: "raw"}
	meters := []*cpuMeter{selfMeter()}
	kinds := map[string]string{}
	switch {
	case cfg.RawEndpoint != "":
		ph.Server, ph.Endpoint = "external echo", cfg.RawEndpoint
		m := &cpuMeter{name: "raw-echo", read: remoteCPU(cfg.RawEndpoint)}
		if _, err := m.read(); err == nil {
			meters = append(meters, m)
			kinds["raw-echo"] = "remote"
		}
	case cfg.Broker == BrokerSpawn:
		ep, err := freeEndpoint()
		if err != nil {
			return nil, err
		}
		c, err := spawnPeer(roleRawEcho, cfg.BrokerCPU, cfg, ep)
		if err != nil {
			return nil, err
		}
		defer c.stop(10 * time.Second)
		if ph.Endpoint, err = c.waitLine("ready", 10*time.Second); err != nil {
			return nil, err
		}
		ph.Server = "Go ROUTER echo (child process)"
		meters = append(meters, childMeter(c))
		kinds[c.name] = "process"
		meters[len(meters)-1].name = "raw-echo"
	default:
		ep := cfg.Endpoint
		if ep == "" || cfg.Broker == BrokerExternal {
			ep = "tcp://127.0.0.1:*"
		}
		r, err := startRawEcho(ep, cfg.ThreadCPU)
		if err != nil {
			return nil, err
		}
		defer r.stop()
		ph.Server, ph.Endpoint = "Go ROUTER echo (in process)", r.endpoint
		if len(r.tids) > 0 {
			meters = append(meters, &cpuMeter{name: "raw-echo-threads", read: threadsCPU(r.tids)})
			kinds["raw-echo-threads"] = "threads"
		}
	}
	return ph, load(ctx, cfg, ph, meters, kinds, progress, nil)
}

func runBroker(ctx context.Context, cfg Config, progress io.Writer) (*Phase, error) {
	ph := &Phase{Name: "broker"}
	meters := []*cpuMeter{selfMeter()}
	kinds := map[string]string{}
	var prof *profiler
	switch cfg.Broker {
	case BrokerExternal:
		ph.Server, ph.Endpoint = "external broker", cfg.Endpoint
	case BrokerSpawn:
		ep := cfg.Endpoint
		if ep == "" {
			var err error
			if ep, err = freeEndpoint(); err != nil {
				return nil, err
			}
		}
		args := []string{"--endpoint", ep, "--log-level", "warn"}
		if cfg.CurveBrokerCert != "" {
			args = append(args, "--curve-secret-key", cfg.CurveBrokerCert)
		}
		if cfg.Titanic {
			// Removed after the broker stops (defers run last first).
			dir, err := os.MkdirTemp("", "mdbench-titanic-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(dir)
			args = append(args, "--titanic-dir", dir)
		}
		c, err := spawn("broker", cfg.BrokerCPU, cfg.BrokerBin, args...)
		if err != nil {
			return nil, err
		}
		defer c.signal(syscall.SIGTERM, 10*time.Second)
		ph.Server, ph.Endpoint = "mdbroker (child process)", ep
		meters = append(meters, childMeter(c))
		kinds["broker"] = "process"
		if cfg.PerfRecord != "" {
			prof = &profiler{perfFile: cfg.PerfRecord, perfPID: c.pid()}
		}
	default:
		ep := cfg.Endpoint
		if ep == "" {
			ep = "tcp://127.0.0.1:*"
		}
		sec, err := brokerSecurity(cfg)
		if err != nil {
			return nil, err
		}
		b, tids, err := startBroker(ep, sec, cfg.ThreadCPU)
		if err != nil {
			return nil, err
		}
		defer b.stop()
		ph.Server, ph.Endpoint = "broker (in process)", b.endpoint
		if len(tids) > 0 {
			meters = append(meters, &cpuMeter{name: "broker-threads", read: threadsCPU(tids)})
			kinds["broker-threads"] = "threads"
		}
	}
	if cfg.CPUProfile != "" {
		if prof == nil {
			prof = &profiler{}
		}
		prof.pprofFile = cfg.CPUProfile
	}
	// Workers.
	switch {
	case cfg.Titanic: // Titanic's own, inside the broker.
	case cfg.Peers == PeersProcs:
		c, err := spawnPeer(roleWorkers, cfg.WorkersCPU, cfg, ph.Endpoint)
		if err != nil {
			return nil, err
		}
		defer c.stop(15 * time.Second)
		if _, err := c.waitLine("ready", 30*time.Second); err != nil {
			return nil, err
		}
		meters = append(meters, childMeter(c))
		kinds[c.name] = "process"
	default:
		ws, err := startWorkers(cfg, ph.Endpoint)
		if err != nil {
			return nil, err
		}
		defer ws.stop()
	}
	if err := waitWorkers(ctx, cfg, ph.Endpoint, 60*time.Second); err != nil {
		return nil, err
	}
	return ph, load(ctx, cfg, ph, meters, kinds, progress, prof)
}

type inprocBroker struct {
	b        *broker.Broker
	endpoint string
	done     chan error
}

func startBroker(endpoint string, sec *broker.Security, lockThread bool) (*inprocBroker, []int, error) {
	before := threads()
	b, err := broker.New(broker.Config{Endpoints: []string{endpoint}, Logger: discard, Security: sec})
	if err != nil {
		return nil, nil, err
	}
	ib := &inprocBroker{b: b, endpoint: b.Endpoints()[0], done: make(chan error, 1)}
	var tids []int
	if lockThread {
		tids = newThreads(before, "ZMQbg")
	}
	tid := make(chan int, 1)
	go func() {
		if lockThread {
			runtime.LockOSThread() // Run's loop stays on this thread: its CPU can be read per thread.
		}
		tid <- syscall.Gettid()
		ib.done <- b.Run(context.Background())
	}()
	t := <-tid
	if lockThread {
		tids = append(tids, t)
	}
	return ib, tids, nil
}

func (ib *inprocBroker) stop() {
	ib.b.Close()
	<-ib.done
}

// profiler takes a pprof CPU profile of this process and/or a perf record
// of a child over the measured interval.
type profiler struct {
	pprofFile string
	pprofOut  *os.File
	perfFile  string
	perfPID   int
	perf      *exec.Cmd
}

func (p *profiler) start() error {
	if p.pprofFile != "" {
		f, err := os.Create(p.pprofFile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		p.pprofOut = f
	}
	if p.perfFile != "" {
		p.perf = exec.Command("perf", "record", "-q", "-g", "-F", "1999", "-p", strconv.Itoa(p.perfPID), "-o", p.perfFile)
		p.perf.Stderr = os.Stderr
		if err := p.perf.Start(); err != nil {
			return fmt.Errorf("perf record: %w", err)
		}
	}
	return nil
}

func (p *profiler) stop() {
	if p.pprofOut != nil {
		pprof.StopCPUProfile()
		p.pprofOut.Close()
	}
	if p.perf != nil {
		p.perf.Process.Signal(os.Interrupt)
		p.perf.Wait()
	}
}

// load runs the clients against endpoint: warm-up, then the measured
// interval, during which meters and the profiler run.
func load(ctx context.Context, cfg Config, ph *Phase, meters []*cpuMeter, kinds map[string]string, progress io.Writer, prof *profiler) error {
	var g loadGroup
	switch cfg.Peers {
	case PeersProcs:
		c, err := spawnPeer(roleClients, cfg.ClientsCPU, cfg, ph.Endpoint)
		if err != nil {
			return err
		}
		defer c.stop(15 * time.Second)
		if _, err := c.waitLine("ready", 30*time.Second); err != nil {
			return err
		}
		meters = append(meters, childMeter(c))
		kinds[c.name] = "process"
		g = childLoad{c}
	default:
		l, err := startClients(cfg, ph.Endpoint)
		if err != nil {
			return err
		}
		defer l.abort()
		g = l
	}
	if err := sleepCtx(ctx, cfg.Warmup); err != nil {
		g.endMeasure()
		g.finish()
		return err
	}
	for _, m := range meters {
		m.start()
	}
	if prof != nil {
		if err := prof.start(); err != nil {
			return err
		}
	}
	g.measure()
	t0 := time.Now()
	limit := cfg.Duration
	if cfg.Requests > 0 && limit <= 0 {
		limit = 10 * time.Minute
	}
	tick := time.NewTicker(20 * time.Millisecond)
	nextProgress := t0.Add(cfg.Progress)
	var lastN uint64
	lastT := t0
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			now = time.Now()
		case now = <-tick.C:
		}
		n := g.count()
		if ctx.Err() != nil || now.Sub(t0) >= limit || (cfg.Requests > 0 && n >= cfg.Requests) {
			break
		}
		if progress != nil && cfg.Progress > 0 && !now.Before(nextProgress) {
			fmt.Fprintf(progress, "mdbench: %s %5.1fs %10d replies %9.0f req/s\n", ph.Name,
				now.Sub(t0).Seconds(), n, float64(n-lastN)/now.Sub(lastT).Seconds())
			lastN, lastT = n, now
			nextProgress = nextProgress.Add(cfg.Progress)
		}
	}
	tick.Stop()
	g.endMeasure()
	for _, m := range meters {
		m.stop()
	}
	if prof != nil {
		prof.stop()
	}
	r, err := g.finish()
	if err != nil {
		return err
	}
	h := hdrhistogram.Import(r.Hist)
	ph.Requests, ph.Errors, ph.Seconds = r.Requests, r.Errors, r.Seconds
	if r.Seconds > 0 {
		ph.RPS = float64(r.Requests) / r.Seconds
	}
	ph.Latency = percentiles(h)
	for _, m := range meters {
		u := CPUUse{Name: m.name, Kind: kinds[m.name], PID: m.pid, Seconds: m.used.Seconds()}
		if u.Kind == "" {
			u.Kind = "process"
		}
		if m.err != nil {
			u.Error = m.err.Error()
		}
		if ph.Requests > 0 {
			u.USPerReq = float64(m.used.Microseconds()) / float64(ph.Requests)
			u.SwitchesPerReq = float64(m.switches) / float64(ph.Requests)
		}
		ph.CPU = append(ph.CPU, u)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
