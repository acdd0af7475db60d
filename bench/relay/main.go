// Command relay is a reference for the broker's benchmarks: a plain Go TCP
// relay of the Majordomo broker's exact shape with no ZeroMQ at all, its
// I/O on net.Conn (it was the floor under the broker's figures until the
// ZMTP engine's reads and writes went below net.Conn; see the README).
//
// A client keeps a window of requests in flight to the relay; the relay
// gives each request to an idle worker (a worker holds one request at a
// time, as a Majordomo worker does), queues it when none is idle, and
// routes the worker's reply back to the client. Frames are length-prefixed.
// The relay has the broker's I/O design: one reader goroutine per
// connection parsing every complete frame of a read and handing them in one
// batch to a single dispatch goroutine, which owns all state and writes each
// connection's output once per batch, without blocking.
//
//	relay [-workers 2] [-window 100] [-size 100] [-duration 3s] [-warmup 500ms] [-json]
//
// runs the relay and the workers as two child processes (this binary, as
// "relay serve" and "relay workers") and the client in this process, and
// reports requests per second and the CPU time per request of the relay
// process (its own getrusage, asked over the client's connection), of the
// workers' process (/proc/PID/stat, 10 ms resolution) and of the client.
// Wrap it in taskset to pin all three: children inherit the affinity.
//
// The relay is a benchmark on loopback, not a server; it still refuses
// oversized or malformed frames and drops a peer that stops reading.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			return serveMain(args[1:], stdin, stdout, stderr)
		case "workers":
			return workersMain(args[1:], stdin, stdout, stderr)
		}
	}
	return benchMain(args, stdout, stderr)
}

// childContext ends on SIGTERM or SIGINT, or when stdin reaches its end:
// the driver holds the other end of a pipe, so a child never outlives it.
func childContext(stdin io.Reader) (context.Context, context.CancelFunc) {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	go func() {
		io.Copy(io.Discard, stdin)
		cancel()
	}()
	return ctx, cancel
}

func serveMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("relay serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "TCP address to listen on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "relay serve: %v\n", err)
		return 1
	}
	ctx, cancel := childContext(stdin)
	defer cancel()
	fmt.Fprintf(stdout, "listening %s\n", ln.Addr())
	if err := serve(ctx, ln); err != nil {
		fmt.Fprintf(stderr, "relay serve: %v\n", err)
		return 1
	}
	return 0
}

func workersMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("relay workers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "the relay's TCP address")
	n := fs.Int("n", 2, "workers")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *addr == "" || *n < 1 || *n > 10000 {
		fmt.Fprintln(stderr, "relay workers: -addr is required and -n must be 1..10000")
		return 2
	}
	ctx, cancel := childContext(stdin)
	defer cancel()
	if err := runWorkers(ctx, *addr, *n, func() { fmt.Fprintln(stdout, "ready") }); err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "relay workers: %v\n", err)
		return 1
	}
	return 0
}

// result is the driver's report (one JSON object with -json).
type result struct {
	Label           string  `json:"label,omitempty"`
	Workers         int     `json:"workers"`
	Window          int     `json:"window"`
	Size            int     `json:"size"`
	Requests        uint64  `json:"requests"`
	Seconds         float64 `json:"seconds"`
	RPS             float64 `json:"rps"`
	RelayUSPerReq   float64 `json:"relay_us_per_req"`
	WorkersUSPerReq float64 `json:"workers_us_per_req"`
	ClientUSPerReq  float64 `json:"client_us_per_req"`
	BadReplies      uint64  `json:"bad_replies"`
	WorkersCPUError string  `json:"workers_cpu_error,omitempty"`
	Affinity        string  `json:"affinity,omitempty"`
	WorkersResUS    float64 `json:"workers_cpu_resolution_us_per_req"`
}

func benchMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	workers := fs.Int("workers", 2, "workers (each holds one request at a time)")
	window := fs.Int("window", 100, "requests in flight (1: synchronous)")
	size := fs.Int("size", 100, "request body size in bytes")
	dur := fs.Duration("duration", 3*time.Second, "measured time")
	warmup := fs.Duration("warmup", 500*time.Millisecond, "load before measuring")
	asJSON := fs.Bool("json", false, "print one JSON object")
	label := fs.String("label", "", "free text copied into the JSON result")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var bad string
	switch {
	case fs.NArg() > 0:
		bad = fmt.Sprintf("unexpected argument %q", fs.Arg(0))
	case *workers < 1 || *workers > 10000:
		bad = "-workers must be 1..10000"
	case *window < 1 || *window > 1000000:
		bad = "-window must be 1..1000000"
	case *size < 1 || *size > maxFrame-5:
		bad = fmt.Sprintf("-size must be 1..%d", maxFrame-5)
	case *dur <= 0 || *warmup < 0:
		bad = "-duration must be positive and -warmup not negative"
	}
	if bad != "" {
		fmt.Fprintf(stderr, "relay: %s\n", bad)
		return 2
	}
	res, err := drive(*workers, *window, *size, *warmup, *dur)
	if err != nil {
		fmt.Fprintf(stderr, "relay: %v\n", err)
		return 1
	}
	res.Label = *label
	if *asJSON {
		json.NewEncoder(stdout).Encode(res)
		return 0
	}
	fmt.Fprintf(stdout, "relay: %d worker(s), window %d, %d B: %d requests in %.2f s = %.0f req/s; CPU per request: relay %.2f us, workers %.2f us, client %.2f us\n",
		res.Workers, res.Window, res.Size, res.Requests, res.Seconds, res.RPS, res.RelayUSPerReq, res.WorkersUSPerReq, res.ClientUSPerReq)
	return 0
}

// child is a spawned copy of this binary; closing stdin ends it.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startChild(args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &child{cmd: cmd, stdin: in, out: bufio.NewReader(out)}, nil
}

// line reads the child's next line of output, or fails after 10 s.
func (c *child) line() (string, error) {
	type r struct {
		s   string
		err error
	}
	ch := make(chan r, 1)
	go func() {
		s, err := c.out.ReadString('\n')
		ch <- r{strings.TrimSpace(s), err}
	}()
	select {
	case x := <-ch:
		if x.err != nil {
			return "", fmt.Errorf("%s: %w", c.cmd.Args[1], x.err)
		}
		return x.s, nil
	case <-time.After(10 * time.Second):
		return "", fmt.Errorf("%s: no output in 10 s", c.cmd.Args[1])
	}
}

// stop ends the child: stdin closed, then SIGKILL if it lingers.
func (c *child) stop() {
	c.stdin.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

func drive(workers, window, size int, warmup, dur time.Duration) (*result, error) {
	relay, err := startChild("serve")
	if err != nil {
		return nil, err
	}
	defer relay.stop()
	l, err := relay.line()
	if err != nil {
		return nil, err
	}
	addr, ok := strings.CutPrefix(l, "listening ")
	if !ok {
		return nil, fmt.Errorf("relay serve said %q", l)
	}
	wk, err := startChild("workers", "-addr", addr, "-n", strconv.Itoa(workers))
	if err != nil {
		return nil, err
	}
	defer wk.stop()
	if l, err := wk.line(); err != nil || l != "ready" {
		return nil, fmt.Errorf("relay workers: %q %v", l, err)
	}
	pid := wk.cmd.Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), warmup+dur+time.Minute)
	defer cancel()
	cr, err := runClient(ctx, addr, clientConfig{Window: window, Size: size, Warmup: warmup, Duration: dur,
		WorkersCPU: func() (time.Duration, error) { return procCPU(pid) }})
	if err != nil {
		return nil, err
	}
	if cr.Requests == 0 {
		return nil, errors.New("no replies in the measured interval")
	}
	n := float64(cr.Requests)
	res := &result{Workers: workers, Window: window, Size: size, Requests: cr.Requests,
		Seconds: cr.Elapsed.Seconds(), RPS: n / cr.Elapsed.Seconds(),
		RelayUSPerReq:   float64(cr.RelayCPU.Microseconds()) / n,
		WorkersUSPerReq: float64(cr.WorkersCPU.Microseconds()) / n,
		ClientUSPerReq:  float64(cr.ClientCPU.Microseconds()) / n,
		BadReplies:      cr.BadReplies,
		Affinity:        affinity(),
		WorkersResUS:    10000 / n,
	}
	if cr.WorkersErr != nil {
		res.WorkersCPUError = cr.WorkersErr.Error()
	}
	if cr.BadReplies > 0 {
		return res, fmt.Errorf("%d replies of the wrong size", cr.BadReplies)
	}
	return res, nil
}

// procCPU is a process's user+system CPU time from /proc/PID/stat (USER_HZ
// ticks: 100 per second on Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // The command name may hold spaces.
	if i < 0 {
		return 0, errors.New("/proc/PID/stat: unexpected format")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("/proc/PID/stat: unexpected format")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("/proc/PID/stat: unexpected format")
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// affinity is this process's allowed CPU list, from /proc/self/status.
func affinity() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
