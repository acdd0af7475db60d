package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/mdp"
	"github.com/majordomo-go/majordomo/worker"
)

// epoch is the origin of the send times carried in request bodies. Sender
// and receiver of a request are always in the same process.
var epoch = time.Now()

func nanotime() uint64 { return uint64(time.Since(epoch)) }

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// Measurement phases of a client load.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseDone
)

// clientResult is what a client load measured.
type clientResult struct {
	Requests uint64                 `json:"requests"`
	Errors   uint64                 `json:"errors"`
	Seconds  float64                `json:"seconds"`
	Hist     *hdrhistogram.Snapshot `json:"hist"`
}

// loadGroup is a running client load, in this process or in a child.
type loadGroup interface {
	measure()      // Start counting and recording.
	count() uint64 // Replies counted so far.
	endMeasure()   // Stop counting; the load may go on until finish.
	finish() (clientResult, error)
}

// clientLoad is cfg.Clients clients in this process, each with its own
// connection, keeping cfg.Window requests in flight (1: Client.Request, the
// synchronous call; more: a Pipeline with a sender and a receiver goroutine).
type clientLoad struct {
	cfg     Config
	phase   atomic.Int32
	replies atomic.Uint64
	errs    atomic.Uint64
	t0, t1  time.Time
	mu      sync.Mutex // Guards t0 and t1.
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	hists   []*hdrhistogram.Histogram
	clients []*client.Client
}

func startClients(cfg Config, endpoint string) (*clientLoad, error) {
	l := &clientLoad{cfg: cfg}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	names := make([]string, cfg.Services)
	for i := range names {
		names[i] = serviceName(i, cfg.Services)
	}
	if cfg.Titanic {
		names = []string{titanicRequest}
	}
	copts, _, err := peerCurve(cfg)
	if err != nil {
		l.abort()
		return nil, err
	}
	for i := range cfg.Clients {
		c, err := client.Connect(endpoint, append([]client.Option{client.WithVersion(mdp.Version(cfg.Protocol)),
			client.WithLogger(discard), client.WithTimeout(30 * time.Second), client.WithRetries(0)}, copts...)...)
		if err != nil {
			l.abort()
			return nil, err
		}
		l.clients = append(l.clients, c)
		h := newHist()
		l.hists = append(l.hists, h)
		if cfg.Window == 1 {
			l.wg.Go(func() { l.syncLoop(ctx, c, h, i, names) })
			continue
		}
		p, err := c.Pipeline(cfg.Window)
		if err != nil {
			l.abort()
			return nil, err
		}
		// Send times in sending order, for replies that do not echo the
		// body (Titanic's): one more than the window, for the send that
		// waits for room.
		sent := make(chan uint64, cfg.Window+1)
		l.wg.Go(func() { l.sendLoop(ctx, p, i, names, sent) })
		l.wg.Go(func() { l.recvLoop(ctx, p, h, sent) })
	}
	return l, nil
}

func (l *clientLoad) abort() {
	l.cancel()
	l.wg.Wait()
	for _, c := range l.clients {
		c.Close()
	}
}

// makeBody returns a request body of cfg.Size bytes in cfg.Frames frames;
// the first frame, at least 8 bytes long, starts with the send time. For
// --titanic the whole body follows the target service's name (9/TSP
// titanic.request), and stamp is the body's first frame, not the request's.
func makeBody(cfg Config) (req [][]byte, stamp []byte) {
	per := cfg.Size / cfg.Frames
	first := cfg.Size - per*(cfg.Frames-1)
	body := [][]byte{make([]byte, first)}
	for range cfg.Frames - 1 {
		body = append(body, make([]byte, per))
	}
	if cfg.Titanic {
		return append([][]byte{[]byte(TitanicTarget)}, body...), body[0]
	}
	return body, body[0]
}

// answered reports whether rep is the reply to the request stamped with
// send time t: the echo of the body, or Titanic's 200 and request id.
func (l *clientLoad) answered(rep [][]byte, t uint64) bool {
	if l.cfg.Titanic {
		return len(rep) == 2 && string(rep[0]) == "200"
	}
	return len(rep) > 0 && len(rep[0]) >= 8 && binary.LittleEndian.Uint64(rep[0]) == t
}

func (l *clientLoad) syncLoop(ctx context.Context, c *client.Client, h *hdrhistogram.Histogram, i int, names []string) {
	body, stamp := makeBody(l.cfg)
	for k := i; ctx.Err() == nil; k++ {
		t := nanotime()
		binary.LittleEndian.PutUint64(stamp, t)
		rep, err := c.Request(ctx, names[k%len(names)], body...)
		d := time.Duration(nanotime() - t)
		if err != nil {
			if ctx.Err() == nil {
				l.errs.Add(1)
			}
			continue
		}
		if !l.answered(rep, t) {
			l.errs.Add(1) // Not our echo.
			continue
		}
		if l.phase.Load() == phaseMeasure {
			record(h, d)
			l.replies.Add(1)
		}
	}
}

