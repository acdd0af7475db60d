package dispatch

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

type tjob struct{ id int }

type tpool = Pool[*tjob, string]
type tworker = Worker[*tjob, string]

func mustQueue(t *testing.T, p *tpool, name string) *Queue[*tjob, string] {
	t.Helper()
	q, err := p.Ensure(name)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func mustJoin(t *testing.T, p *tpool, name string, subs ...Sub) *tworker {
	t.Helper()
	w, err := p.Join(name, subs)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// checkInvariants verifies the pool's bookkeeping against the workers.
func checkInvariants(t *testing.T, p *tpool, workers []*tworker) {
	t.Helper()
	members := map[string]int{}
	ready := map[string]int{}
	for _, w := range workers {
		if w.removed {
			if w.slots != 0 {
				t.Fatalf("removed worker %s has %d slots", w.Peer, w.slots)
			}
			continue
		}
		for _, m := range w.subs {
			members[m.q.name]++
			inBucket := 0
			for _, b := range m.q.buckets {
				for i := 0; i < b.workers.Len(); i++ {
					if b.workers.at(i) == w {
						inBucket++
						if b.weight != m.weight {
							t.Fatalf("worker %s in bucket %d, weight %d", w.Peer, b.weight, m.weight)
						}
					}
				}
			}
			want := 0
			if w.slots > 0 {
				want = 1
				ready[m.q.name]++
			}
			if inBucket != want {
				t.Fatalf("worker %s with %d slots is %d times in %s's ready list", w.Peer, w.slots, inBucket, m.q.name)
			}
			if !p.paused && w.slots > 0 && m.q.Len() > 0 {
				t.Fatalf("worker %s has a free slot while %s has %d waiting", w.Peer, m.q.name, m.q.Len())
			}
		}
	}
	var budget int64
	p.Range(func(q *Queue[*tjob, string]) bool {
		if q.members != members[q.name] {
			t.Fatalf("queue %s: members %d, want %d", q.name, q.members, members[q.name])
		}
		if q.ready != ready[q.name] {
			t.Fatalf("queue %s: ready %d, want %d", q.name, q.ready, ready[q.name])
		}
		for i := 1; i < len(q.buckets); i++ {
			if q.buckets[i-1].weight <= q.buckets[i].weight {
				t.Fatalf("queue %s: buckets out of order", q.name)
			}
		}
		budget += q.Bytes()
		return true
	})
	if b := p.cfg.Budget; b != nil && b.used != budget {
		t.Fatalf("budget used %d, queues hold %d", b.used, budget)
	}
}

// MDP shape: one queue, one slot per worker, least recently used first.
func TestPoolLRUOneSlot(t *testing.T) {
	p := NewPool[*tjob, string](Config{})
	q := mustQueue(t, p, "echo")
	var ws []*tworker
	for _, n := range []string{"w1", "w2", "w3"} {
		w := mustJoin(t, p, n, Sub{Queue: "echo"})
		p.Credit(w, 1)
		ws = append(ws, w)
	}
	checkInvariants(t, p, ws)
	var order []string
	for i := 0; i < 3; i++ {
		w, err := p.Submit(q, []byte("c"), &tjob{i}, 1, t0)
		if err != nil || w == nil {
			t.Fatalf("Submit %d: %v %v", i, w, err)
		}
		order = append(order, w.Peer)
	}
	if got := strings.Join(order, " "); got != "w1 w2 w3" {
		t.Fatalf("dispatch order %s", got)
	}
	// All busy: the next job waits.
	if w, err := p.Submit(q, []byte("c"), &tjob{9}, 1, t0); w != nil || err != nil || q.Len() != 1 {
		t.Fatalf("Submit with no ready worker: %v %v len %d", w, err, q.Len())
	}
	// w2 finishes first: it takes the waiting job.
	p.Credit(ws[1], 1)
	e, gotQ, ok := p.Next(ws[1], t0.Add(time.Second))
	if !ok || e.Value.id != 9 || gotQ != q {
		t.Fatalf("Next = %v %v %v", e, gotQ, ok)
	}
	if q.Stats().QueueWait.Count != 4 || q.Stats().QueueWait.Max != time.Second {
		t.Fatalf("queue wait %+v", q.Stats().QueueWait)
	}
	// Then w3 and w1 come back in that order and are used in that order.
	p.Credit(ws[2], 1)
	p.Credit(ws[0], 1)
	w, _ := p.Submit(q, []byte("c"), &tjob{10}, 1, t0)
	if w != ws[2] {
		t.Fatalf("LRU: got %s, want w3", w.Peer)
	}
	checkInvariants(t, p, ws)
	if q.Stats().Submitted != 5 || q.Stats().Dispatched != 5 {
		t.Fatalf("stats %+v", q.Stats())
	}
}

// eMQP shape: one job manager, several slots, several managers rotate.
func TestPoolMultiSlotRotation(t *testing.T) {
	p := NewPool[*tjob, string](Config{})
	q := mustQueue(t, p, "default")
	a := mustJoin(t, p, "a", Sub{Queue: "default", Weight: 10})
	b := mustJoin(t, p, "b", Sub{Queue: "default", Weight: 10})
	p.Credit(a, 2)
	p.Credit(b, 2)
	var order []string
	for i := 0; i < 4; i++ {
		w, _ := p.Submit(q, []byte("c"), &tjob{i}, 1, t0)
		order = append(order, w.Peer)
	}
	if got := strings.Join(order, " "); got != "a b a b" {
		t.Fatalf("order %s", got)
	}
	if a.Slots() != 0 || b.Slots() != 0 || q.Ready() != 0 {
		t.Fatalf("slots %d %d ready %d", a.Slots(), b.Slots(), q.Ready())
	}
	checkInvariants(t, p, []*tworker{a, b})
}

// A job arriving in a queue goes to the worker that weighs that queue most.
func TestPoolHeaviestWorkerFirst(t *testing.T) {
	p := NewPool[*tjob, string](Config{})
	q := mustQueue(t, p, "email")
	light := mustJoin(t, p, "light", Sub{Queue: "email", Weight: 1})
	heavy := mustJoin(t, p, "heavy", Sub{Queue: "email", Weight: 50})
	mid := mustJoin(t, p, "mid", Sub{Queue: "email", Weight: 20})
	for _, w := range []*tworker{light, heavy, mid} {
		p.Credit(w, 1)
	}
	var order []string
	for i := 0; i < 3; i++ {
		w, _ := p.Submit(q, nil, &tjob{i}, 0, t0)
		order = append(order, w.Peer)
	}
	if got := strings.Join(order, " "); got != "heavy mid light" {
		t.Fatalf("order %s", got)
	}
	checkInvariants(t, p, []*tworker{light, heavy, mid})
}

func loadQueues(t *testing.T, p *tpool, n int, names ...string) {
	for _, name := range names {
		q := mustQueue(t, p, name)
		for i := 0; i < n; i++ {
			if _, err := p.Submit(q, []byte("c"), &tjob{i}, 1, t0); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestPoolWeightedRoundRobin(t *testing.T) {
	p := NewPool[*tjob, string](Config{})
	loadQueues(t, p, 1000, "a", "b", "c")
	w := mustJoin(t, p, "jm", Sub{Queue: "a", Weight: 30}, Sub{Queue: "b", Weight: 10}, Sub{Queue: "c", Weight: 10})
	counts := map[string]int{}
	var seq strings.Builder
	run, longest, last := 0, 0, ""
	for i := 0; i < 500; i++ {
		p.Credit(w, 1)
		_, q, ok := p.Next(w, t0)
		if !ok {
			t.Fatalf("Next %d failed", i)
		}
		counts[q.name]++
		if i < 20 {
			seq.WriteString(q.name)
		}
		if q.name == last {
			run++
		} else {
			run, last = 1, q.name
		}
		longest = max(longest, run)
	}
	if counts["a"] != 300 || counts["b"] != 100 || counts["c"] != 100 {
		t.Fatalf("shares %v, want a=300 b=100 c=100", counts)
	}
	// Smooth: the heavy queue never runs more than its share in a row.
	if longest > 3 {
		t.Fatalf("longest run %d (first picks %s)", longest, seq.String())
	}
	// A queue that empties is skipped, the others go on in proportion.
	p.Drain(p.Queue("a"), nil)
	for i := 0; i < 10; i++ {
		p.Credit(w, 1)
		if _, q, _ := p.Next(w, t0); q.name == "a" {
			t.Fatal("served an empty queue")
		}
	}
}

func TestPoolStrictPriority(t *testing.T) {
	p := NewPool[*tjob, string](Config{Selection: StrictPriority})
	loadQueues(t, p, 3, "low", "high")
	// Listed light first: strict priority still serves the heavy queue
	// first.
	w := mustJoin(t, p, "jm", Sub{Queue: "low", Weight: 1}, Sub{Queue: "high", Weight: 5})
	var seq []string
	for i := 0; i < 6; i++ {
		p.Credit(w, 1)
		_, q, ok := p.Next(w, t0)
		if !ok {
			t.Fatal("Next failed")
		}
		seq = append(seq, q.name)
	}
	if got := strings.Join(seq, " "); got != "high high high low low low" {
		t.Fatalf("strict order %s", got)
	}
	if StrictPriority.String() != "strict" || WeightedRoundRobin.String() != "weighted" {
		t.Fatal("Selection names")
	}
}

func TestPoolBounds(t *testing.T) {
	budget := &Budget{Max: 10}
	p := NewPool[*tjob, string](Config{Limits: Limits{MaxLen: 3, MaxBytes: 8, Budget: budget}})
	a := mustQueue(t, p, "a")
	b := mustQueue(t, p, "b")
	for i := 0; i < 3; i++ {
		if _, err := p.Submit(a, nil, &tjob{i}, 1, t0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Submit(a, nil, &tjob{3}, 1, t0); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("4th job: %v, want ErrQueueFull", err)
	}
	if _, err := p.Submit(b, nil, &tjob{4}, 9, t0); !errors.Is(err, ErrQueueBytes) {
		t.Fatalf("9 bytes in b: %v, want ErrQueueBytes (per queue)", err)
	}
	if _, err := p.Submit(b, nil, &tjob{5}, 8, t0); !errors.Is(err, ErrQueueBytes) {
		t.Fatalf("8 bytes with 3 used of 10: %v, want ErrQueueBytes (budget)", err)
	}
	if _, err := p.Submit(b, nil, &tjob{7}, 6, t0); err != nil {
		t.Fatal(err)
	}
	if budget.budgetUsed() != 9 {
		t.Fatalf("budget used %d, want 9", budget.budgetUsed())
	}
	if a.Stats().Rejected != 1 || b.Stats().Rejected != 2 {
		t.Fatalf("rejected a=%d b=%d", a.Stats().Rejected, b.Stats().Rejected)
	}
	// Requeue ignores the bounds: a redelivered job is never lost to them.
	p.Requeue(a, "c", &tjob{8}, 5, t0)
	if a.Len() != 4 || budget.budgetUsed() != 14 || a.Stats().Requeued != 1 {
		t.Fatalf("requeue: len %d budget %d", a.Len(), budget.budgetUsed())
	}
	// Workers drain the queues and give the budget back.
	w := mustJoin(t, p, "w", Sub{Queue: "a"}, Sub{Queue: "b"})
	p.Credit(w, 100)
	n := 0
	for {
		if _, _, ok := p.Next(w, t0); !ok {
			break
		}
		n++
	}
	if n != 5 || budget.budgetUsed() != 0 {
		t.Fatalf("drained %d, budget %d", n, budget.budgetUsed())
	}
	checkInvariants(t, p, []*tworker{w})
	// The requeued job came out first from a.
	var nilBudget *Budget
	if nilBudget.budgetUsed() != 0 || !nilBudget.fits(1<<62) {
		t.Fatal("nil budget")
	}
}

// Check answers what Submit would, without submitting or counting.
func TestPoolReject(t *testing.T) {
	p := NewPool[*tjob, string](Config{Limits: Limits{MaxLen: 1, MaxBytes: 4}})
	q := mustQueue(t, p, "q")
	// The bounds refuse it too: counted as submitted and rejected.
	if err := p.Reject(q, 5); !errors.Is(err, ErrQueueBytes) {
		t.Fatalf("5 bytes: %v, want ErrQueueBytes", err)
	}
	if st := q.Stats(); st.Submitted != 1 || st.Rejected != 1 || q.Len() != 0 {
		t.Fatalf("refused by a bound: %+v, len %d", st, q.Len())
	}
	// The bounds would take it: the refusal is the caller's, not counted.
	if err := p.Reject(q, 1); err != nil {
		t.Fatalf("1 byte: %v", err)
	}
	if st := q.Stats(); st.Submitted != 1 || st.Rejected != 1 || q.Len() != 0 {
		t.Fatalf("caller's refusal counted: %+v, len %d", st, q.Len())
	}
	if _, err := p.Submit(q, nil, &tjob{1}, 1, t0); err != nil {
		t.Fatal(err)
	}
	if err := p.Reject(q, 1); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("full queue: %v, want ErrQueueFull", err)
	}
	if st := q.Stats(); st.Submitted != 3 || st.Rejected != 2 || q.Len() != 1 {
		t.Fatalf("full queue: %+v, len %d", st, q.Len())
	}
	// A ready worker takes a job whatever its size, once nothing waits.
	w := mustJoin(t, p, "w", Sub{Queue: "q"})
	p.Credit(w, 2)
	p.Next(w, t0)
	if err := p.Reject(q, 100); err != nil {
		t.Fatalf("ready worker: %v", err)
	}
	if st := q.Stats(); st.Dispatched != 1 || st.Submitted != 3 || w.Slots() != 1 {
		t.Fatalf("Reject took a slot or counted: %+v, slots %d", st, w.Slots())
	}
	p.SetPaused(true)
	if err := p.Reject(q, 100); !errors.Is(err, ErrQueueBytes) {
		t.Fatalf("paused: %v, want ErrQueueBytes", err)
	}
}

func TestPoolRequeueAndDispatch(t *testing.T) {
	p := NewPool[*tjob, string](Config{})
	q := mustQueue(t, p, "q")
	w1 := mustJoin(t, p, "w1", Sub{Queue: "q"})
	p.Credit(w1, 1)
	got, _ := p.Submit(q, []byte("c"), &tjob{1}, 1, t0)
	if got != w1 {
		t.Fatal("not dispatched")
	}
	p.Submit(q, []byte("c"), &tjob{2}, 1, t0)
	// w1 dies holding job 1; w2 is ready: redelivery goes first.
	p.Leave(w1)
	w2 := mustJoin(t, p, "w2", Sub{Queue: "q"})
	p.Requeue(q, "c", &tjob{1}, 1, t0.Add(time.Second))
	if _, _, ok := p.Dispatch(q, t0); ok {
		t.Fatal("dispatched with no ready worker")
	}
	p.Credit(w2, 1)
	e, _, ok := p.Next(w2, t0.Add(2*time.Second))
	if !ok || e.Value.id != 1 {
		t.Fatalf("redelivered job first: got %+v", e)
	}
	p.Credit(w2, 1)
	w, e, ok := p.Dispatch(q, t0)
	if !ok || w != w2 || e.Value.id != 2 {
		t.Fatalf("Dispatch = %v %+v %v", w, e, ok)
	}
	checkInvariants(t, p, []*tworker{w1, w2})
}

func TestPoolLeaveAndResubscribe(t *testing.T) {
	p := NewPool[*tjob, string](Config{})
	w := mustJoin(t, p, "jm", Sub{Queue: "a", Weight: 5}, Sub{Queue: "b", Weight: 5}, Sub{Queue: "a", Weight: 9})
	if subs := fmt.Sprint(w.Subs()); subs != "[{a 9} {b 5}]" {
		t.Fatalf("duplicates not merged: %s", subs)
	}
	p.Credit(w, 3)
	a, b := p.Queue("a"), p.Queue("b")
	if a.Members() != 1 || a.Ready() != 1 || b.Ready() != 1 || !w.serves(a) {
		t.Fatal("join bookkeeping")
	}
	if err := p.Resubscribe(w, []Sub{{Queue: "b"}, {Queue: "c", Weight: 2}}); err != nil {
		t.Fatal(err)
	}
	c := p.Queue("c")
	if a.Members() != 0 || a.Ready() != 0 || b.Ready() != 1 || c.Ready() != 1 || w.Slots() != 3 || w.serves(a) {
		t.Fatalf("resubscribe: a %d/%d b %d c %d slots %d", a.Members(), a.Ready(), b.Ready(), c.Ready(), w.Slots())
	}
	checkInvariants(t, p, []*tworker{w})
	p.SetSlots(w, 0)
	if b.Ready() != 0 || c.Ready() != 0 {
		t.Fatal("SetSlots(0) left the worker ready")
	}
	p.SetSlots(w, 2)
	p.Leave(w)
	p.Leave(w) // Twice is harmless.
	if !w.removed || w.Slots() != 0 || b.Members() != 0 || c.Ready() != 0 {
		t.Fatal("Leave bookkeeping")
	}
	p.Credit(w, 1)
	if w.Slots() != 0 {
		t.Fatal("credit to a removed worker")
	}
	if _, _, ok := p.Next(w, t0); ok {
		t.Fatal("Next for a removed worker")
	}
	checkInvariants(t, p, []*tworker{w})
}

func TestPoolLimitsOnQueues(t *testing.T) {
	p := NewPool[*tjob, string](Config{Limits: Limits{MaxQueues: 2, MaxQueuesPerWorker: 2}})
	if _, err := p.Join("w", []Sub{{Queue: "a"}, {Queue: "b"}, {Queue: "c"}}); !errors.Is(err, ErrTooManySubscriptions) {
		t.Fatalf("3 subs: %v", err)
	}
	mustJoin(t, p, "w", Sub{Queue: "a"})
	mustQueue(t, p, "x")
	if _, err := p.Ensure("y"); !errors.Is(err, ErrTooManyQueues) {
		t.Fatalf("3rd queue: %v", err)
	}
	if _, err := p.EnsureBytes([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Join("v", []Sub{{Queue: "z"}}); !errors.Is(err, ErrTooManyQueues) {
		t.Fatalf("join into a new queue: %v", err)
	}
	// x has no workers: it can be evicted to make room.
	x := p.EvictCandidate()
	if x == nil || x.Name() != "x" {
		t.Fatalf("evict candidate %v", x)
	}
	if p.Forget(p.Queue("a"), nil) {
		t.Fatal("forgot a queue with workers")
	}
	if !p.Forget(x, nil) || p.Queue("x") != nil || p.Len() != 1 {
		t.Fatal("Forget")
	}
	if _, err := p.Ensure("y"); err != nil {
		t.Fatal(err)
	}
	p.SetLimits(Limits{})
	if _, err := p.Ensure("many"); err != nil || p.cfg.Limits.MaxQueues != 0 {
		t.Fatal("SetLimits")
	}
}

func TestPoolExpireSweepDrain(t *testing.T) {
	budget := &Budget{}
	p := NewPool[*tjob, string](Config{Limits: Limits{Budget: budget}})
	q := mustQueue(t, p, "q")
	for i := 0; i < 6; i++ {
		p.Submit(q, []byte{byte(i % 2)}, &tjob{i}, 2, t0.Add(time.Duration(i)*time.Second))
	}
	var expired []int
	n := p.Expire(t0.Add(3*time.Second), func(gq *Queue[*tjob, string], e Entry[*tjob]) {
		if gq != q {
			t.Fatal("wrong queue")
		}
		expired = append(expired, e.Value.id)
	})
	if n != 3 || q.Stats().Expired != 3 || budget.budgetUsed() != 6 {
		t.Fatalf("expired %d %v, budget %d", n, expired, budget.budgetUsed())
	}
	if got := p.remove(q, func(e Entry[*tjob]) bool { return e.Value.id == 4 }, nil); got != 1 || budget.budgetUsed() != 4 {
		t.Fatalf("Remove %d budget %d", got, budget.budgetUsed())
	}
	waiting, bytes, ready := p.Totals()
	if waiting != 2 || bytes != 4 || ready != 0 {
		t.Fatalf("Totals %d %d %d", waiting, bytes, ready)
	}
	// Sweep keeps a queue with jobs, then forgets it once empty for ttl.
	p.Sweep(t0, time.Minute, nil)
	if p.Queue("q") == nil {
		t.Fatal("swept a queue with jobs")
	}
	if p.Drain(q, nil) != 2 || budget.budgetUsed() != 0 {
		t.Fatal("Drain")
	}
	var swept []string
	p.Sweep(t0, time.Minute, func(q *Queue[*tjob, string]) { swept = append(swept, q.Name()) })
	p.Sweep(t0.Add(59*time.Second), time.Minute, func(q *Queue[*tjob, string]) { swept = append(swept, q.Name()) })
	if len(swept) != 0 {
		t.Fatal("swept too early")
	}
	p.Sweep(t0.Add(time.Minute), time.Minute, func(q *Queue[*tjob, string]) { swept = append(swept, q.Name()) })
	if len(swept) != 1 || p.Queue("q") != nil {
		t.Fatalf("swept %v", swept)
	}
}

func TestPoolPaused(t *testing.T) {
	p := NewPool[*tjob, string](Config{})
	q := mustQueue(t, p, "q")
	w := mustJoin(t, p, "w", Sub{Queue: "q"})
	p.Credit(w, 1)
	p.SetPaused(true)
	if !p.Paused() {
		t.Fatal("Paused")
	}
	if got, _ := p.Submit(q, nil, &tjob{1}, 1, t0); got != nil || q.Len() != 1 {
		t.Fatal("paused pool dispatched")
	}
	if _, _, ok := p.Next(w, t0); ok {
		t.Fatal("paused Next")
	}
	if _, _, ok := p.Dispatch(q, t0); ok {
		t.Fatal("paused Dispatch")
	}
	p.SetPaused(false)
	if got, _, ok := p.Dispatch(q, t0); !ok || got != w {
		t.Fatal("resumed Dispatch")
	}
}

// TestPoolRandomModel drives the pool the way a protocol does, with random
// workers, credits, jobs and deaths, and checks the bookkeeping and that no
// job is lost or duplicated.
func TestPoolRandomModel(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for _, sel := range []Selection{WeightedRoundRobin, StrictPriority} {
		budget := &Budget{Max: 400}
		p := NewPool[*tjob, string](Config{Selection: sel, Limits: Limits{MaxLen: 50, Budget: budget, MaxIdleSubmitters: 2}})
		names := []string{"a", "b", "c", "d"}
		var workers []*tworker
		held := map[*tworker][]*tjob{}
		live := map[int]bool{} // Jobs accepted and not yet done or dropped.
		nextID := 0
		deliver := func(w *tworker, j *tjob) {
			held[w] = append(held[w], j)
		}
		for step := 0; step < 20000; step++ {
			now := t0.Add(time.Duration(step) * time.Millisecond)
			switch op := r.IntN(10); {
			case op < 4: // A job arrives.
				q := mustQueue(t, p, names[r.IntN(len(names))])
				j := &tjob{nextID}
				nextID++
				w, err := p.Submit(q, []byte{byte(r.IntN(5))}, j, int64(r.IntN(10)), now)
				switch {
				case err != nil:
				case w != nil:
					deliver(w, j)
					live[j.id] = true
				default:
					live[j.id] = true
				}
			case op < 5: // A worker joins.
				subs := []Sub{{Queue: names[r.IntN(len(names))], Weight: 1}}
				for _, n := range names {
					if r.IntN(2) == 0 {
						subs = append(subs, Sub{Queue: n, Weight: 1 + r.IntN(3)*10})
					}
				}
				w := mustJoin(t, p, fmt.Sprint("w", len(workers)), subs...)
				workers = append(workers, w)
				p.Credit(w, 1+r.IntN(3))
				for {
					e, _, ok := p.Next(w, now)
					if !ok {
						break
					}
					deliver(w, e.Value)
				}
			case op < 8: // A worker finishes a job and gets its slot back.
				if len(workers) == 0 {
					continue
				}
				w := workers[r.IntN(len(workers))]
				if w.removed || len(held[w]) == 0 {
					continue
				}
				j := held[w][0]
				held[w] = held[w][1:]
				delete(live, j.id)
				p.Credit(w, 1)
				for {
					e, _, ok := p.Next(w, now)
					if !ok {
						break
					}
					deliver(w, e.Value)
				}
			case op < 9: // A worker dies: its jobs are requeued.
				if len(workers) == 0 {
					continue
				}
				w := workers[r.IntN(len(workers))]
				if w.removed {
					continue
				}
				p.Leave(w)
				q := w.subs[0].q
				for _, j := range held[w] {
					p.Requeue(q, "r", j, 1, now)
				}
				held[w] = nil
				for {
					nw, e, ok := p.Dispatch(q, now)
					if !ok {
						break
					}
					deliver(nw, e.Value)
				}
			default: // Expire old jobs.
				p.Expire(now.Add(-5*time.Second), func(_ *Queue[*tjob, string], e Entry[*tjob]) {
					delete(live, e.Value.id)
				})
			}
			if step%50 == 0 {
				checkInvariants(t, p, workers)
				// Every live job is either waiting or held, exactly once.
				seen := map[int]int{}
				for _, js := range held {
					for _, j := range js {
						seen[j.id]++
					}
				}
				p.Range(func(q *Queue[*tjob, string]) bool {
					q.fair.RemoveFunc(func(e Entry[*tjob]) bool { seen[e.Value.id]++; return false }, nil)
					return true
				})
				for id := range live {
					if seen[id] != 1 {
						t.Fatalf("%s step %d: job %d seen %d times", sel, step, id, seen[id])
					}
				}
				if len(seen) != len(live) {
					t.Fatalf("%s step %d: %d jobs around, %d live", sel, step, len(seen), len(live))
				}
			}
		}
	}
}
