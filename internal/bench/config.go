// Package bench is the engine of mdbench, the Majordomo load tool: it runs a
// broker (in this process, as a child mdbroker process, or an external one),
// echo workers built on the worker library and clients built on the client
// library (in this process or in child processes of their own), measures
// requests/s, latency percentiles from HDR histograms and the CPU time each
// process spends per request, and optionally the same clients against a plain
// ROUTER echo with no broker ("raw"), so that every report can show broker /
// raw from one run.
package bench

import (
	"errors"
	"fmt"
	"time"
)

// Broker modes.
const (
	BrokerInproc   = "inproc"   // broker.New in this process.
	BrokerSpawn    = "spawn"    // an mdbroker child process.
	BrokerExternal = "external" // an endpoint given by the user.
)

// Peer placements.
const (
	PeersInproc = "inproc" // workers and clients are goroutines of this process.
	PeersProcs  = "procs"  // one child process for all workers, one for all clients.
)

// Config describes one mdbench run. The zero value of a field means its
// default (see Defaults).
type Config struct {
	Broker      string        `json:"broker"`                 // BrokerInproc, BrokerSpawn or BrokerExternal.
	Endpoint    string        `json:"endpoint,omitempty"`     // Broker endpoint (external), or the one to bind (inproc, spawn).
	BrokerBin   string        `json:"broker_bin,omitempty"`   // mdbroker binary for BrokerSpawn.
	BrokerCPU   string        `json:"broker_cpu,omitempty"`   // taskset CPU list for the spawned broker or raw echo.
	Peers       string        `json:"peers"`                  // PeersInproc or PeersProcs.
	WorkersCPU  string        `json:"workers_cpu,omitempty"`  // taskset CPU list for the workers' process.
	ClientsCPU  string        `json:"clients_cpu,omitempty"`  // taskset CPU list for the clients' process.
	Workers     int           `json:"workers"`                // Echo workers (sockets registered with the broker).
	Services    int           `json:"services"`               // Services the workers are spread over.
	Clients     int           `json:"clients"`                // Client connections.
	Window      int           `json:"window"`                 // Requests in flight per client; 1 is synchronous (Client.Request).
	Size        int           `json:"size"`                   // Request body bytes, over all frames.
	Frames      int           `json:"frames"`                 // Body frames per request.
	Protocol    int           `json:"protocol"`               // 1 (7/MDP) or 2 (18/MDP).
	Duration    time.Duration `json:"duration_ns"`            // Measured time (with Requests: a cap).
	Requests    uint64        `json:"requests,omitempty"`     // Stop after this many measured replies (0: by Duration).
	Warmup      time.Duration `json:"warmup_ns"`              // Load before measuring starts.
	Raw         bool          `json:"raw"`                    // Also measure the clients against a plain ROUTER echo.
	RawOnly     bool          `json:"raw_only,omitempty"`     // Only the raw phase.
	RawEndpoint string        `json:"raw_endpoint,omitempty"` // External raw echo (for example bench/c/echo_server).
	CPUProfile  string        `json:"-"`                      // pprof CPU profile of this process over the broker phase.
	PerfRecord  string        `json:"-"`                      // perf record of the spawned broker over the broker phase.
	Progress    time.Duration `json:"-"`                      // Progress line interval on stderr (0: none).
	ThreadCPU   bool          `json:"thread_cpu,omitempty"`   // In-process broker/echo on a locked OS thread, its CPU read per thread.
	Label       string        `json:"label,omitempty"`        // Free text copied into the result.
	// Titanic makes the clients submit durable requests to the broker's
	// Titanic service (titanic.request, 9/TSP) for TitanicTarget, a
	// service with no worker, so that each reply is a stored request; no
	// echo workers run. A spawned mdbroker runs Titanic with its store in a
	// temporary directory (--titanic-dir); an external one must run it.
	Titanic bool `json:"titanic,omitempty"`
	// Curve turns CURVE on: for a broker mdbench starts, it makes the
	// certificates itself; against an external one CurveServerKey and
	// CurveCert name them. The raw echo stays plain.
	Curve           bool   `json:"curve,omitempty"`
	CurveServerKey  string `json:"curve_server_key,omitempty"`  // Broker public key (Z85) or certificate file.
	CurveCert       string `json:"curve_cert,omitempty"`        // Secret certificate of clients and workers.
	CurveBrokerCert string `json:"curve_broker_cert,omitempty"` // Broker secret certificate (made by mdbench).
}