func (l *clientLoad) sendLoop(ctx context.Context, p *client.Pipeline, i int, names []string, sent chan<- uint64) {
	body, stamp := makeBody(l.cfg)
	for k := i; ; k++ {
		t := nanotime()
		binary.LittleEndian.PutUint64(stamp, t)
		if l.cfg.Titanic {
			select {
			case sent <- t:
			case <-ctx.Done():
				return
			}
		}
		// Send copies the body before it returns, so body can be reused.
		if err := p.Send(ctx, names[k%len(names)], body...); err != nil {
			if ctx.Err() == nil && !errors.Is(err, client.ErrClosed) {
				l.errs.Add(1)
			}
			return
		}
	}
}

// recvLoop counts the replies of a Pipeline. Titanic's replies carry no
// send time, so its latency is measured from the oldest request without a
// reply (sent): exact while replies come in sending order, an upper
// bound otherwise.
func (l *clientLoad) recvLoop(ctx context.Context, p *client.Pipeline, h *hdrhistogram.Histogram, sent <-chan uint64) {
	for {
		r, err := p.Recv(ctx)
		if err != nil {
			return
		}
		now := nanotime()
		if !r.Final {
			continue
		}
		var t uint64
		if l.cfg.Titanic {
			select {
			case t = <-sent:
			default: // A reply to nothing sent: counted as an error below.
			}
		} else if len(r.Body) > 0 && len(r.Body[0]) >= 8 {
			t = binary.LittleEndian.Uint64(r.Body[0])
		}
		if t == 0 || !l.answered(r.Body, t) {
			l.errs.Add(1)
			continue
		}
		if l.phase.Load() == phaseMeasure {
			record(h, time.Duration(now-t))
			l.replies.Add(1)
		}
	}
}

func (l *clientLoad) measure() {
	l.mu.Lock()
	l.t0 = time.Now()
	l.mu.Unlock()
	l.phase.Store(phaseMeasure)
}

func (l *clientLoad) count() uint64 { return l.replies.Load() }

func (l *clientLoad) endMeasure() {
	l.phase.Store(phaseDone)
	l.mu.Lock()
	l.t1 = time.Now()
	l.mu.Unlock()
}

// finish stops the load and returns what was measured. Histograms are
// read only after every goroutine that writes them has returned.
func (l *clientLoad) finish() (clientResult, error) {
	if l.phase.Load() != phaseDone {
		l.endMeasure()
	}
	l.abort()
	h := newHist()
	for _, x := range l.hists {
		h.Merge(x)
	}
	l.mu.Lock()
	secs := l.t1.Sub(l.t0).Seconds()
	l.mu.Unlock()
	return clientResult{Requests: l.replies.Load(), Errors: l.errs.Load(), Seconds: secs, Hist: h.Export()}, nil
}

// workerSet is the echo workers: one worker.Worker per service, with as many
// sockets (WithConcurrency) as the service has workers, so that a thousand
// workers need only one libzmq context per service.
type workerSet struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
}

func echo(_ context.Context, req *worker.Request) ([][]byte, error) { return req.Body, nil }

func startWorkers(cfg Config, endpoint string) (*workerSet, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &workerSet{cancel: cancel, errs: make(chan error, cfg.Services)}
	_, wopts, err := peerCurve(cfg)
	if err != nil {
		cancel()
		return nil, err
	}
	for i, n := range workersPer(cfg.Workers, cfg.Services) {
		w, err := worker.New(endpoint, serviceName(i, cfg.Services), worker.HandlerFunc(echo),
			append([]worker.Option{worker.WithVersion(mdp.Version(cfg.Protocol)), worker.WithConcurrency(n),
				worker.WithLogger(discard), worker.WithShutdownTimeout(time.Second)}, wopts...)...)
		if err != nil {
			s.stop()
			return nil, err
		}
		s.wg.Go(func() {
			if err := w.Run(ctx); err != nil {
				s.errs <- err
			}
		})
	}
	return s, nil
}

func (s *workerSet) stop() {
	s.cancel()
	s.wg.Wait()
}

// waitWorkers waits until the broker at endpoint knows every worker of cfg,
// asking with mmi.workers.
func waitWorkers(ctx context.Context, cfg Config, endpoint string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	copts, _, err := peerCurve(cfg)
	if err != nil {
		return err
	}
	c, err := client.Connect(endpoint, append([]client.Option{client.WithLogger(discard), client.WithTimeout(time.Second),
		client.WithRetries(0)}, copts...)...)
	if err != nil {
		return err
	}
	defer c.Close()
	if cfg.Titanic {
		for {
			ok, err := c.ServiceExists(ctx, titanicRequest)
			if ok {
				return nil
			}
			if ctx.Err() != nil {
				return fmt.Errorf("no %s worker at the broker after %v (%v): is Titanic on?", titanicRequest, timeout, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	per := workersPer(cfg.Workers, cfg.Services)
	for i := 0; i < len(per); {
		name := serviceName(i, cfg.Services)
		n, err := c.Workers(ctx, name)
		if err == nil && n.Idle+n.Busy >= per[i] {
			i++
			continue
		}
		if ctx.Err() != nil {
			return fmt.Errorf("workers not registered with the broker after %v (service %s: %+v, %v)", timeout, name, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
