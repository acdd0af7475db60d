package titanic

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// errCommitterStopped: an op was submitted after the committer stopped.
var errCommitterStopped = errors.New("titanic: shutting down")

// pendingOp is an Op waiting for its batch's commit; done is called once,
// from the committer goroutine, with the batch's result.
type pendingOp struct {
	op   *Op
	size int
	done func(error)
}

// committer is the group commit: it owns all writes to the store. Callers
// queue ops; the committer takes everything queued (up to maxOps and
// maxBytes), commits it as one transaction, then reports the result to
// every op of the batch. While a commit is in progress new ops pile up and
// form the next batch, so the batch size follows the load with no timer and
// no added latency: at low load a batch is one op, at high load it is as
// many ops as arrived during one commit (one fdatasync pair per batch).
type committer struct {
	store    Store
	maxOps   int
	maxBytes int
	spare    bool // Config.SpareProc.

	mu      sync.Mutex
	queue   []pendingOp
	stopped bool
	wake    chan struct{} // Capacity 1.
	done    chan struct{}

	commits, ops, failed atomic.Uint64
	maxBatch             atomic.Int64
	commitNanos          atomic.Int64
}

func newCommitter(s Store, maxOps, maxBytes int, spare bool) *committer {
	// A second processor runs in parallel only where there is a second
	// CPU: pinned to one, raising GOMAXPROCS only adds thread switches.
	spare = spare && runtime.NumCPU() > 1
	c := &committer{store: s, maxOps: maxOps, maxBytes: maxBytes, spare: spare,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	go c.run()
	return c
}

// submit queues op; done is called with the result of its commit. After
// stop, done is called at once with errCommitterStopped.
func (c *committer) submit(op *Op, done func(error)) {
	size := 64 + len(op.Service)
	for _, f := range op.Body {
		size += 8 + len(f)
	}
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		done(errCommitterStopped)
		return
	}
	c.queue = append(c.queue, pendingOp{op: op, size: size, done: done})
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// commit submits op and waits for its commit.
func (c *committer) commit(op *Op) error {
	ch := make(chan error, 1)
	c.submit(op, func(err error) { ch <- err })
	return <-ch
}

// stop commits what is queued, then stops; later submits fail.
func (c *committer) stop() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.done
}

func (c *committer) run() {
	defer close(c.done)
	var batch, rest []pendingOp
	var ops []*Op
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && len(rest) == 0 {
			if c.stopped {
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			<-c.wake
			c.mu.Lock()
		}
		// Let goroutines that are about to queue an op do so before the
		// batch is cut. On several CPUs they are running anyway and this
		// costs a few hundred nanoseconds; on one CPU (GOMAXPROCS=1, as
		// under taskset -c 0) nothing else runs while this goroutine
		// commits, so without it every batch would hold one op.
		for range 8 {
			n := len(c.queue)
			c.mu.Unlock()
			runtime.Gosched()
			c.mu.Lock()
			if len(c.queue) == n {
				break
			}
		}
		// Swap the queue out: callers append to a fresh slice while this
		// batch commits.
		rest = append(rest, c.queue...)
		clear(c.queue)
		c.queue = c.queue[:0]
		c.mu.Unlock()

		n, bytes := 0, 0
		for n < len(rest) && n < c.maxOps && (n == 0 || bytes+rest[n].size <= c.maxBytes) {
			bytes += rest[n].size
			n++
		}
		batch = append(batch[:0], rest[:n]...)
		rest = append(rest[:0], rest[n:]...)
		ops = ops[:0]
		for _, p := range batch {
			ops = append(ops, p.op)
		}
		start := time.Now()
		err := c.storeCommit(ops)
		c.commitNanos.Add(int64(time.Since(start)))
		c.commits.Add(1)
		c.ops.Add(uint64(len(ops)))
		if err != nil {
			c.failed.Add(1)
		}
		if int64(len(ops)) > c.maxBatch.Load() {
			c.maxBatch.Store(int64(len(ops)))
		}
		for i, p := range batch {
			p.done(err)
			batch[i] = pendingOp{}
		}
		clear(ops)
	}
}

// storeCommit commits ops; with spare and GOMAXPROCS 1 it gives the
// process a second processor for the commit's duration (Config.SpareProc),
// so that the goroutines this thread's blocking fdatasync would otherwise
// hold up run meanwhile.
func (c *committer) storeCommit(ops []*Op) error {
	if !c.spare || runtime.GOMAXPROCS(0) != 1 {
		return c.store.Commit(ops)
	}
	runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(1)
	return c.store.Commit(ops)
}
