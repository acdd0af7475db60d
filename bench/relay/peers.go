package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"
)

// frame appends one frame with payload p to dst.
func frame(dst []byte, p ...byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(p)))
	return append(dst, p...)
}

// runWorkers connects n echo workers to the relay at addr; each sends back
// every request it gets, one at a time. It returns when ctx ends or a
// connection fails, having closed every connection. ready (if not nil) is
// called once all n have sent their hello.
func runWorkers(ctx context.Context, addr string, n int, ready func()) error {
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var d net.Dialer
	for i := 0; i < n; i++ {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		if _, err := c.Write(frame(nil, typeHelloWorker)); err != nil {
			return err
		}
	}
	if ready != nil {
		ready()
	}
	stop := context.AfterFunc(ctx, func() {
		for _, c := range conns {
			c.Close()
		}
	})
	defer stop()
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- echo(c)
		}()
	}
	wg.Wait()
	close(errs)
	if ctx.Err() != nil {
		return nil
	}
	return <-errs
}

// echo is one worker: it reads a request ('r' id body) and writes it back
// unchanged, in one write.
func echo(c net.Conn) error {
	r := bufio.NewReaderSize(c, 64<<10)
	var hdr [4]byte
	buf := make([]byte, 0, 4096)
	out := make([]byte, 0, 4096)
	for {
		p, err := readFrame(r, hdr[:], buf)
		buf = p[:0]
		if err != nil {
			return err
		}
		if len(p) < 5 || p[0] != typeRequest {
			return fmt.Errorf("worker: unexpected frame type %q", p[0])
		}
		out = frame(out[:0], p...)
		if _, err := c.Write(out); err != nil {
			return err
		}
	}
}

// clientResult is what the client measured between its two CPU samples.
type clientResult struct {
	Requests     uint64        // replies between the samples.
	Elapsed      time.Duration // between the samples.
	RelayCPU     time.Duration // the relay's CPU time between the samples.
	ClientCPU    time.Duration // this process's.
	WorkersCPU   time.Duration // the workers process's (0 if not sampled).
	WorkersErr   error
	BadReplies   uint64
	TotalReplies uint64
}

// clientConfig is the client's load.
type clientConfig struct {
	Window   int
	Size     int
	Warmup   time.Duration
	Duration time.Duration
	// WorkersCPU samples the workers' CPU time (nil: not sampled).
	WorkersCPU func() (time.Duration, error)
}

// runClient keeps cfg.Window requests in flight (1: one at a time) over one
// connection to the relay, asks the relay for its CPU time after the
// warmup and again cfg.Duration later, and reports what happened between
// the two answers. One goroutine: it writes the requests its replies make
// room for after reading every reply the kernel had for it.
func runClient(ctx context.Context, addr string, cfg clientConfig) (*clientResult, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	deadline := time.Now().Add(cfg.Warmup + cfg.Duration + 30*time.Second)
	c.SetDeadline(deadline)
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriterSize(c, 64<<10)
	req := make([]byte, 1+cfg.Size)
	req[0] = typeRequest
	w.Write(frame(nil, typeHelloClient))
	for i := 0; i < cfg.Window; i++ {
		w.Write(frame(nil, req...))
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	var (
		res                     clientResult
		hdr                     [4]byte
		buf                     = make([]byte, 0, 4096)
		start                   = time.Now()
		asked                   int // CPU questions sent.
		answered                int
		count0                  uint64
		t0                      time.Time
		cpu0, client0, workers0 time.Duration
	)
	ask := func() error {
		asked++
		w.Write(frame(nil, typeCPU))
		return w.Flush()
	}
	for {
		p, err := readFrame(r, hdr[:], buf)
		buf = p[:0]
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		switch {
		case p[0] == typeRequest:
			res.TotalReplies++
			if len(p) != 1+cfg.Size {
				res.BadReplies++
			}
			w.Write(frame(nil, req...))
		case p[0] == typeCPU && len(p) == 9:
			now := time.Now()
			relay := time.Duration(binary.BigEndian.Uint64(p[1:])) * time.Microsecond
			self := time.Duration(selfCPU()) * time.Microsecond
			var wk time.Duration
			if cfg.WorkersCPU != nil {
				wk, res.WorkersErr = cfg.WorkersCPU()
			}
			answered++
			if answered == 1 {
				count0, t0, cpu0, client0, workers0 = res.TotalReplies, now, relay, self, wk
				break
			}
			res.Requests = res.TotalReplies - count0
			res.Elapsed = now.Sub(t0)
			res.RelayCPU = relay - cpu0
			res.ClientCPU = self - client0
			res.WorkersCPU = wk - workers0
			return &res, nil
		default:
			return nil, fmt.Errorf("client: unexpected frame type %q", p[0])
		}
		switch {
		case asked == 0 && time.Since(start) >= cfg.Warmup:
			if err := ask(); err != nil {
				return nil, err
			}
		case asked == 1 && answered == 1 && time.Since(t0) >= cfg.Duration:
			if err := ask(); err != nil {
				return nil, err
			}
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return nil, err
			}
		}
	}
}