// Defaults returns the default configuration: an in-process broker, two
// echo workers on one service, one client keeping 100 requests in flight,
// 100-byte bodies in one frame, 18/MDP, 1 s warm-up and 5 s measured.
func Defaults() Config {
	return Config{
		Broker:   BrokerInproc,
		Peers:    PeersInproc,
		Workers:  2,
		Services: 1,
		Clients:  1,
		Window:   100,
		Size:     100,
		Frames:   1,
		Protocol: 2,
		Duration: 5 * time.Second,
		Warmup:   time.Second,
	}
}

// TitanicTarget is the service the --titanic requests are for: nobody
// serves it, so Titanic only stores them.
const TitanicTarget = "mdbench-titanic-target"

// titanicRequest is the 9/TSP service that stores a request.
const titanicRequest = "titanic.request"

// minSize is the smallest body: the first 8 bytes carry the send time.
const minSize = 8

// Validate checks c and names the first bad setting.
func (c *Config) Validate() error {
	bad := func(name string, v any, why string) error {
		return fmt.Errorf("--%s=%v: %s", name, v, why)
	}
	switch c.Broker {
	case BrokerInproc, BrokerSpawn:
	case BrokerExternal:
		if c.Endpoint == "" && !c.RawOnly {
			return errors.New("an external broker needs its endpoint (-b)")
		}
		if c.Curve && (c.CurveServerKey == "" || c.CurveCert == "") {
			return errors.New("--curve with -b needs --curve-server-key and --curve-cert")
		}
	default:
		return bad("broker", c.Broker, "must be inproc, spawn or external")
	}
	if c.Broker == BrokerSpawn && c.BrokerBin == "" {
		return bad("spawn-broker", c.BrokerBin, "needs the path of an mdbroker binary")
	}
	switch {
	case c.Peers != PeersInproc && c.Peers != PeersProcs:
		return bad("peers", c.Peers, "must be inproc or procs")
	case c.Workers < 1 && !c.RawOnly && !c.Titanic:
		return bad("workers", c.Workers, "must be at least 1")
	case c.Services < 1:
		return bad("services", c.Services, "must be at least 1")
	case c.Services > c.Workers && !c.RawOnly && !c.Titanic:
		return bad("services", c.Services, "must not exceed --workers (every service needs a worker)")
	case c.Clients < 1:
		return bad("clients", c.Clients, "must be at least 1")
	case c.Window < 1:
		return bad("window", c.Window, "must be at least 1")
	case c.Frames < 1 || c.Frames > 64:
		return bad("frames", c.Frames, "must be 1..64")
	case c.Size < minSize:
		return bad("size", c.Size, fmt.Sprintf("must be at least %d (the send time travels in the body)", minSize))
	case c.Protocol != 1 && c.Protocol != 2:
		return bad("protocol", c.Protocol, "must be 1 or 2")
	case c.Duration <= 0 && c.Requests == 0:
		return bad("duration", c.Duration, "must be positive (or give --requests)")
	case c.Warmup < 0:
		return bad("warmup", c.Warmup, "must not be negative")
	case c.PerfRecord != "" && c.Broker != BrokerSpawn:
		return bad("perf-record", c.PerfRecord, "needs --spawn-broker")
	case c.Titanic && c.Broker == BrokerInproc:
		return errors.New("--titanic needs --spawn-broker or -b: Titanic runs inside mdbroker")
	case c.Titanic && (c.Raw || c.RawOnly):
		return errors.New("--titanic cannot be combined with --raw: the raw echo has no Titanic")
	}
	return nil
}

// serviceName is the name of service i of n.
func serviceName(i, n int) string {
	if n == 1 {
		return "echo"
	}
	return fmt.Sprintf("echo-%04d", i)
}

// workersPer returns how many workers serve each service: as even a spread
// as the counts allow.
func workersPer(workers, services int) []int {
	out := make([]int, services)
	for i := range workers {
		out[i%services]++
	}
	return out
}
